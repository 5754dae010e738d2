from tortoise import migrations
from tortoise.migrations import operations as ops
from models.leaderboards import Period
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_transaction_event_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PeriodScore',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='period_scores', on_delete=OnDelete.CASCADE)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_index=True, db_constraint=True, to_field='id', related_name='period_scores', on_delete=OnDelete.CASCADE)),
                ('period', fields.CharEnumField(description='DAILY: DAILY\nWEEKLY: WEEKLY\nMONTHLY: MONTHLY\nALL_TIME: ALL_TIME', enum_type=Period, max_length=8)),
                ('period_key', fields.CharField(max_length=16)),
                ('points', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('reached_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'period_score', 'app': 'models', 'unique_together': (('tenant', 'period', 'period_key', 'player'),), 'indexes': [Index(fields=['tenant_id', 'period', 'period_key', 'points', 'reached_at'])], 'pk_attr': 'id', 'table_description': 'Points a player earned in one period: earn, bonus and reward lines, never lowered'},
            bases=['Model'],
        ),
    ]
