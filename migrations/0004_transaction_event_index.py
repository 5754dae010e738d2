from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_wallet_options')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='PointTransaction',
            name='event',
            field=fields.ForeignKeyField('models.Event', source_field='event_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='transactions', on_delete=OnDelete.SET_NULL),
        ),
    ]
