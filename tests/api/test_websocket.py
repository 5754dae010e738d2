"""Subscriptions over a real WebSocket (graphql-transport-ws) against a uvicorn process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from datetime import timedelta

import httpx
import pytest
import websockets
from pydantic import SecretStr

from app.services import access
from tests.wsclient import PROTOCOL, GraphQLWebSocket

SUB = "subscription($id: ID!) { playerChanged(playerId: $id) { id displayName } }"
UPSERT = "mutation($id: ID!, $name: String) { upsertPlayer(input: {id: $id, displayName: $name}) { errors { code } } }"


def post(server, query, variables, key):
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response.json()


@pytest.fixture
async def server(live_server_factory, default_tenant):
    return live_server_factory(
        QUESTLINE_ENV="production", QUESTLINE_SECRET="a-real-production-secret-123"
    )


async def test_subscribe_receive_and_complete_with_an_api_key(server):
    _, key = await access.create_api_key("default", "admin")
    post(server, UPSERT, {"id": "w1", "name": "First"}, key)

    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    op = await ws.subscribe(SUB, {"id": "w1"})
    snapshot = await ws.receive()
    assert snapshot == {
        "id": op,
        "type": "next",
        "payload": {"data": {"playerChanged": {"id": "w1", "displayName": "First"}}},
    }

    post(server, UPSERT, {"id": "w1", "name": "Second"}, key)
    update = await ws.receive()
    assert update["payload"]["data"]["playerChanged"]["displayName"] == "Second"

    await ws.send({"type": "complete", "id": op})
    post(server, UPSERT, {"id": "w1", "name": "Third"}, key)
    # After complete nothing more arrives for that operation; the socket stays usable.
    await ws.send({"type": "ping"})
    assert (await ws.receive())["type"] == "pong"
    await ws.close()


async def test_a_bad_key_is_closed_with_4403(server):
    ws = await websockets.connect(server.ws_url, subprotocols=[PROTOCOL])
    await ws.send('{"type": "connection_init", "payload": {"Authorization": "Bearer ql_nope"}}')
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == 4403


async def test_no_credentials_in_production_is_closed_with_4403(server):
    ws = await websockets.connect(server.ws_url, subprotocols=[PROTOCOL])
    await ws.send('{"type": "connection_init", "payload": {}}')
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == 4403


async def test_a_player_token_subscribes_to_its_own_player_only(server, default_tenant, settings):
    _, key = await access.create_api_key("default", "admin")
    post(server, UPSERT, {"id": "mine", "name": "Me"}, key)
    prod = settings.model_copy(
        update={"questline_secret": SecretStr("a-real-production-secret-123")}
    )
    token = await access.mint_player_token(prod, default_tenant, "mine")

    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    await ws.subscribe(SUB, {"id": "mine"})
    assert (await ws.receive())["payload"]["data"]["playerChanged"]["id"] == "mine"
    op = await ws.subscribe(SUB, {"id": "someone-else"})
    refused = await ws.receive()
    assert refused["id"] == op
    error = refused["payload"]["errors"][0]
    assert error["extensions"]["code"] == "FORBIDDEN" and "own player" in error["message"]
    await ws.close()


@pytest.mark.redis
async def test_a_revoked_key_stops_at_once_on_a_server_that_had_it_cached(server, settings):
    from tests.service.test_cli import questline

    row, key = await access.create_api_key("default", "viewer")
    body = {"query": "{ players { id } }"}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        ok = await http.post("/graphql", json=body, headers=headers)
        assert ok.status_code == 200 and "errors" not in ok.json()  # now cached by that server
        revoked = await questline(settings, "apikey", "revoke", row.prefix)
        assert revoked.returncode == 0, revoked.stderr
        refused = await http.post("/graphql", json=body, headers=headers)
    assert "revoked" in refused.json()["errors"][0]["message"]


async def closed_with(ws: GraphQLWebSocket, within: float) -> websockets.frames.Close:
    """How the server closed the socket (it sends nothing more before)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.receive(within=within)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd


