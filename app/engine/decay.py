"""Decay of inactive balances: X % after N days without activity, once per period."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from app.engine.rules import Decay

CENT = Decimal("0.01")


def is_due(
    rule: Decay, last_activity: datetime | None, last_decay: datetime | None, now: datetime
) -> bool:
    """Due when a whole inactive period has passed since the later of activity and decay."""
    anchors = [t for t in (last_activity, last_decay) if t is not None]
    if not anchors:
        return False
    return now - max(anchors) >= timedelta(days=rule.after_days)


def amount(rule: Decay, balance: Decimal) -> Decimal:
    """The (positive) number of points that decay from this balance."""
    if balance <= 0:
        return Decimal(0)
    return min((balance * rule.percent / 100).quantize(CENT, ROUND_HALF_UP), balance)
