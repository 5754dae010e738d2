"""Reward rules: who may redeem what, the redemption state machine, issued codes and
the spin-and-win draw. Pure: the clock and random values come in as arguments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ZERO = Decimal(0)
MAX_QUANTITY = 100

# ------------------------------------------------------------------ problems


@dataclass(frozen=True, slots=True)
class Problem:
    """Why something is refused: an error code, a message, the input field."""

    code: str  # an app.errors.ErrorCode value
    message: str
    field: str | None = None


# ------------------------------------------------------------------ the state machine

PENDING, APPROVED, FULFILLED, COMPLETED = "PENDING", "APPROVED", "FULFILLED", "COMPLETED"
REJECTED, CANCELLED, EXPIRED = "REJECTED", "CANCELLED", "EXPIRED"

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, CANCELLED}),
    APPROVED: frozenset({FULFILLED, REJECTED}),
    FULFILLED: frozenset({COMPLETED, EXPIRED}),
    COMPLETED: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}
# Moving into these gives the points and the stock back.
REFUNDING = frozenset({REJECTED, CANCELLED})
# Redemptions that count toward a player's limit for an item.
HOLDING = frozenset({PENDING, APPROVED, FULFILLED, COMPLETED, EXPIRED})


def sources_of(target: str) -> frozenset[str]:
    """The statuses from which `target` can be reached in one step."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


def transition_problem(current: str, *path: str) -> Problem | None:
    """None when `current` -> path[0] -> path[1] ... are all allowed steps."""
    status = current
    for target in path:
        if target not in TRANSITIONS[status]:
            return Problem(
                "INVALID_TRANSITION",
                f"a {status} redemption cannot become {path[-1]}",
                "id",
            )
        status = target
    return None


def completion_problem(status: str, expires_at: datetime | None, now: datetime) -> Problem | None:
    """The player marks a fulfilled code used; an expired code cannot be."""
    if status == FULFILLED and is_expired(expires_at, now):
        return Problem("INVALID_TRANSITION", "the code has expired", "id")
    return transition_problem(status, COMPLETED)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


# ------------------------------------------------------------------ eligibility


@dataclass(frozen=True, slots=True)
class ItemTerms:
    points_cost: Decimal
    stock: int | None = None  # None: unlimited (or not known here)
    per_player_limit: int | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    min_level: int = 1
    uses_code_pool: bool = False
    active: bool = True


@dataclass(frozen=True, slots=True)
class Standing:
    """The player as far as a redemption is concerned."""

    balance: Decimal = ZERO
    level: int = 1
    held: int = 0  # quantity of this item already redeemed (not rejected or cancelled)


def total_cost(item: ItemTerms, quantity: int) -> Decimal:
    return item.points_cost * quantity


def quantity_problem(item: ItemTerms, quantity: int) -> Problem | None:
    if quantity < 1:
        return Problem("INVALID", "quantity is at least 1", "quantity")
    if quantity > MAX_QUANTITY:
        return Problem("LIMIT_REACHED", f"at most {MAX_QUANTITY} per redemption", "quantity")
    if item.uses_code_pool and quantity != 1:
        return Problem("INVALID", "a pooled-code reward is redeemed one at a time", "quantity")
    return None


def limit_problem(item: ItemTerms, held: int, quantity: int) -> Problem | None:
    limit = item.per_player_limit
    if limit is not None and held + quantity > limit:
        return Problem(
            "LIMIT_REACHED",
            f"at most {limit} per player; {held} redeemed already",
            "quantity",
        )
    return None


def availability_problem(item: ItemTerms, level: int, now: datetime) -> Problem | None:
    return window_problem(item, now) or level_problem(item, level)


def window_problem(item: ItemTerms, now: datetime) -> Problem | None:
    """Offered at all, and now: the part of the rules that needs no player."""
    if not item.active:
        return Problem("NOT_FOUND", "this reward is no longer offered", "rewardId")
    if item.available_from is not None and now < item.available_from:
        return Problem("INVALID", f"available from {item.available_from.isoformat()}", "rewardId")
    if item.available_until is not None and now >= item.available_until:
        return Problem(
            "INVALID", f"no longer available since {item.available_until.isoformat()}", "rewardId"
        )
    return None


def level_problem(item: ItemTerms, level: int) -> Problem | None:
    if level < item.min_level:
        return Problem(
            "INVALID", f"needs level {item.min_level}; the player is level {level}", "rewardId"
        )
    return None


def redeem_problem(
    item: ItemTerms, player: Standing, quantity: int, now: datetime
) -> Problem | None:
    """The first reason a player may not redeem `quantity` of the item now, or None."""
    found = (
        quantity_problem(item, quantity)
        or availability_problem(item, player.level, now)
        or limit_problem(item, player.held, quantity)
    )
    if found:
        return found
    if item.stock is not None and item.stock < quantity:
        return Problem("OUT_OF_STOCK", f"{item.stock} left", "quantity")
    cost = total_cost(item, quantity)
    if player.balance < cost:
        return Problem(
            "INSUFFICIENT_POINTS",
            f"costs {cost}; the balance is {player.balance}",
            "rewardId",
        )
    return None


