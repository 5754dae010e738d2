"""Levels from lifetime points: a table or an unbounded formula."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from app.engine.rules import PointRules


@dataclass(frozen=True, slots=True)
class LevelInfo:
    number: int
    name: str
    lifetime_points_required: Decimal
    next_level_at: Decimal | None  # None at the top level
    privileges: dict

    def progress(self, lifetime: Decimal) -> Decimal:
        """0..1 toward the next level (1 at the top)."""
        if self.next_level_at is None:
            return Decimal(1)
        span = self.next_level_at - self.lifetime_points_required
        done = (lifetime - self.lifetime_points_required) / span
        return min(max(done, Decimal(0)), Decimal(1))


def level_for(lifetime: Decimal, rules: PointRules) -> LevelInfo:
    return info(level_number(lifetime, rules), rules)


def level_number(lifetime: Decimal, rules: PointRules) -> int:
    if rules.level_formula is not None:
        step = rules.level_formula.step
        return int((lifetime / step).to_integral_value(ROUND_FLOOR)) + 1 if lifetime > 0 else 1
    number = 1
    for level in rules.levels:
        if lifetime < level.lifetime_points:
            break
        number = level.number
    return number


MEMO_LEVELS = 1000  # a formula's levels kept per rules object (tables are kept whole)


def info(number: int, rules: PointRules) -> LevelInfo:
    """The level's facts; the same LevelInfo object each time for the same rules (its
    privileges are shared: read them, never change them)."""
    key = ("level", number)
    found = rules.memo.get(key)
    if found is None:
        found = _info(number, rules)
        if rules.level_formula is None or number <= MEMO_LEVELS:
            rules.memo[key] = found
    return found


def _info(number: int, rules: PointRules) -> LevelInfo:
    if rules.level_formula is not None:
        step = rules.level_formula.step
        return LevelInfo(
            number=number,
            name=rules.level_formula.name.format(n=number),
            lifetime_points_required=step * (number - 1),
            next_level_at=step * number,
            privileges={},
        )
    level = rules.levels[number - 1]
    following = rules.levels[number] if number < len(rules.levels) else None
    return LevelInfo(
        number=level.number,
        name=level.name,
        lifetime_points_required=level.lifetime_points,
        next_level_at=following.lifetime_points if following else None,
        privileges=dict(level.privileges),
    )


def all_levels(rules: PointRules, up_to: int = 10) -> list[LevelInfo]:
    """The table, or the first `up_to` levels of a formula."""
    count = len(rules.levels) if rules.levels else up_to
    return [info(n, rules) for n in range(1, count + 1)]


def daily_cap(rules: PointRules, level: LevelInfo) -> Decimal | None:
    """The cap on rule points per day at this level; a level privilege may set it."""
    if "daily_cap" in level.privileges:
        value = level.privileges["daily_cap"]
        return None if value is None else Decimal(str(value))
    if rules.daily_cap is None:
        return None
    return rules.daily_cap.base + rules.daily_cap.per_level * (level.number - 1)
