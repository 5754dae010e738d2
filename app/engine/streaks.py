"""Streaks: consecutive active days in the player's timezone.

Several events on one day count once; a missed day resets the streak. Late events
count toward their own day, which may join two runs: for those the caller passes
the player's known active days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StreakState:
    current: int = 0  # the run ending at last_active_day
    best: int = 0
    last_active_day: date | None = None

    def as_of(self, today: date) -> int:
        """The streak a player sees today: broken once a whole day was missed."""
        if self.last_active_day is None or today - self.last_active_day > ONE_DAY:
            return 0
        return self.current


def is_late(state: StreakState, day: date) -> bool:
    return state.last_active_day is not None and day < state.last_active_day


def observe(state: StreakState, day: date) -> tuple[StreakState, int]:
    """Activity on `day` (not before the last active day): new state, streak on that day."""
    last = state.last_active_day
    if last is not None and day < last:
        raise ValueError("a late day needs the active-day history: use observe_late")
    if last == day:
        return state, state.current
    current = state.current + 1 if last is not None and day - last == ONE_DAY else 1
    return StreakState(current, max(state.best, current), day), current


def run_ending(days: set[date], day: date) -> int:
    length = 0
    while day - timedelta(days=length) in days:
        length += 1
    return length


def observe_late(state: StreakState, day: date, history: Iterable[date]) -> tuple[StreakState, int]:
    """Activity on an earlier day; `history` holds the active days around it."""
    days = set(history) | {day}
    if state.last_active_day is not None:
        days.add(state.last_active_day)
    last = max(days)
    current = run_ending(days, last)
    on_day = run_ending(days, day)
    best = max(state.best, current, on_day + _run_after(days, day))
    return StreakState(current, best, last), on_day


def _run_after(days: set[date], day: date) -> int:
    length = 0
    while day + timedelta(days=length + 1) in days:
        length += 1
    return length
