from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# PostgreSQL: the ledger's rows stop checking three foreign keys on every insert.
# - event.tenant_id and point_transaction.tenant_id repeat the player's tenant (player
#   keeps its own key to tenant, and events and lines keep theirs to player). Each check
#   was a query per row that also locked the tenant's one row FOR KEY SHARE, from every
#   concurrent batch of every tenant's events.
# - point_transaction.event_id names an event written by the same statement (no other
#   statement writes lines that name an event, and events are never deleted).
# Measured with auto_explain on a batch of 500 events: these three triggers ran 1,500
# times and took 13 ms of the 72 ms write statement. SQLite keeps the constraints: it
# cannot drop one without rebuilding the table, and its checks are in-process lookups.
DROP = """
ALTER TABLE event DROP CONSTRAINT IF EXISTS event_tenant_id_fkey;
ALTER TABLE point_transaction DROP CONSTRAINT IF EXISTS point_transaction_tenant_id_fkey,
    DROP CONSTRAINT IF EXISTS point_transaction_event_id_fkey;
"""
ADD = """
ALTER TABLE event ADD CONSTRAINT event_tenant_id_fkey FOREIGN KEY (tenant_id)
    REFERENCES tenant (id) ON DELETE CASCADE;
ALTER TABLE point_transaction ADD CONSTRAINT point_transaction_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenant (id) ON DELETE CASCADE,
    ADD CONSTRAINT point_transaction_event_id_fkey FOREIGN KEY (event_id)
    REFERENCES event (id) ON DELETE SET NULL;
"""


class AlterConstraintState(ops.AlterField):
    """The field's new `db_constraint`, in the migration state only: `drop`/`add` change
    the database. Tortoise's AlterField rebuilds an SQLite table to alter a field, and
    the rebuilt table had lost its unique constraint and indexes."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        return None


async def drop(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(DROP)


async def add(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(ADD)


class Migration(migrations.Migration):
    dependencies = [('models', '0010_board_pending')]

    initial = False

    operations = [
        AlterConstraintState(
            model_name='Event',
            name='tenant',
            field=fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=False, to_field='id', related_name='events', on_delete=OnDelete.CASCADE),
        ),
        AlterConstraintState(
            model_name='PointTransaction',
            name='event',
            field=fields.ForeignKeyField('models.Event', source_field='event_id', null=True, db_index=True, db_constraint=False, to_field='id', related_name='transactions', on_delete=OnDelete.SET_NULL),
        ),
        AlterConstraintState(
            model_name='PointTransaction',
            name='tenant',
            field=fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=False, to_field='id', related_name='transactions', on_delete=OnDelete.CASCADE),
        ),
        ops.RunPython(drop, add),
    ]
