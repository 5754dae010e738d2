"""`questline worker` with its database away or stalled: a TCP proxy in front of the
test's PostgreSQL takes it down or freezes it; the machine's server is never touched.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from redis.asyncio import Redis

from app.services.stream_worker import (
    GROUP,
    stream_key,
)
from app.services.tenants import create_tenant
from models import Event
from tests.conftest import free_port
from tests.service.stream_helpers import (
    SUMMARY,
    DatabaseProxy,
    balance,
    drained,
    event,
    group_info,
    needs_redis,
    read_until,
    redis_fixture,
    rule_points,
    settings_fixture,
    start_cli_worker,
    xadd,
)

pytestmark = needs_redis
FIXTURES = (settings_fixture, redis_fixture)  # `settings` and `redis`, for the tests below


# ------------------------------------------------------------------ a database away or stalled


@pytest.fixture
async def db_proxy(settings: Any) -> Any:
    proxy = DatabaseProxy(settings.database_url)
    yield proxy
    proxy.thaw()
    proxy.down()


async def delivered(redis: Redis, stream: str, within: float = 30) -> None:
    """Until an entry of the stream is pending in the group (which the worker creates
    after it logs that it reads)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await redis.exists(stream):
            groups = await redis.xinfo_groups(stream)
            if any(g["name"] == GROUP.encode() and g["pending"] for g in groups):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing of {stream} was delivered within {within} s")


async def finished(process: Any, lines: list[str], within: float = 60) -> tuple[int, str]:
    """The worker's exit status and its whole log (after the lines already read)."""
    try:
        _, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the worker did not exit within {within} s: {lines}") from None
    return process.returncode, "".join(lines) + err.decode()


@pytest.mark.parametrize("debug", [False, True])
async def test_started_without_its_database_the_worker_waits_one_line_per_try(settings, debug):
    """Nothing listens at the database's address: no traceback of 126 lines and exit 1,
    but a line per try until it answers or a stop (--debug: with the traceback)."""
    url = f"postgres://questline:hidden-pw@127.0.0.1:{free_port()}/questline"
    flags = ["--debug"] if debug else []
    process = await start_cli_worker(settings, *flags, DATABASE_URL=url)
    lines: list[str] = []
    try:
        for _ in range(2):
            line = await read_until(process, "unavailable", lines)
    finally:
        process.send_signal(signal.SIGTERM)
        code, log = await finished(process, lines)
    assert code == 0, log
    assert line.startswith("WARNING questline.worker: database postgres://questline:***@127.")
    assert "(ConnectionRefusedError: [Errno 111] Connect call failed" in line
    assert "retrying in 1.0 s" in line and "DATABASE_URL" in line
    assert "hidden-pw" not in log
    assert ("Traceback" in log) is debug, log
    assert SUMMARY.search(log), log


@pytest.mark.postgres
async def test_the_database_away_at_start_and_later_costs_one_line_per_try(
    app, settings, redis, db_proxy
):
    """Started before its database, the worker waits for it as it rides out an outage
    later: one line per try (what failed, the URL without its password, the next
    delay), no traceback, nothing lost."""
    tenant = await create_tenant("away", preset="telco")
    stream = stream_key(settings.redis_prefix, "away")
    process = await start_cli_worker(settings, "--tenant", "away", DATABASE_URL=db_proxy.url)
    lines: list[str] = []
    try:
        for _ in range(2):
            line = await read_until(process, "unavailable", lines)
            assert "retrying in" in line and "DATABASE_URL" in line, line
        assert f":***@127.0.0.1:{db_proxy.port}/" in line
        await db_proxy.up()
        await read_until(process, "reading", lines)
        await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=1))
        await drained(redis, stream)

        db_proxy.down()
        await xadd(
            redis,
            stream,
            event(playerId="p", eventType="RECHARGE", value=2),
            event(playerId="q", eventType="RECHARGE", value=3),
        )
        for _ in range(2):
            line = await read_until(process, "a batch failed, not acknowledged", lines)
            assert "retrying in" in line, line
        await db_proxy.up()
        await drained(redis, stream, within=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code, log = await finished(process, lines)
    assert code == 0, log
    assert "Traceback" not in log and '  File "' not in log, log
    assert db_proxy.password not in log
    assert SUMMARY.search(log).group(2) == "3", log
    assert await balance(tenant, "p") == rule_points(tenant, "RECHARGE", 1) + rule_points(
        tenant, "RECHARGE", 2
    )
    assert await balance(tenant, "q") == rule_points(tenant, "RECHARGE", 3)


@pytest.mark.postgres
async def test_a_stalled_database_times_the_batch_out_and_it_is_applied_once_later(
    app, settings, redis, db_proxy
):
    tenant = await create_tenant("stall", preset="telco")
    stream = stream_key(settings.redis_prefix, "stall")
    await db_proxy.up()
    process = await start_cli_worker(
        settings,
        "--tenant",
        "stall",
        "--consumer",
        "w1",
        DATABASE_URL=db_proxy.url,
        WORKER_DB_TIMEOUT_SECONDS="1",
    )
    lines: list[str] = []
    try:
        await read_until(process, "reading", lines)
        db_proxy.freeze()
        await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=4))
        for _ in range(2):  # given up, and the retry too
            line = await read_until(process, "did not answer a batch within 1 s", lines)
            assert "a batch failed, not acknowledged" in line and "retrying in" in line
        db_proxy.thaw()
        await drained(redis, stream, within=60)

        # Stalled again: a first SIGTERM stops it once the batch is given up.
        db_proxy.freeze()
        await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=5))
        await read_until(process, "did not answer a batch", lines)
    finally:
        process.send_signal(signal.SIGTERM)
        code, log = await finished(process, lines)
        db_proxy.thaw()
    assert code == 0, log
    assert "finishing the batch in flight" in log and "Traceback" not in log, log
    assert SUMMARY.search(log).group(2) == "1", log
    assert await Event.filter(tenant_id=tenant.id).count() == 1
    assert await balance(tenant, "p") == rule_points(tenant, "RECHARGE", 4)
    # The second entry stays pending on w1, which stays in the group for it.
    consumers = await redis.xinfo_consumers(stream, GROUP)
    assert [(c["name"], c["pending"]) for c in consumers] == [(b"w1", 1)]


@pytest.mark.postgres
async def test_a_second_signal_exits_at_once_even_with_the_database_stalled(
    app, settings, redis, db_proxy
):
    await create_tenant("twice", preset="telco")
    stream = stream_key(settings.redis_prefix, "twice")
    await db_proxy.up()
    process = await start_cli_worker(
        settings, "--tenant", "twice", DATABASE_URL=db_proxy.url, WORKER_DB_TIMEOUT_SECONDS="600"
    )
    lines: list[str] = []
    try:
        await read_until(process, "reading", lines)
        db_proxy.freeze()
        await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=1))
        await delivered(redis, stream)  # the worker waits for the database
        process.send_signal(signal.SIGTERM)
        await read_until(process, "finishing the batch in flight", lines)
    finally:
        process.send_signal(signal.SIGTERM)
        code, log = await finished(process, lines, within=20)
    assert code == 1, log
    assert "stopped at once" in log and "Traceback" not in log, log
    assert (await group_info(redis, stream))["pending"] == 1  # for the next worker
