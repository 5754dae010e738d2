"""Tortoise configuration built from settings, and the migration runner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.transactions import in_transaction

from app.settings import Settings

MODEL_MODULES = ["models"]


def redacted_url(url: str) -> str:
    """A URL fit for a log or a message: its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def database_url(settings: Settings) -> str:
    """The Tortoise URL: SQLite folders exist, and PostgreSQL gets its pool size."""
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    if settings.is_postgres:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("maxsize", str(settings.db_pool_size))
        query.setdefault("minsize", "1")
        url = urlunsplit(parts._replace(query=urlencode(query)))
    elif url.startswith("sqlite://") and url != "sqlite://:memory:":
        Path(url[len("sqlite://") :]).parent.mkdir(parents=True, exist_ok=True)
    return url


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled PostgreSQL connection released without asyncpg's reset statement.

    asyncpg resets a connection on its way back to the pool with `SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`: one more round trip on
    every request's critical path (about 0.2 ms of a 4 ms recordEvent). Questline sets no
    session state, takes only transaction-scoped locks, declares no cursors WITH HOLD and
    listens on no pooled connection, so there is nothing to reset. asyncpg still rolls
    back a transaction left open before the connection goes back (`Connection._reset`).
    """

    def get_reset_query(self) -> str:
        return ""

    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's signature
    ) -> str:
        # asyncpg's Transaction.start sends exactly "BEGIN;" (no isolation options).
        if query == "BEGIN;" and not args and _generic_plans.get():
            query = GENERIC_BEGIN
        return await super().execute(query, *args, timeout=timeout)


# A transaction begun inside `generic_plans()` runs every statement on its prepared
# generic plan (SET LOCAL: until it ends), set in the BEGIN's own round trip.
GENERIC_BEGIN = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan;"
_generic_plans: ContextVar[bool] = ContextVar("generic_plans", default=False)


@asynccontextmanager
async def generic_transaction() -> AsyncIterator[Any]:
    """Tortoise's `in_transaction()`, begun inside `generic_plans()`."""
    with generic_plans():
        async with in_transaction() as conn:
            yield conn


@contextmanager
def generic_plans() -> Iterator[None]:
    """PostgreSQL transactions begun in this block plan their statements once per
    connection (plan_cache_mode = force_generic_plan, for the transaction only).

    For statements written for their generic plans (`= ANY(…)` on indexed keys), whose
    custom plans PostgreSQL would otherwise keep making at every execution because the
    parameters' arrays make them look cheaper: the ingest batch's first statement spent
    0.6-0.9 ms planning for 0.4 ms of work. Other transactions and plain queries keep the
    server's default."""
    token = _generic_plans.set(True)
    try:
        yield
    finally:
        _generic_plans.reset(token)


def connection_config(settings: Settings) -> dict[str, Any]:
    """Tortoise's connection in its expanded form, the form that can name an engine
    (SQLite's, app.sqlite_engine) and a connection class (PostgreSQL's)."""
    config = expand_db_url(database_url(settings))
    if settings.is_postgres:
        config["credentials"]["connection_class"] = PooledConnection
    else:  # transactions begun in one hand-over to aiosqlite's thread
        config["engine"] = "app.sqlite_engine"
    return config


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(settings)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def run_migrations(settings: Settings) -> None:
    """Apply every pending migration in `migrations/` and close the connections."""
    from tortoise.migrations.api import migrate

    try:
        await migrate(config=tortoise_config(settings))
    finally:
        await Tortoise.close_connections()
        # Executors are cached per connection name, not dialect (PITFALLS 8).
        EXECUTOR_CACHE.clear()


@asynccontextmanager
async def orm(settings: Settings) -> AsyncIterator[None]:
    """Tortoise opened for a CLI command or a script, closed afterwards."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()
