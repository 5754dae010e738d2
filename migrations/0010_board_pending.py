from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL only: a batch's period score increments, parked in its own transaction and
# settled right after commit (app/services/board_points.py). SQLite adds them in the
# batch's transaction and has no such table.
CREATE = """
CREATE TABLE board_pending (
    id BIGSERIAL PRIMARY KEY,
    tenant_id INT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    player_ids INT[] NOT NULL,
    periods TEXT[] NOT NULL,
    period_keys TEXT[] NOT NULL,
    points NUMERIC(16, 2)[] NOT NULL
);
CREATE INDEX idx_board_pending_created ON board_pending (created_at);
"""


async def create(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(CREATE)


async def drop(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("DROP TABLE board_pending")


class Migration(migrations.Migration):
    dependencies = [('models', '0009_board_rank_index')]

    initial = False

    operations = [
        ops.RunPython(create, drop),
    ]
