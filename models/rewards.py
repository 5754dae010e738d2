"""The rewards shop: items, their code pools, redemptions, and the spin-and-win wheel."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.ledger import POINTS


class RewardCategory(StrEnum):
    DISCOUNT = "DISCOUNT"
    DIGITAL = "DIGITAL"
    EXPERIENCE = "EXPERIENCE"
    PHYSICAL = "PHYSICAL"
    OFFER = "OFFER"


class RedemptionStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    FULFILLED = "FULFILLED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class RewardItem(Model):
    """A reward of a tenant's shop: cost, stock (null is unlimited), limits, window,
    minimum level and how its codes are issued."""

    id = fields.IntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="reward_items", db_index=True)
    name = fields.CharField(max_length=200)
    description = fields.TextField(null=True)
    category = fields.CharEnumField(RewardCategory, max_length=16)
    points_cost = fields.DecimalField(**POINTS)
    stock = fields.IntField(null=True)
    featured = fields.BooleanField(default=False)
    requires_approval = fields.BooleanField(default=False)
    # How many one player may redeem in all (rejected and cancelled ones do not count).
    per_player_limit = fields.IntField(null=True)
    available_from = fields.DatetimeField(null=True)
    available_until = fields.DatetimeField(null=True)
    min_level = fields.IntField(default=1)
    # Issued codes read PREFIX-XXXX-XXXX-XXXX-XXXX unless the item has a pool of codes.
    code_prefix = fields.CharField(max_length=16, default="REWARD")
    uses_code_pool = fields.BooleanField(default=False)
    # Days an issued code stays valid (null: it does not expire).
    expiry_days = fields.IntField(null=True)
    # Shown to the player with the code: instructions, a link, terms.
    details = fields.JSONField(default=dict)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reward_item"
        # The backstop behind the conditional stock updates.
        constraints = (
            CheckConstraint(check="stock IS NULL OR stock >= 0", name="reward_stock_non_negative"),
        )


class RewardCode(Model):
    """A code of a reward's pool, handed out once, to one redemption."""

    id = fields.IntField(primary_key=True)
    reward = fields.ForeignKeyField("models.RewardItem", related_name="codes", db_index=False)
    code = fields.CharField(max_length=128)
    redemption = fields.OneToOneField(
        "models.Redemption", related_name="pool_code", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "reward_code"
        unique_together = (("reward", "code"),)


class Redemption(Model):
    """A player's redemption of a reward (or an offer or wheel prize issued at cost 0):
    points spent, stock held, status and the code issued."""

    id = fields.BigIntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="redemptions", db_index=False)
    player = fields.ForeignKeyField("models.Player", related_name="redemptions", db_index=False)
    reward = fields.ForeignKeyField("models.RewardItem", related_name="redemptions", db_index=True)
    quantity = fields.IntField()
    points_spent = fields.DecimalField(**POINTS)
    status = fields.CharEnumField(RedemptionStatus, max_length=16)
    code = fields.CharField(max_length=128, null=True, unique=True)
    expires_at = fields.DatetimeField(null=True)
    # shop, offer or wheel
    source = fields.CharField(max_length=16, default="shop")
    # Why it was issued (offers) or rejected.
    reason = fields.CharField(max_length=200, null=True)
    idempotency_key = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "redemption"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (
            ("player_id", "reward_id"),
            ("tenant_id", "status", "id"),
            ("status", "expires_at"),
        )


class PrizeKind(StrEnum):
    POINTS = "POINTS"
    REWARD = "REWARD"
    NOTHING = "NOTHING"


class Wheel(Model):
    """The tenant's spin-and-win wheel: prizes with disclosed weights, the cost of a spin,
    free spins per day and a daily prize budget in points."""

    id = fields.IntField(primary_key=True)
    tenant = fields.OneToOneField("models.Tenant", related_name="wheel")
    name = fields.CharField(max_length=200)
    # [{"label", "kind": POINTS|REWARD|NOTHING, "points", "rewardId", "weight"}]
    prizes = fields.JSONField(default=list)
    spin_cost = fields.DecimalField(**POINTS, default=0)
    free_spins_per_day = fields.IntField(default=0)
    daily_budget = fields.DecimalField(**POINTS, null=True)
    active = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "wheel"


class WheelDay(Model):
    """What a wheel paid out on one day of the tenant, held under its daily budget."""

    id = fields.IntField(primary_key=True)
    wheel = fields.ForeignKeyField("models.Wheel", related_name="days", db_index=False)
    day = fields.DateField()
    paid_out = fields.DecimalField(**POINTS, default=0)
    spins = fields.IntField(default=0)

    class Meta:
        table = "wheel_day"
        unique_together = (("wheel", "day"),)


class Spin(Model):
    """One spin, kept for audit: the random draw, the prizes and weights at the time,
    the prize won and what it cost."""

    id = fields.BigIntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="spins", db_index=False)
    wheel = fields.ForeignKeyField("models.Wheel", related_name="spins", db_index=False)
    player = fields.ForeignKeyField("models.Player", related_name="spins", db_index=False)
    day = fields.DateField()
    cost = fields.DecimalField(**POINTS)
    free = fields.BooleanField()
    draw = fields.IntField()  # the random number in [0, total_weight)
    total_weight = fields.IntField()
    prizes = fields.JSONField()
    prize_index = fields.IntField()
    points_won = fields.DecimalField(**POINTS, default=0)
    redemption = fields.ForeignKeyField(
        "models.Redemption", related_name="spins", null=True, db_index=False
    )
    idempotency_key = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "spin"
        unique_together = (("tenant", "idempotency_key"),)
        indexes = (("player_id", "day"),)
