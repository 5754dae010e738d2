from tortoise import migrations
from tortoise.migrations import operations as ops

# The rank index covers the ALL_TIME boards only. Every board point rewrote a row of each
# of a player's four boards, and with `points` and `reached_at` in an index of all of
# them no update could be HOT: each added an entry to all four of the table's indexes
# and left a dead one behind (PostgreSQL spent ~60 us per upsert once a run had piled
# them up). The day, week and month boards now update in place (HOT, with room kept on
# each page on PostgreSQL: fillfactor 70); their SQL pages sort the period's rows. The
# ALL_TIME board, the largest, keeps reading pages and ranks from the index. Queries
# name `period = 'ALL_TIME'` literally so that a generic plan can use the partial index.
CREATE = (
    "CREATE INDEX idx_period_score_rank ON period_score "
    "(tenant_id, period, period_key, points DESC, reached_at, player_id) "
    "WHERE period = 'ALL_TIME'"
)
CREATE_FULL = (
    "CREATE INDEX idx_period_score_rank ON period_score "
    "(tenant_id, period, period_key, points DESC, reached_at, player_id)"
)


async def forward(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script("DROP INDEX IF EXISTS idx_period_score_rank")
    await client.execute_script(CREATE)
    if client.capabilities.dialect == "postgres":
        await client.execute_script("ALTER TABLE period_score SET (fillfactor = 70)")


async def backward(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script("DROP INDEX IF EXISTS idx_period_score_rank")
    await client.execute_script(CREATE_FULL)
    if client.capabilities.dialect == "postgres":
        await client.execute_script("ALTER TABLE period_score RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [('models', '0010_board_pending')]

    initial = False

    operations = [
        ops.RunPython(forward, backward),
    ]
