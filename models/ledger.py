"""The points ledger: events, append-only transactions, wallets and per-day totals."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

POINTS = {"max_digits": 16, "decimal_places": 2}


class TransactionKind(StrEnum):
    EARN = "EARN"
    BONUS = "BONUS"
    BADGE_REWARD = "BADGE_REWARD"
    MISSION_REWARD = "MISSION_REWARD"
    LEVEL_UP_BONUS = "LEVEL_UP_BONUS"
    REDEEM = "REDEEM"
    REFUND = "REFUND"
    DECAY = "DECAY"
    EXPIRE = "EXPIRE"
    ADJUST = "ADJUST"


class Wallet(Model):
    """One row per player: balance, lifetime points, level and streak. Locked (FOR
    UPDATE) by every write to the player's points, which serialises them."""

    player = fields.OneToOneField(
        "models.Player", related_name="wallet", primary_key=True, on_delete=fields.CASCADE
    )
    tenant = fields.ForeignKeyField("models.Tenant", related_name="wallets", db_index=True)
    balance = fields.DecimalField(**POINTS, default=0)
    lifetime_earned = fields.DecimalField(**POINTS, default=0)
    level = fields.IntField(default=1)
    streak_current = fields.IntField(default=0)
    streak_best = fields.IntField(default=0)
    last_active_day = fields.DateField(null=True)
    last_event_at = fields.DatetimeField(null=True)
    decayed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "wallet"
        # The backstop behind the conditional updates: never a negative balance.
        constraints = (CheckConstraint(check="balance >= 0", name="wallet_balance_non_negative"),)


class PlayerDay(Model):
    """A player's activity on one local day: drives daily caps and streaks, late
    events included."""

    id = fields.BigIntField(primary_key=True)
    player = fields.ForeignKeyField("models.Player", related_name="days", db_index=False)
    day = fields.DateField()
    events = fields.IntField(default=0)
    earned = fields.DecimalField(**POINTS, default=0)  # rule points, counted toward the cap

    class Meta:
        table = "player_day"
        unique_together = (("player", "day"),)


class Event(Model):
    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField(
        "models.Tenant", related_name="events", db_index=False, db_constraint=False
    )
    player = fields.ForeignKeyField("models.Player", related_name="events", db_index=False)
    event_type = fields.CharField(max_length=64)
    category = fields.CharField(max_length=64, null=True)
    value = fields.DecimalField(max_digits=20, decimal_places=6)
    occurred_at = fields.DatetimeField()
    recorded_at = fields.DatetimeField(auto_now_add=True)
    source = fields.CharField(max_length=32)
    metadata = fields.JSONField(default=dict)
    points_awarded = fields.DecimalField(**POINTS, default=0)
    idempotency_key = fields.CharField(max_length=200, null=True)
    payload_hash = fields.CharField(max_length=64)
    # The outcome as first returned (breakdown, level-up), replayed for duplicates.
    outcome = fields.JSONField(default=dict)

    class Meta:
        table = "event"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (("player_id", "occurred_at"), ("tenant_id", "occurred_at"))


class PointTransaction(Model):
    """Append-only. Each line carries the balance after it: the lines of a player sum
    to the wallet's balance."""

    id = fields.BigIntField(primary_key=True)
    tenant = fields.ForeignKeyField(
        "models.Tenant", related_name="transactions", db_index=False, db_constraint=False
    )
    player = fields.ForeignKeyField("models.Player", related_name="transactions", db_index=False)
    kind = fields.CharEnumField(TransactionKind, max_length=16)
    amount = fields.DecimalField(**POINTS)
    balance_after = fields.DecimalField(**POINTS)
    reason = fields.CharField(max_length=200)
    event = fields.ForeignKeyField(
        "models.Event",
        related_name="transactions",
        null=True,
        db_index=True,
        on_delete=fields.SET_NULL,
        db_constraint=False,
    )
    idempotency_key = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "point_transaction"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (("player_id", "id"),)


class DataSource(Model):
    id = fields.IntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="data_sources", db_index=True)
    source_type = fields.CharField(max_length=16)
    name = fields.CharField(max_length=200)
    event_mapping = fields.JSONField(default=dict)
    sync_frequency = fields.CharField(max_length=16, default="realtime")
    # Write-only: API endpoints and credentials of the source; never returned.
    connection_config = fields.JSONField(default=dict)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "data_source"
