"""Concurrent writes of events for one tenant are applied together.

Every `record_events` call (a batch, or the one event of `record_event`) checks its
items, then waits on a future here; a drain task per tenant takes the calls queued so
far, whole, and applies them as one batch: one transaction, bulk writes, one settlement
of board points. A lone caller is served at once. Under load, calls that would each
have waited for the wallet locks of the transaction ahead (batches share players)
wait for it to commit and then share the next transaction instead, and a player's
wallet, days and period scores are written once for all of them; calls for other
players get a second transaction at once. Each player's events are applied in the
order their calls arrived, each call's events in its own order; each caller gets its
own results.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.errors import UserError

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.services.event_input import CheckedEvent, Outcome
    from app.services.ingest import _Applied
    from models import Tenant

# Events in one drain's transaction: calls are taken whole while they fit (a first call
# always does; one call is at most ingest.MAX_BATCH).
MAX_COALESCED = 2000
# Transactions of a tenant's in flight at once per process. A second one begins only
# for calls whose players the first does not hold: while one waits on the database the
# other is computed (single events from many callers, whose players rarely meet). Calls
# that share players with the transaction in flight wait for it to commit and then
# share the next one (batches over the same players), instead of waiting for its wallet
# locks. Measured by hand on the leaderboard bench's tenants (one worker, PostgreSQL +
# Redis, no boards): single events at 50 clients 1,984-2,158 events/s with one
# transaction at a time, 2,278-2,288 with this rule; batches of 500 from 4 clients
# 6,700-6,900 events/s with any two at once (each waiting for the other's locks),
# 8,667-9,667 with this rule (bench/RESULTS.md, 2026-12-05 from 19:05).
MAX_IN_FLIGHT = 2

_Result = list["Outcome | UserError"]


@dataclass(slots=True)
class _Call:
    checked: list[CheckedEvent | UserError]
    future: asyncio.Future[_Result]
    players: frozenset[str]  # the external ids of its events' players


@dataclass
class _Queue:
    tenant: Tenant
    calls: list[_Call] = field(default_factory=list)
    drains: int = 0
    held: Counter[str] = field(default_factory=Counter)  # players of transactions in flight

    def hold(self, calls: list[_Call]) -> Counter[str]:
        players = Counter(p for call in calls for p in call.players)
        self.held.update(players)
        return players

    def release(self, players: Counter[str]) -> None:
        self.held.subtract(players)
        for player in players:
            if self.held[player] <= 0:
                del self.held[player]

    def take(self) -> list[_Call]:
        """The calls of the next transaction, removed from the queue: in order, whole,
        within MAX_COALESCED events, and none with a player that a transaction in
        flight holds or that an earlier call left queued has (each player's events stay
        in arrival order). Empty if there are none."""
        taken: list[_Call] = []
        left: list[_Call] = []
        blocked = set(self.held)
        size = 0
        for call in self.calls:
            fits = not taken or size + len(call.checked) <= MAX_COALESCED
            if fits and blocked.isdisjoint(call.players):
                taken.append(call)
                size += len(call.checked)
            else:
                left.append(call)
                blocked |= call.players
        self.calls = left
        return taken


def _settle(future: asyncio.Future[_Result], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _retrieved(future: asyncio.Future[_Result]) -> None:
    if not future.cancelled():
        future.exception()


def _merged(calls: list[_Call]) -> list[CheckedEvent | UserError]:
    """The calls' items as one batch: each item's index is its position in it."""
    merged: list[CheckedEvent | UserError] = []
    for call in calls:
        offset = len(merged)
        merged.extend(
            c if isinstance(c, UserError) or not offset else replace(c, index=offset + c.index)
            for c in call.checked
        )
    return merged


class Coalescer:
    def __init__(self) -> None:
        self._queues: dict[tuple[int, int], _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def submit(
        self, rt: Runtime, tenant: Tenant, checked: list[CheckedEvent | UserError]
    ) -> _Result:
        """One result per checked item, in order (ingest.apply_checked's)."""
        future: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        # Calls are merged only under one version of the tenant's rules (they were
        # checked against it).
        key = (tenant.id, tenant.config_version)
        queue = self._queues.setdefault(key, _Queue(tenant))
        players = frozenset(c.input.player_id for c in checked if not isinstance(c, UserError))
        queue.calls.append(_Call(checked, future, players))
        if not queue.drains or (
            queue.drains < MAX_IN_FLIGHT and queue.held.keys().isdisjoint(players)
        ):
            queue.drains += 1
            self._spawn(self._drain(rt, key, queue))
        # The drain finishes the work even if this caller goes away.
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_retrieved)  # its outcome is nobody's now
            raise

    async def wait_idle(self) -> None:
        """Returns once every queued event is applied (shutdown: the callers get their
        outcomes before the database closes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _drain(self, rt: Runtime, key: tuple[int, int], queue: _Queue) -> None:
        from app.services.ingest import commit_checked

        try:
            # (Calls that share players with the other transaction in flight wait for
            # it: its drain takes them once it commits.)
            while calls := queue.take():
                players = queue.hold(calls)
                try:
                    applied = await commit_checked(queue.tenant, _merged(calls), datetime.now(UTC))
                except Exception as exc:
                    # Nothing was written (commit_checked raises only before its commit).
                    # One call's events may be what failed: each call is applied alone,
                    # so the others' events are not refused for it.
                    if len(calls) == 1:
                        _settle(calls[0].future, exc)
                    else:
                        for call in calls:
                            await self._alone(rt, queue.tenant, call)
                    continue
                finally:
                    queue.release(players)
                # Committed: the next calls' transaction starts while this one publishes.
                self._spawn(self._finish(rt, queue.tenant, applied, calls))
        finally:
            queue.drains -= 1
            if not queue.drains and not queue.calls:
                self._queues.pop(key, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.add(task := asyncio.create_task(work))
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _finish(rt: Runtime, tenant: Tenant, applied: _Applied, calls: list[_Call]) -> None:
        try:
            results = await applied.finish(rt, tenant)
        except BaseException as exc:  # finish logs its own publishing failures
            for call in calls:
                _settle(call.future, exc)
            raise
        start = 0
        for call in calls:
            end = start + len(call.checked)
            if not call.future.done():
                call.future.set_result(results[start:end])
            start = end

    @staticmethod
    async def _alone(rt: Runtime, tenant: Tenant, call: _Call) -> None:
        from app.services.ingest import apply_checked

        try:
            results = await apply_checked(rt, tenant, call.checked, datetime.now(UTC))
        except Exception as exc:
            _settle(call.future, exc)
        else:
            if not call.future.done():
                call.future.set_result(results)
