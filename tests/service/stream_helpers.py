"""What the `questline worker` tests share: Redis (REDIS_URL, else the machine's at
127.0.0.1:6379), a settings fixture with a key prefix of the test's own, stream helpers,
the worker's log lines and a TCP proxy that takes the database away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import socket
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from app.engine.outcome import EventFacts, PlayerFacts, PlayerState, apply_event
from app.services.rules import rules_for
from app.services.stream_worker import (
    GROUP,
    WorkerOptions,
    WorkerStats,
    run_worker,
    stream_key,
)
from models import Event, Tenant, Wallet
from tests.conftest import (
    REDIS_URL,
    RUN_ID,
    capturing,
    delete_redis_keys,
    free_port,
    make_settings,
)
from tests.service.test_cli import start_questline


def _reachable_redis() -> str:
    if REDIS_URL:
        return REDIS_URL
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/0"
    except OSError:
        pass
    return ""


WORKER_REDIS = _reachable_redis()
needs_redis = pytest.mark.skipif(
    not WORKER_REDIS, reason="needs Redis: REDIS_URL is unset and none answers at 127.0.0.1:6379"
)

RECORD = """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
  outcome { pointsAwarded wallet { balance } } errors { code message } } }"""
NORMALIZE = """mutation($input: NormalizeEventInput!) { normalizeEvent(input: $input) {
  outcome { pointsAwarded wallet { balance } } errors { code message } } }"""
SUMMARY = re.compile(
    r"stopped: (\d+) entries read: (\d+) applied, (\d+) duplicates, (\d+) rejected; "
    r"(-?[\d.]+) points awarded in [\d.]+ s"
)


@pytest.fixture(name="settings")
def settings_fixture(database_url: str) -> Any:
    """The suite's settings with Redis (found as above) and a prefix of this test's own."""
    prefix = f"qltest-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    yield make_settings(database_url, redis_url=WORKER_REDIS, redis_prefix=prefix)
    delete_redis_keys(WORKER_REDIS, f"{prefix}:*")


@pytest.fixture(name="redis")
async def redis_fixture(settings: Any) -> Any:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


def event(**fields: Any) -> dict[str, str]:
    return {"event": json.dumps(fields)}


async def xadd(redis: Redis, key: str, *entries: dict[str, str]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for fields in entries:
            pipe.xadd(key, fields)
        return [entry_id.decode() for entry_id in await pipe.execute()]


async def group_info(redis: Redis, key: str) -> dict[str, Any]:
    (info,) = [g for g in await redis.xinfo_groups(key) if g["name"] == GROUP.encode()]
    return info


async def drained(redis: Redis, key: str, task: Any = None, within: float = 30.0) -> None:
    """Every entry of the stream delivered to the group and acknowledged."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if task is not None and task.done():
            task.result()
            raise AssertionError("the worker stopped by itself")
        if await redis.exists(key) and await redis.xinfo_groups(key):
            info = await group_info(redis, key)
            last = (await redis.xinfo_stream(key))["last-generated-id"]
            if info["pending"] == 0 and info["last-delivered-id"] == last:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} was not drained within {within} s")


async def consume(
    settings: Any, redis: Redis, slug: str, consumer: str = "w1", **options: Any
) -> WorkerStats:
    """A worker in this process until the tenant's stream is drained, then stopped."""
    stop = asyncio.Event()
    opts = WorkerOptions(consumer, **{"block_ms": 100, **options})
    task = asyncio.create_task(run_worker(settings, [slug], opts, stop))
    try:
        await drained(redis, stream_key(settings.redis_prefix, slug), task)
    finally:
        stop.set()
    return await asyncio.wait_for(task, 20)


def rule_points(tenant: Tenant, event_type: str, value: float) -> Decimal:
    """What the tenant's preset rules give a new player for this event."""
    facts = EventFacts(event_type, Decimal(str(value)), datetime.now(UTC).date())
    result = apply_event(
        rules_for(tenant), PlayerState(), facts, PlayerFacts(), earned_on_day=Decimal(0)
    )
    return result.points


async def events_by_player(tenant: Tenant) -> dict[str, Event]:
    rows = await Event.filter(tenant_id=tenant.id).prefetch_related("player")
    return {row.player.external_id: row for row in rows}


async def balance(tenant: Tenant, player: str) -> Decimal:
    return (await Wallet.get(player__tenant_id=tenant.id, player__external_id=player)).balance


async def start_cli_worker(settings: Any, *args: str, **env: str) -> Any:
    return await start_questline(settings, "worker", *args, **env)


async def wait_until_reading(process: Any) -> list[str]:
    """The worker's log up to the line that says it reads its streams."""
    lines: list[str] = []
    while not lines or "reading" not in lines[-1]:
        raw = await asyncio.wait_for(process.stderr.readline(), 30)
        assert raw, f"the worker exited: {''.join(lines)}"
        lines.append(raw.decode())
    return lines


async def stop_cli_worker(process: Any) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, err.decode()


class LogLines(logging.Handler):
    """The worker's log messages; `on` calls a function at the first message holding
    a text."""

    def __init__(self, on: tuple[str, Any] | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.on = on

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if self.on is not None and self.on[0] in self.lines[-1]:
            self.on[1]()
            self.on = None


@contextlib.contextmanager
def worker_log(on: tuple[str, Any] | None = None) -> Any:
    with capturing("questline.worker", LogLines(on)) as handler:
        yield handler


async def stopped(task: Any, stop: asyncio.Event, own: Any) -> WorkerStats:
    """An in-process worker stopped and waited for, then the test's own Redis stopped."""
    stop.set()
    try:
        return await asyncio.wait_for(task, 20)
    finally:
        own.stop()


class DatabaseProxy:
    """A TCP proxy in front of the test's PostgreSQL, for a worker process to go through:
    down (connections refused, those open cut), or frozen (connections accepted, nothing
    forwarded either way: a database that stalls). The machine's server is never
    touched. Its URL carries a password (the real one, or one the server's trust
    authentication ignores) that the worker must never print."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = free_port()
        self.password = parts.password or "proxy-secret-pw"
        netloc = f"{parts.username or 'postgres'}:{self.password}@127.0.0.1:{self.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc))
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._transports.add(writer.transport)
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports.add(up_writer.transport)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def read_until(process: Any, text: str, lines: list[str], within: float = 60) -> str:
    """The worker's log lines (kept in `lines`) up to the first that holds `text`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            raw = await asyncio.wait_for(process.stderr.readline(), max(left, 0.01))
        except TimeoutError:
            raise AssertionError(f"no line with {text!r} within {within} s: {lines}") from None
        assert raw, f"the worker exited: {''.join(lines)}"
        lines.append(raw.decode())
        if text in lines[-1]:
            return lines[-1]
