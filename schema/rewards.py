"""Rewards shop, redemptions and the spin-and-win wheel."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.context import Info
from app.engine.rewards import Prize
from app.services.wheel import WheelView
from models import PrizeKind as DomainPrizeKind
from models import Redemption as RedemptionModel
from models import RedemptionStatus as DomainRedemptionStatus
from models import RewardCategory as DomainRewardCategory
from models import RewardItem as RewardItemModel
from models import Spin as SpinModel
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


# ------------------------------------------------------------------ spin & win

PrizeKind = strawberry.enum(DomainPrizeKind, name="PrizeKind")


@strawberry.type
class WheelPrize:
    _reward_id: strawberry.Private[int | None]
    index: int
    label: str
    kind: PrizeKind
    points: float | None
    weight: int
    odds: float = strawberry.field(description="weight / total weight: the disclosed chance.")

    @classmethod
    def from_spec(cls, index: int, prize: Prize, odds: Decimal) -> WheelPrize:
        return cls(
            _reward_id=prize.reward_id,
            index=index,
            label=prize.label,
            kind=PrizeKind(prize.kind),
            points=None if prize.points is None else points(prize.points),
            weight=prize.weight,
            odds=float(odds),
        )

    @strawberry.field
    async def reward(self, info: Info) -> RewardItem | None:
        if self._reward_id is None:
            return None
        row = await info.context.loaders.reward.load(self._reward_id)
        return RewardItem.from_model(row) if row else None


@strawberry.type
class Wheel:
    name: str
    prizes: list[WheelPrize]
    total_weight: int
    spin_cost: float = strawberry.field(description="Points per spin once the free ones are used.")
    free_spins_per_day: int
    daily_budget: float | None = strawberry.field(
        description="Points (prize points and reward costs) the wheel may give a day. Spins "
        "stop for the day once what is left cannot pay the biggest prize, so every spin "
        "has the odds shown."
    )
    budget_left_today: float | None
    active: bool

    @classmethod
    def from_view(cls, view: WheelView) -> Wheel:
        spec = view.spec
        left = view.budget_left_today
        return cls(
            name=view.wheel.name,
            prizes=[
                WheelPrize.from_spec(i, p, o)
                for i, (p, o) in enumerate(zip(spec.prizes, view.odds, strict=True))
            ],
            total_weight=sum(p.weight for p in spec.prizes),
            spin_cost=points(spec.spin_cost),
            free_spins_per_day=spec.free_spins_per_day,
            daily_budget=None if spec.daily_budget is None else points(spec.daily_budget),
            budget_left_today=None if left is None else points(left),
            active=view.wheel.active,
        )


@strawberry.type
class Spin:
    _model: strawberry.Private[SpinModel]
    id: strawberry.ID
    prize: WheelPrize
    points_won: float
    cost: float
    free: bool
    draw: int = strawberry.field(description="The server's random number in [0, totalWeight).")
    total_weight: int
    created_at: datetime

    @classmethod
    def from_model(cls, row: SpinModel, prize: Prize) -> Spin:
        return cls(
            _model=row,
            id=strawberry.ID(str(row.id)),
            prize=WheelPrize.from_spec(
                row.prize_index, prize, Decimal(prize.weight) / Decimal(row.total_weight)
            ),
            points_won=points(row.points_won),
            cost=points(row.cost),
            free=row.free,
            draw=row.draw,
            total_weight=row.total_weight,
            created_at=row.created_at,
        )

    @strawberry.field(description="The reward won, issued as a FULFILLED redemption.")
    async def redemption(self, info: Info) -> Redemption | None:
        rid = self._model.redemption_id  # type: ignore[attr-defined]
        if rid is None:
            return None
        row = await info.context.loaders.redemption.load(rid)
        return Redemption.from_model(row) if row else None

    @strawberry.field
    async def player(self, info: Info) -> Annotated[Player, strawberry.lazy("schema.players")]:
        from schema.players import Player

        row = await info.context.loaders.player_by_pk.load(self._model.player_id)  # type: ignore[attr-defined]
        return Player.from_model(row)


@strawberry.type
class SpinPayload:
    spin: Spin | None = None
    wallet: Wallet | None = None
    duplicate: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class WheelPrizeInput:
    label: str
    kind: PrizeKind
    weight: int
    points: float | None = None
    reward_id: strawberry.ID | None = None


@strawberry.input
class WheelInput:
    prizes: list[WheelPrizeInput]
    name: str | None = "Spin & Win"
    spin_cost: float | None = 0
    free_spins_per_day: int | None = 0
    daily_budget: float | None = None
    active: bool | None = True


@strawberry.type
class WheelPayload:
    wheel: Wheel | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
