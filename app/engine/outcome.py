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


class UnknownEventType(ValueError):
    pass


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

    level_change, balance, lifetime = _level_ups(rules, state.level, balance, lifetime, entries)
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
    cross further levels."""
    current, bonus_total = start, ZERO
    for _ in range(10_000):  # bounded: a formula scheme with a huge bonus cannot spin forever
        reached = levels.level_number(lifetime, rules)
        if reached <= current:
            break
        for number in range(current + 1, reached + 1):
            bonus = rules.level_up_bonus
            if bonus:
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
    entries = [LedgerEntry(kind, amount, balance, reason)]
    change, balance, lifetime = _level_ups(rules, state.level, balance, lifetime, entries)
    new_state = PlayerState(
        balance, lifetime, change.to_level if change else state.level, state.streak
    )
    return AwardResult(entries, change, new_state)
