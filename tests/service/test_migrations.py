"""The committed migrations describe the models exactly (no makemigrations pending)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

from app.db import tortoise_config


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


async def _database_indexes(conn: Any) -> set[tuple[str, tuple[str, ...], bool]]:
    out = set()
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
        for row in rows:
            inside = row["indexdef"].rsplit("(", 1)[1].split(")")[0]
            columns = tuple(c.split()[0].strip('"') for c in inside.split(","))
            out.add((row["tablename"], columns, " UNIQUE " in row["indexdef"]))
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
