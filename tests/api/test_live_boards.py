"""leaderboardChanged and rankChanged over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
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


async def test_each_board_push_renders_its_players_as_they_now_stand(live_server_factory, key):
    """Nested player fields come from current rows, not from what the connection's
    loaders cached for an earlier push."""
    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "w", "eventType": "x", "value": 5}})
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(
        "subscription { leaderboardChanged(period: ALL_TIME, first: 3) "
        "{ entries { points player { id wallet { balance } } } } }"
    )
    for expected in (5.0, 12.0, 20.0):
        if expected > 5:
            value = expected - (12.0 if expected == 20.0 else 5.0)
            await post(
                server, key, RECORD, {"input": {"playerId": "w", "eventType": "x", "value": value}}
            )
        (entry,) = (await ws.receive())["payload"]["data"]["leaderboardChanged"]["entries"]
        assert entry["points"] == entry["player"]["wallet"]["balance"] == expected
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


async def test_a_player_token_follows_a_board_seeing_others_public_fields_only(
    live_server_factory, key, settings
):
    """A player's own widget may follow a whole board; other players' private fields
    stay refused, and its rendering is not shared with a viewer's of the same document
    (who does see them)."""
    from models import Tenant

    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "other", "eventType": "x", "value": 5}})
    private = (
        "subscription { leaderboardChanged(period: ALL_TIME, first: 3) "
        "{ entries { points player { id wallet { balance } } } } }"
    )
    admin = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await admin.subscribe(private)
    seen = (await admin.receive())["payload"]["data"]["leaderboardChanged"]["entries"]
    assert seen == [{"points": 5.0, "player": {"id": "other", "wallet": {"balance": 5.0}}}]
    token = await access.mint_player_token(settings, await Tenant.get(slug="boards"), "me")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    await ws.subscribe(BOARD)
    assert entries(await ws.receive()) == [("other", 5.0)]
    await ws.subscribe(private)
    refused = await ws.receive()
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert refused["payload"]["errors"][0]["path"][-1] == "wallet"
    await ws.close()
    await admin.close()


async def _realtime(server) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{server.url}/readyz")).json()["realtime"]


async def _until_zero(server, stat: str) -> None:
    for _ in range(50):
        if (await _realtime(server))[stat] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await _realtime(server))[stat] == 0


async def test_viewers_of_one_board_share_one_feed_and_one_rendering(live_server_factory, key):
    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "a", "eventType": "x", "value": 5}})
    auth = {"Authorization": f"Bearer {key}"}
    viewers = [await GraphQLWebSocket.connect(server.ws_url, auth) for _ in range(8)]
    ops = [await ws.subscribe(BOARD) for ws in viewers]
    top5 = await GraphQLWebSocket.connect(server.ws_url, auth)
    top5_op = await top5.subscribe(BOARD.replace("first: 3", "first: 5"))
    for ws in [*viewers, top5]:  # each gets the board now, the latecomers included
        assert entries(await ws.receive()) == [("a", 5.0)]
    stats = await _realtime(server)
    assert (stats["feeds"], stats["feed_subscribers"]) == (2, 9)

    await post(server, key, RECORD, {"input": {"playerId": "b", "eventType": "x", "value": 9}})
    for ws, op in zip(viewers, ops, strict=True):
        message = await ws.receive()
        assert message["id"] == op and entries(message) == [("b", 9.0), ("a", 5.0)]
    message = await top5.receive()
    assert message["id"] == top5_op and entries(message) == [("b", 9.0), ("a", 5.0)]
    after = await _realtime(server)
    assert after["feed_renders"] - stats["feed_renders"] == 2  # one per board and document

    await viewers[0].close()  # one leaving does not stop the others
    await post(server, key, RECORD, {"input": {"playerId": "c", "eventType": "x", "value": 7}})
    for ws in viewers[1:]:
        assert entries(await ws.receive()) == [("b", 9.0), ("c", 7.0), ("a", 5.0)]
    for ws in [*viewers[1:], top5]:
        await ws.close()
    await _until_zero(server, "feeds")  # the last one leaving stops the feeds


async def test_a_bad_board_subscription_gets_an_error(live_server_factory, key):
    server = live_server_factory()
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(BOARD.replace("first: 3", "first: 101"))
    message = await ws.receive()  # the source failed: an errors payload, no data
    assert message["type"] == "next" and message["payload"]["data"] is None
    assert message["payload"]["errors"][0]["message"] == "first must be between 0 and 100"
    assert (await _realtime(server))["feeds"] == 0
    await ws.close()


async def test_live_boards_look_again_when_their_period_closes(rt, make_tenant, monkeypatch):
    """A new day's board starts empty and no score announces it: a live board looks
    again when its period closes (midnight in the tenant's timezone)."""
    from datetime import UTC, datetime

    from app.services import leaderboards
    from app.services.board_looks import ROLLOVER_SLACK, looks
    from models import Period, Tenant

    await make_tenant("habits", slug="midnight", timezone="Europe/Helsinki")
    tenant = await Tenant.get(slug="midnight")
    now = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 23:30 in Helsinki, a Friday
    assert leaderboards.seconds_until_period_ends(tenant, Period.DAILY, now) == 1800
    weekly = leaderboards.seconds_until_period_ends(tenant, Period.WEEKLY, now)
    assert weekly == (2 * 24 + 0.5) * 3600  # Monday 00:00 in Helsinki
    assert leaderboards.seconds_until_period_ends(tenant, Period.ALL_TIME, now) is None

    monkeypatch.setattr(leaderboards, "seconds_until_period_ends", lambda *_: 0.1)
    board_looks = looks(rt.hub, tenant, Period.DAILY)
    await anext(board_looks)  # at once
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(anext(board_looks), 5)  # no score changed: the period closed
    assert asyncio.get_running_loop().time() - started >= 0.1 + ROLLOVER_SLACK - 0.05
    await board_looks.aclose()


async def test_rank_followers_of_one_board_share_each_look(live_server_factory, key):
    """Every rankChanged of a board in the process is read in one look: one batched
    read per change of the board, whatever the number of followers, and each follower
    still gets its own rank (a player without a score yet: once it has one)."""
    server = live_server_factory()
    values = (60, 50, 40, 30, 20, 10)
    for n, value in enumerate(values):
        await post(
            server, key, RECORD, {"input": {"playerId": f"r{n}", "eventType": "x", "value": value}}
        )
    auth = {"Authorization": f"Bearer {key}"}
    followers = [await GraphQLWebSocket.connect(server.ws_url, auth) for _ in range(7)]
    names = [f"r{n}" for n in range(6)] + ["ghost"]
    for ws, name in zip(followers, names, strict=True):
        await ws.subscribe(RANK, {"id": name})
    for n, ws in enumerate(followers[:6]):  # each its own rank now
        first = (await ws.receive())["payload"]["data"]["rankChanged"]
        assert (first["playerId"], first["rank"], first["previousRank"]) == (f"r{n}", n + 1, None)
        assert first["points"] == values[n]
    stats = await _realtime(server)
    assert (stats["rank_watches"], stats["rank_followers"]) == (1, 7)

    await post(server, key, RECORD, {"input": {"playerId": "r5", "eventType": "x", "value": 100}})
    for n, ws in enumerate(followers[:6]):
        change = (await ws.receive())["payload"]["data"]["rankChanged"]
        expected = (1, 6) if n == 5 else (n + 2, n + 1)  # r5 passes everyone
        assert (change["rank"], change["previousRank"]) == expected
    after = await _realtime(server)
    assert after["rank_reads"] - stats["rank_reads"] == 1  # one read for all seven
    # Each rank message rendered without executing the document (app.flat_render).
    assert after["fast_renders"] - stats["fast_renders"] == 6

    await post(server, key, RECORD, {"input": {"playerId": "ghost", "eventType": "x", "value": 5}})
    ghost = (await followers[6].receive())["payload"]["data"]["rankChanged"]
    assert (ghost["playerId"], ghost["rank"], ghost["previousRank"]) == ("ghost", 7, None)
    for ws in followers:
        await ws.close()
    await _until_zero(server, "rank_watches")  # the last one leaving stops the watch


async def test_a_burst_of_changes_is_coalesced_into_a_few_pushes(live_server_factory, key):
    """However many events move the board, a subscriber gets at most about four pushes
    a second, and the last one shows the board as it ends."""
    server = live_server_factory()
    await post(server, key, RECORD, {"input": {"playerId": "z0", "eventType": "x", "value": 1}})
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(BOARD)
    await ws.receive()  # the board now
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(1, 41):  # forty changes of the top 3, back to back
        event = {"playerId": f"z{n}", "eventType": "x", "value": n + 1}
        await post(server, key, RECORD, {"input": event})
    elapsed = loop.time() - started
    pushes = []
    with contextlib.suppress(TimeoutError):
        while True:
            pushes.append(await ws.receive(within=1.5))
    assert pushes and entries(pushes[-1]) == [("z40", 41.0), ("z39", 40.0), ("z38", 39.0)]
    assert len(pushes) <= 4 * (elapsed + 1.5) + 2, (len(pushes), elapsed)
    await ws.close()
