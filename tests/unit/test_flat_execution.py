"""Queries and mutations through schema.build.ExecutionContext, which completes objects
of plain selections with app.flat_render's plans: every answer, data and errors, is the
one graphql-core's own execution gives, and plans are used where they apply."""

from __future__ import annotations

import gc
import warnings
from decimal import Decimal
from typing import Any

import strawberry
from graphql import get_nullable_type, is_list_type, is_object_type
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.extensions import SchemaExtension

from app.services.event_input import Outcome
from app.services.ingest_rows import WalletRow
from app.services.ledger import WalletView
from schema import build
from schema.leaderboards import Leaderboard, LeaderboardEntry, LeaderboardPeriod
from schema.ledger import EventOutcome, RecordEventsPayload
from schema.players import Player, PlayerKind


async def _later(n: int) -> int:
    return n


@strawberry.type
class Odd:
    n: int

    @strawberry.field
    def later(self) -> int:  # synchronous, yet returns an awaitable: graphql-core awaits it
        return _later(self.n)  # type: ignore[return-value]


@strawberry.type
class Query:
    @strawberry.field
    def odd(self, info: strawberry.Info) -> Odd:
        return info.root_value

    @strawberry.field
    def board(self, info: strawberry.Info) -> Leaderboard:
        return info.root_value

    @strawberry.field
    def batch(self, info: strawberry.Info) -> RecordEventsPayload:
        return info.root_value


FLAT = strawberry.Schema(query=Query, execution_context_class=build.ExecutionContext)
PLAIN = strawberry.Schema(query=Query)  # graphql-core's execution, field by field
# Player's fields for a public page: the others take permission classes or the database.
PLAYER_FIELDS = ("id", "kind", "displayName", "__typename")


def answer(schema: strawberry.Schema, document: str, root: Any) -> tuple[Any, Any]:
    result = schema.execute_sync(document, root_value=root)
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or ())
    return result.data, errors


def same_answer(document: str, root: Any) -> tuple[Any, Any]:
    flat, plain = answer(FLAT, document, root), answer(PLAIN, document, root)
    assert flat == plain, document
    return flat


@st.composite
def selection(draw: Any, graphql_type: Any, depth: int = 0) -> str:
    """Some of the type's fields in any order, aliases, `__typename`, objects below."""
    if graphql_type.name == "Player":
        names = list(PLAYER_FIELDS)
    else:
        names = [*sorted(graphql_type.fields), "__typename"]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    parts = []
    for n, name in enumerate(chosen):
        alias = f"a{n}: " if draw(st.booleans()) else ""
        if name == "__typename":
            parts.append(f"{alias}{name}")
            continue
        inner = get_nullable_type(graphql_type.fields[name].type)
        while is_list_type(inner) or not hasattr(inner, "name"):
            inner = get_nullable_type(inner.of_type)
        if is_object_type(inner):
            if depth < 2:
                parts.append(f"{alias}{name} {draw(selection(inner, depth + 1))}")
        else:
            parts.append(f"{alias}{name}")
    return "{ " + (" ".join(parts) or "__typename") + " }"


ints = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(2**31, 2**40))  # some too big
floats = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def players(draw: Any) -> Player:
    return Player(
        _model=None,  # type: ignore[arg-type]
        id=strawberry.ID(draw(st.text(max_size=6))),
        kind=draw(st.sampled_from(list(PlayerKind))),
        display_name=draw(st.one_of(st.none(), st.text(max_size=6))),
        segment=None,
        attributes={},
        created_at=None,  # type: ignore[arg-type]
        hide_from_leaderboards=False,
    )


@st.composite
def entries(draw: Any) -> LeaderboardEntry:
    return LeaderboardEntry(
        rank=draw(ints),
        points=draw(floats),
        previous_rank=draw(st.one_of(st.none(), ints)),
        points_change=draw(floats),
        badges_count=0,
        streak_days=draw(ints),
        player=draw(st.one_of(players(), st.none())),  # null in a non-null field
    )


@st.composite
def boards(draw: Any) -> Leaderboard:
    return Leaderboard(
        period=draw(st.sampled_from(list(LeaderboardPeriod))),
        period_key=draw(st.text(max_size=8)),
        total_players=draw(ints),
        entries=draw(st.lists(entries(), max_size=4)),
        me=draw(st.one_of(st.none(), entries())),
    )


