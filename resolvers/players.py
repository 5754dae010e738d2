"""Player and team queries, mutations and the profile subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.auth import Access
from app.context import Info
from app.errors import UserError as DomainUserError
from app.services import players as service
from resolvers.common import given, viewer
from schema.common import UserError
from schema.players import (
    Player,
    PlayerInput,
    PlayerKind,
    PlayerPayload,
    Team,
    TeamInput,
    TeamPayload,
)


@strawberry.type
class PlayerQuery:
    @strawberry.field
    async def player(self, info: Info, id: strawberry.ID) -> Player | None:
        who = viewer(info)
        who.require_player(id)
        row = await service.get_player(who.tenant, id)
        return Player.from_model(row) if row else None

    @strawberry.field
    async def players(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        segment: str | None = None,
        kind: PlayerKind | None = None,
    ) -> list[Player]:
        who = viewer(info, Access.VIEWER)
        rows = await service.list_players(
            who.tenant,
            first=20 if first is None else first,
            after=after,
            segment=segment,
            kind=kind,
        )
        return [Player.from_model(p) for p in rows]


@strawberry.type
class PlayerMutation:
    @strawberry.mutation
    async def upsert_player(self, info: Info, input: PlayerInput) -> PlayerPayload:
        who = viewer(info, Access.ADMIN)
        changes = given(
            kind=input.kind,
            display_name=input.display_name,
            segment=input.segment,
            team_id=input.team_id,
            timezone=input.timezone,
            attributes=input.attributes,
            hidden_from_boards=input.hide_from_leaderboards,
        )
        try:
            row = await service.upsert_player(info.context.rt, who.tenant, input.id, changes)
        except DomainUserError as exc:
            return PlayerPayload(errors=[UserError.from_domain(exc.at("input"))])
        return PlayerPayload(player=Player.from_model(row))

    @strawberry.mutation(description="Create a team or rename it.")
    async def upsert_team(self, info: Info, input: TeamInput) -> TeamPayload:
        who = viewer(info, Access.ADMIN)
        try:
            row = await service.upsert_team(who.tenant, input.id, input.name)
        except DomainUserError as exc:
            return TeamPayload(errors=[UserError.from_domain(exc.at("input"))])
        return TeamPayload(team=Team.from_model(row))


@strawberry.type
class PlayerSubscription:
    @strawberry.subscription(
        description="The player now, then again after every change to the profile."
    )
    async def player_changed(
        self, info: Info, player_id: strawberry.ID
    ) -> AsyncGenerator[Player, None]:
        who = viewer(info)
        who.require_player(player_id)
        channel = service.player_channel(who.tenant.id, player_id, "profile")
        async with info.context.rt.hub.subscribe(channel) as messages:
            row = await service.get_player(who.tenant, player_id)
            if row is not None:
                yield Player.from_model(row)
            async for _ in messages:
                info.context.refresh_loaders()
                row = await service.get_player(who.tenant, player_id)
                if row is not None:
                    yield Player.from_model(row)
