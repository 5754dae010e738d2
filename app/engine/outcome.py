"""One event applied to one player's state: points, daily cap, streak, levels, ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from app.engine import levels, streaks
from app.engine.points import PointsLine, apply_daily_cap, rule_points
from app.engine.rules import PointRules
from app.engine.streaks import StreakState

ZERO = Decimal(0)
# The ledger holds amounts below 10^14 (16 digits, 2 of them decimals): no balance or
# lifetime total may reach it.
MAX_POINTS = Decimal(10) ** 14
# Levels one event or award may cross when each pays a bonus (a ledger line apiece).
MAX_LEVELS_PER_CHANGE = 1000
# The highest level a formula scheme may reach: a 32-bit integer, as the API's Int.
MAX_LEVEL = 2**31 - 1


class UnknownEventType(ValueError):
    pass


class OverLimit(ValueError):
    """The event or award would take the player beyond what the ledger holds."""


def _within_limits(balance: Decimal, lifetime: Decimal) -> None:
    if max(balance, lifetime) >= MAX_POINTS:
        raise OverLimit(f"a player's points must stay below {MAX_POINTS:,.0f}")


@dataclass(frozen=True, slots=True)
class PlayerState:
    balance: Decimal = ZERO
    lifetime: Decimal = ZERO
    level: int = 1
    streak: StreakState = field(default_factory=StreakState)


@dataclass(frozen=True, slots=True)
class PlayerFacts:
    """What rules may look at besides the event (JSONLogic `player.*`)."""

    attributes: dict[str, Any] = field(default_factory=dict)
    segment: str | None = None
    kind: str = "CUSTOMER"
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventFacts:
    event_type: str
    value: Decimal
    day: date  # the event's own day in the player's timezone
    category: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "api"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    kind: str  # EARN, LEVEL_UP_BONUS, ...
    amount: Decimal
    balance_after: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class LevelChange:
    from_level: int
    to_level: int
    level: levels.LevelInfo
    bonus: Decimal


@dataclass(frozen=True, slots=True)
class EventResult:
    points: Decimal  # the rule points after the daily cap (level-up bonus excluded)
    lines: list[PointsLine]
    entries: list[LedgerEntry]
    level_change: LevelChange | None
    state: PlayerState
    category: str | None
    streak_on_day: int
    earned_on_day: Decimal  # rule points on the event's day, this event included


def needs_history(state: PlayerState, day: date) -> bool:
    """A late event (before the last active day) needs the active-day history."""
    return streaks.is_late(state.streak, day)


def apply_event(
    rules: PointRules,
    state: PlayerState,
    event: EventFacts,
    player: PlayerFacts,
    *,
    earned_on_day: Decimal,
    history: Iterable[date] | None = None,
) -> EventResult:
    rule = rules.rule_for(event.event_type)
    if rule is None:
        raise UnknownEventType(event.event_type)
    category = event.category or rule.category

    if needs_history(state, event.day):
        if history is None:
            raise ValueError("a late event needs the player's active-day history")
        streak, streak_on_day = streaks.observe_late(state.streak, event.day, history)
    else:
        streak, streak_on_day = streaks.observe(state.streak, event.day)

    facts = {
        "event": {
            "type": event.event_type,
            "category": category,
            "value": float(event.value),
            "metadata": event.metadata,
            "source": event.source,
        },
        "player": {
            "streak": streak_on_day,
            "level": state.level,
            "lifetime": float(state.lifetime),
            "attributes": player.attributes,
            "segment": player.segment,
            "kind": player.kind,
            "scores": player.scores,
        },
    }
    points, lines = rule_points(
        rule, rules, value=event.value, category=category, streak=streak_on_day, facts=facts
    )
    cap = levels.daily_cap(rules, levels.info(state.level, rules))
    points = apply_daily_cap(points, lines, cap, earned_on_day)

    balance, lifetime = state.balance, state.lifetime
    entries: list[LedgerEntry] = []
    if points:
        balance += points
        lifetime += points
        entries.append(LedgerEntry("EARN", points, balance, _reason(rule.description, event)))

    _within_limits(balance, lifetime)
    level_change, balance, lifetime = _level_ups(rules, state.level, balance, lifetime, entries)
    _within_limits(balance, lifetime)
    new_state = PlayerState(
        balance=balance,
        lifetime=lifetime,
        level=level_change.to_level if level_change else state.level,
        streak=streak,
    )
    return EventResult(
        points=points,
        lines=lines,
        entries=entries,
        level_change=level_change,
        state=new_state,
        category=category,
        streak_on_day=streak_on_day,
        earned_on_day=earned_on_day + points,
    )


def _reason(description: str, event: EventFacts) -> str:
    return description or event.event_type


def _level_ups(
    rules: PointRules,
    start: int,
    balance: Decimal,
    lifetime: Decimal,
    entries: list[LedgerEntry],
) -> tuple[LevelChange | None, Decimal, Decimal]:
    """Every level crossed pays its bonus, which counts toward lifetime points and may
    cross further levels. Without a bonus the new level is found at once, however many
    a formula scheme crosses; with one, at most MAX_LEVELS_PER_CHANGE (OverLimit)."""
    current, bonus_total = start, ZERO
    bonus = rules.level_up_bonus
    while True:
        reached = levels.level_number(lifetime, rules)
        if reached <= current:
            break
        if reached > MAX_LEVEL:
            raise OverLimit(f"a player's level must stay below {MAX_LEVEL + 1:,}")
        if bonus:
            if reached - start > MAX_LEVELS_PER_CHANGE:
                raise OverLimit(f"at most {MAX_LEVELS_PER_CHANGE} levels are gained at once")
            for number in range(current + 1, reached + 1):
                balance += bonus
                lifetime += bonus
                bonus_total += bonus
                name = levels.info(number, rules).name
                entries.append(
                    LedgerEntry(
                        "LEVEL_UP_BONUS", bonus, balance, f"reached level {number} ({name})"
                    )
                )
        current = reached
    if current == start:
        return None, balance, lifetime
    change = LevelChange(start, current, levels.info(current, rules), bonus_total)
    return change, balance, lifetime


@dataclass(frozen=True, slots=True)
class AwardResult:
    entries: list[LedgerEntry]
    level_change: LevelChange | None
    state: PlayerState


def apply_award(
    rules: PointRules, state: PlayerState, amount: Decimal, *, kind: str, reason: str
) -> AwardResult:
    """Points outside the rule pipeline (admin awards and revocations, badge and mission
    rewards): not capped; positive awards count toward lifetime points and levels."""
    if state.balance + amount < 0:
        raise ValueError("the balance cannot go below zero")
    balance = state.balance + amount
    lifetime = state.lifetime + max(amount, ZERO)
    _within_limits(balance, lifetime)
    entries = [LedgerEntry(kind, amount, balance, reason)]
    change, balance, lifetime = _level_ups(rules, state.level, balance, lifetime, entries)
    _within_limits(balance, lifetime)
    new_state = PlayerState(
        balance, lifetime, change.to_level if change else state.level, state.streak
    )
    return AwardResult(entries, change, new_state)
