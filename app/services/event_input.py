"""Checking incoming events and replaying the outcome of repeated ones."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.engine import levels
from app.engine.points import PointsLine
from app.engine.rules import PointRules
from app.errors import ErrorCode, UserError
from app.services.common import check_external_id, holds_nul
from app.services.ledger import WalletView
from models import Event, Tenant

MAX_METADATA_BYTES = 16 * 1024
# The earliest occurredAt taken: the Unix epoch. Older dates are typos or placeholders
# (0001-01-01), and a day before the first representable one cannot be computed.
EARLIEST_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class EventInput:
    player_id: str
    event_type: str
    category: str | None = None
    value: float | Decimal | None = 1
    occurred_at: datetime | None = None
    source: str | None = "api"
    metadata: Any = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class LevelUpView:
    from_level: int
    to_level: int
    level: levels.LevelInfo
    lifetime: Decimal
    bonus: Decimal


@dataclass(slots=True)
class Outcome:
    event: Event | EventRecord | None
    duplicate: bool
    points: Decimal
    lines: list[PointsLine]
    wallet: WalletView | None
    level_up: LevelUpView | None
    transactions: list[TransactionRecord] = field(default_factory=list)


@dataclass(slots=True)
class EventRecord:
    """A recorded event as the API shows it (the ORM's Event has the same attributes;
    building model instances on the hot path cost more than the rules)."""

    id: Any
    player_id: int
    event_type: str
    category: str | None
    value: Decimal
    occurred_at: datetime
    source: str
    metadata: dict[str, Any]
    points_awarded: Decimal


@dataclass(slots=True)
class TransactionRecord:
    """A ledger line as the API shows it (same attributes as the ORM's PointTransaction)."""

    player_id: int
    kind: str
    amount: Decimal
    balance_after: Decimal
    reason: str
    event_id: Any
    created_at: datetime
    id: int | None = None


@dataclass(slots=True)
class CheckedEvent:
    index: int
    input: EventInput
    value: Decimal
    occurred_at: datetime
    metadata: dict[str, Any]
    metadata_json: str  # encoded once: hashed, then stored
    source: str
    payload_hash: str
    key: str | None
    duplicate_of: int | None = None  # an earlier item of the batch with the same key
    # The hash as it was taken before values were written canonically (2.0 and 2 hashed
    # apart): a retry of an event stored then still matches. None where both agree.
    legacy_hash: str | None = None

    def same_payload(self, stored_hash: str | None) -> bool:
        return stored_hash is not None and stored_hash in (self.payload_hash, self.legacy_hash)


# ------------------------------------------------------------------ checking input


def _value(raw: float | Decimal | None) -> Decimal:
    if raw is None:
        return Decimal(1)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise UserError(ErrorCode.INVALID, "value must be a finite number", "value")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise UserError(ErrorCode.INVALID, "value must be a number", "value") from None
    if not value.is_finite():
        raise UserError(ErrorCode.INVALID, "value must be a finite number", "value")
    if value < 0:
        raise UserError(ErrorCode.INVALID, "value must not be negative", "value")
    if value >= Decimal("1e13"):
        raise UserError(ErrorCode.INVALID, "value is too large", "value")
    return value.quantize(Decimal("0.000001")) if value.as_tuple().exponent < -6 else value


def _metadata(raw: Any) -> tuple[dict[str, Any], str]:
    metadata = {} if raw is None else raw
    if not isinstance(metadata, dict):
        raise UserError(ErrorCode.INVALID, "metadata must be a JSON object", "metadata")
    try:
        encoded = json.dumps(
            metadata, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
        )
    except ValueError:  # JSON has no NaN or Infinity (SQLite stored them; PostgreSQL refused)
        raise UserError(
            ErrorCode.INVALID, "metadata numbers must be finite (no NaN or Infinity)", "metadata"
        ) from None
    # `encoded` escapes non-ASCII text (é is 6 characters, an emoji 12), so it is never
    # shorter than the UTF-8 JSON the limit is about: measure that only when it matters.
    if len(encoded) > MAX_METADATA_BYTES and _utf8_size(metadata) > MAX_METADATA_BYTES:
        raise UserError(ErrorCode.INVALID, "metadata exceeds 16 KB", "metadata")
    return metadata, encoded


def _utf8_size(metadata: dict[str, Any]) -> int:
    text = json.dumps(metadata, separators=(",", ":"), default=str, ensure_ascii=False)
    return len(text.encode())


def _refuse_nul(item: EventInput, encoded_metadata: str) -> None:
    """PostgreSQL stores no NUL character (U+0000) in text or jsonb: refused here, on
    both backends, as this event's error (it used to fail the whole batch's statement)."""
    texts = (
        ("eventType", item.event_type),
        ("category", item.category),
        ("source", item.source),
        ("idempotencyKey", item.idempotency_key),
    )
    for name, text in texts:
        if text is not None and "\x00" in text:
            raise UserError(ErrorCode.INVALID, f"{name} contains a NUL character", name)
    # The JSON text escapes NUL as \u0000: only then is the metadata walked.
    if "\\u0000" in encoded_metadata and holds_nul(item.metadata):
        raise UserError(ErrorCode.INVALID, "metadata contains a NUL character", "metadata")


def check_event(index: int, item: EventInput, rules: PointRules, now: datetime) -> CheckedEvent:
    check_external_id(item.player_id, "playerId")
    if not item.event_type or len(item.event_type) > 64:
        raise UserError(ErrorCode.INVALID, "eventType is 1-64 characters", "eventType")
    if rules.rule_for(item.event_type) is None:
        raise UserError(
            ErrorCode.INVALID,
            f"unknown event type {item.event_type!r}: no rule for it and no wildcard rule",
            "eventType",
        )
    if item.category is not None and not 0 < len(item.category) <= 64:
        raise UserError(ErrorCode.INVALID, "category is 1-64 characters", "category")
    source = item.source or "api"
    if len(source) > 32:
        raise UserError(ErrorCode.INVALID, "source is at most 32 characters", "source")
    if item.idempotency_key is not None and not 0 < len(item.idempotency_key) <= 200:
        raise UserError(ErrorCode.INVALID, "idempotencyKey is 1-200 characters", "idempotencyKey")
    value = _value(item.value)
    metadata, encoded = _metadata(item.metadata)
    _refuse_nul(item, encoded)
    occurred = item.occurred_at
    if occurred is not None:
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        if occurred < EARLIEST_OCCURRED_AT:
            raise UserError(ErrorCode.INVALID, "occurredAt is before 1970", "occurredAt")
        if occurred - now > timedelta(seconds=rules.max_future_skew_seconds):
            raise UserError(ErrorCode.INVALID, "occurredAt is in the future", "occurredAt")
        # Stored in UTC: SQLite compares times as text, so every stored time has the
        # same offset (migration 0015 brought the earlier ones to it).
        occurred = occurred.astimezone(UTC)
    # The value is hashed in one form whatever way it was written: 2, 2.0 and "2.00"
    # from a raw record are the same event.
    canonical = _canonical(value)
    head = "|".join([item.player_id, item.event_type, item.category or ""])
    # occurredAt in UTC, whatever offset it came in
    tail = "|".join([occurred.isoformat() if occurred else "", source, encoded])
    legacy = str(value)
    return CheckedEvent(
        index=index,
        input=item,
        value=value,
        occurred_at=occurred or now,
        metadata=metadata,
        metadata_json=encoded,
        source=source,
        payload_hash=_hash(head, canonical, tail),
        key=item.idempotency_key,
        legacy_hash=None if legacy == canonical else _hash(head, legacy, tail),
    )


def _canonical(value: Decimal) -> str:
    """A value's one written form: no trailing zeros, no exponent, no sign (values are
    never negative; -0.0 is 0): 2.50 -> 2.5, 2.0 -> 2."""
    text = format(value.copy_abs(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _hash(head: str, value: str, tail: str) -> str:
    return hashlib.sha256(f"{head}|{value}|{tail}".encode()).hexdigest()


# ------------------------------------------------------------------ replaying duplicates


def outcome_json(
    points: Decimal, lines: list[PointsLine], wallet: WalletView, level_up: LevelUpView | None
) -> dict[str, Any]:
    return {
        "points": str(points),
        "lines": [[line.rule, line.description, str(line.amount)] for line in lines],
        "wallet": wallet.as_json(),
        "levelUp": None
        if level_up is None
        else {
            "from": level_up.from_level,
            "to": level_up.to_level,
            "lifetime": str(level_up.lifetime),
            "bonus": str(level_up.bonus),
        },
    }


def _replay(event: Event, rules: PointRules) -> Outcome:
    data = event.outcome or {}
    level_up = None
    if data.get("levelUp"):
        lu = data["levelUp"]
        level_up = LevelUpView(
            lu["from"],
            lu["to"],
            levels.info(lu["to"], rules),
            Decimal(lu["lifetime"]),
            Decimal(lu["bonus"]),
        )
    return Outcome(
        event=event,
        duplicate=True,
        points=Decimal(data.get("points", "0")),
        lines=[PointsLine(r, d, Decimal(a)) for r, d, a in data.get("lines", [])],
        wallet=WalletView.from_json(data["wallet"]) if data.get("wallet") else None,
        level_up=level_up,
    )


async def sort_duplicates(
    tenant: Tenant,
    items: list[CheckedEvent],
    results: list[Outcome | UserError | None],
    rules: PointRules,
    known_keys: Callable[[list[str]], Awaitable[list[str]]],
) -> list[CheckedEvent]:
    """Repeats of a stored key replay its outcome (or conflict); repeats within the
    batch follow the first. Returns the items still to process."""
    keys = sorted({item.key for item in items if item.key})
    # The common case is a miss: ask cheaply first, load the stored events only on a hit.
    hits = await known_keys(keys) if keys else []
    stored = (
        {
            e.idempotency_key: e
            for e in await Event.filter(tenant_id=tenant.id, idempotency_key__in=hits)
        }
        if hits
        else {}
    )
    first_with_key: dict[str, CheckedEvent] = {}
    fresh: list[CheckedEvent] = []
    for item in items:
        if item.key in stored:
            event = stored[item.key]
            results[item.index] = (
                _replay(event, rules) if item.same_payload(event.payload_hash) else _conflict()
            )
        elif item.key and item.key in first_with_key:
            first = first_with_key[item.key]
            if first.payload_hash == item.payload_hash:  # both hashed canonically
                item.duplicate_of = first.index
                fresh.append(item)
            else:
                results[item.index] = _conflict()
        else:
            if item.key:
                first_with_key[item.key] = item
            fresh.append(item)
    return fresh


def _conflict() -> UserError:
    return UserError(
        ErrorCode.CONFLICT,
        "this idempotency key was used for a different event",
        "idempotencyKey",
    )
