"""Test harness: a real database (PostgreSQL or SQLite, from DATABASE_URL), migrated
once per session and emptied between tests; Redis when REDIS_URL is set.

The suite runs once per backend, each in its own pytest process (Tortoise caches
executors per connection name, not per dialect: PITFALLS 8).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise import Tortoise

from app.asgi import create_app
from app.db import run_migrations
from app.services import access, leaderboards
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
IS_POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_ID = uuid.uuid4().hex[:8]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"questline backend: {'postgres' if IS_POSTGRES else 'sqlite'}"
        f" + {'redis' if REDIS_URL else 'in-process pub/sub'}"
    ]


class _SlowShutdowns(logging.Handler):
    """Keeps the server's shutdown warnings at a test's teardown (a step that stalled,
    connections still held), with the test's name, for the end-of-run summary."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []
        self.test = ""  # set while a test tears down

    def emit(self, record: logging.LogRecord) -> None:
        if self.test:
            self.seen.append(f"{self.test}: {record.getMessage()}")


SLOW_SHUTDOWNS = _SlowShutdowns()
logging.getLogger("questline.shutdown").addHandler(SLOW_SHUTDOWNS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    SLOW_SHUTDOWNS.test = item.nodeid
    try:
        return (yield)
    finally:
        SLOW_SHUTDOWNS.test = ""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SLOW_SHUTDOWNS.seen:
        terminalreporter.section("slow server shutdowns")
        for line in SLOW_SHUTDOWNS.seen:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and not IS_POSTGRES:
            item.add_marker(
                pytest.mark.skip(reason="PostgreSQL run only (DATABASE_URL=postgres://…)")
            )
        if "redis" in item.keywords and not REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="Redis run only (REDIS_URL=redis://…)"))


def _test_database_url(tmp: Path) -> str:
    if not IS_POSTGRES:
        return f"sqlite://{tmp / 'questline-test.sqlite3'}"
    parts = urlsplit(DATABASE_URL)
    # One database per test session: two sessions on one machine (a developer and CI)
    # must not drop each other's tables.
    name = f"{parts.path.lstrip('/') or 'questline'}_test_{RUN_ID}"
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


async def _admin_execute(url: str, *statements: str) -> None:
    import asyncpg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Created and migrated once per session, with the real migrations; dropped after."""
    url = _test_database_url(tmp_path_factory.mktemp("db"))
    name = urlsplit(url).path.lstrip("/")
    if IS_POSTGRES:
        asyncio.run(
            _admin_execute(
                url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
            )
        )
    asyncio.run(run_migrations(Settings(database_url=url)))
    yield url
    if IS_POSTGRES:
        asyncio.run(_admin_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "redis_prefix": f"qltest-{RUN_ID}",
        "db_pool_size": 20,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def empty_database() -> None:
    conn = Tortoise.get_connection("default")
    tables = [m._meta.db_table for app in Tortoise.apps.values() for m in app.values()]
    if IS_POSTGRES:
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    else:
        script = "PRAGMA foreign_keys=OFF;"
        script += "".join(f'DELETE FROM "{t}";' for t in tables)
        script += "DELETE FROM sqlite_sequence; PRAGMA foreign_keys=ON;"
        await conn.execute_script(script)


def delete_redis_keys(url: str, pattern: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _run_redis_keys_deleted_at_the_end() -> Iterator[None]:
    """The machine's Redis is shared: this run's keys (its prefix) go when it ends."""
    yield
    if REDIS_URL:
        delete_redis_keys(REDIS_URL, f"qltest-{RUN_ID}*")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The application with its lifespan running, on an empty database."""
    application = create_app(settings)
    # Shutdown runs step by step, each bounded (app.shutdown): a stalled step is logged
    # and listed at the end of the run ("slow server shutdowns"), not failed here.
    async with LifespanManager(application, startup_timeout=15, shutdown_timeout=40) as manager:
        await empty_database()
        leaderboards._snapshots_seen.clear()  # ids start again with the emptied record
        access.forget_tenants()  # so do tenants, with new signing secrets
        leaderboards._player_pks.clear()
        rt = application.state.rt
        if rt.redis is not None:  # the Redis boards copy the emptied record: empty too
            async for name in rt.redis.scan_iter(match=f"{settings.redis_prefix}:lb:*"):
                await rt.redis.delete(name)
        asgi = manager.app
        asgi.rt = rt  # type: ignore[attr-defined]
        yield asgi


@pytest.fixture
def rt(app: Any) -> Any:
    return app.rt


@pytest.fixture
async def default_tenant(app: Any) -> Any:
    from app.services.tenants import ensure_tenant

    return await ensure_tenant()


@pytest.fixture
async def client(app: Any, default_tenant: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://questline.test") as c:
        yield c


class GraphQLResult(dict):
    @property
    def data(self) -> Any:
        return self.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.get("errors") or []


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_errors: bool = False,
) -> GraphQLResult:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    result = GraphQLResult(response.json())
    if not expect_errors:
        assert not result.errors, result.errors
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn process serving the app on a free port."""

    def __init__(self, settings: Settings, serve: bool = False, **env: str) -> None:
        """`serve`: run `questline serve` (the production entry point) instead of uvicorn."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        environment = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "REDIS_PREFIX": settings.redis_prefix,
            **env,
        }
        uvicorn = [sys.executable, "-m", "uvicorn", "app.asgi:create_app", "--factory"]
        questline = [str(Path(sys.executable).with_name("questline")), "serve", "--no-migrate"]
        self.process = subprocess.Popen(
            [
                *(questline if serve else uvicorn),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *([] if serve else ["--ws", "auto", "--log-level", "warning"]),
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"server exited: {out}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start in 20 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def live_server_factory(settings: Settings) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def start(serve: bool = False, **env: str) -> LiveServer:
        server = LiveServer(settings, serve, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_tenant(app: Any) -> Any:
    """make_tenant(preset) -> an admin API key of a new tenant made from that preset."""
    from app.services import access
    from app.services.tenants import create_tenant

    async def make(preset: str, slug: str | None = None, timezone: str | None = None) -> str:
        slug = slug or f"{preset}-{uuid.uuid4().hex[:6]}"
        await create_tenant(slug, preset=preset, timezone=timezone)
        _, key = await access.create_api_key(slug, "admin")
        return key

    return make


class QueryLog(logging.Handler):
    """The statements Tortoise runs (its db_client logger, at DEBUG): how many, and
    each one's SQL and values."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.statements: list[tuple[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        args = record.args if isinstance(record.args, tuple) else ()
        sql, values = (args[0], args[1]) if len(args) == 2 else (record.getMessage(), None)
        self.statements.append((str(sql), values))


_Handler = TypeVar("_Handler", bound=logging.Handler)


@contextmanager
def capturing(logger_name: str, handler: _Handler) -> Iterator[_Handler]:
    """`handler` on the logger, at DEBUG, for the block; the logger as it was after."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def logged_queries() -> Iterator[QueryLog]:
    with capturing("tortoise.db_client", QueryLog()) as log:
        yield log
