"""Leaderboard scores per period: the record the boards are ranked from."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.ledger import POINTS


class Period(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    ALL_TIME = "ALL_TIME"


class PeriodScore(Model):
    """Points a player earned in one period: earn, bonus and reward lines, never lowered
    by spending. Ranked by points, then who reached them first, then player id."""

    id = fields.BigIntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="period_scores", db_index=False)
    # Found by player through the unique key, which leads with the player: a board row
    # updated with fewer indexes to maintain (migration 0013).
    player = fields.ForeignKeyField("models.Player", related_name="period_scores", db_index=False)
    period = fields.CharEnumField(Period, max_length=8)
    period_key = fields.CharField(max_length=16)  # 2026-11-20, 2026-W47, 2026-11, all
    points = fields.DecimalField(**POINTS, default=0)
    reached_at = fields.DatetimeField()  # when the score last grew: the tie-break
    # Rank on the public board when the period closed, and the points it was for (set
    # by its snapshot; a late event changes `points`, not these).
    final_rank = fields.IntField(null=True)
    final_points = fields.DecimalField(**POINTS, null=True)

    class Meta:
        table = "period_score"
        unique_together = (("player", "tenant", "period", "period_key"),)
        # The rank index, in board order (points DESC, reached_at, player_id), is made by
        # migration 0009 in SQL: the model's index options cannot say DESC.


class BoardSnapshot(Model):
    """The public board of a closed period as it stood when snapshotted: the top entries
    and the size. Each player's final rank is on their period score row."""

    id = fields.BigIntField(primary_key=True)
    tenant = fields.ForeignKeyField("models.Tenant", related_name="board_snapshots")
    period = fields.CharEnumField(Period, max_length=8)
    period_key = fields.CharField(max_length=16)
    taken_at = fields.DatetimeField()
    total_players = fields.IntField()
    # [{"rank", "playerId", "points"}] for the top SNAPSHOT_TOP, in rank order.
    top = fields.JSONField(default=list)

    class Meta:
        table = "board_snapshot"
        unique_together = (("tenant", "period", "period_key"),)
