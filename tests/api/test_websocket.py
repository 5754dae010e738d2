"""Subscriptions over a real WebSocket (graphql-transport-ws) against a uvicorn process."""

from __future__ import annotations

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
