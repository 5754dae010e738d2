from tortoise import migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('models', '0008_rewards')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='PeriodScore',
            name=None,
            fields=['tenant_id', 'period', 'period_key', 'points', 'reached_at'],
        ),
        # Board order, so that pages, ranks and counts are ranges of one index.
        ops.RunSQL(
            'CREATE INDEX idx_period_score_rank ON period_score '
            '(tenant_id, period, period_key, points DESC, reached_at, player_id)',
            reverse_sql='DROP INDEX idx_period_score_rank',
        ),
        # Public boards leave out the few hidden players: find them without a scan.
        ops.RunSQL(
            'CREATE INDEX idx_player_hidden ON player (tenant_id, id) WHERE hidden_from_boards',
            reverse_sql='DROP INDEX idx_player_hidden',
        ),
    ]
