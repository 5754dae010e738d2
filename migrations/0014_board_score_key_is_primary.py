from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL: a period score row's primary key is its (player, tenant, period, period
# key), the key every writer and reader finds it by, instead of its `id`. Every event
# updates up to four period rows, and an update that changes `points` (in the rank
# index) is never HOT, so it writes a new entry in every index: the `id` index was one of
# three, used by nothing that writes or reads a board. Measured on a copy of the ingest
# bench's rows, one upsert of 1,752 period rows: 62.6 ms with it, 53.8 ms without
# (medians of 48, alternating).
#
# The `id` column stays (the models' primary key: Tortoise reads and writes it, and
# SQLite keeps it as the table's rowid, where it costs no index). The key keeps its
# constraint name, so the models' migration state still names it. Logical replication
# identifies a row by its primary key, so the table still has one.
#
# The key's index is built again, with the table locked: on the leaderboard bench's
# 1,400,000 period rows this took 2.1 s forwards and 2.9 s back.

KEY = "uid_period_scor_player__061d8a"
COLUMNS = "player_id, tenant_id, period, period_key"

FORWARD = f"""
ALTER TABLE period_score DROP CONSTRAINT period_score_pkey;
ALTER TABLE period_score DROP CONSTRAINT "{KEY}", ADD CONSTRAINT "{KEY}" PRIMARY KEY ({COLUMNS});
"""
BACKWARD = f"""
ALTER TABLE period_score DROP CONSTRAINT "{KEY}", ADD CONSTRAINT "{KEY}" UNIQUE ({COLUMNS});
ALTER TABLE period_score ADD CONSTRAINT period_score_pkey PRIMARY KEY (id);
"""


async def _run(apps, schema_editor, script: str) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for statement in script.split(";\n"):
        if statement.strip():
            await client.execute_query(statement)


async def forward(apps, schema_editor):
    await _run(apps, schema_editor, FORWARD)


async def backward(apps, schema_editor):
    await _run(apps, schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("models", "0013_board_score_unique_by_player")]

    initial = False

    operations = [ops.RunPython(forward, backward)]
