"""Day, week and month keys in a timezone (the caller passes the tzinfo)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo


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
