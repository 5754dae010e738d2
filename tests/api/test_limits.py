"""Query depth limit, and the parse/validation caches actually hitting."""

from __future__ import annotations

from schema.build import validation_counts
from tests.conftest import gql


async def test_a_query_deeper_than_12_is_refused(client):
    nested = "id"
    for _ in range(7):
        nested = f"team {{ members {{ {nested} }} }}"
    for _ in range(2):  # the second time from the validation cache
        result = await gql(client, f'{{ player(id: "x") {{ {nested} }} }}', expect_errors=True)
        assert "exceeds maximum operation depth" in result.errors[0]["message"]
        assert result.data is None


async def test_an_invalid_operation_is_refused_every_time(client):
    misses = validation_counts["misses"]
    for _ in range(3):
        result = await gql(client, "{ players(first: 1) { nope } }", expect_errors=True)
        assert "Cannot query field 'nope'" in result.errors[0]["message"]
    assert validation_counts["misses"] == misses + 1


async def test_repeated_operations_are_validated_once(client):
    query = '{ players(first: 3, segment: "validation-cache-probe") { id } }'
    await gql(client, query)
    hits, misses = validation_counts["hits"], validation_counts["misses"]
    for _ in range(3):
        await gql(client, query)
    assert validation_counts["hits"] == hits + 3
    assert validation_counts["misses"] == misses
    # Another text is another document: validated on its own.
    await gql(client, query.replace("first: 3", "first: 4"))
    assert validation_counts["misses"] == misses + 1


UPSERT = """mutation($input: PlayerInput!) { upsertPlayer(input: $input) {
  player { id displayName } errors { code } } }"""


async def test_text_holding_a_nul_character_is_refused_and_writes_nothing(client):
    """On both backends (PostgreSQL cannot store U+0000: it used to answer with its own
    "unsupported Unicode escape sequence", SQLite stored it)."""
    from models import Player

    for player in (
        {"id": "nul", "displayName": "a\u0000b"},
        {"id": "nul", "attributes": {"plan": ["gold", {"note": "\u0000"}]}},
        {"id": "nul", "attributes": {"k\u0000": 1}},
    ):
        result = await gql(client, UPSERT, {"input": player}, expect_errors=True)
        assert result.data is None
        assert result.errors[0]["message"] == (
            "variable $input holds a NUL character (U+0000), which no text takes"
        )
    inline = (
        'mutation { upsertPlayer(input: {id: "nul", displayName: "a\\u0000"}) { errors { code } } }'
    )
    result = await gql(client, inline, expect_errors=True)
    assert result.errors[0]["message"].startswith("a string in the query holds a NUL")
    assert await Player.filter(external_id="nul").count() == 0
    # Text that merely spells \u0000 is text like any other.
    ok = await gql(client, UPSERT, {"input": {"id": "nul", "displayName": "a\\u0000"}})
    assert ok.data["upsertPlayer"]["player"]["displayName"] == "a\\u0000"


async def test_event_inputs_are_left_to_their_own_per_item_check(client):
    """A variable used only as an event mutation's input is checked item by item by the
    service (INVALID at its index); one used anywhere else too is refused as a whole."""
    batch = """mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) {
      outcomes { pointsAwarded } errors { field code } } }"""
    events = [
        {"playerId": "p", "eventType": "APP_LOGIN", "metadata": {"n": "\u0000"}},
        {"playerId": "p", "eventType": "APP_LOGIN"},
    ]
    result = await gql(client, batch, {"input": events})
    assert result.data["recordEvents"]["errors"] == [
        {"field": ["0", "metadata"], "code": "INVALID"}
    ]
    assert len(result.data["recordEvents"]["outcomes"]) == 1
    both = """mutation($e: RecordEventInput!, $n: String) {
      recordEvent(input: $e) { errors { code } }
      upsertPlayer(input: {id: "q", displayName: $n}) { errors { code } } }"""
    result = await gql(client, both, {"e": events[0], "n": "x"})
    assert [e["code"] for e in result.data["recordEvent"]["errors"]] == ["INVALID"]
    shared = """mutation($m: JSON) {
      recordEvent(input: {playerId: "q", eventType: "APP_LOGIN", metadata: $m}) { errors { code } }
      upsertPlayer(input: {id: "q", attributes: $m}) { errors { code } } }"""
    result = await gql(client, shared, {"m": {"a": "\u0000"}}, expect_errors=True)
    assert result.errors[0]["message"].startswith("variable $m holds a NUL")
    assert result.data is None


async def test_ids_no_row_could_have_name_nothing_rather_than_fail(client, make_tenant):
    """Ids past their column's size, or digits int() refuses ('²'), reach no lookup:
    a player or team id over 128 characters, an unknown source type longer than the
    column, a superscript or out-of-range row id. Each is "not found", not a server
    error (found by tests/api/test_fuzz_api.py)."""
    key = await make_tenant("telco")
    long = "x" * 200
    checks = [
        (f'{{ player(id: "{long}") {{ id }} }}', {"player": None}),
        (f'{{ spins(playerId: "{long}") {{ id }} }}', {"spins": []}),
        (f'{{ redemptions(playerId: "{long}") {{ id }} }}', {"redemptions": []}),
        (
            'mutation { normalizeEvent(input: {event: "{}", sourceType: "cdr-and-much-more"})'
            " { errors { code field } } }",
            {
                "normalizeEvent": {
                    "errors": [{"code": "NOT_FOUND", "field": ["input", "sourceType"]}]
                }
            },
        ),
    ]
    for pk in ("\u00b2", "99999999999999999999", "4294967296"):
        checks += [
            (
                f'mutation {{ approveRedemption(id: "{pk}") {{ errors {{ code }} }} }}',
                {"approveRedemption": {"errors": [{"code": "NOT_FOUND"}]}},
            ),
            (
                f'mutation {{ issueReward(playerId: "p", rewardId: "{pk}", reason: "r")'
                " { errors { code } } }",
                {"issueReward": {"errors": [{"code": "NOT_FOUND"}]}},
            ),
        ]
    for query, expected in checks:
        result = await gql(client, query, token=key)
        assert result.data == expected, query
    team = await gql(
        client,
        f'{{ leaderboard(teamId: "{long}") {{ totalPlayers }} }}',
        token=key,
        expect_errors=True,
    )
    assert team.errors[0]["extensions"]["code"] == "NOT_FOUND"
