"""Small asyncio helpers shared by the server's long-lived tasks."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(task: asyncio.Task[Any], limit: float | None = None) -> None:
    """Cancels `task` and waits for it to end, at most `limit` seconds (None: until it
    does), even if it ignores the cancellation (`asyncio.wait_for` would wait for that
    too). Its error is dropped. The caller's own cancellation is not: a caller
    cancelled while it waits here is cancelled (`contextlib.suppress(CancelledError)`
    around a wait for the task would swallow that as well, and the caller carry on)."""
    task.cancel()
    await asyncio.wait({task}, timeout=limit)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: dropped, not logged as never retrieved


__all__ = ["stop"]
