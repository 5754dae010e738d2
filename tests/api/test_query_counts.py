"""Nested fields cost a constant number of queries, not one per item (N+1 guard)."""

from __future__ import annotations

import pytest

from tests.conftest import gql, logged_queries

BATCH = """
mutation($input: [RecordEventInput!]!) {
  recordEvents(input: $input) {
    outcomes { pointsAwarded breakdown { amount } wallet { balance earnedToday dailyCap }
               levelUp { to } event { id category player { id displayName } } }
    errors { code }
  }
}"""
PLAYERS = """{ players(first: 100) { id wallet { balance earnedToday } level { number progress }
  streak { current } stats { totalEvents } team { name members { id } } } }"""


@pytest.fixture
def count_queries():
    with logged_queries() as log:
        yield log


async def _batch_queries(client, key, count_queries, players: int, prefix: str) -> int:
    events = [
        {"playerId": f"{prefix}{n}", "eventType": "x", "category": "finance", "value": 60}
        for n in range(players)
    ]
    before = count_queries.count
    result = await gql(client, BATCH, {"input": events}, token=key)
    assert len(result.data["recordEvents"]["outcomes"]) == players
    return count_queries.count - before


async def test_a_batch_costs_the_same_queries_for_3_or_60_players(
    client, make_tenant, count_queries
):
    key = await make_tenant("habits")
    await _batch_queries(client, key, count_queries, 1, "warm")  # the key's last-used write
    small = await _batch_queries(client, key, count_queries, 3, "a")
    large = await _batch_queries(client, key, count_queries, 60, "b")  # level-ups too
    assert large == small, (small, large)


async def test_listing_players_with_nested_fields_is_constant(client, make_tenant, count_queries):
    key = await make_tenant("habits")
    await _batch_queries(client, key, count_queries, 3, "a")
    before = count_queries.count
    await gql(client, PLAYERS, token=key)
    small = count_queries.count - before
    await _batch_queries(client, key, count_queries, 40, "b")
    before = count_queries.count
    result = await gql(client, PLAYERS, token=key)
    large = count_queries.count - before
    assert len(result.data["players"]) == 43
    assert large == small, (small, large)


async def test_a_leaderboard_page_costs_the_same_queries_for_3_or_30_entries(
    client, make_tenant, count_queries, rt
):
    key = await make_tenant("habits")
    yesterday = [
        {
            "playerId": f"l{n}",
            "eventType": "x",
            "value": n + 1,
            "occurredAt": "2020-01-01T12:00:00+00:00",
        }
        for n in range(30)
    ]
    await gql(client, BATCH, {"input": yesterday}, token=key)
    await _batch_queries(client, key, count_queries, 30, "l")
    query = """query($first: Int) { leaderboard(period: ALL_TIME, first: $first, around: "l29") {
      entries { rank points previousRank pointsChange streakDays player { id displayName } }
      me { rank } totalPlayers } }"""
    await gql(client, query, {"first": 1}, token=key)
    if rt.boards is not None:  # the Redis board is rebuilt on first read
        await rt.boards.wait_rebuilds()
    counts = []
    for first in (3, 30):
        before = count_queries.count
        result = await gql(client, query, {"first": first}, token=key)
        assert len(result.data["leaderboard"]["entries"]) == first
        counts.append(count_queries.count - before)
    assert counts[0] == counts[1], counts


SINGLE = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) { outcome { pointsAwarded wallet { balance } } errors { code } }
}"""


@pytest.mark.postgres
async def test_a_lone_event_of_a_known_player_is_two_statements_on_postgres(
    client, make_tenant, count_queries
):
    """Stored keys, players, wallet locks, wallets and days; the writes (BEGIN and COMMIT
    aside). A new player takes more: created, then locked, then read."""
    key = await make_tenant("habits")
    event = {"playerId": "solo", "eventType": "x", "category": "finance", "value": 60}
    await gql(client, SINGLE, {"input": event}, token=key)  # creates the player
    counts = []
    for n in range(2):
        before = count_queries.count
        result = await gql(
            client, SINGLE, {"input": {**event, "idempotencyKey": f"k{n}"}}, token=key
        )
        assert result.data["recordEvent"]["outcome"]["pointsAwarded"] == 120.0
        counts.append(count_queries.count - before)
    assert counts == [2, 2], counts
    before = count_queries.count
    await gql(client, SINGLE, {"input": {**event, "playerId": "newcomer"}}, token=key)
    assert count_queries.count - before > 2


async def test_a_player_key_is_looked_up_once_and_a_missing_one_again(
    client, make_tenant, count_queries
):
    """Leaderboard reads map `around` to the player's key: once per process for a player
    (never deleted nor renamed), every time for one that does not exist yet."""
    from app.services import leaderboards
    from models import Tenant

    key = await make_tenant("habits")
    tenant = await Tenant.all().order_by("-id").first()
    assert await leaderboards._player_pk(tenant, "later") is None
    before = count_queries.count
    assert await leaderboards._player_pk(tenant, "later") is None
    assert count_queries.count == before + 1  # asked again
    await gql(
        client, SINGLE, {"input": {"playerId": "later", "eventType": "x", "value": 1}}, token=key
    )
    pk = await leaderboards._player_pk(tenant, "later")
    before = count_queries.count
    assert await leaderboards._player_pk(tenant, "later") == pk is not None
    assert count_queries.count == before  # remembered