async def test_a_revoked_key_closes_the_sockets_it_opened(server, settings):
    """With Redis the revocation is heard at once; without, the server's next check of
    its sockets' credentials finds it (its key cache, then the check: at most ~10 s)."""
    from tests.service.test_cli import questline

    row, key = await access.create_api_key("default", "viewer")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(SUB, {"id": "rv"})
    revoked = await questline(settings, "apikey", "revoke", row.prefix)
    assert revoked.returncode == 0, revoked.stderr
    close = await closed_with(ws, within=15)
    assert close.code == 4403 and "revoked" in close.reason


async def test_an_expired_player_token_closes_its_socket(server, default_tenant, settings):
    prod = settings.model_copy(
        update={"questline_secret": SecretStr("a-real-production-secret-123")}
    )
    token = await access.mint_player_token(prod, default_tenant, "exp", ttl=timedelta(seconds=2))
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {token}"})
    await ws.subscribe(SUB, {"id": "exp"})
    close = await closed_with(ws, within=12)
    assert close.code == 4403 and "expired" in close.reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "subscribe", "id": "1", "payload": {"query": 5}}, "payload.query"),
        ({"type": "subscribe", "id": "1", "payload": "hi"}, "payload object"),
        ({"type": "subscribe", "id": "1", "payload": None}, "payload object"),
        ([1, 2], "JSON object with a type"),
    ],
)
async def test_a_malformed_message_closes_the_socket_with_4400(server, message, reason):
    _, key = await access.create_api_key("default", "viewer")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.send(message)
    close = await closed_with(ws, within=5)
    assert close.code == 4400 and reason in close.reason


async def test_a_query_that_does_not_parse_gets_an_error_message(server):
    _, key = await access.create_api_key("default", "admin")
    post(server, UPSERT, {"id": "still-open", "name": "Yes"}, key)
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.send({"type": "subscribe", "id": "s", "payload": {"query": "subscription {"}})
    answer = await ws.receive()
    assert answer["type"] == "error" and answer["id"] == "s"
    assert "Syntax Error" in answer["payload"][0]["message"]
    await ws.subscribe(SUB, {"id": "still-open"})  # the socket serves on
    assert (await ws.receive())["payload"]["data"]["playerChanged"]["id"] == "still-open"
    await ws.close()


# ------------------------------------------------------------------ heartbeats


def _frame(text: str) -> bytes:
    """A client's masked text frame (RFC 6455 5.2), up to 64 KiB."""
    payload = text.encode()
    mask = os.urandom(4)
    size = (
        bytes([0x80 | len(payload)])
        if len(payload) < 126
        else b"\xfe" + struct.pack("!H", len(payload))
    )
    return b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the server's unmasked frames in `data`."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = struct.unpack("!H", data[at : at + 2])[0], at + 2
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames


async def test_quiet_websockets_are_pinged_and_one_that_never_answers_is_closed(
    live_server_factory, default_tenant
):
    """`questline serve` pings every WebSocket at the protocol level: a client that
    answers (as browsers and the websockets library do) stays subscribed through quiet
    stretches; one that never answers is closed with 1011 after the timeout."""
    server = live_server_factory(
        serve=True,
        QUESTLINE_ENV="production",
        QUESTLINE_SECRET="a-real-production-secret-123",
        WS_PING_INTERVAL_SECONDS="0.3",
        WS_PING_TIMEOUT_SECONDS="0.6",
    )
    _, key = await access.create_api_key("default", "admin")
    post(server, UPSERT, {"id": "hb", "name": "First"}, key)
    auth = {"Authorization": f"Bearer {key}"}

    # Our own pings off: only the server's keep this connection checked.
    answering = await GraphQLWebSocket.connect(server.ws_url, auth, ping_interval=None)
    op = await answering.subscribe(SUB, {"id": "hb"})
    assert (await answering.receive())["id"] == op

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + PROTOCOL.encode() + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(_frame(json.dumps({"type": "connection_init", "payload": auth})))
    # Read everything until the server hangs up, never answering a ping.
    received = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    frames = _frames(received)
    opcodes = [opcode for opcode, _ in frames]
    assert json.loads(frames[0][1])["type"] == "connection_ack"
    assert 0x9 in opcodes, opcodes  # the server's ping
    assert opcodes[-1] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1011

    # The answering client outlived several ping intervals and still hears updates.
    post(server, UPSERT, {"id": "hb", "name": "Second"}, key)
    update = await answering.receive()
    assert update["payload"]["data"]["playerChanged"]["displayName"] == "Second"
    await answering.close()
