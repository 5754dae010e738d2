from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.rewards import RedemptionStatus, RewardCategory
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0007_board_snapshots')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RewardItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='reward_items', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(null=True, unique=False)),
                ('category', fields.CharEnumField(description='DISCOUNT: DISCOUNT\nDIGITAL: DIGITAL\nEXPERIENCE: EXPERIENCE\nPHYSICAL: PHYSICAL\nOFFER: OFFER', enum_type=RewardCategory, max_length=16)),
                ('points_cost', fields.DecimalField(max_digits=16, decimal_places=2)),
                ('stock', fields.IntField(null=True)),
                ('featured', fields.BooleanField(default=False)),
                ('requires_approval', fields.BooleanField(default=False)),
                ('per_player_limit', fields.IntField(null=True)),
                ('available_from', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('available_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('min_level', fields.IntField(default=1)),
                ('code_prefix', fields.CharField(default='REWARD', max_length=16)),
                ('uses_code_pool', fields.BooleanField(default=False)),
                ('expiry_days', fields.IntField(null=True)),
                ('details', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'reward_item', 'app': 'models', 'pk_attr': 'id', 'table_description': "A reward of a tenant's shop: cost, stock (null is unlimited), limits, window,"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Redemption',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.CASCADE)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.CASCADE)),
                ('reward', fields.ForeignKeyField('models.RewardItem', source_field='reward_id', db_index=True, db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.CASCADE)),
                ('quantity', fields.IntField()),
                ('points_spent', fields.DecimalField(max_digits=16, decimal_places=2)),
                ('status', fields.CharEnumField(description='PENDING: PENDING\nAPPROVED: APPROVED\nFULFILLED: FULFILLED\nCOMPLETED: COMPLETED\nREJECTED: REJECTED\nCANCELLED: CANCELLED\nEXPIRED: EXPIRED', enum_type=RedemptionStatus, max_length=16)),
                ('code', fields.CharField(null=True, unique=True, max_length=128)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('source', fields.CharField(default='shop', max_length=16)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('idempotency_key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'redemption', 'app': 'models', 'unique_together': (('tenant', 'idempotency_key'),), 'indexes': [Index(fields=['player_id', 'reward_id']), Index(fields=['tenant_id', 'status', 'id']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': "A player's redemption of a reward (or an offer or wheel prize issued at cost 0):"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RewardCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reward', fields.ForeignKeyField('models.RewardItem', source_field='reward_id', db_constraint=True, to_field='id', related_name='codes', on_delete=OnDelete.CASCADE)),
                ('code', fields.CharField(max_length=128)),
                ('redemption', fields.OneToOneField('models.Redemption', source_field='redemption_id', null=True, db_constraint=True, to_field='id', related_name='pool_code', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'reward_code', 'app': 'models', 'unique_together': (('reward', 'code'),), 'pk_attr': 'id', 'table_description': "A code of a reward's pool, handed out once, to one redemption."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Wheel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.OneToOneField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='wheel', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('prizes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('spin_cost', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('free_spins_per_day', fields.IntField(default=0)),
                ('daily_budget', fields.DecimalField(null=True, max_digits=16, decimal_places=2)),
                ('active', fields.BooleanField(default=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'wheel', 'app': 'models', 'pk_attr': 'id', 'table_description': "The tenant's spin-and-win wheel: prizes with disclosed weights, the cost of a spin,"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Spin',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='spins', on_delete=OnDelete.CASCADE)),
                ('wheel', fields.ForeignKeyField('models.Wheel', source_field='wheel_id', db_constraint=True, to_field='id', related_name='spins', on_delete=OnDelete.CASCADE)),
                ('player', fields.ForeignKeyField('models.Player', source_field='player_id', db_constraint=True, to_field='id', related_name='spins', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('cost', fields.DecimalField(max_digits=16, decimal_places=2)),
                ('free', fields.BooleanField()),
                ('draw', fields.IntField()),
                ('total_weight', fields.IntField()),
                ('prizes', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('prize_index', fields.IntField()),
                ('points_won', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('redemption', fields.ForeignKeyField('models.Redemption', source_field='redemption_id', null=True, db_constraint=True, to_field='id', related_name='spins', on_delete=OnDelete.CASCADE)),
                ('idempotency_key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'spin', 'app': 'models', 'unique_together': (('tenant', 'idempotency_key'),), 'indexes': [Index(fields=['player_id', 'day'])], 'pk_attr': 'id', 'table_description': 'One spin, kept for audit: the random draw, the prizes and weights at the time,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WheelDay',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('wheel', fields.ForeignKeyField('models.Wheel', source_field='wheel_id', db_constraint=True, to_field='id', related_name='days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('paid_out', fields.DecimalField(default=0, max_digits=16, decimal_places=2)),
                ('spins', fields.IntField(default=0)),
            ],
            options={'table': 'wheel_day', 'app': 'models', 'unique_together': (('wheel', 'day'),), 'pk_attr': 'id', 'table_description': 'What a wheel paid out on one day of the tenant, held under its daily budget.'},
            bases=['Model'],
        ),
        # CreateModel leaves Meta.constraints out of the DDL: add the CHECK explicitly.
        ops.AddConstraint(
            model_name='RewardItem',
            constraint=CheckConstraint(check='stock IS NULL OR stock >= 0', name='reward_stock_non_negative'),
        ),
    ]
