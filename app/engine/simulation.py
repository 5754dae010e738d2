"""A preset's simulation mix: the synthetic traffic `questline simulate` sends, as data.

Only the spec lives here (validated like the point rules); the draws are made by
app.services.simulate with its own seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

Scalar = bool | int | float | str  # a JSON scalar a metadata field may carry


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Spec):
    fixed: Scalar


class Uniform(_Spec):
    """A number drawn evenly from [low, high], rounded to `places` decimals."""

    uniform: tuple[float, float]
    places: int = Field(0, ge=0, le=6)

    @field_validator("uniform")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if bounds[0] > bounds[1]:
            raise ValueError("uniform is [low, high] with low <= high")
        return bounds


class Choice(_Spec):
    """One of the listed values, evenly or by relative weights."""

    choice: list[Scalar] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> Choice:
        if self.weights is not None:
            if len(self.weights) != len(self.choice):
                raise ValueError("weights needs one weight per choice")
            if any(w < 0 for w in self.weights) or not sum(self.weights) > 0:
                raise ValueError("weights are >= 0 and not all 0")
        return self


def _kind(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return "fixed"  # a bare value: `value: 1` is `value: {fixed: 1}`
    found = [key for key in ("fixed", "uniform", "choice") if key in raw]
    return found[0] if len(found) == 1 else None


def _bare(raw: Any) -> Any:
    return raw if isinstance(raw, dict) else {"fixed": raw}


Distribution = Annotated[
    Annotated[Fixed, Tag("fixed")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[Choice, Tag("choice")],
    Discriminator(
        _kind,
        custom_error_type="distribution",
        custom_error_message="a value, or a mapping with one of fixed, uniform or choice",
    ),
]


def _numbers(dist: Fixed | Uniform | Choice) -> list[Any]:
    match dist:
        case Fixed():
            return [dist.fixed]
        case Uniform():
            return list(dist.uniform)
        case Choice():
            return list(dist.choice)
    return []


class TrafficEntry(_Spec):
    """One kind of event in the mix."""

    event_type: str = Field(min_length=1, max_length=64)
    weight: float = Field(1, gt=0)  # relative to the other entries' weights
    category: str | None = Field(None, min_length=1, max_length=64)
    value: Distribution = Fixed(fixed=1)
    metadata: dict[str, Distribution] = Field(default_factory=dict)
    # Sent once per active player and day, as their first event (a daily check-in),
    # instead of being drawn by weight.
    once_per_day: bool = False

    @field_validator("value", mode="before")
    @classmethod
    def _bare_value(cls, raw: Any) -> Any:
        return _bare(raw)

    @field_validator("metadata", mode="before")
    @classmethod
    def _bare_metadata(cls, raw: Any) -> Any:
        return {key: _bare(item) for key, item in raw.items()} if isinstance(raw, dict) else raw

    @field_validator("value")
    @classmethod
    def _non_negative_number(cls, dist: Fixed | Uniform | Choice) -> Fixed | Uniform | Choice:
        for number in _numbers(dist):
            if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
                raise ValueError("an event's value is a number >= 0")
        return dist


class SimulationSpec(_Spec):
    player_kind: Literal["CUSTOMER", "AGENT"] = "CUSTOMER"
    # The share of players active on a given day: streaks grow and break.
    active_share: float = Field(0.7, gt=0, le=1)
    # Events per active player on a backfilled day, [least, most].
    events_per_day: tuple[int, int] = (1, 5)
    # Backfilled events fall between these local hours, [from, to).
    active_hours: tuple[int, int] = (7, 22)
    events: list[TrafficEntry] = Field(min_length=1)

    @field_validator("events_per_day")
    @classmethod
    def _per_day(cls, bounds: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= bounds[0] <= bounds[1] <= 1000:
            raise ValueError("events_per_day is [least, most] with 1 <= least <= most <= 1000")
        return bounds

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, hours: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= hours[0] < hours[1] <= 24:
            raise ValueError("active_hours is [from, to) with 0 <= from < to <= 24")
        return hours

    @model_validator(mode="after")
    def _something_to_draw(self) -> SimulationSpec:
        if all(entry.once_per_day for entry in self.events):
            raise ValueError("at least one event must be drawn by weight (not once_per_day)")
        return self


def _problem(err: Any) -> str:
    parts: list[str] = []
    for part in err["loc"]:  # a distribution's tag repeats its field's name: said once
        if not parts or parts[-1] != str(part):
            parts.append(str(part))
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"simulation.{'.'.join(parts)}: {message}"


def parse_simulation(
    data: Any, event_types: Iterable[str], categories: Iterable[str]
) -> SimulationSpec:
    """The `simulation:` section checked against the rules it is for: each event type
    needs a rule (or a wildcard rule), each category a weight when the rules name
    categories. Raises ValueError with one line per problem."""
    try:
        spec = SimulationSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(err) for err in exc.errors())) from None
    types, known = set(event_types), set(categories)
    problems = []
    for n, entry in enumerate(spec.events):
        if entry.event_type not in types and "*" not in types:
            problems.append(f"simulation.events.{n}: no rule for event type {entry.event_type!r}")
        if entry.category is not None and known and entry.category not in known:
            problems.append(f"simulation.events.{n}: unknown category {entry.category!r}")
    if problems:
        raise ValueError("; ".join(problems))
    return spec
