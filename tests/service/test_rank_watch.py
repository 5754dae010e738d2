"""rankChanged's shared looks (app.services.rank_watch): the followers of one board in
a process share each look and its one read; a failed read ends only the followers it
was for; the last one leaving stops the loop."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.services import ingest, leaderboards, rank_watch
from app.services.tenants import create_tenant
from models import Period


async def _next(follower):
    return await asyncio.wait_for(anext(follower), 5)


async def test_followers_share_each_look(rt):
    tenant = await create_tenant("watch", preset="habits")
    for pid, value in (("a", 30), ("b", 20)):
        await ingest.record_event(rt, tenant, ingest.EventInput(pid, "x", value=value))
    a = rank_watch.follow(rt, tenant, Period.ALL_TIME, "a")
    b = rank_watch.follow(rt, tenant, Period.ALL_TIME, "b")
    nobody = rank_watch.follow(rt, tenant, Period.ALL_TIME, "nobody")
    assert await _next(a) == (1, Decimal(30))
    assert await _next(b) == (2, Decimal(20))
    assert await _next(nobody) is None  # no such player (yet)
    (watch,) = rt.rank_watches.values()
    reads = watch.reads
    await ingest.record_event(rt, tenant, ingest.EventInput("b", "x", value=15))
    assert await _next(a) == (2, Decimal(30))
    assert await _next(b) == (1, Decimal(35))
    assert await _next(nobody) is None
    assert watch.reads == reads + 1  # one read for the three of them
    assert rank_watch.stats(rt)["rank_followers"] == 3
    for follower in (a, b, nobody):
        await follower.aclose()
    assert rt.rank_watches == {}
    assert watch.task is not None
    await asyncio.wait([watch.task], timeout=5)  # the loop stops
    assert watch.task.done()


async def test_a_failed_read_ends_its_followers_with_the_error(rt, monkeypatch):
    tenant = await create_tenant("watchfail", preset="habits")
    await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=5))
    a = rank_watch.follow(rt, tenant, Period.DAILY, "a")
    assert await _next(a) == (1, Decimal(5))

    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(leaderboards, "places_of", broken)
    await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=5))
    with pytest.raises(RuntimeError, match="went away"):
        await _next(a)
    monkeypatch.undo()
    # A new follower of the same board is served (the loop goes on for the others).
    again = rank_watch.follow(rt, tenant, Period.DAILY, "a")
    assert await _next(again) == (1, Decimal(10))
    await again.aclose()
    await a.aclose()
    assert rt.rank_watches == {}
