"""An event as JSON (a stream entry's `event`) means what the same recordEvent input
means: the same checks, the same refusals, the same payload hash for its key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import Undefined, coerce_input_value

from app import presets
from app.engine.rules import parse_rules
from app.errors import UserError
from app.services import event_json
from app.services.event_input import check_event
from resolvers.events import _event_input
from schema import build_schema
from schema.ledger import RecordEventInput

RULES = parse_rules(presets.load("habits"))  # a wildcard rule: any event type
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INPUT_TYPE = build_schema()._schema.get_type("RecordEventInput")
NAMES = {
    "playerId": "player_id",
    "eventType": "event_type",
    "occurredAt": "occurred_at",
    "idempotencyKey": "idempotency_key",
}

BASE = {"playerId": "u1", "eventType": "paid_invoice"}
CASES: list[dict[str, Any]] = [
    BASE,
    {**BASE, "value": 2},
    {**BASE, "value": 2.5, "category": "finance", "idempotencyKey": "k"},
    {**BASE, "value": None, "source": None, "category": None},
    {**BASE, "playerId": 42},
    {**BASE, "playerId": 42.0},
    {**BASE, "occurredAt": "2026-11-20T10:00:00Z"},
    {**BASE, "occurredAt": "2026-11-20T12:00:00+02:00"},
    {**BASE, "occurredAt": "2026-11-20T10:00:00"},
    {**BASE, "occurredAt": "2026-11-20"},
    {**BASE, "metadata": {"a": [1, "é"], "b": None}, "source": "pos"},
    # refused by coercion, both ways
    {"playerId": "u1"},
    {"eventType": "x"},
    {**BASE, "player_id": "u2"},
    {**BASE, "value": "2"},
    {**BASE, "value": True},
    {**BASE, "playerId": True},
    {**BASE, "playerId": 4.5},
    {**BASE, "playerId": None},
    {**BASE, "eventType": 5},
    {**BASE, "occurredAt": 1700000000},
    {**BASE, "occurredAt": "yesterday"},
    {**BASE, "idempotencyKey": 7},
    # refused by check_event, both ways
    {**BASE, "value": -1},
    {**BASE, "metadata": [1, 2]},
    {**BASE, "occurredAt": "2030-01-01T00:00:00Z"},
    {**BASE, "eventType": ""},
    {**BASE, "idempotencyKey": ""},
]


def _checked(item: Any) -> Any:
    try:
        c = check_event(0, item, RULES, NOW)
    except UserError as exc:
        return ("refused", exc.code, exc.field)
    return (c.payload_hash, c.key, c.value, c.occurred_at, c.source, c.metadata)


@pytest.mark.parametrize("data", CASES, ids=[str(c) for c in CASES])
def test_an_event_means_what_the_same_record_event_input_means(data):
    coerced = coerce_input_value(data, INPUT_TYPE)
    try:
        ours = event_json.event_input(data)
    except UserError:
        ours = None
    if coerced is Undefined:
        assert ours is None, "GraphQL refuses this input"
        return
    assert ours is not None, "GraphQL takes this input"
    api = _event_input(RecordEventInput(**{NAMES.get(k, k): v for k, v in coerced.items()}))
    assert _checked(ours) == _checked(api)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        (b"\xff{}", "not valid JSON"),
        ('{"value": NaN}', "not valid JSON"),
        ('{"value": Infinity}', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_json_no_variable_could_carry_is_refused(text, message):
    with pytest.raises(UserError) as refused:
        event_json.parse_json(text, "event")
    assert message in refused.value.message and refused.value.field == ["event"]
