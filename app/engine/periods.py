"""Day, week and month keys in a timezone (the caller passes the tzinfo)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache


def local_day(instant: datetime, tz: tzinfo) -> date:
    return instant.astimezone(tz).date()


def day_key(day: date) -> str:
    return day.isoformat()


def week_key(day: date) -> str:
    """ISO week, Monday to Sunday: 2026-W47."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def month_key(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


PERIODS = ("DAILY", "WEEKLY", "MONTHLY", "ALL_TIME")
ALL_TIME_KEY = "all"
# Ledger lines that count toward leaderboards: what was earned, never what was spent.
BOARD_KINDS = frozenset(
    {"EARN", "BONUS", "BADGE_REWARD", "MISSION_REWARD", "LEVEL_UP_BONUS", "ADJUST"}
)


def period_key(period: str, day: date) -> str:
    if period == "DAILY":
        return day_key(day)
    if period == "WEEKLY":
        return week_key(day)
    if period == "MONTHLY":
        return month_key(day)
    if period == "ALL_TIME":
        return ALL_TIME_KEY
    raise ValueError(f"unknown period {period!r}")


@lru_cache(maxsize=1024)
def _period_keys(day: date) -> tuple[tuple[str, str], ...]:
    return tuple((period, period_key(period, day)) for period in PERIODS)


def period_keys(day: date) -> dict[str, str]:
    """Every period's key for a day (computed once per day: a batch asks per event)."""
    return dict(_period_keys(day))


def previous_key(period: str, day: date) -> str | None:
    """The key of the period before the one holding `day` (None for all time)."""
    if period == "DAILY":
        return day_key(day - timedelta(days=1))
    if period == "WEEKLY":
        return week_key(day - timedelta(days=7))
    if period == "MONTHLY":
        first = day.replace(day=1)
        return month_key(first - timedelta(days=1))
    return None


def counts_for_boards(kind: str, amount: Decimal) -> bool:
    return kind in BOARD_KINDS and amount > 0


# What the boards see of an event: its player's key, when it occurred, and its ledger
# lines' kinds and amounts.
BoardEvent = tuple[int, datetime, Iterable[tuple[str, Decimal]]]


def board_increments(
    events: Iterable[BoardEvent], tz: tzinfo
) -> dict[tuple[int, str, str], Decimal]:
    """Points to add per (player, period, period key): what counts on the boards, in
    every period of the day each event occurred on in `tz` (late events count in their
    own periods)."""
    out: dict[tuple[int, str, str], Decimal] = defaultdict(Decimal)
    for player, occurred_at, lines in events:
        counted = sum(
            (amount for kind, amount in lines if counts_for_boards(kind, amount)), Decimal(0)
        )
        if counted:
            for period, key in _period_keys(local_day(occurred_at, tz)):
                out[(player, period, key)] += counted
    return out


def first_day(period: str, key: str) -> date | None:
    """The first day of the period a key names (None for all time)."""
    if period == "DAILY":
        return date.fromisoformat(key)
    if period == "WEEKLY":
        year, week = key.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    if period == "MONTHLY":
        year, month = key.split("-")
        return date(int(year), int(month), 1)
    if period == "ALL_TIME":
        return None
    raise ValueError(f"unknown period {period!r}")


def end_day(period: str, key: str) -> date | None:
    """The first day after the period a key names: it closes at that day's midnight
    (None for all time, which never closes)."""
    start = first_day(period, key)
    if start is None:
        return None
    if period == "DAILY":
        return start + timedelta(days=1)
    if period == "WEEKLY":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
