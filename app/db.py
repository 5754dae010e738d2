"""Tortoise configuration built from settings, and the migration runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from app.settings import Settings

MODEL_MODULES = ["models"]


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


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {"default": database_url(settings)},
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
