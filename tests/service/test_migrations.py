"""The committed migrations describe the models exactly (no makemigrations pending)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

from app.db import tortoise_config
from app.settings import Settings
from tests.conftest import DATABASE_URL, IS_POSTGRES, RUN_ID, _admin_execute


async def test_no_model_change_lacks_a_migration(app, settings):
    apps_config = tortoise_config(settings)["apps"]
    detector = MigrationAutodetector(Tortoise.apps, apps_config)
    writers = await detector.changes()
    assert [w.name for w in writers] == [], "run makemigrations and commit the result"


@pytest.mark.postgres
async def test_ledger_rows_keep_their_player_key_and_drop_the_redundant_ones(default_tenant):
    """Migration 0011: events and ledger lines still reference their player (an unknown
    player is refused), without the per-row checks of the tenant (the player's own) and of
    the line's event (written by the same statement)."""
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(
        "SELECT conrelid::regclass::text AS tbl, conname FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::regclass::text IN ('event', 'point_transaction') "
        "ORDER BY 1, 2"
    )
    assert [(r["tbl"], r["conname"]) for r in rows] == [
        ("event", "event_player_id_fkey"),
        ("point_transaction", "point_transaction_player_id_fkey"),
    ]
    with pytest.raises(IntegrityError):
        await conn.execute_query(
            "INSERT INTO point_transaction (tenant_id, player_id, kind, amount, "
            "balance_after, reason, created_at) VALUES ($1, $2, 'EARN', 1, 1, 'x', now())",
            [default_tenant.id, 2_000_000_000],
        )


def _columns(model: Any, names: Sequence[str]) -> tuple[str, ...]:
    fields = model._meta.fields_map
    return tuple(getattr(fields.get(n), "source_field", None) or n for n in names)


def _declared_indexes() -> set[tuple[str, tuple[str, ...], bool]]:
    """(table, columns, unique) of every index the models declare."""
    out = set()
    for model in Tortoise.apps["models"].values():
        meta = model._meta
        for names in meta.unique_together:
            out.add((meta.db_table, _columns(model, names), True))
        for names in meta.indexes:
            out.add((meta.db_table, tuple(names), False))
        for name in meta.fk_fields:
            if meta.fields_map[name].index:
                out.add((meta.db_table, (meta.fields_map[name].source_field,), False))
    return out


def _pg_index(definition: str) -> tuple[tuple[str, ...], bool]:
    """(columns, unique) of a PostgreSQL index from its `pg_indexes.indexdef`."""
    inside = definition.rsplit("(", 1)[1].split(")")[0]
    return tuple(c.split()[0].strip('"') for c in inside.split(",")), " UNIQUE " in definition


async def _database_indexes(conn: Any) -> set[tuple[str, tuple[str, ...], bool]]:
    out = set()
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
        for row in rows:
            columns, unique = _pg_index(row["indexdef"])
            out.add((row["tablename"], columns, unique))
        return out
    tables = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    for table in (t["name"] for t in tables):
        for index in await conn.execute_query_dict(f'PRAGMA index_list("{table}")'):
            info = await conn.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
            columns = tuple(i["name"] for i in sorted(info, key=lambda i: i["seqno"]))
            out.add((table, columns, bool(index["unique"])))
    return out


async def test_every_declared_index_exists_after_the_migrations(app):
    """The migrations build what the models declare, on both backends: Tortoise's
    AlterField rebuilds an SQLite table, and a rebuilt point_transaction had lost its
    unique idempotency key and its indexes (repaired by migration 0012)."""
    found = await _database_indexes(Tortoise.get_connection("default"))
    missing = [
        (table, columns, unique)
        for table, columns, unique in sorted(_declared_indexes())
        if (table, columns, True) not in found and (unique or (table, columns, False) not in found)
    ]
    assert missing == [], missing


async def _migrate_to(settings: Settings, target: str) -> None:
    from tortoise.migrations.api import migrate

    try:
        await migrate(config=tortoise_config(settings), target=target)
    finally:
        await Tortoise.close_connections()
        EXECUTOR_CACHE.clear()


class _Scratch:
    """A database of its own for a migration test, queried without Tortoise."""

    def __init__(self, tmp_path: Any) -> None:
        if IS_POSTGRES:
            parts = urlsplit(DATABASE_URL)
            name = f"{parts.path.lstrip('/') or 'questline'}_m13_{RUN_ID}"
            self.url = urlunsplit(parts._replace(path=f"/{name}", query=""))
        else:
            self.url = f"sqlite://{tmp_path / 'm13.sqlite3'}"
        self.settings = Settings(database_url=self.url)

    async def create(self) -> None:
        if IS_POSTGRES:
            name = urlsplit(self.url).path.lstrip("/")
            await _admin_execute(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await _admin_execute(self.url, f'CREATE DATABASE "{name}"')

    async def drop(self) -> None:
        if IS_POSTGRES:
            name = urlsplit(self.url).path.lstrip("/")
            await _admin_execute(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if IS_POSTGRES:
            import asyncpg

            conn = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()
        with sqlite3.connect(self.url[len("sqlite://") :]) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            return conn.execute(sql.replace("$1", "?").replace("$2", "?"), args).fetchall()

    async def players(self, count: int) -> None:
        """Tenant 1 and its players 1..count (p1, p2, ...)."""
        await self.run(
            "INSERT INTO tenant (id, slug, name, preset, config, timezone, signing_secret, "
            "created_at, config_version) "
            "VALUES (1, 't', 'T', 'habits', '{}', 'UTC', 's', CURRENT_TIMESTAMP, 1)"
        )
        for pid in range(1, count + 1):
            await self.run(
                "INSERT INTO player (id, tenant_id, external_id, kind, attributes, created_at, "
                "hidden_from_boards) VALUES ($1, 1, $2, 'CUSTOMER', '{}', CURRENT_TIMESTAMP, "
                f"{'false' if IS_POSTGRES else 0})",
                pid,
                f"p{pid}",
            )

    async def indexes(self) -> set[tuple[tuple[str, ...], bool]]:
        if IS_POSTGRES:
            rows = await self.run(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'period_score'"
            )
            return {_pg_index(definition) for (definition,) in rows}
        out = set()
        for _, name, unique, *_ in await self.run("PRAGMA index_list('period_score')"):
            info = await self.run(f"PRAGMA index_info('{name}')")
            out.add((tuple(i[2] for i in sorted(info)), bool(unique)))
        return out


SCORE_ROWS = "SELECT id, player_id, period, period_key, points FROM period_score ORDER BY id"
RANK = ("tenant_id", "period", "period_key", "points", "reached_at", "player_id")


async def test_board_scores_keyed_by_player_keep_their_rows_both_ways(tmp_path):
    """Migration 0013 (the period scores' unique key leads with the player, the player
    index goes): the rows, their ids and the rank index survive it, forwards and back;
    the new key refuses a second row for the same player and board."""
    scratch = _Scratch(tmp_path)
    await scratch.create()
    try:
        await _migrate_to(scratch.settings, "models.0012_sqlite_indexes")
        await scratch.players(3)
        for pid, period, key, points in [
            (1, "ALL_TIME", "all", 30),
            (2, "ALL_TIME", "all", 20),
            (1, "DAILY", "x", 5),
        ]:
            await scratch.run(
                "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
                f"reached_at) VALUES (1, $1, '{period}', '{key}', {points}, CURRENT_TIMESTAMP)",
                pid,
            )
        before = await scratch.run(SCORE_ROWS)

        await _migrate_to(scratch.settings, "models.0013_board_score_unique_by_player")
        assert await scratch.run(SCORE_ROWS) == before
        indexes = await scratch.indexes()
        assert (("player_id", "tenant_id", "period", "period_key"), True) in indexes
        assert (("player_id",), False) not in indexes
        assert (("tenant_id", "period", "period_key", "player_id"), True) not in indexes
        assert (RANK, False) in indexes
        with pytest.raises(Exception, match=r"(?i)unique"):
            await scratch.run(
                "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
                "reached_at) VALUES (1, $1, 'ALL_TIME', 'all', 1, CURRENT_TIMESTAMP)",
                2,
            )
        await scratch.run(
            "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
            "reached_at) VALUES (1, $1, 'ALL_TIME', 'all', 1, CURRENT_TIMESTAMP)",
            3,
        )
        (new_id,) = (await scratch.run(SCORE_ROWS))[-1][:1]
        assert new_id > max(row[0] for row in before)  # ids are not reused

        await _migrate_to(scratch.settings, "models.0012_sqlite_indexes")
        after = await scratch.run(SCORE_ROWS)
        assert after[:-1] == before
        indexes = await scratch.indexes()
        assert (("tenant_id", "period", "period_key", "player_id"), True) in indexes
        assert (("player_id",), False) in indexes
        assert (RANK, False) in indexes
    finally:
        await scratch.drop()


async def _primary_key(scratch: _Scratch) -> tuple[str, ...]:
    if IS_POSTGRES:
        rows = await scratch.run(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'period_score'::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
        )
        return tuple(name for (name,) in rows)
    rows = await scratch.run("PRAGMA table_info('period_score')")
    return tuple(row[1] for row in sorted(rows, key=lambda r: r[5]) if row[5])


async def test_board_scores_keyed_by_their_board_keep_rows_ids_and_upserts(tmp_path):
    """Migration 0014: on PostgreSQL a period score's primary key is its (player, tenant,
    period, period key), no index on `id` is maintained, and `id` still fills itself in;
    SQLite keeps `id` as the rowid. Rows survive both ways, and the upsert every writer
    runs still finds its row."""
    scratch = _Scratch(tmp_path)
    await scratch.create()
    key = ("player_id", "tenant_id", "period", "period_key")
    upsert = (
        "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
        "reached_at) VALUES (1, $1, 'ALL_TIME', 'all', $2, CURRENT_TIMESTAMP) "
        "ON CONFLICT (tenant_id, period, period_key, player_id) "
        "DO UPDATE SET points = period_score.points + excluded.points"
    )
    try:
        await _migrate_to(scratch.settings, "models.0013_board_score_unique_by_player")
        await scratch.players(2)
        await scratch.run(upsert, 1, 30)
        await scratch.run(upsert, 2, 20)
        before = await scratch.run(SCORE_ROWS)
        assert await _primary_key(scratch) == ("id",)

        await _migrate_to(scratch.settings, "models.0014_board_score_key_is_primary")
        assert await scratch.run(SCORE_ROWS) == before
        indexes = await scratch.indexes()
        assert (key, True) in indexes and (RANK, False) in indexes
        if IS_POSTGRES:
            assert await _primary_key(scratch) == key
            assert (("id",), True) not in indexes
        else:
            assert await _primary_key(scratch) == ("id",)  # the rowid: no index of its own
        await scratch.run(upsert, 1, 5)  # the key finds the row
        await scratch.run(
            "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
            "reached_at) VALUES (1, $1, 'DAILY', 'x', 1, CURRENT_TIMESTAMP)",
            2,
        )
        rows = await scratch.run(SCORE_ROWS)
        assert [r[1:] for r in rows[:2]] == [
            (1, "ALL_TIME", "all", Decimal(35) if IS_POSTGRES else "35"),
            (2, "ALL_TIME", "all", Decimal(20) if IS_POSTGRES else "20"),
        ]
        assert rows[2][0] > max(r[0] for r in before)  # `id` still fills itself in
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            await scratch.run(
                "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
                "reached_at) VALUES (1, $1, 'DAILY', 'x', 1, CURRENT_TIMESTAMP)",
                2,
            )

        await _migrate_to(scratch.settings, "models.0013_board_score_unique_by_player")
        assert await _primary_key(scratch) == ("id",)
        assert (key, True) in await scratch.indexes()
        assert await scratch.run(SCORE_ROWS) == rows
    finally:
        await scratch.drop()


async def test_event_times_stored_with_an_offset_are_brought_to_utc(tmp_path):
    """Migration 0015: SQLite's event and wallet times written with another offset are
    rewritten in UTC (the same instant), so that they sort as text; PostgreSQL's
    timestamptz needs nothing."""
    scratch = _Scratch(tmp_path)
    await scratch.create()
    try:
        await _migrate_to(scratch.settings, "models.0014_board_score_key_is_primary")
        await scratch.players(1)
        times = ("2026-11-20 12:00:00+02:00", "2026-11-20 10:00:00.500000+00:00")
        values = [datetime.fromisoformat(t) if IS_POSTGRES else t for t in times]
        for n, at in enumerate(values):
            await scratch.run(
                "INSERT INTO event (id, tenant_id, player_id, event_type, value, occurred_at, "
                "recorded_at, source, metadata, points_awarded, payload_hash, outcome) VALUES "
                f"('00000000-0000-0000-0000-00000000000{n}', 1, 1, 'x', 1, $1, $2, 'api', "
                "'{}', 0, 'h', '{}')",
                at,
                at,
            )
        await scratch.run(
            "INSERT INTO wallet (player_id, tenant_id, balance, lifetime_earned, level, "
            "streak_current, streak_best, last_event_at, updated_at) "
            "VALUES (1, 1, 0, 0, 1, 0, 0, $1, CURRENT_TIMESTAMP)",
            values[0],
        )
        await _migrate_to(scratch.settings, "models.0015_sqlite_utc_event_times")
        order = "SELECT id FROM event ORDER BY occurred_at DESC"
        assert [str(r[0])[-1] for r in await scratch.run(order)] == ["1", "0"]
        if not IS_POSTGRES:
            stored = await scratch.run("SELECT occurred_at FROM event ORDER BY id")
            assert [r[0] for r in stored] == ["2026-11-20 10:00:00+00:00", times[1]]
            wallet = await scratch.run("SELECT last_event_at FROM wallet")
            assert wallet == [("2026-11-20 10:00:00+00:00",)]
    finally:
        await scratch.drop()
