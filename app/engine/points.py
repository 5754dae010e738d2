"""The points pipeline: a rule's steps in order, each change a line; lines sum exactly."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.engine import conditions
from app.engine.rules import (
    AddStep,
    BaseStep,
    CapStep,
    CategoryWeightStep,
    MultiplyStep,
    PerUnitStep,
    PointRules,
    RoundStep,
    Rule,
    StreakBonusStep,
    StreakMultiplierStep,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class PointsLine:
    rule: str  # the step kind: base, per_unit, category_weight, add, multiply, ...
    description: str
    amount: Decimal


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _step_result(
    step: Any,
    total: Decimal,
    rules: PointRules,
    facts: dict[str, Any],
    value: Decimal,
    category: str | None,
    streak: int,
) -> tuple[Decimal, str] | None:
    """The new running total and a description, or None when the step does not apply."""
    match step:
        case BaseStep():
            return total + step.points, f"base {_fmt(step.points)}"
        case PerUnitStep():
            return total + value * step.points, f"{_fmt(value)} × {_fmt(step.points)} per unit"
        case CategoryWeightStep():
            weight = rules.weight(category)
            return total * weight, f"{category or 'uncategorised'} weight × {_fmt(weight)}"
        case AddStep():
            points = conditions.number(step.points, facts)
            return total + points, f"+{_fmt(points)}"
        case MultiplyStep():
            factor = conditions.number(step.factor, facts)
            return total * factor, f"× {_fmt(factor)}"
        case StreakBonusStep():
            if streak < step.from_day:
                return None
            percent = step.percent_per_day * streak
            if step.max_percent is not None:
                percent = min(percent, step.max_percent)
            return total * (1 + percent / 100), f"{streak}-day streak +{_fmt(percent)} %"
        case StreakMultiplierStep():
            if streak < step.from_day:
                return None
            return total * step.factor, f"{streak}-day streak × {_fmt(step.factor)}"
        case CapStep():
            return min(total, step.max), f"at most {_fmt(step.max)}"
        case RoundStep():
            exponent = Decimal(1).scaleb(-step.places)
            return total.quantize(exponent, ROUND_HALF_UP), f"rounded to {step.places} places"
    raise TypeError(f"unknown step {step!r}")


def rule_points(
    rule: Rule,
    rules: PointRules,
    *,
    value: Decimal,
    category: str | None,
    streak: int,
    facts: dict[str, Any],
) -> tuple[Decimal, list[PointsLine]]:
    """Runs the rule's steps. Every change is rounded to cents as it is made, so the
    lines sum exactly to the total; the total is never negative."""
    total = ZERO
    lines: list[PointsLine] = []
    for step in rule.steps:
        if not conditions.truthy(step.when, facts):
            continue
        result = _step_result(step, total, rules, facts, value, category, streak)
        if result is None:
            continue
        new_total, description = result
        delta = cents(new_total - total)
        if delta:
            lines.append(PointsLine(step.type, step.label or description, delta))
            total += delta
    if total < 0:
        lines.append(PointsLine("floor", "no negative awards", -total))
        total = ZERO
    return total, lines


def apply_daily_cap(
    total: Decimal, lines: list[PointsLine], cap: Decimal | None, earned_on_day: Decimal
) -> Decimal:
    """Clamp to what is left of the day's cap; adds the cap line when it bites."""
    if cap is None:
        return total
    room = max(cap - earned_on_day, ZERO)
    if total <= room:
        return total
    lines.append(PointsLine("daily_cap", f"daily cap {_fmt(cap)} reached", room - total))
    return room
