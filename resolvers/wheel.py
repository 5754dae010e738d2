"""Spin & win: the wheel and its odds, its configuration, spins and their audit trail."""

from __future__ import annotations

import strawberry

from app.auth import Access
from app.context import Info
from app.errors import UserError as DomainUserError
from app.services import wheel as service
from resolvers.common import viewer
from resolvers.rewards import acting_for
from schema.common import UserError
from schema.ledger import Wallet
from schema.rewards import Spin, SpinPayload, Wheel, WheelInput, WheelPayload


@strawberry.type
class WheelQuery:
    @strawberry.field(description="The tenant's wheel with every prize's odds (null: none).")
    async def wheel(self, info: Info) -> Wheel | None:
        who = viewer(info)
        view = await service.get_wheel(who.tenant)
        return Wheel.from_view(view) if view else None

    @strawberry.field(description="Spins, newest first, with the draw: the audit trail.")
    async def spins(
        self, info: Info, player_id: strawberry.ID | None = None, first: int = 50
    ) -> list[Spin]:
        who = viewer(info)
        if who.access is Access.PLAYER:
            player_id = player_id or strawberry.ID(who.player_id or "")
            who.require_player(player_id)
        rows = await service.list_spins(who.tenant, player_id, first)
        return [Spin.from_model(row, service.prize_of(row)) for row in rows]


@strawberry.type
class WheelMutation:
    @strawberry.mutation(description="Admin: create or replace the tenant's wheel.")
    async def configure_wheel(self, info: Info, input: WheelInput) -> WheelPayload:
        who = viewer(info, Access.ADMIN)
        prizes = [
            {
                "label": p.label,
                "kind": p.kind.value,
                "points": p.points,
                "rewardId": p.reward_id,
                "weight": p.weight,
            }
            for p in input.prizes
        ]
        try:
            await service.configure_wheel(
                who.tenant,
                prizes=prizes,
                name=input.name or "Spin & Win",
                spin_cost=input.spin_cost or 0,
                free_spins_per_day=input.free_spins_per_day or 0,
                daily_budget=input.daily_budget,
                active=True if input.active is None else input.active,
            )
        except DomainUserError as exc:
            return WheelPayload(errors=[UserError.from_domain(exc.at("input"))])
        view = await service.get_wheel(who.tenant)
        return WheelPayload(wheel=Wheel.from_view(view) if view else None)

    @strawberry.mutation(
        description="Spin the wheel for a player: free spins first, then the spin cost. "
        "The server draws the prize with a cryptographic RNG and records the draw."
    )
    async def spin_wheel(
        self, info: Info, player_id: strawberry.ID, idempotency_key: str | None = None
    ) -> SpinPayload:
        who = acting_for(info, player_id)
        try:
            result = await service.spin(info.context.rt, who.tenant, player_id, idempotency_key)
        except DomainUserError as exc:
            return SpinPayload(errors=[UserError.from_domain(exc)])
        return SpinPayload(
            spin=Spin.from_model(result.spin, result.prize),
            wallet=Wallet.from_view(result.wallet) if result.wallet else None,
            duplicate=result.duplicate,
        )
