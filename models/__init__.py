"""Tortoise models, one module per aggregate; every row carries its tenant."""

from models.leaderboards import BoardSnapshot, Period, PeriodScore
from models.ledger import DataSource, Event, PlayerDay, PointTransaction, TransactionKind, Wallet
from models.players import Player, PlayerKind, Team
from models.rewards import (
    PrizeKind,
    Redemption,
    RedemptionStatus,
    RewardCategory,
    RewardCode,
    RewardItem,
    Spin,
    Wheel,
    WheelDay,
)
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
    "PrizeKind",
    "Redemption",
    "RedemptionStatus",
    "RewardCategory",
    "RewardCode",
    "RewardItem",
    "Role",
    "Spin",
    "Team",
    "Tenant",
    "TransactionKind",
    "Wallet",
    "Wheel",
    "WheelDay",
]
