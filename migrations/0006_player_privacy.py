from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_period_scores')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Player',
            name='hidden_from_boards',
            field=fields.BooleanField(default=False),
        ),
    ]
