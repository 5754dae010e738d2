"""The committed migrations describe the models exactly (no makemigrations pending)."""

from __future__ import annotations

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
