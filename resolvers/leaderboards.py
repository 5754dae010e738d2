"""Leaderboard queries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from app.context import Info
from app.live import live_feed
from app.runtime import Runtime
from app.services import leaderboards, rank_watch
from app.services.board_looks import looks
from resolvers.common import viewer
from schema.leaderboards import Leaderboard, LeaderboardPeriod, RankChanged
from schema.ledger import points
from schema.players import PlayerKind


@strawberry.type
class LeaderboardQuery:
    @strawberry.field(
        description="Ranked by points in the period, then who reached them first. `around` "
        "centres the page on a player and fills `me`; teamId, segment and kind narrow it. "
        "`periodKey` reads an earlier period (e.g. 2026-11-19): once closed and "
        "snapshotted, its top 100 and each player's final rank."
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
        period_key: str | None = None,
    ) -> Leaderboard:
        # Player tokens too (a player's own widget): they centre a page only on their
        # own player, and read only other players' public fields (schema.players).
        who = viewer(info)
        if around is not None:
            who.require_player(str(around))
        scope = await leaderboards.resolve_scope(who.tenant, team_id, segment, kind)
        board = await leaderboards.board(
            who.tenant,
            period,
            first=10 if first is None else first,
            offset=offset or 0,
            around=around,
            scope=scope,
            cache=info.context.rt.boards,
            period_key=period_key,
        )
        return Leaderboard.from_board(board)


# Live boards of one tenant, period and size wake together: one query serves them all.
_LOOKS: dict[tuple[int, str, int], tuple[float, asyncio.Task[leaderboards.Board]]] = {}


async def _shared_board(
    rt: Runtime, tenant: Any, period: LeaderboardPeriod, size: int, not_before: float
) -> leaderboards.Board:
    """The board from a query started at `not_before` or later, shared with every
    caller that can use it (a subscriber leaving does not cancel it for the others)."""
    key = (tenant.id, str(period), size)
    found = _LOOKS.get(key)
    if found is None or found[0] < not_before:
        task = asyncio.ensure_future(
            leaderboards.board(tenant, period, first=size, cache=rt.boards)
        )
        found = _LOOKS[key] = (time.monotonic(), task)
        task.add_done_callback(lambda done: _forget_failed(key, done))
    return await asyncio.shield(found[1])


def _same(value: Any) -> Any:
    return value


def _forget_failed(key: tuple[int, str, int], task: asyncio.Task[Any]) -> None:
    """A failed query is retried by the next caller (and its error counts as seen)."""
    if task.cancelled() or task.exception() is not None:
        entry = _LOOKS.get(key)
        if entry is not None and entry[1] is task:
            del _LOOKS[key]


@strawberry.type
class LeaderboardSubscription:
    @strawberry.subscription(
        description="The top `first` now, then again whenever it changes (at most 4 a second)."
    )
    async def leaderboard_changed(
        self,
        info: Info,
        period: LeaderboardPeriod = LeaderboardPeriod.ALL_TIME,
        first: int | None = 10,
    ) -> AsyncGenerator[Leaderboard, None]:
        who = viewer(info)  # player tokens too: other players' public fields only
        size = 10 if first is None else first
        rt, tenant = info.context.rt, who.tenant

        async def changes() -> AsyncGenerator[leaderboards.Board, None]:
            last = None
            async for not_before in looks(rt.hub, tenant, period):
                board = await _shared_board(rt, tenant, period, size, not_before)
                shown = (board.period_key, [(e.player.id, e.points) for e in board.entries])
                if shown != last:
                    last = shown
                    yield board

        # Subscribers of one board over WebSockets share one loop and one rendering, and
        # so one credential's view: a player token's rendering is its own.
        name = ("leaderboardChanged", tenant.id, str(period), size, who.access, who.player_id)
        async for value in live_feed(info, name, changes, Leaderboard.from_board):
            yield value

    @strawberry.subscription(
        description="The player's rank now, then each time it changes (others passing "
        "included); previousRank is the rank before."
    )
    async def rank_changed(
        self,
        info: Info,
        player_id: strawberry.ID,
        period: LeaderboardPeriod = LeaderboardPeriod.ALL_TIME,
    ) -> AsyncGenerator[RankChanged, None]:
        who = viewer(info)
        who.require_player(player_id)
        rt, tenant = info.context.rt, who.tenant

        async def changes() -> AsyncGenerator[RankChanged, None]:
            last: int | None = None
            # Read with every other rankChanged of this board in the process (rank_watch).
            async for place in rank_watch.follow(rt, tenant, period, str(player_id)):
                if place is not None and place[0] != last:
                    rank, total = place
                    yield RankChanged(
                        player_id=player_id,
                        period=period,
                        rank=rank,
                        previous_rank=last,
                        points=points(total),
                    )
                    last = rank

        # Each message is this player's own; subscribers of one player (two widgets)
        # share its loop. Over WebSockets a plain selection is rendered without
        # executing the document for every message (app.flat_render).
        name = ("rankChanged", tenant.id, str(period), str(player_id))
        async for value in live_feed(info, name, changes, _same):
            yield value
