"""Live updates over real WebSockets: pointsChanged and levelUp, after commit, and
across two server processes sharing one Redis."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.services import access
from tests.wsclient import GraphQLWebSocket

POINTS = """subscription($id: ID!) { pointsChanged(playerId: $id) {
  playerId amount wallet { balance lifetimeEarned earnedToday } transaction { id kind amount balanceAfter reason eventId } } }"""
LEVEL = """subscription($id: ID!) { levelUp(playerId: $id) {
  playerId levelUp { from to bonusPoints level { number name } } } }"""
RECORD = """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
  outcome { pointsAwarded event { id } } errors { code message } } }"""


async def wait_for_subscribers(server, count: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            body = (await client.get(f"{server.url}/readyz")).json()
            if body["subscriptions"] >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the subscription never registered")


async def post(server, key, query, variables):
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
async def callcenter_key(make_tenant):
    return await make_tenant("callcenter", slug="live")


async def test_points_changed_and_level_up_arrive_after_commit(live_server_factory, callcenter_key):
    server = live_server_factory()
    ws = await GraphQLWebSocket.connect(
        server.ws_url, {"Authorization": f"Bearer {callcenter_key}"}
    )
    points_op = await ws.subscribe(POINTS, {"id": "agent"})
    level_op = await ws.subscribe(LEVEL, {"id": "agent"})
    await wait_for_subscribers(server, 2)

    data = await post(
        server,
        callcenter_key,
        RECORD,
        {"input": {"playerId": "agent", "eventType": "lead_converted"}},
    )
    message = await ws.receive()
    assert message["id"] == points_op
    change = message["payload"]["data"]["pointsChanged"]
    assert change["amount"] == 50.0 and change["wallet"]["balance"] == 50.0
    assert change["transaction"]["kind"] == "EARN" and change["transaction"]["id"].isdigit()
    assert change["transaction"]["eventId"] == data["recordEvent"]["outcome"]["event"]["id"]

    # A refused event publishes nothing; the next message is the next real change.
    await post(
        server,
        callcenter_key,
        RECORD,
        {"input": {"playerId": "agent", "eventType": "lead_converted", "value": -5}},
    )
    adjust = """mutation { adjustPoints(input: {playerId: "agent", amount: 900, reason: "backfill"})
                { errors { code } } }"""
    await post(server, callcenter_key, adjust, {})
    award = (await ws.receive())["payload"]["data"]["pointsChanged"]
    assert (award["transaction"]["kind"], award["amount"]) == ("ADJUST", 900.0)
    # 950 lifetime: the next 50 reach 1,000 -> level 2 with its 125 bonus.
    await post(
        server,
        callcenter_key,
        RECORD,
        {"input": {"playerId": "agent", "eventType": "lead_converted"}},
    )
    received = [await ws.receive() for _ in range(3)]
    kinds = [
        m["payload"]["data"]["pointsChanged"]["transaction"]["kind"]
        for m in received
        if m["id"] == points_op
    ]
    assert kinds == ["EARN", "LEVEL_UP_BONUS"]
    bonus = next(
        m["payload"]["data"]["pointsChanged"]
        for m in received
        if m["id"] == points_op
        and m["payload"]["data"]["pointsChanged"]["transaction"]["kind"] != "EARN"
    )
    level = next(m["payload"]["data"]["levelUp"] for m in received if m["id"] == level_op)
    assert level == {
        "playerId": "agent",
        "levelUp": {
            "from": 1,
            "to": 2,
            "bonusPoints": 125.0,
            "level": {"number": 2, "name": "Bronze"},
        },
    }
    assert bonus["amount"] == 125.0
    await ws.close()


async def test_a_player_token_subscribes_to_its_own_points_only(
    live_server_factory, make_tenant, settings
):
    from models import Tenant

    key = await make_tenant("habits", slug="tok")
    server = live_server_factory()
    tenant = await Tenant.get(slug="tok")
    token = await access.mint_player_token(settings, tenant, "me")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    other = await ws.subscribe(POINTS, {"id": "someone-else"})
    refused = await ws.receive()
    assert refused["id"] == other
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await ws.receive() == {"type": "complete", "id": other}
    await ws.subscribe(POINTS, {"id": "me"})
    await wait_for_subscribers(server, 1)
    await post(server, key, RECORD, {"input": {"playerId": "me", "eventType": "x", "value": 3}})
    assert (await ws.receive())["payload"]["data"]["pointsChanged"]["amount"] == 3.0
    await ws.close()


@pytest.mark.redis
async def test_a_mutation_on_one_process_reaches_a_subscriber_on_another(
    live_server_factory, callcenter_key
):
    writer, reader = live_server_factory(), live_server_factory()
    ws = await GraphQLWebSocket.connect(
        reader.ws_url, {"Authorization": f"Bearer {callcenter_key}"}
    )
    await ws.subscribe(POINTS, {"id": "far"})
    await wait_for_subscribers(reader, 1)
    await post(
        writer,
        callcenter_key,
        RECORD,
        {"input": {"playerId": "far", "eventType": "call_completed"}},
    )
    change = (await ws.receive())["payload"]["data"]["pointsChanged"]
    assert change["playerId"] == "far" and change["amount"] == 10.0
    await ws.close()


async def test_many_viewers_of_one_player_share_one_rendering_per_document(
    live_server_factory, callcenter_key
):
    server = live_server_factory()
    auth = {"Authorization": f"Bearer {callcenter_key}"}
    viewers = [await GraphQLWebSocket.connect(server.ws_url, auth) for _ in range(12)]
    ops = []
    for n, ws in enumerate(viewers):
        if n % 3 == 0:  # another operation id on this socket: the id is per subscriber
            await ws.subscribe(LEVEL, {"id": "star"})
        ops.append(await ws.subscribe(POINTS, {"id": "star"}))
    small = await GraphQLWebSocket.connect(server.ws_url, auth)
    small_op = await small.subscribe(
        "subscription($id: ID!) { pointsChanged(playerId: $id) { amount } }", {"id": "star"}
    )
    await wait_for_subscribers(server, 12 + 4 + 1)
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{server.url}/readyz")).json()["realtime"]["renders"]

    await post(
        server,
        callcenter_key,
        RECORD,
        {"input": {"playerId": "star", "eventType": "lead_converted"}},
    )
    for ws, op in zip(viewers, ops, strict=True):
        message = await ws.receive()
        assert message["id"] == op and message["type"] == "next"
        change = message["payload"]["data"]["pointsChanged"]
        assert change["playerId"] == "star" and change["amount"] == 50.0
        assert change["transaction"]["kind"] == "EARN"
    assert await small.receive() == {
        "id": small_op,
        "type": "next",
        "payload": {"data": {"pointsChanged": {"amount": 50.0}}},
    }
    async with httpx.AsyncClient() as client:
        after = (await client.get(f"{server.url}/readyz")).json()["realtime"]["renders"]
    assert after - before == 2  # one per document, not one per subscriber
    for ws in [*viewers, small]:
        await ws.close()


async def test_frames_go_straight_to_each_socket_compressed_or_not(
    live_server_factory, callcenter_key
):
    """app.ws_frames: a client without permessage-deflate gets the frame built by the
    server's own header code, one with it (websockets offers it by default, as browsers
    do) a compressed frame from the connection's framing; both written without the ASGI
    send, both the same message."""
    server = live_server_factory()
    auth = {"Authorization": f"Bearer {callcenter_key}"}
    plain = await GraphQLWebSocket.connect(server.ws_url, auth, compression=None)
    deflate = await GraphQLWebSocket.connect(server.ws_url, auth)
    assert [type(e).__name__ for e in plain.ws.protocol.extensions] == []
    assert [type(e).__name__ for e in deflate.ws.protocol.extensions] == ["PerMessageDeflate"]
    ops = [await ws.subscribe(POINTS, {"id": "framed"}) for ws in (plain, deflate)]
    await wait_for_subscribers(server, 2)
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{server.url}/readyz")).json()["realtime"]["direct_frames"]

    for n in range(3):  # in order, each one whole
        await post(
            server,
            callcenter_key,
            RECORD,
            {"input": {"playerId": "framed", "eventType": "call_completed"}},
        )
        received = [await ws.receive() for ws in (plain, deflate)]
        for message, op in zip(received, ops, strict=True):
            assert message["id"] == op and message["type"] == "next"
            change = message["payload"]["data"]["pointsChanged"]
            assert change["amount"] == 10.0
            assert change["wallet"]["balance"] == 10.0 * (n + 1)
        assert received[0]["payload"] == received[1]["payload"]
    async with httpx.AsyncClient() as client:
        after = (await client.get(f"{server.url}/readyz")).json()["realtime"]["direct_frames"]
    assert after - before == 6
    for ws in (plain, deflate):
        await ws.close()


async def test_a_subscriber_that_stops_reading_is_dropped_with_a_reason_and_others_get_all(
    live_server_factory, make_tenant
):
    """Frames go straight to the transport only while it takes them: a client that stops
    reading fills the sockets' buffers, then uvicorn's (the transport pauses writing),
    then each of its subscriptions' backlogs, and those subscriptions end with an error
    that says why; a client that reads on gets every message, in order. The slow
    client holds 40 subscriptions of the channel, so that megabytes wait for it within
    one batch of events."""
    key = await make_tenant("habits")  # no daily cap: every event earns
    server = live_server_factory()
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{server.url}/readyz")).json()["subscriptions"]
    fast = await GraphQLWebSocket.connect(server.ws_url, auth, compression=None)
    # Its own pings' answers would wait behind what it does not read: no pings.
    slow = await GraphQLWebSocket.connect(server.ws_url, auth, compression=None, ping_interval=None)
    fast_op = await fast.subscribe(POINTS, {"id": "busy"})
    slow_ops = {await slow.subscribe(POINTS, {"id": "busy"}) for _ in range(40)}
    await wait_for_subscribers(server, before + 41)

    batch = """mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) {
      outcomes { wallet { balance } } errors { code } } }"""
    event = {"playerId": "busy", "eventType": "x", "category": "finance", "value": 1}
    received, balance = 0, 0.0
    async with httpx.AsyncClient() as client:
        for _ in range(4):  # until the slow client's subscriptions are dropped
            data = await post(server, key, batch, {"input": [event] * 1000})
            assert data["recordEvents"]["errors"] == []
            final = data["recordEvents"]["outcomes"][-1]["wallet"]["balance"]
            while balance < final:  # the reading client gets every ledger line, in order
                message = await fast.receive()
                assert message["id"] == fast_op and message["type"] == "next"
                line = message["payload"]["data"]["pointsChanged"]["transaction"]
                assert line["balanceAfter"] == balance + line["amount"]  # none missing
                balance, received = line["balanceAfter"], received + 1
            ready = (await client.get(f"{server.url}/readyz")).json()
            if ready["subscriptions"] == before + 1:
                break
        else:
            raise AssertionError("the subscriptions of the client that stopped reading stayed")

    nexts = {op: 0 for op in slow_ops}
    reasons: dict[str, str] = {}
    done: set[str] = set()
    while len(done) < len(slow_ops):  # it reads again: what was sent, the reason, the end
        message = await slow.receive()
        op = message["id"]
        assert op not in done
        if message["type"] == "complete":
            done.add(op)
        elif "errors" in message.get("payload", {}):
            reasons[op] = message["payload"]["errors"][0]["message"]
        else:
            assert message["type"] == "next" and op not in reasons
            nexts[op] += 1
    assert set(reasons) == slow_ops
    assert all("too far behind" in reason for reason in reasons.values()), reasons
    assert all(n < received for n in nexts.values())
    for ws in (fast, slow):
        await ws.close()
