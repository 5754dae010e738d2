"""leaderboardChanged and rankChanged over a real WebSocket."""

from __future__ import annotations

import pytest

from app.services import access
from tests.api.test_live import RECORD, post
from tests.wsclient import GraphQLWebSocket

BOARD = """subscription { leaderboardChanged(period: ALL_TIME, first: 3) {
  periodKey entries { rank points player { id } } } }"""
RANK = """subscription($id: ID!) { rankChanged(playerId: $id, period: DAILY) {
  playerId period rank previousRank points } }"""


@pytest.fixture
async def key(make_tenant):
    return await make_tenant("habits", slug="boards")


def entries(message):
    return [
        (e["player"]["id"], e["points"])
        for e in message["payload"]["data"]["leaderboardChanged"]["entries"]
    ]


async def test_leaderboard_changed_sends_the_board_then_each_change(live_server_factory, key):
    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "a", "eventType": "x", "value": 5}})
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(BOARD)
    assert entries(await ws.receive()) == [("a", 5.0)]  # the board now
    await post(server, key, RECORD, {"input": {"playerId": "b", "eventType": "x", "value": 9}})
    assert entries(await ws.receive()) == [("b", 9.0), ("a", 5.0)]
    await ws.close()


async def test_rank_changed_when_another_player_passes(live_server_factory, key):
    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "me", "eventType": "x", "value": 10}})
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(RANK, {"id": "me"})
    first = (await ws.receive())["payload"]["data"]["rankChanged"]
    assert first == {
        "playerId": "me",
        "period": "DAILY",
        "rank": 1,
        "previousRank": None,
        "points": 10.0,
    }
    await post(
        server, key, RECORD, {"input": {"playerId": "rival", "eventType": "x", "value": 3}}
    )  # behind: no change for me
    await post(
        server, key, RECORD, {"input": {"playerId": "rival", "eventType": "x", "value": 20}}
    )  # passes me
    change = (await ws.receive())["payload"]["data"]["rankChanged"]
    assert (change["rank"], change["previousRank"]) == (2, 1)
    await ws.close()


async def test_a_player_token_follows_only_its_own_rank(live_server_factory, key, settings):
    from models import Tenant

    server = live_server_factory()
    token = await access.mint_player_token(settings, await Tenant.get(slug="boards"), "me")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    await ws.subscribe(RANK, {"id": "someone-else"})
    refused = await ws.receive()
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await ws.close()


async def test_a_player_token_cannot_follow_whole_boards(live_server_factory, key, settings):
    from models import Tenant

    server = live_server_factory()
    token = await access.mint_player_token(settings, await Tenant.get(slug="boards"), "me")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    await ws.subscribe(BOARD)
    refused = await ws.receive()
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await ws.close()
