"""rankChanged's shared looks: the subscribers of one tenant's board in a process
follow one look loop, and each look reads the places of every player they follow at
once (leaderboards.places_of: a Redis script call per 1,000 players, or one SQL
statement), instead of a board read (and a player lookup) per subscriber per look.

Every player's widget following its own rank is the common case: with a look per
subscriber, 2,000 of them took 8,000 board reads a second while scores moved, more than
a worker serves. A newcomer is looked at alone, at once (its first rank), by the same
loop, so each follower's values come in the order they were read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from app.services import leaderboards
from app.services.board_looks import looks
from models import Period

log = logging.getLogger("questline.rank_watch")

# A follower's latest place: (rank, points), or None when the player has no score.
Place = tuple[int, Decimal] | None
_NOTHING = object()


class _Follower:
    """One subscription: the latest place read for its player (older ones it has not
    taken yet are replaced: only the latest rank matters)."""

    __slots__ = ("ended", "error", "external_id", "ready", "value")

    def __init__(self, external_id: str) -> None:
        self.external_id = external_id
        self.value: Any = _NOTHING
        self.ready = asyncio.Event()
        self.error: BaseException | None = None
        self.ended = False

    def offer(self, value: Place) -> None:
        self.value = value
        self.ready.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.ready.set()

    def end(self) -> None:
        self.ended = True
        self.ready.set()

    async def take(self) -> Any:
        """The next place; _NOTHING once the watch has ended (after the last place)."""
        while True:
            await self.ready.wait()
            if self.error is not None:
                raise self.error
            if self.value is not _NOTHING:
                value, self.value = self.value, _NOTHING
                if not self.ended:
                    self.ready.clear()
                return value
            if self.ended:
                return _NOTHING
            self.ready.clear()


class RankWatch:
    """The followers of one (tenant, period) board in this process, and their loop."""

    def __init__(self, rt: Any, tenant: Any, period: Period) -> None:
        self.rt, self.tenant, self.period = rt, tenant, period
        self.followers: dict[_Follower, None] = {}
        self.fresh: list[_Follower] = []  # joined, not looked at yet
        self.due = False  # the board changed: look at every follower
        self.wake = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.reads = 0  # batched reads (tests, stats)
        self.task: asyncio.Task[None] | None = None

    def join(self, follower: _Follower) -> None:
        self.followers[follower] = None
        self.fresh.append(follower)
        self.wake.set()
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        watcher = asyncio.create_task(self._watch_board())
        try:
            # Newcomers are looked at once the board's changes reach the watch: a change
            # committed after their first look always brings another.
            await self.subscribed.wait()
            while True:
                await self.wake.wait()
                self.wake.clear()
                if watcher.done():
                    break
                if self.due:
                    self.due, self.fresh = False, []
                    targets = list(self.followers)
                else:
                    targets, self.fresh = self.fresh, []
                targets = [f for f in targets if f in self.followers]
                if targets:
                    await self._look(targets)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            error = None if watcher.cancelled() else watcher.exception()
            for follower in list(self.followers):
                if error is None:
                    follower.end()
                else:
                    follower.fail(error)

    async def _watch_board(self) -> None:
        try:
            async with contextlib.aclosing(looks(self.rt.hub, self.tenant, self.period)) as seen:
                await anext(seen)  # subscribed: a change from now on wakes a look
                self.subscribed.set()
                async for _ in seen:
                    self.due = True
                    self.wake.set()
        finally:  # the hub closed the channel (or failed): the watch ends
            self.subscribed.set()
            self.wake.set()

    async def _look(self, targets: list[_Follower]) -> None:
        try:
            ids = sorted({f.external_id for f in targets})
            pks = await leaderboards.player_pks(self.tenant, ids)
            places = await leaderboards.places_of(
                self.tenant, self.period, sorted(set(pks.values())), cache=self.rt.boards
            )
            self.reads += 1
        except Exception as exc:  # these followers' subscriptions end with the error
            log.warning("rank look failed for %d followers: %s", len(targets), exc)
            for follower in targets:
                follower.fail(exc)
            return
        for follower in targets:
            pk = pks.get(follower.external_id)
            follower.offer(places.get(pk) if pk is not None else None)

    def leave(self, follower: _Follower) -> bool:
        """Removes a follower; True when it was the last (the loop stops)."""
        self.followers.pop(follower, None)
        if self.followers or self.task is None:
            return False
        self.task.cancel()
        return True


def _watches(rt: Any) -> dict[tuple[int, str], RankWatch]:
    return rt.rank_watches


async def follow(rt: Any, tenant: Any, period: Period, external_id: str) -> AsyncIterator[Place]:
    """The player's place now, then after each change of the board (at most every
    board_looks.RECOMPUTE_EVERY seconds), read with every other follower of the board
    in this process. None while the player has no score (or does not exist yet)."""
    key = (tenant.id, period.value)
    watch = _watches(rt).get(key)
    if watch is None or watch.task is None or watch.task.done():
        watch = _watches(rt)[key] = RankWatch(rt, tenant, period)
    follower = _Follower(external_id)
    watch.join(follower)
    try:
        while (value := await follower.take()) is not _NOTHING:
            yield value
    finally:
        if watch.leave(follower) and _watches(rt).get(key) is watch:
            del _watches(rt)[key]


def stats(rt: Any) -> dict[str, int]:
    watches = list(_watches(rt).values())
    return {
        "rank_watches": len(watches),
        "rank_followers": sum(len(w.followers) for w in watches),
        "rank_reads": sum(w.reads for w in watches),
    }
