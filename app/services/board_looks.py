"""When live boards look again: once at once, then after their scores change (at most
every RECOMPUTE_EVERY seconds however many batches commit meanwhile), and when their
period closes (a new day's board starts empty, with no score to announce it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from app.realtime import Hub
from app.services import leaderboards
from app.services.players import boards_channel
from models import Period

# Live boards look again at most this often, however many batches commit meanwhile.
RECOMPUTE_EVERY = 0.25
# A look at a period's close waits this long past it (the clocks of hosts differ).
ROLLOVER_SLACK = 0.5


async def looks(hub: Hub, tenant: Any, period: Period) -> AsyncGenerator[float, None]:
    """Yields once now, then at most every RECOMPUTE_EVERY seconds after scores change,
    and when the period closes: the time after which a look sees every change that
    woke it. Ends when the hub closes the channel."""
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
