"""The committed migrations describe the models exactly (no makemigrations pending)."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from app.db import tortoise_config


async def test_no_model_change_lacks_a_migration(app, settings):
    apps_config = tortoise_config(settings)["apps"]
    detector = MigrationAutodetector(Tortoise.apps, apps_config)
    writers = await detector.changes()
    assert [w.name for w in writers] == [], "run makemigrations and commit the result"
