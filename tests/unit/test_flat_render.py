"""app.flat_render against graphql-core's execution: for every plain selection of the
live payloads (aliases, __typename, nested objects, nulls, odd values) the rendering is
the execution's JSON to the letter, a value the execution refuses falls back, and a
document of any other kind is left to the execution."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType, execute, get_nullable_type, is_object_type, parse
from hypothesis import given, settings
from hypothesis import strategies as st

from app.flat_render import Fallback, compile_render
from schema.build import build_schema
from schema.leaderboards import LeaderboardPeriod, RankChanged
from schema.ledger import (
    LevelChanged,
    LevelUp,
    PlayerLevel,
    PointsChanged,
    PointTransaction,
    TransactionKind,
    Wallet,
)

SCHEMA = build_schema()
GRAPHQL = SCHEMA._schema
NAME = SCHEMA.config.name_converter.get_graphql_name
ROOTS = {
    "rankChanged": '(playerId: "p")',
    "pointsChanged": '(playerId: "p")',
    "levelUp": '(playerId: "p")',
}


def compiled(document: str) -> Any:
    return compile_render(GRAPHQL, parse(document), None, NAME)


def executed(document: str, value: Any) -> tuple[str | None, bool]:
    result = execute(GRAPHQL, parse(document), root_value=value)
    assert not hasattr(result, "__await__")  # plain fields: nothing to await
    return json.dumps({"data": result.data}), bool(result.errors)


@st.composite
def selections(draw: Any, graphql_type: GraphQLObjectType, depth: int = 0) -> str:
    """A selection set of `graphql_type`: some of its fields in any order, some with
    aliases, `__typename` perhaps, objects with a selection of their own."""
    names = sorted(graphql_type.fields)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    parts = []
    for n, name in enumerate(chosen):
        field_type = get_nullable_type(graphql_type.fields[name].type)
        alias = f"a{n}: " if draw(st.booleans()) else ""
        if is_object_type(field_type):
            if depth >= 2:
                continue
            parts.append(f"{alias}{name} {draw(selections(field_type, depth + 1))}")
        else:
            parts.append(f"{alias}{name}")
    if draw(st.booleans()) or not parts:
        parts.insert(draw(st.integers(0, len(parts))), "__typename")
    return "{ " + " ".join(parts) + " }"


floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
ints = st.integers(-(2**31), 2**31 - 1)
odd_ints = st.one_of(ints, st.integers(2**31, 2**40), st.none())  # out of range, null
texts = st.text(max_size=8)


@st.composite
def rank_changed(draw: Any) -> RankChanged:
    return RankChanged(
        player_id=strawberry.ID(draw(texts)),
        period=draw(st.sampled_from(list(LeaderboardPeriod))),
        rank=draw(st.one_of(ints, odd_ints)),
        previous_rank=draw(st.one_of(st.none(), ints)),
        points=draw(floats),
    )


@st.composite
def points_changed(draw: Any) -> PointsChanged:
    wallet = Wallet(
        balance=draw(floats),
        lifetime_earned=draw(floats),
        earned_today=draw(floats),
        daily_cap=draw(st.one_of(st.none(), floats)),
    )
    line = PointTransaction(
        id=strawberry.ID(str(draw(st.integers(1, 10**12)))),
        kind=draw(st.sampled_from(list(TransactionKind))),
        amount=draw(floats),
        balance_after=draw(floats),
        reason=draw(texts),
        event_id=draw(st.one_of(st.none(), texts.map(strawberry.ID))),
        created_at=draw(st.datetimes(timezones=st.just(UTC))),
    )
    return PointsChanged(
        player_id=strawberry.ID(draw(texts)),
        amount=draw(floats),
        wallet=draw(st.one_of(st.just(wallet), st.none())),  # null in a non-null field
        transaction=line,
    )


@st.composite
def level_changed(draw: Any) -> LevelChanged:
    level = PlayerLevel(
        number=draw(ints),
        name=draw(texts),
        lifetime_points_required=draw(floats),
        next_level_at=draw(st.one_of(st.none(), floats)),
        progress=draw(floats),
    )
    up = LevelUp(from_=draw(ints), to=draw(odd_ints), level=level, bonus_points=draw(floats))
    return LevelChanged(player_id=strawberry.ID(draw(texts)), level_up=up)


VALUES = {
    "rankChanged": rank_changed(),
    "pointsChanged": points_changed(),
    "levelUp": level_changed(),
}


@st.composite
def cases(draw: Any) -> tuple[str, Any]:
    root = draw(st.sampled_from(sorted(ROOTS)))
    field_type = get_nullable_type(GRAPHQL.subscription_type.fields[root].type)
    alias = "live: " if draw(st.booleans()) else ""
    document = f"subscription {{ {alias}{root}{ROOTS[root]} {draw(selections(field_type))} }}"
    return document, draw(VALUES[root])


@settings(max_examples=300, deadline=None)
@given(cases())
def test_a_plain_selection_renders_as_the_execution_does(case):
    document, value = case
    render = compiled(document)
    assert render is not None, document  # these payloads' fields are all plain
    expected, failed = executed(document, value)
    try:
        text = render(value)
    except Fallback:
        assert failed, (document, value)  # only what the execution refuses falls back
    else:
        assert not failed and text == expected, (document, value)


DOC = 'subscription { rankChanged(playerId: "p") { playerId rank points } }'


@pytest.mark.parametrize(
    "document",
    [
        'subscription { rankChanged(playerId: "p") { ...F } } fragment F on RankChanged { rank }',
        'subscription { rankChanged(playerId: "p") { ... on RankChanged { rank } } }',
        'subscription { rankChanged(playerId: "p") { rank @include(if: true) } }',
        'subscription { rankChanged(playerId: "p") @skip(if: false) { rank } }',
        'subscription { rankChanged(playerId: "p") { rank rank } }',
        'subscription { rankChanged(playerId: "p") { r: rank r: points } }',
        "query { levels { number } }",
        "subscription { leaderboardChanged { entries { player { wallet { balance } } } } }",
    ],
)
def test_other_documents_are_left_to_the_execution(document):
    assert compiled(document) is None


def test_a_plain_document_is_compiled_and_names_its_root_by_alias():
    render = compiled('subscription { mine: rankChanged(playerId: "p") { rank __typename } }')
    value = RankChanged(
        player_id=strawberry.ID("p"),
        period=LeaderboardPeriod.DAILY,
        rank=3,
        previous_rank=None,
        points=1.5,
    )
    assert json.loads(render(value)) == {"data": {"mine": {"rank": 3, "__typename": "RankChanged"}}}


def test_an_object_of_another_type_falls_back():
    render = compiled(DOC)
    with pytest.raises(Fallback):
        render(object())


def test_a_datetime_leaf_is_serialized_by_its_scalar():
    document = 'subscription { pointsChanged(playerId: "p") { transaction { createdAt } } }'
    value = PointsChanged(
        player_id=strawberry.ID("p"),
        amount=1.0,
        wallet=Wallet(balance=1.0, lifetime_earned=1.0, earned_today=1.0, daily_cap=None),
        transaction=PointTransaction(
            id=strawberry.ID("1"),
            kind=TransactionKind.EARN,
            amount=1.0,
            balance_after=1.0,
            reason="r",
            event_id=None,
            created_at=datetime(2026, 12, 5, 6, 0, tzinfo=UTC),
        ),
    )
    assert compiled(document)(value) == executed(document, value)[0]