BOARD_TYPE = FLAT._schema.type_map["Leaderboard"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_board_page_is_answered_as_graphql_core_answers_it(data):
    document = "{ board " + data.draw(selection(BOARD_TYPE)) + " }"
    same_answer(document, data.draw(boards()))


def test_a_plain_page_is_completed_by_its_plan():
    build._flat_plans.clear()
    page = Leaderboard(
        period=LeaderboardPeriod.DAILY,
        period_key="2026-12-05",
        total_players=2,
        entries=[
            LeaderboardEntry(
                rank=1,
                points=12.5,
                previous_rank=None,
                points_change=12.5,
                badges_count=0,
                streak_days=3,
                player=Player(
                    _model=None,  # type: ignore[arg-type]
                    id=strawberry.ID("ana"),
                    kind=PlayerKind.CUSTOMER,
                    display_name="Ana",
                    segment=None,
                    attributes={},
                    created_at=None,  # type: ignore[arg-type]
                    hide_from_leaderboards=False,
                ),
            )
        ],
        me=None,
    )
    data, errors = same_answer(
        "{ board { totalPlayers entries { rank points player { id } } me { rank } } }", page
    )
    assert not errors
    assert data == {
        "board": {
            "totalPlayers": 2,
            "entries": [{"rank": 1, "points": 12.5, "player": {"id": "ana"}}],
            "me": None,
        }
    }
    plans = [plan for (_, _, plan) in build._flat_plans.values()]
    assert len(plans) == 1 and plans[0] is not None  # the whole page: one plan

    # A fragment, a directive or a field with permission classes: field by field.
    build._flat_plans.clear()
    for document in (
        "{ board { ...F } } fragment F on Leaderboard { totalPlayers }",
        "{ board { totalPlayers @include(if: true) } }",
        "{ board { entries { player { segment } } } }",
    ):
        answer(FLAT, document, page)
    assert all(plan is None for (_, _, plan) in build._flat_plans.values())


def outcome(points: str, wallet: WalletRow | None) -> EventOutcome:
    return EventOutcome.from_outcome(
        Outcome(None, False, Decimal(points), [], wallet and _view(wallet), None)
    )


def _view(row: WalletRow) -> Any:
    return WalletView(row.balance, row.lifetime_earned, Decimal(0), None)


def test_outcomes_are_answered_through_their_resolvers_as_graphql_core_does():
    wallet = WalletRow(1, Decimal("7.50"), Decimal("9"), 1, 0, 0, None, None)
    document = (
        "{ batch { outcomes { pointsAwarded duplicate w: wallet { balance } "
        "levelUp { to } } errors { code } } }"
    )
    payload = RecordEventsPayload(outcomes=[outcome("2.5", wallet), outcome("0", None)])
    build._flat_plans.clear()
    data, errors = same_answer(document, payload)
    assert not errors
    assert [plan is not None for (_, _, plan) in build._flat_plans.values()] == [True]
    assert data == {
        "batch": {
            "outcomes": [
                {"pointsAwarded": 2.5, "duplicate": False, "w": {"balance": 7.5}, "levelUp": None},
                {"pointsAwarded": 0.0, "duplicate": False, "w": None, "levelUp": None},
            ],
            "errors": [],
        }
    }
    # A resolver that raises (points no Decimal context can round): graphql-core's error.
    payload = RecordEventsPayload(outcomes=[outcome("2.5", wallet), outcome("1e400", wallet)])
    data, errors = same_answer(document, payload)
    assert data is None and errors[0][1] == ("batch", "outcomes", 1, "pointsAwarded")


class Exclaim(SchemaExtension):
    """A `resolve` hook: it must see every field, so nothing is completed by a plan."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return f"{value}!" if isinstance(value, str) else value


def test_an_extension_with_a_resolve_hook_sees_every_field():
    hooked = strawberry.Schema(
        query=Query, execution_context_class=build.ExecutionContext, extensions=[Exclaim]
    )
    page = Leaderboard(
        period=LeaderboardPeriod.DAILY,
        period_key="2026-12-05",
        total_players=0,
        entries=[],
        me=None,
    )
    build._flat_plans.clear()
    data, errors = answer(hooked, "{ board { periodKey } }", page)
    assert not errors and data == {"board": {"periodKey": "2026-12-05!"}}
    assert not build._flat_plans  # no plan was even looked for


async def test_a_resolver_that_returns_an_awaitable_is_awaited_as_graphql_core_does():
    build._flat_plans.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flat = await FLAT.execute("{ odd { n later } }", root_value=Odd(n=4))
        gc.collect()
    plain = await PLAIN.execute("{ odd { n later } }", root_value=Odd(n=4))
    assert flat.errors is None and flat.data == plain.data == {"odd": {"n": 4, "later": 4}}
    # The plan's own call was closed, not left for the collector to warn about.
    assert not [w for w in caught if "never awaited" in str(w.message)]
