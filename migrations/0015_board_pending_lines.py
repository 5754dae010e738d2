from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL only (SQLite has no board_pending table): a large batch parks the ids of its
# ledger lines instead of its period score increments. The row commits with the batch,
# as before, so a crash after commit still loses nothing; the increments are computed
# from the lines after commit (app/services/board_points.py), outside the wallet locks
# that serialise every batch sharing a player. Parking the increments cost each batch of
# 500 ~8 ms under those locks (its ~1,750 rows encoded, parsed and gathered into four
# arrays), out of ~70 ms (timed in the worker, leaderboard bench, 2026-11-22).
#
# Forwards, rows parked by the code before (a batch that crashed after its commit) are
# added to the period scores here, exactly as their settlement would have, and deleted.
# A Redis copy of the boards takes them at the next `questline leaderboard rebuild`.
# Backwards, rows parked by this code cannot be turned into increments in SQL (the rules
# of what counts live in app/engine): the migration refuses while any is left, and the
# server settles them within moments.

APPLY_OLD_ROWS = """
WITH claimed AS (
    DELETE FROM board_pending
    RETURNING tenant_id, created_at, player_ids, periods, period_keys, points
)
INSERT INTO period_score (tenant_id, player_id, period, period_key, points, reached_at)
SELECT c.tenant_id, s.player_id, s.period, s.period_key, s.points, c.created_at
FROM claimed AS c CROSS JOIN LATERAL unnest(c.player_ids, c.periods, c.period_keys, c.points)
     AS s(player_id, period, period_key, points)
ORDER BY 2, 3, 4
ON CONFLICT (tenant_id, period, period_key, player_id) DO UPDATE
SET points = period_score.points + excluded.points,
    reached_at = GREATEST(period_score.reached_at, excluded.reached_at)
"""
FORWARD = """
ALTER TABLE board_pending DROP COLUMN player_ids, DROP COLUMN periods,
    DROP COLUMN period_keys, DROP COLUMN points, ADD COLUMN line_ids BIGINT[] NOT NULL;
ALTER TABLE board_pending ALTER COLUMN line_ids SET STORAGE EXTERNAL
"""
BACKWARD = """
ALTER TABLE board_pending DROP COLUMN line_ids, ADD COLUMN player_ids INT[] NOT NULL,
    ADD COLUMN periods TEXT[] NOT NULL, ADD COLUMN period_keys TEXT[] NOT NULL,
    ADD COLUMN points NUMERIC(16, 2)[] NOT NULL
"""


async def forward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_query(APPLY_OLD_ROWS)
    for statement in FORWARD.split(";\n"):
        await client.execute_query(statement)


async def backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    _, rows = await client.execute_query("SELECT count(*) FROM board_pending")
    if rows[0][0]:
        raise RuntimeError(
            f"{rows[0][0]} batches' board points are still pending: start the server (it "
            "settles them within a minute) or run `questline leaderboard rebuild`, then "
            "migrate back"
        )
    await client.execute_query(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("models", "0014_board_score_key_is_primary")]

    initial = False

    operations = [ops.RunPython(forward, backward)]
