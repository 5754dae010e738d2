"""The server's shutdown, step by step: each step bounded and timed.

A step that stalls (Redis gone away, a database connection still held by a task) is
named in the log with how long it took, and the steps after it still run. Before the
database pool closes, connections still in use are reported with the tasks still
running: asyncpg's `Pool.close` waits for every connection to come back (Tortoise
bounds that wait at 10 s, then terminates the pool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tortoise import Tortoise

log = logging.getLogger("questline.shutdown")

# A step slower than this is logged.
SLOW_STEP = 1.0


def step(
    name: str, close: Callable[[], Awaitable[object]], limit: float
) -> Callable[[], Awaitable[None]]:
    """`close` as an exit callback: cancelled after `limit` seconds (logged, not
    raised), logged when slow; its own errors propagate (the exit stack runs the
    remaining steps and re-raises)."""

    async def run() -> None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(close(), limit)
        except TimeoutError:
            log.warning("shutdown: %s did not finish within %g s; going on", name, limit)
        finally:
            took = time.perf_counter() - started
            if took > SLOW_STEP:
                log.warning("shutdown: %s took %.1f s", name, took)

    return run


def connections_in_use() -> int:
    """Database connections acquired from the pool and not yet released (0 on SQLite)."""
    pool = getattr(Tortoise.get_connection("default"), "_pool", None)
    if pool is None or not hasattr(pool, "get_idle_size"):
        return 0
    return int(pool.get_size() - pool.get_idle_size())


def running_tasks() -> list[str]:
    """What every other task of the loop is running, for the log."""
    me = asyncio.current_task()
    return sorted(
        getattr(t.get_coro(), "__qualname__", repr(t.get_coro()))
        for t in asyncio.all_tasks()
        if t is not me and not t.done()
    )


async def report_held_connections() -> None:
    """Logs the connections the pool's close will wait for, and who may hold them."""
    held = connections_in_use()
    if held:
        log.warning(
            "shutdown: %d database connection(s) still in use; tasks running: %s",
            held,
            ", ".join(running_tasks()) or "none",
        )


__all__ = ["SLOW_STEP", "connections_in_use", "report_held_connections", "running_tasks", "step"]
