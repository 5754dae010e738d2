"""Tortoise models, one module per aggregate; every row carries its tenant."""

from models.players import Player, PlayerKind, Team
from models.tenants import ApiKey, Role, Tenant

__all__ = ["ApiKey", "Player", "PlayerKind", "Role", "Team", "Tenant"]
