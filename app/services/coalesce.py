"""Concurrent single events for one tenant are applied together.

Each `record_event` call waits on a future; one drain task per tenant takes every
event queued so far and applies them as one batch (one transaction, bulk writes).
A lone caller is served at once; under load, throughput becomes that of batches.
Results are exactly those of applying the events one after another in arrival order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.errors import UserError

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.services.event_input import EventInput, Outcome
    from models import Tenant

MAX_COALESCED = 500
# Two batches in flight: while one waits on the database the next is computed. Wallet
# locks (taken in player order) keep each player's events one after another.
MAX_IN_FLIGHT = 2


@dataclass
class _Queue:
    tenant: Tenant
    items: list[tuple[EventInput, asyncio.Future[Outcome | UserError]]] = field(
        default_factory=list
    )
    drains: int = 0


def _settle(future: asyncio.Future[Outcome | UserError], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


async def _alone(
    rt: Runtime, tenant: Tenant, item: EventInput, future: asyncio.Future[Outcome | UserError]
) -> None:
    from app.services.ingest import record_events

    try:
        (result,) = await record_events(rt, tenant, [item])
    except Exception as exc:
        _settle(future, exc)
    else:
        if not future.done():
            future.set_result(result)


class Coalescer:
    def __init__(self) -> None:
        self._queues: dict[int, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def submit(self, rt: Runtime, tenant: Tenant, item: EventInput) -> Outcome | UserError:
        future: asyncio.Future[Outcome | UserError] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(tenant.id, _Queue(tenant))
        queue.items.append((item, future))
        if queue.drains < MAX_IN_FLIGHT:
            queue.drains += 1
            self._tasks.add(task := asyncio.create_task(self._drain(rt, queue)))
            task.add_done_callback(self._tasks.discard)
        # The drain finishes the work even if this caller goes away.
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Returns once every queued event is applied (shutdown: the callers get their
        outcomes before the database closes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _drain(self, rt: Runtime, queue: _Queue) -> None:
        from app.services.ingest import record_events

        try:
            while queue.items:
                batch, queue.items = queue.items[:MAX_COALESCED], queue.items[MAX_COALESCED:]
                try:
                    results = await record_events(rt, queue.tenant, [i for i, _ in batch])
                except Exception as exc:
                    # Nothing of the batch was written (record_events raises only before
                    # its commit). One caller's event may be what failed: each is applied
                    # alone, so the others' events are not refused for it.
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                    else:
                        for item, future in batch:
                            await _alone(rt, queue.tenant, item, future)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            queue.drains -= 1
            if not queue.drains and not queue.items:
                self._queues.pop(queue.tenant.id, None)
