from datetime import UTC, datetime

from tortoise import migrations
from tortoise.migrations import operations as ops

# SQLite only: event times stored with the offset they were sent with are rewritten in
# UTC, as events are stored from now on. SQLite keeps a datetime as text, so a time
# written "12:00:00+02:00" sorted after "10:00:00.5+00:00" (it is earlier), and a player's
# events page, ordered and cut by that text, listed such events out of order and skipped
# some. PostgreSQL's timestamptz compares instants and needs nothing.
COLUMNS = (("event", "occurred_at"), ("wallet", "last_event_at"))


def _utc(text: str) -> str:
    return str(datetime.fromisoformat(text).astimezone(UTC))


async def forward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "sqlite":
        return
    for table, column in COLUMNS:
        key = "player_id" if table == "wallet" else "id"
        _, rows = await client.execute_query(
            f"SELECT {key}, {column} FROM {table} "
            f"WHERE {column} IS NOT NULL AND {column} NOT LIKE '%+00:00'"
        )
        if rows:
            await client.execute_many(
                f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
                [[_utc(row[1]), row[0]] for row in rows],
            )


async def keep(apps, schema_editor):
    """Going back keeps the UTC times: the same instants, which every version reads."""


class Migration(migrations.Migration):
    dependencies = [('models', '0014_board_score_key_is_primary')]

    initial = False

    operations = [
        ops.RunPython(forward, keep),
    ]
