"""Rule specs: a tenant's point rules, levels, caps and decay, validated as data."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Condition = dict[str, Any]  # JSONLogic
Amount = Decimal | dict[str, Any]  # a number, or a JSONLogic expression giving one

WILDCARD = "*"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StepBase(_Spec):
    label: str | None = None
    when: Condition | None = None  # JSONLogic over {event, player}; the step applies when truthy


class BaseStep(_StepBase):
    type: Literal["base"]
    points: Decimal


class PerUnitStep(_StepBase):
    """points × the event's value (value 2.0 at 1 point per unit is 2 points)."""

    type: Literal["per_unit"]
    points: Decimal = Decimal(1)


class CategoryWeightStep(_StepBase):
    type: Literal["category_weight"]


class AddStep(_StepBase):
    type: Literal["add"]
    points: Amount


class MultiplyStep(_StepBase):
    type: Literal["multiply"]
    factor: Amount


class StreakBonusStep(_StepBase):
    """+percent_per_day % per streak day once the streak reaches from_day, capped."""

    type: Literal["streak_bonus"]
    percent_per_day: Decimal
    from_day: int = Field(1, ge=1)
    max_percent: Decimal | None = None


class StreakMultiplierStep(_StepBase):
    """× factor once the streak (consecutive active days, today included) reaches from_day."""

    type: Literal["streak_multiplier"]
    factor: Decimal
    from_day: int = Field(2, ge=1)


class CapStep(_StepBase):
    """Clamp the amount to at most `max` (e.g. a multiplier's ceiling)."""

    type: Literal["cap"]
    max: Decimal


class RoundStep(_StepBase):
    type: Literal["round"]
    places: int = Field(0, ge=0, le=2)


Step = Annotated[
    BaseStep
    | PerUnitStep
    | CategoryWeightStep
    | AddStep
    | MultiplyStep
    | StreakBonusStep
    | StreakMultiplierStep
    | CapStep
    | RoundStep,
    Field(discriminator="type"),
]


class Rule(_Spec):
    event_type: str
    description: str = ""
    category: str | None = None  # used when the event names none
    steps: list[Step]


class CategorySettings(_Spec):
    weight: Decimal = Decimal(1)
    description: str = ""


class DailyCap(_Spec):
    base: Decimal
    per_level: Decimal = Decimal(0)  # the cap grows by this much per level above 1


class Level(_Spec):
    number: int = Field(ge=1)
    name: str
    lifetime_points: Decimal = Field(ge=0)
    privileges: dict[str, Any] = Field(default_factory=dict)


class LevelFormula(_Spec):
    """Unbounded levels: level n spans (n-1)·step … n·step lifetime points."""

    step: Decimal = Field(gt=0)
    name: str = "Level {n}"


class Decay(_Spec):
    after_days: int = Field(ge=1)
    percent: Decimal = Field(gt=0, le=100)


class PointRules(BaseModel):
    """The part of a tenant's config that turns events into points and levels."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rules: list[Rule]
    categories: dict[str, CategorySettings] = Field(default_factory=dict)
    daily_cap: DailyCap | None = None
    levels: list[Level] = Field(default_factory=list)
    level_formula: LevelFormula | None = None
    level_up_bonus: Decimal = Decimal(0)  # per level gained
    decay: Decay | None = None
    max_future_skew_seconds: int = Field(300, ge=0)
    # False: the tenant keeps no leaderboards (no period scores are written).
    leaderboards: bool = True

    @cached_property
    def by_type(self) -> dict[str, Rule]:
        return {rule.event_type: rule for rule in self.rules}

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Values the engine derives from these rules (they are frozen), kept for reuse."""
        return {}

    @field_validator("levels")
    @classmethod
    def _levels_ordered(cls, levels: list[Level]) -> list[Level]:
        numbers = [lv.number for lv in levels]
        if numbers != list(range(1, len(levels) + 1)):
            raise ValueError("levels must be numbered 1, 2, 3, … in order")
        thresholds = [lv.lifetime_points for lv in levels]
        if thresholds and (thresholds[0] != 0 or thresholds != sorted(set(thresholds))):
            raise ValueError("level 1 starts at 0 and thresholds strictly increase")
        return levels

    @model_validator(mode="after")
    def _one_level_scheme(self) -> PointRules:
        if bool(self.levels) == bool(self.level_formula):
            raise ValueError("give either a `levels` table or a `level_formula`")
        if self.level_formula is not None and self.level_up_bonus >= self.level_formula.step:
            # Each level's bonus would reach the next level: one level-up, every level.
            raise ValueError("level_up_bonus must be below the level formula's step")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.event_type in seen:
                raise ValueError(f"two rules for event type {rule.event_type!r}")
            seen.add(rule.event_type)
        return self

    def rule_for(self, event_type: str) -> Rule | None:
        by_type = self.by_type
        return by_type.get(event_type) or by_type.get(WILDCARD)

    def weight(self, category: str | None) -> Decimal:
        settings = self.categories.get(category or "")
        return settings.weight if settings else Decimal(1)


def parse_rules(config: dict[str, Any]) -> PointRules:
    """Raises pydantic.ValidationError naming the bad field."""
    return PointRules.model_validate(config)
