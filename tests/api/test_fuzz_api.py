"""Any valid GraphQL document the schema admits, with arbitrary arguments, is answered
with data or clear errors, never an unexpected server error (hypothesis-graphql writes
the documents from schema.graphql)."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from hypothesis_graphql import strategies as gst

from app.errors import AuthError, SubscriberTooSlow
from tests.conftest import gql

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
# Documents per test; FUZZ_EXAMPLES=4000 for a longer search (about 2 minutes).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))

_text = st.text(max_size=12)
SCALARS = {
    "DateTime": st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()), _text
    ).map(nodes.String),
    "JSON": st.one_of(_text.map(nodes.String), st.integers().map(nodes.Int)),
}


class Unexpected(logging.Handler):
    """The errors of an answer that are not input, auth or GraphQL's own: an exception
    of another kind, or a ValueError that no `raise` of ours wrote (int("x") in a
    resolver, say), whose message would reach the client as if it were ours."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[1] is None:
            return  # GraphQL's own error (validation, coercion)
        exc = record.exc_info[1]
        frames = traceback.extract_tb(exc.__traceback__)
        deliberate = bool(frames) and "raise" in (frames[-1].line or "")
        if isinstance(exc, (AuthError, SubscriberTooSlow)) or (
            isinstance(exc, ValueError) and deliberate
        ):
            return
        self.found.append("".join(traceback.format_exception(exc)))


@pytest.fixture
def unexpected() -> Iterator[Unexpected]:
    handler = Unexpected()
    log = logging.getLogger("strawberry.execution")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


@pytest.fixture
async def key(client, make_tenant):
    """A tenant's admin key, with a player who has points."""
    key = await make_tenant("telco")
    record = 'mutation { recordEvent(input: {playerId: "p1", eventType: "APP_LOGIN", value: 1}) { errors { code } } }'
    await gql(client, record, token=key)
    return key


# IDs that name rows the `world` fixture made: players, teams, rewards, redemptions.
KNOWN_IDS = ["p1", "p2", "red", "1", "2", "3", "0", ""]
ID_SCALARS = {**SCALARS, "ID": st.sampled_from(KNOWN_IDS).map(nodes.String)}


@pytest.fixture
async def world(client, key):
    """Rows for the fuzzed ids to name, in states the mutations move between: players
    with points, a team, rewards (one needing approval), redemptions, a wheel."""
    setup = [
        'mutation { upsertPlayer(input: {id: "p2", teamId: "red"}) { errors { code } } }',
        'mutation { adjustPoints(input: {playerId: "p1", amount: 500, reason: "seed"}) '
        "{ errors { code } } }",
        'mutation { createRewardItem(input: {name: "Mug", category: PHYSICAL, '
        "pointsCost: 10, stock: 5}) { errors { code } } }",
        'mutation { createRewardItem(input: {name: "Trip", category: EXPERIENCE, '
        "pointsCost: 20, requiresApproval: true}) { errors { code } } }",
        'mutation { redeemReward(input: {playerId: "p1", rewardId: "1"}) { errors { code } } }',
        'mutation { redeemReward(input: {playerId: "p1", rewardId: "2"}) { errors { code } } }',
        'mutation { configureWheel(input: {prizes: [{label: "5", kind: POINTS, weight: 1, '
        'points: 5}, {label: "mug", kind: REWARD, weight: 1, rewardId: "1"}]}) '
        "{ errors { code } } }",
    ]
    for document in setup:
        result = await gql(client, document, token=key)
        (payload,) = result.data.values()
        assert payload["errors"] == [], (document, payload)
    return key


async def _check(client, key, unexpected: Unexpected, document: str) -> None:
    unexpected.found.clear()
    result = await gql(client, document, token=key, expect_errors=True)
    assert "data" in result or result.errors, result
    assert not unexpected.found, (document, unexpected.found[0])


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# graphql-core (3.3.2) cancels a failed operation's sibling fields, and a field whose
# task is cancelled before it starts leaves its resolvers' coroutines never awaited:
# Python warns when they are collected (graphql-python/graphql-core#269, open). The
# operation's answer is right (data null, the error); only the warning is left over.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <coroutine object GraphQLCoreConverter"
    ":pytest.PytestUnraisableExceptionWarning"
)


@FUZZ
@given(document=gst.queries(SCHEMA, custom_scalars=SCALARS, allow_x00=False))
async def test_any_query_is_answered_without_a_server_error(client, key, unexpected, document):
    await _check(client, key, unexpected, document)


@FUZZ
@given(document=gst.mutations(SCHEMA, custom_scalars=SCALARS, allow_x00=False))
async def test_any_mutation_is_answered_without_a_server_error(client, key, unexpected, document):
    await _check(client, key, unexpected, document)


@FUZZ
@given(document=gst.mutations(SCHEMA, custom_scalars=ID_SCALARS, allow_x00=False))
async def test_any_mutation_on_existing_rows_is_answered_without_a_server_error(
    client, world, unexpected, document
):
    await _check(client, world, unexpected, document)


@FUZZ
@given(document=gst.queries(SCHEMA, custom_scalars=ID_SCALARS, allow_x00=False))
async def test_any_query_of_existing_rows_is_answered_without_a_server_error(
    client, world, unexpected, document
):
    await _check(client, world, unexpected, document)


@FUZZ
@given(
    document=gst.from_schema(
        SCHEMA, custom_scalars=SCALARS, allow_x00=False, mode=gst.Mode.NEGATIVE
    )
)
async def test_any_invalid_document_is_refused_clearly(client, key, unexpected, document):
    await _check(client, key, unexpected, document)
