"""The rewards shop: items, redemptions and their flow, offers."""

from __future__ import annotations

import strawberry

from app.auth import Access
from app.context import Info
from app.errors import UserError as DomainUserError
from app.services import reward_items
from app.services import rewards as service
from app.services.access import Viewer
from resolvers.common import viewer
from schema.common import UserError
from schema.ledger import Wallet
from schema.rewards import (
    RedeemRewardInput,
    Redemption,
    RedemptionPayload,
    RedemptionStatus,
    RewardCategory,
    RewardItem,
    RewardItemInput,
    RewardItemPayload,
)


def acting_for(info: Info, player_id: str) -> Viewer:
    """A player token acts for its own player only; API keys need the integrator role."""
    who = viewer(info)
    if who.access is Access.PLAYER:
        who.require_player(player_id)
    else:
        who.require(Access.INTEGRATOR)
    return who


def acting(info: Info) -> tuple[Viewer, str | None]:
    """The viewer, and the player a player token is limited to (None for API keys)."""
    who = viewer(info)
    if who.access is Access.PLAYER:
        return who, who.player_id
    who.require(Access.INTEGRATOR)
    return who, None


def _payload(result: service.RedemptionResult) -> RedemptionPayload:
    return RedemptionPayload(
        redemption=Redemption.from_model(result.redemption),
        wallet=Wallet.from_view(result.wallet) if result.wallet else None,
        duplicate=result.duplicate,
    )


def _error(exc: DomainUserError, *prefix: str) -> RedemptionPayload:
    return RedemptionPayload(errors=[UserError.from_domain(exc.at(*prefix))])


@strawberry.type
class RewardQuery:
    @strawberry.field(
        description="The shop: active rewards, featured first, then by cost; pages of at "
        "most 500 (first, offset)."
    )
    async def rewards(
        self,
        info: Info,
        category: RewardCategory | None = None,
        featured_only: bool | None = False,
        first: int = 500,
        offset: int = 0,
    ) -> list[RewardItem]:
        who = viewer(info)
        rows = await reward_items.list_items(
            who.tenant, category, bool(featured_only), first=first, offset=offset
        )
        return [RewardItem.from_model(r) for r in rows]

    @strawberry.field(description="Newest first; a player token sees only its own.")
    async def redemptions(
        self,
        info: Info,
        player_id: strawberry.ID | None = None,
        status: RedemptionStatus | None = None,
        first: int = 100,
    ) -> list[Redemption]:
        who = viewer(info)
        if who.access is Access.PLAYER:
            player_id = player_id or strawberry.ID(who.player_id or "")
            who.require_player(player_id)
        rows = await service.list_redemptions(who.tenant, player_id, status, first)
        return [Redemption.from_model(r) for r in rows]


@strawberry.type
class RewardMutation:
    @strawberry.mutation(
        description="Spend points on a reward: PENDING when it needs approval, else "
        "FULFILLED with a code. Idempotent by key."
    )
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedemptionPayload:
        who = acting_for(info, input.player_id)
        try:
            result = await service.redeem(
                info.context.rt,
                who.tenant,
                input.player_id,
                input.reward_id,
                1 if input.quantity is None else input.quantity,
                input.idempotency_key,
            )
        except DomainUserError as exc:
            return _error(exc, "input")
        return _payload(result)

    @strawberry.mutation(description="Admin: PENDING -> APPROVED -> FULFILLED (code issued).")
    async def approve_redemption(self, info: Info, id: strawberry.ID) -> RedemptionPayload:
        who = viewer(info, Access.ADMIN)
        try:
            return _payload(await service.approve(info.context.rt, who.tenant, id))
        except DomainUserError as exc:
            return _error(exc)

    @strawberry.mutation(description="Admin: refunds the points, returns the stock.")
    async def reject_redemption(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> RedemptionPayload:
        who = viewer(info, Access.ADMIN)
        try:
            return _payload(await service.reject(info.context.rt, who.tenant, id, reason))
        except DomainUserError as exc:
            return _error(exc)

    @strawberry.mutation(description="The player marks a fulfilled code used.")
    async def complete_redemption(self, info: Info, id: strawberry.ID) -> RedemptionPayload:
        who, as_player = acting(info)
        try:
            return _payload(await service.complete(info.context.rt, who.tenant, id, as_player))
        except DomainUserError as exc:
            return _error(exc)

    @strawberry.mutation(
        description="The player takes a PENDING redemption back: points and stock return."
    )
    async def cancel_redemption(self, info: Info, id: strawberry.ID) -> RedemptionPayload:
        who, as_player = acting(info)
        try:
            return _payload(await service.cancel(info.context.rt, who.tenant, id, as_player))
        except DomainUserError as exc:
            return _error(exc)

    @strawberry.mutation(
        description="Admin: give a reward as an offer (a FULFILLED redemption of cost 0)."
    )
    async def issue_reward(
        self,
        info: Info,
        player_id: strawberry.ID,
        reward_id: strawberry.ID,
        reason: str,
        idempotency_key: str | None = None,
    ) -> RedemptionPayload:
        who = viewer(info, Access.ADMIN)
        try:
            result = await service.issue_offer(
                info.context.rt,
                who.tenant,
                player_id,
                reward_id,
                reason,
                idempotency_key=idempotency_key,
            )
        except DomainUserError as exc:
            return _error(exc)
        return _payload(result)

    @strawberry.mutation
    async def create_reward_item(self, info: Info, input: RewardItemInput) -> RewardItemPayload:
        who = viewer(info, Access.ADMIN)
        try:
            row = await reward_items.create_item(
                who.tenant,
                name=input.name,
                description=input.description,
                category=input.category,
                points_cost=input.points_cost,
                stock=input.stock,
                featured=bool(input.featured),
                requires_approval=bool(input.requires_approval),
                per_player_limit=input.per_player_limit,
                available_from=input.available_from,
                available_until=input.available_until,
                min_level=1 if input.min_level is None else input.min_level,
                expiry_days=input.expiry_days,
                code_prefix=input.code_prefix,
                codes=input.codes,
                details=input.details,
            )
        except DomainUserError as exc:
            return RewardItemPayload(errors=[UserError.from_domain(exc.at("input"))])
        return RewardItemPayload(reward=RewardItem.from_model(row))
