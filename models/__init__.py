"""Tortoise models, one module per aggregate; every row carries its tenant."""

from models.leaderboards import BoardSnapshot, Period, PeriodScore
from models.ledger import DataSource, Event, PlayerDay, PointTransaction, TransactionKind, Wallet
from models.players import Player, PlayerKind, Team
from models.tenants import ApiKey, Role, Tenant

__all__ = [
    "ApiKey",
    "BoardSnapshot",
    "DataSource",
    "Event",
    "Period",
    "PeriodScore",
    "Player",
    "PlayerDay",
    "PlayerKind",
    "PointTransaction",
    "Role",
    "Team",
    "Tenant",
    "TransactionKind",
    "Wallet",
]