# ------------------------------------------------------------------ codes

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_BYTES = 10  # 80 random bits: 16 characters


def format_code(prefix: str, random_bytes: bytes) -> str:
    """PREFIX-XXXX-XXXX-XXXX-XXXX from 10 random bytes (the caller draws them)."""
    if len(random_bytes) != CODE_BYTES:
        raise ValueError(f"a code takes {CODE_BYTES} random bytes")
    number = int.from_bytes(random_bytes, "big")
    chars = []
    for _ in range(CODE_BYTES * 8 // 5):
        number, digit = divmod(number, 32)
        chars.append(CODE_ALPHABET[digit])
    body = "".join(reversed(chars))
    return f"{prefix}-" + "-".join(body[i : i + 4] for i in range(0, len(body), 4))


def code_expiry(now: datetime, expiry_days: int | None) -> datetime | None:
    return None if expiry_days is None else now + timedelta(days=expiry_days)


# ------------------------------------------------------------------ spin and win


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Prize(_Spec):
    label: str = Field(min_length=1, max_length=100)
    kind: Literal["POINTS", "REWARD", "NOTHING"]
    points: Decimal | None = Field(default=None, gt=0, max_digits=16, decimal_places=2)
    reward_id: int | None = Field(default=None, alias="rewardId")
    weight: int = Field(ge=1, le=1_000_000)

    @field_validator("points")
    @classmethod
    def _two_places(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else value.quantize(Decimal("0.01"))

    @model_validator(mode="after")
    def _consistent(self) -> Prize:
        if self.kind == "POINTS" and (self.points is None or self.reward_id is not None):
            raise ValueError("a POINTS prize has points and no rewardId")
        if self.kind == "REWARD" and (self.reward_id is None or self.points is not None):
            raise ValueError("a REWARD prize has a rewardId and no points")
        if self.kind == "NOTHING" and (self.points is not None or self.reward_id is not None):
            raise ValueError("a NOTHING prize has neither points nor rewardId")
        return self


class WheelSpec(_Spec):
    prizes: list[Prize] = Field(min_length=1, max_length=50)
    spin_cost: Decimal = Field(default=ZERO, ge=0, max_digits=16, decimal_places=2)
    free_spins_per_day: int = Field(default=0, ge=0, le=1000)
    daily_budget: Decimal | None = Field(default=None, ge=0, max_digits=16, decimal_places=2)


def parse_wheel(data: dict) -> WheelSpec | Problem:
    try:
        return WheelSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Problem("INVALID", f"{where}: {first['msg']}" if where else first["msg"], "input")


def total_weight(prizes: list[Prize]) -> int:
    return sum(p.weight for p in prizes)


def odds(prizes: list[Prize]) -> list[Decimal]:
    """Each prize's chance, as disclosed to players: weight / total weight."""
    total = Decimal(total_weight(prizes))
    return [Decimal(p.weight) / total for p in prizes]


def draw(prizes: list[Prize], number: int) -> int:
    """The index of the prize that `number` (uniform in [0, total weight)) lands on."""
    total = total_weight(prizes)
    if not 0 <= number < total:
        raise ValueError(f"the draw must be in [0, {total})")
    for index, prize in enumerate(prizes):
        if number < prize.weight:
            return index
        number -= prize.weight
    raise AssertionError("unreachable")


def prize_value(prize: Prize, reward_costs: dict[int, Decimal]) -> Decimal:
    """What a prize costs the budget: its points, or the reward's points cost."""
    if prize.kind == "POINTS":
        return prize.points or ZERO
    if prize.kind == "REWARD":
        return reward_costs.get(prize.reward_id or 0, ZERO)
    return ZERO


@dataclass(frozen=True, slots=True)
class SpinPrice:
    free: bool
    cost: Decimal


def spin_price(spec: WheelSpec, spins_today: int, balance: Decimal) -> SpinPrice | Problem:
    """Free while the day's free spins last, then the cost in points (if any)."""
    if spins_today < spec.free_spins_per_day:
        return SpinPrice(True, ZERO)
    if spec.spin_cost <= 0:
        return Problem(
            "LIMIT_REACHED",
            f"{spec.free_spins_per_day} free spins a day, all used today",
            "playerId",
        )
    if balance < spec.spin_cost:
        return Problem(
            "INSUFFICIENT_POINTS",
            f"a spin costs {spec.spin_cost}; the balance is {balance}",
            "playerId",
        )
    return SpinPrice(False, spec.spin_cost)


def budget_allows(budget: Decimal | None, paid_out: Decimal, biggest_prize: Decimal) -> bool:
    """Spins stop for the day once the budget left cannot pay the biggest prize: every
    spin that happens has the disclosed odds."""
    return budget is None or paid_out + biggest_prize <= budget
