"""The server's shutdown: each step bounded and named when it stalls; connections
still held are reported before the pool waits for them; queued events are applied
and published before the hub and the database close."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from asgi_lifespan import LifespanManager
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from app import shutdown
from app.asgi import create_app
from app.services import ingest
from app.services.event_input import EventInput
from app.services.tenants import create_tenant
from models import PointTransaction


async def test_a_stalled_step_is_cut_off_and_named(caplog):
    caplog.set_level(logging.WARNING, "questline.shutdown")
    stalled = asyncio.Event()

    async def never() -> None:
        await stalled.wait()

    async def quick() -> None:
        return None

    await shutdown.step("the stalled thing", never, 0.05)()
    await shutdown.step("the quick thing", quick, 1)()
    messages = [r.getMessage() for r in caplog.records]
    assert any("the stalled thing did not finish within" in m for m in messages)
    assert not any("quick thing" in m for m in messages)


async def test_a_step_that_fails_says_so():
    async def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await shutdown.step("the broken thing", broken, 1)()


@pytest.mark.postgres
async def test_connections_held_at_shutdown_are_reported_with_the_tasks(app, caplog):
    caplog.set_level(logging.WARNING, "questline.shutdown")
    release = asyncio.Event()
    entered = asyncio.Event()

    async def holding_a_transaction() -> None:
        async with in_transaction() as conn:
            await conn.execute_query("SELECT 1")
            entered.set()
            await release.wait()

    holder = asyncio.create_task(holding_a_transaction())
    await entered.wait()
    held = shutdown.connections_in_use()  # the server's sweep may hold one too
    assert held >= 1
    await shutdown.report_held_connections()
    release.set()
    await holder
    (message,) = [r.getMessage() for r in caplog.records]
    assert f"{held} database connection(s) still in use" in message
    assert "holding_a_transaction" in message
    caplog.clear()
    await shutdown.report_held_connections()  # nothing held: nothing said
    assert [r for r in caplog.records if "holding_a_transaction" in r.getMessage()] == []


async def test_events_queued_at_shutdown_are_applied_and_published(settings):
    name = f"bye-{uuid.uuid4().hex[:8]}"
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=15, shutdown_timeout=40):
        rt = application.state.rt
        tenant = await create_tenant(name, preset="habits")
        calls = [
            asyncio.create_task(
                ingest.record_event(rt, tenant, EventInput(f"p{n % 7}", "paid_invoice", value=2))
            )
            for n in range(60)
        ]
        await asyncio.sleep(0)  # queued; the server starts shutting down at once
    outcomes = await asyncio.gather(*calls)
    assert all(o.points > 0 for o in outcomes)
    assert rt.hub.lost == 0 and rt.hub.published >= 60
    async with LifespanManager(create_app(settings), shutdown_timeout=40):
        assert await PointTransaction.filter(player__tenant__slug=name).count() == 60


@pytest.mark.redis
async def test_a_server_whose_redis_went_away_still_shuts_down(settings, caplog):
    """Redis gone (its own redis-server, stopped): events still go in, and shutdown
    still completes, every step bounded; the database pool is closed at the end."""
    from tests.api.test_redis_restart import OwnRedis
    from tests.conftest import make_settings

    caplog.set_level(logging.WARNING, "questline.shutdown")
    redis = OwnRedis()
    redis.start()
    try:
        own = make_settings(settings.database_url, redis_url=f"redis://127.0.0.1:{redis.port}/0")
        application = create_app(own)
        async with LifespanManager(application, startup_timeout=15, shutdown_timeout=40):
            rt = application.state.rt
            tenant = await create_tenant(f"gone-{uuid.uuid4().hex[:8]}", preset="habits")
            redis.stop()
            outcome = await ingest.record_event(
                rt, tenant, EventInput("p1", "paid_invoice", value=2)
            )
            assert outcome.points > 0 and rt.hub.lost > 0  # committed; its update lost
            pool = getattr(Tortoise.get_connection("default"), "_pool", None)
        assert pool is None or pool.get_size() == 0  # PostgreSQL's pool: closed
    finally:
        redis.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "questline.shutdown"]
    assert not [m for m in said if "database" in m], said  # nothing held, closed in time
