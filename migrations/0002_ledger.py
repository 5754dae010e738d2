from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.ledger import TransactionKind
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DataSource',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='data_sources', on_delete=OnDelete.CASCADE)),
                ('source_type', fields.CharField(max_length=16)),
                ('name', fields.CharField(max_length=200)),
                ('event_mapping', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('sync_frequency', fields.CharField(default='realtime', max_length=16)),
                ('connection_config', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'data_source', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('event_type', fields.CharField(max_length=64)),
                ('category', fields.CharField(null=True, max_length=64)),
                ('value', fields.DecimalField(max_digits=20, decimal_places=6)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('source', fields.CharField(max_length=32)),
                ('metadata', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('points_awarded', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('idempotency_key', fields.CharField(null=True, max_length=200)),
                ('payload_hash', fields.CharField(max_length=64)),
                ('outcome', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'event', 'app': 'models', 'unique_together': (('tenant', 'idempotency_key'),), 'indexes': [Index(fields=['player_id', 'occurred_at']), Index(fields=['tenant_id', 'occurred_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PlayerDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_constraint=True, to_field='id', related_name='days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('events', fields.IntField(default=0)),
                ('earned', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
            ],
            options={'table': 'player_day', 'app': 'models', 'unique_together': (('player', 'day'),), 'pk_attr': 'id', 'table_description': "A player's activity on one local day: drives daily caps and streaks, late"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointTransaction',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='transactions', on_delete=OnDelete.CASCADE)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_constraint=True, to_field='id', related_name='transactions', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='EARN: EARN\nBONUS: BONUS\nBADGE_REWARD: BADGE_REWARD\nMISSION_REWARD: MISSION_REWARD\nLEVEL_UP_BONUS: LEVEL_UP_BONUS\nREDEEM: REDEEM\nREFUND: REFUND\nDECAY: DECAY\nEXPIRE: EXPIRE\nADJUST: ADJUST', enum_type=TransactionKind, max_length=16)),
                ('amount', fields.DecimalField(max_digits=16, decimal_places=2)),
                ('balance_after', fields.DecimalField(max_digits=16, decimal_places=2)),
                ('reason', fields.CharField(max_length=200)),
                ('event', fields.ForeignKeyField('models.Event', source_field='event_id', null=True, db_constraint=True, to_field='id', related_name='transactions', on_delete=OnDelete.SET_NULL)),
                ('idempotency_key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'point_transaction', 'app': 'models', 'unique_together': (('tenant', 'idempotency_key'),), 'indexes': [Index(fields=['player_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Append-only. Each line carries the balance after it: the lines of a player sum'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Wallet',
            fields=[
                ('player', fields.OneToOneField('models.Player', source_field='player_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='wallet', on_delete=OnDelete.CASCADE)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='wallets', on_delete=OnDelete.CASCADE)),
                ('balance', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('lifetime_earned', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('level', fields.IntField(default=1)),
                ('streak_current', fields.IntField(default=0)),
                ('streak_best', fields.IntField(default=0)),
                ('last_active_day', fields.DateField(null=True)),
                ('last_event_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('decayed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'wallet', 'app': 'models', 'pk_attr': 'player_id', 'table_description': 'One row per player: balance, lifetime points, level and streak. Locked (FOR'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Tenant',
            name='config_version',
            field=fields.IntField(default=1),
        ),
        # CreateModel leaves Meta.constraints out of the DDL: add the CHECK explicitly.
        ops.AddConstraint(
            model_name='Wallet',
            constraint=CheckConstraint(check='balance >= 0', name='wallet_balance_non_negative'),
        ),
    ]
