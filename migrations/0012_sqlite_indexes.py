from tortoise import migrations
from tortoise.migrations import operations as ops

# SQLite only: indexes that earlier migrations meant to keep. Tortoise alters an SQLite
# table by rebuilding it, and the rebuilt tables came back without their indexes:
# point_transaction (0004's AlterField) lost its unique idempotency key and both its
# indexes, wallet and reward_item (0003's and 0008's CHECK constraints) their tenant
# index. PostgreSQL altered those tables in place and has them all, under these names.
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS uid_point_trans_tenant__feeef9
    ON point_transaction (tenant_id, idempotency_key);
CREATE INDEX IF NOT EXISTS idx_point_trans_player__92ca4d ON point_transaction (player_id, id);
CREATE INDEX IF NOT EXISTS idx_point_trans_event_i_f65234 ON point_transaction (event_id);
CREATE INDEX IF NOT EXISTS idx_wallet_tenant__8b690e ON wallet (tenant_id);
CREATE INDEX IF NOT EXISTS idx_reward_item_tenant__913bda ON reward_item (tenant_id);
"""


async def create(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "sqlite":
        await schema_editor.client.execute_script(INDEXES)


async def keep(apps, schema_editor):
    """Going back leaves them: the migrations before this one declare them too."""


class Migration(migrations.Migration):
    dependencies = [('models', '0011_ledger_constraints')]

    initial = False

    operations = [
        ops.RunPython(create, keep),
    ]
