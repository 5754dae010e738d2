from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.players import PlayerKind
from models.tenants import Role
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Tenant',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('preset', fields.CharField(max_length=32)),
                ('config', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('timezone', fields.CharField(default='UTC', max_length=64)),
                ('signing_secret', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tenant', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=100)),
                ('prefix', fields.CharField(unique=True, max_length=16)),
                ('key_hash', fields.CharField(max_length=64)),
                ('role', fields.CharEnumField(description='ADMIN: admin\nINTEGRATOR: integrator\nVIEWER: viewer', enum_type=Role, max_length=16)),
                ('revoked', fields.BooleanField(default=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'api_key', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Team',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='teams', on_delete=OnDelete.CASCADE)),
                ('external_id', fields.CharField(max_length=128)),
                ('name', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'team', 'app': 'models', 'unique_together': (('tenant', 'external_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Player',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_index=True, db_constraint=True, to_field='id', related_name='players', on_delete=OnDelete.CASCADE)),
                ('external_id', fields.CharField(max_length=128)),
                ('kind', fields.CharEnumField(default=PlayerKind.CUSTOMER, description='CUSTOMER: CUSTOMER\nAGENT: AGENT', enum_type=PlayerKind, max_length=16)),
                ('display_name', fields.CharField(null=True, max_length=200)),
                ('segment', fields.CharField(null=True, max_length=64)),
                ('team', fields.ForeignKeyField('models.Team', source_field='team_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.SET_NULL)),
                ('timezone', fields.CharField(null=True, max_length=64)),
                ('attributes', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'player', 'app': 'models', 'unique_together': (('tenant', 'external_id'),), 'indexes': [Index(fields=['tenant_id', 'segment'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
