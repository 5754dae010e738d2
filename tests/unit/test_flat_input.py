"""`flat_input` builds the same input values as Strawberry's generic conversion."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

from schema.common import flat_input
from schema.ledger import RecordEventInput


@strawberry.input
class Generic:  # the same fields, converted by Strawberry itself
    player_id: strawberry.ID
    event_type: str
    category: str | None = None
    value: float | None = 1
    occurred_at: datetime | None = None
    source: str | None = "api"
    metadata: JSON | None = None
    idempotency_key: str | None = None


@strawberry.input
class Inner:
    x: int


@flat_input
@strawberry.input
class Nested:
    inner: Inner


@strawberry.type
class Query:
    @strawberry.field
    def flat(self, input: list[RecordEventInput]) -> JSON:
        assert all(isinstance(item, RecordEventInput) for item in input)
        return [_plain(item) for item in input]

    @strawberry.field
    def generic(self, input: list[Generic]) -> JSON:
        return [_plain(item) for item in input]

    @strawberry.field
    def nested(self, input: Nested) -> int:
        return input.inner.x


def _plain(item: object) -> dict:
    out = dataclasses.asdict(item)
    if isinstance(out["occurred_at"], datetime):
        out["occurred_at"] = out["occurred_at"].isoformat()
    return out


schema = strawberry.Schema(query=Query)

ITEMS = [
    {"playerId": "p1", "eventType": "CALL"},  # defaults
    {
        "playerId": 7,  # an ID sent as a number
        "eventType": "DATA_USAGE",
        "category": "usage",
        "value": 250,
        "occurredAt": "2026-11-20T10:00:00+01:00",
        "source": "cdr",
        "metadata": {"cell": "c1", "nested": [1, {"a": None}]},
        "idempotencyKey": "k-1",
    },
    {"playerId": "p2", "eventType": "X", "value": None, "source": None, "metadata": None},
]


def test_flat_input_matches_strawberry_conversion() -> None:
    flat = schema.execute_sync(
        "query($i: [RecordEventInput!]!) { flat(input: $i) }", variable_values={"i": ITEMS}
    )
    generic = schema.execute_sync(
        "query($i: [Generic!]!) { generic(input: $i) }", variable_values={"i": ITEMS}
    )
    assert flat.errors is None and generic.errors is None
    assert flat.data["flat"] == generic.data["generic"]
    first, second, third = flat.data["flat"]
    assert (first["value"], first["source"], first["metadata"]) == (1, "api", None)
    assert second["player_id"] == "7" and second["metadata"]["nested"] == [1, {"a": None}]
    assert datetime.fromisoformat(second["occurred_at"]) == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert (third["value"], third["source"]) == (None, None)


def test_literal_arguments_are_built_too() -> None:
    result = schema.execute_sync(
        '{ flat(input: [{playerId: "p", eventType: "CALL", value: 2.5, metadata: {k: "v"}}]) }'
    )
    assert result.errors is None
    assert result.data["flat"][0]["value"] == 2.5
    assert result.data["flat"][0]["metadata"] == {"k": "v"}


def test_a_nested_field_is_refused() -> None:
    result = schema.execute_sync("{ nested(input: {inner: {x: 1}}) }")
    assert result.errors and "Nested.inner is not a scalar" in result.errors[0].message
