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
    player = fields.ForeignKeyField("models.Player", related_name="period_scores", db_index=True)
    period = fields.CharEnumField(Period, max_length=8)
    period_key = fields.CharField(max_length=16)  # 2026-11-20, 2026-W47, 2026-11, all
    points = fields.DecimalField(**POINTS, default=0)
    reached_at = fields.DatetimeField()  # when the score last grew: the tie-break

    class Meta:
        table = "period_score"
        unique_together = (("tenant", "period", "period_key", "player"),)
        indexes = (("tenant_id", "period", "period_key", "points", "reached_at"),)
