"""Rewards shop, redemptions and the spin-and-win wheel."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.context import Info
from models import Redemption as RedemptionModel
from models import RedemptionStatus as DomainRedemptionStatus
from models import RewardCategory as DomainRewardCategory
from models import RewardItem as RewardItemModel
from schema.common import UserError
from schema.ledger import Wallet, points

if TYPE_CHECKING:
    from schema.players import Player

RewardCategory = strawberry.enum(DomainRewardCategory, name="RewardCategory")
RedemptionStatus = strawberry.enum(DomainRedemptionStatus, name="RedemptionStatus")


@strawberry.type
class RewardItem:
    id: strawberry.ID
    name: str
    description: str | None
    category: RewardCategory
    points_cost: float
    stock: int | None = strawberry.field(description="null = unlimited")
    featured: bool
    requires_approval: bool
    per_player_limit: int | None = strawberry.field(
        description="How many one player may redeem in all (rejected and cancelled aside)."
    )
    available_from: datetime | None
    available_until: datetime | None
    min_level: int
    expiry_days: int | None = strawberry.field(description="Days an issued code stays valid.")
    code_prefix: str
    uses_code_pool: bool
    details: JSON
    active: bool

    @classmethod
    def from_model(cls, row: RewardItemModel) -> RewardItem:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            category=RewardCategory(row.category),
            points_cost=points(row.points_cost),
            stock=row.stock,
            featured=row.featured,
            requires_approval=row.requires_approval,
            per_player_limit=row.per_player_limit,
            available_from=row.available_from,
            available_until=row.available_until,
            min_level=row.min_level,
            expiry_days=row.expiry_days,
            code_prefix=row.code_prefix,
            uses_code_pool=row.uses_code_pool,
            details=row.details,
            active=row.active,
        )


@strawberry.type
class Redemption:
    _model: strawberry.Private[RedemptionModel]
    id: strawberry.ID
    quantity: int
    points_spent: float
    status: RedemptionStatus
    code: str | None = strawberry.field(description="Set once fulfilled.")
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    source: str = strawberry.field(description="shop, offer or wheel")
    reason: str | None = strawberry.field(description="Why it was issued or rejected.")

    @classmethod
    def from_model(cls, row: RedemptionModel) -> Redemption:
        return cls(
            _model=row,
            id=strawberry.ID(str(row.id)),
            quantity=row.quantity,
            points_spent=points(row.points_spent),
            status=RedemptionStatus(row.status),
            code=row.code,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at or row.created_at,
            source=row.source,
            reason=row.reason,
        )

    @strawberry.field
    async def player(self, info: Info) -> Annotated[Player, strawberry.lazy("schema.players")]:
        from schema.players import Player

        row = await info.context.loaders.player_by_pk.load(self._model.player_id)  # type: ignore[attr-defined]
        return Player.from_model(row)

    @strawberry.field
    async def reward(self, info: Info) -> RewardItem:
        row = await info.context.loaders.reward.load(self._model.reward_id)  # type: ignore[attr-defined]
        return RewardItem.from_model(row)


@strawberry.input
class RedeemRewardInput:
    player_id: strawberry.ID
    reward_id: strawberry.ID
    quantity: int | None = 1
    idempotency_key: str | None = None


@strawberry.type
class RedemptionPayload:
    redemption: Redemption | None = None
    wallet: Wallet | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
    duplicate: bool = strawberry.field(
        default=False, description="The idempotency key's first result, replayed."
    )


@strawberry.input
class RewardItemInput:
    name: str
    description: str | None = None
    category: RewardCategory
    points_cost: float
    stock: int | None = None
    featured: bool | None = False
    requires_approval: bool | None = False
    per_player_limit: int | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    min_level: int | None = 1
    expiry_days: int | None = None
    code_prefix: str | None = strawberry.field(
        default="REWARD", description="Issued codes read PREFIX-XXXX-XXXX-XXXX-XXXX."
    )
    codes: list[str] | None = strawberry.field(
        default=None,
        description="A pool of codes handed out one per redemption instead of generated "
        "ones; the stock defaults to their number.",
    )
    details: JSON | None = strawberry.field(
        default=None, description="Shown with the code: instructions, a link, terms."
    )


@strawberry.type
class RewardItemPayload:
    reward: RewardItem | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
