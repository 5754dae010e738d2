from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.leaderboards import Period
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_player_privacy')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BoardSnapshot',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='board_snapshots', on_delete=OnDelete.CASCADE)),
                ('period', fields.CharEnumField(description='DAILY: DAILY\nWEEKLY: WEEKLY\nMONTHLY: MONTHLY\nALL_TIME: ALL_TIME', enum_type=Period, max_length=8)),
                ('period_key', fields.CharField(max_length=16)),
                ('taken_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('total_players', fields.IntField()),
                ('top', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'board_snapshot', 'app': 'models', 'unique_together': (('tenant', 'period', 'period_key'),), 'pk_attr': 'id', 'table_description': 'The public board of a closed period as it stood when snapshotted: the top entries'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='PeriodScore',
            name='final_rank',
            field=fields.IntField(null=True),
        ),
    ]
