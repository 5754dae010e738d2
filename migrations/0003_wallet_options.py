from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0002_ledger')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Wallet',
            options={'table': 'wallet', 'app': 'models', 'constraints': [CheckConstraint(check='balance >= 0', name='wallet_balance_non_negative')], 'pk_attr': 'player_id', 'table_description': 'One row per player: balance, lifetime points, level and streak. Locked (FOR'},
        ),
    ]
