from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# The points of a player's final rank, kept by a closed period's snapshot: a late event
# for that period still adds to `points`, and a rank must come with its own points.
# Rows snapshotted before have none; readers take `points` for them.


class Migration(migrations.Migration):
    dependencies = [('models', '0015_sqlite_utc_event_times')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PeriodScore',
            name='final_points',
            field=fields.DecimalField(max_digits=16, decimal_places=2, null=True),
        ),
    ]
