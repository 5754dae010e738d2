"""Leaderboard queries."""

from __future__ import annotations

import strawberry

from app.auth import Access
from app.context import Info
from app.errors import UserError as DomainUserError
from app.services import leaderboards
from resolvers.common import viewer
from schema.leaderboards import Leaderboard, LeaderboardPeriod
from schema.players import PlayerKind


@strawberry.type
class LeaderboardQuery:
    @strawberry.field(
        description="Ranked by points in the period, then who reached them first. `around` "
        "centres the page on a player and fills `me`; teamId, segment and kind narrow it."
    )
    async def leaderboard(
        self,
        info: Info,
        period: LeaderboardPeriod = LeaderboardPeriod.ALL_TIME,
        first: int | None = 10,
        offset: int | None = 0,
        around: strawberry.ID | None = None,
        team_id: strawberry.ID | None = None,
        segment: str | None = None,
        kind: PlayerKind | None = None,
    ) -> Leaderboard:
        who = viewer(info, Access.VIEWER)
        try:
            scope = await leaderboards.resolve_scope(who.tenant, team_id, segment, kind)
            board = await leaderboards.board(
                who.tenant,
                period,
                first=10 if first is None else first,
                offset=offset or 0,
                around=around,
                scope=scope,
            )
        except DomainUserError as exc:
            raise ValueError(exc.message) from None
        return Leaderboard.from_board(board)
