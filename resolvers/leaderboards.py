"""Leaderboard queries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from app.context import Info
from app.errors import UserError as DomainUserError
from app.live import live_feed
from app.realtime import Hub
from app.runtime import Runtime
from app.services import leaderboards
from app.services import players as player_service
from app.services.players import boards_channel
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
        try:
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
        except DomainUserError as exc:
            raise ValueError(exc.message) from None
        return Leaderboard.from_board(board)


# Live boards look again at most this often, however many batches commit meanwhile.
RECOMPUTE_EVERY = 0.25
# A look at a period's close waits this long past it (the clocks of hosts differ).
ROLLOVER_SLACK = 0.5


async def _looks(hub: Hub, tenant: Any, period: LeaderboardPeriod) -> AsyncGenerator[float, None]:
    """Yields once now, then at most every RECOMPUTE_EVERY seconds after scores change,
    and when the period closes (a new day's board starts empty, with no score to
    announce it): the time after which a look sees every change that woke it."""
    async with hub.subscribe(boards_channel(tenant.id), signal=True) as changes:
        yield time.monotonic()
        change: asyncio.Future[Any] | None = None
        try:
            while True:
                if change is None:
                    change = asyncio.ensure_future(anext(changes))
                closes = leaderboards.seconds_until_period_ends(tenant, period)
                done, _ = await asyncio.wait({change}, timeout=closes and closes + ROLLOVER_SLACK)
                woken = time.monotonic()
                if change in done:
                    try:
                        change.result()
                    except StopAsyncIteration:  # the hub closed the channel
                        return
                    change = None
                    await asyncio.sleep(RECOMPUTE_EVERY)
                yield woken
        finally:
            if change is not None:
                change.cancel()


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
            async for not_before in _looks(rt.hub, tenant, period):
                try:
                    board = await _shared_board(rt, tenant, period, size, not_before)
                except DomainUserError as exc:
                    raise ValueError(exc.message) from None
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
        last: int | None = None
        async for _ in _looks(info.context.rt.hub, who.tenant, period):
            player = await player_service.get_player(who.tenant, player_id)
            entry = (
                await leaderboards.rank_of_player(
                    who.tenant, player, period, cache=info.context.rt.boards
                )
                if player
                else None
            )
            if entry is not None and entry.rank != last:
                yield RankChanged(
                    player_id=player_id,
                    period=period,
                    rank=entry.rank,
                    previous_rank=last,
                    points=points(entry.points),
                )
                last = entry.rank
