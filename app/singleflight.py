"""One call in flight per key: callers that ask while it runs share its result.

For per-process caches of database rows that many requests miss at the same moment (a
busy API key's entry expiring, a board's snapshot flag due for a new look): without it,
every request in flight at that moment runs the same query, and under load they take
the pool's connections from the requests' own work all at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`'s result, or that of the call already running for `key`. An error
        reaches every caller that shared the call; the next call after it runs anew."""
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(call())

            def done(future: asyncio.Future[T]) -> None:
                if self._running.get(key) is future:
                    del self._running[key]

            running.add_done_callback(done)
        # Shielded: a caller that goes away does not cancel the call the others await.
        return await asyncio.shield(running)

    def forget(self, key: Hashable) -> None:
        """Callers from now on start a new call (one already running still finishes for
        those awaiting it)."""
        self._running.pop(key, None)

    def __len__(self) -> int:
        return len(self._running)
