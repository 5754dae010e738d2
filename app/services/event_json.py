"""Events as JSON text with recordEvent's input names (stream entries, files) -> EventInput.

The fields are coerced as GraphQL coerces RecordEventInput's variables (ID, String,
Float, DateTime, JSON; unknown fields refused), so an event means the same whichever
way it comes in (and has the same payload hash for its idempotency key); `check_event`
then applies the same checks to all of them. DateTime: Python's ISO-8601 reading, which
refuses the rare forms the API's parser also takes (ordinal dates, 24:00). What no
JSON variable could carry is refused here: NaN and Infinity. NUL characters, which
PostgreSQL cannot store, are refused by `check_event` for every way in.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from app.errors import ErrorCode, UserError
from app.services.event_input import EventInput

FIELDS = (
    "playerId",
    "eventType",
    "category",
    "value",
    "occurredAt",
    "source",
    "metadata",
    "idempotencyKey",
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes, field: str) -> Any:
    """JSON text as the API's JSON scalar would take it; INVALID (at `field`) otherwise."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(ErrorCode.INVALID, f"{field} is not valid JSON: {exc}", field) from None
    return value


def event_input(data: Any, source: str = "api") -> EventInput:
    """A decoded JSON object with RecordEventInput's fields; `source` is the default of
    its `source` field (recordEvent's is "api")."""
    if not isinstance(data, dict):
        raise UserError(ErrorCode.INVALID, "an event is a JSON object", [])
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UserError(
            ErrorCode.INVALID,
            f"unknown field {unknown[0]!r}; an event has {', '.join(FIELDS)}",
            unknown[0],
        )
    if "playerId" not in data or "eventType" not in data:
        missing = "playerId" if "playerId" not in data else "eventType"
        raise UserError(ErrorCode.INVALID, f"{missing} is required", missing)
    return EventInput(
        player_id=_id(data["playerId"], "playerId"),
        event_type=_string(data["eventType"], "eventType", required=True),
        category=_string(data.get("category"), "category"),
        # Absent, the schema's default (the integer 1); given, a float, as GraphQL has them.
        value=_float(data["value"], "value") if "value" in data else 1,
        occurred_at=_datetime(data.get("occurredAt"), "occurredAt"),
        source=_string(data.get("source", source), "source"),
        metadata=data.get("metadata"),
        idempotency_key=_string(data.get("idempotencyKey"), "idempotencyKey"),
    )


def _id(value: Any, field: str) -> str:
    """GraphQL's ID: a string, or an integral number written as one."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    raise UserError(ErrorCode.INVALID, f"{field} must be a string or an integer", field)


def _string(value: Any, field: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise UserError(ErrorCode.INVALID, f"{field} must be a string", field)
    return value


def _float(value: Any, field: str) -> float | None:
    if value is None:
        return None  # null: check_event takes 1, as recordEvent does
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(ErrorCode.INVALID, f"{field} must be a number", field)
    try:
        number = float(value)
    except OverflowError:
        raise UserError(ErrorCode.INVALID, f"{field} is too large", field) from None
    if not math.isfinite(number):
        raise UserError(ErrorCode.INVALID, f"{field} must be a finite number", field)
    return number


def _datetime(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise UserError(ErrorCode.INVALID, f"{field} must be an ISO-8601 date and time", field)


__all__ = ["FIELDS", "event_input", "parse_json"]
