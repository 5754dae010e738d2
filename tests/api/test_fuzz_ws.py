"""Any subscription the schema admits, with arbitrary arguments and selections, over a
real WebSocket to a production-mode server: answered with data, a clear error or
nothing yet, never an unexpected (masked) error, and the socket stays usable."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from graphql import GraphQLSchema, build_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from hypothesis_graphql import strategies as gst

from app.services import access
from tests.api.test_fuzz_api import SCALARS, SCHEMA
from tests.wsclient import GraphQLWebSocket

# Each subscription that sends nothing yet costs its wait: fewer than over HTTP.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
# Subscription documents: the Subscription type's fields written as a query's, one root
# field each (a subscription selects one), then sent as `subscription { ... }`.
_full = build_schema(SCHEMA)
_as_query = GraphQLSchema(query=_full.subscription_type, types=list(_full.type_map.values()))
PLAYERS = ["p1", "nobody", "", "x" * 200]
WS_SCALARS = {**SCALARS, "ID": st.sampled_from(PLAYERS).map(nodes.String)}
documents = st.sampled_from(sorted(_full.subscription_type.fields)).flatmap(
    lambda name: gst.queries(_as_query, fields=[name], custom_scalars=WS_SCALARS, allow_x00=False)
)


@pytest.fixture
async def socket(live_server_factory, default_tenant):
    server = live_server_factory(
        QUESTLINE_ENV="production", QUESTLINE_SECRET="a-real-production-secret-123"
    )
    _, key = await access.create_api_key("default", "admin")
    record = 'mutation { recordEvent(input: {playerId: "p1", eventType: "APP_LOGIN", value: 1}) { errors { code } } }'
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{server.url}/graphql",
            json={"query": record},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.json()["data"]["recordEvent"]["errors"] == []
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    yield ws
    await ws.close()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=documents)
async def test_any_subscription_is_answered_without_a_server_error(socket, document):
    op = await socket.subscribe("subscription " + document.lstrip())
    try:
        # levelUp, for one, sends nothing until a level changes: no message is an answer.
        first = await socket.receive(within=0.25)
    except TimeoutError:
        first = None
    if first is not None:
        assert first["id"] == op, first
        assert first["type"] in ("next", "error", "complete"), first
        errors = (
            first["payload"] if first["type"] == "error" else first.get("payload", {}).get("errors")
        )
        for error in errors or []:
            assert error["message"] != "Unexpected error.", (document, first)
    if first is None or first["type"] == "next":
        await socket.send({"type": "complete", "id": op})
    await socket.send({"type": "ping"})  # the socket still answers
    while (message := await socket.receive(within=5)).get("type") != "pong":
        assert message.get("id") == op, message  # only the operation's own leftovers
        for error in (
            message.get("payload", {}).get("errors", []) if message["type"] == "next" else []
        ):
            assert error["message"] != "Unexpected error.", (document, message)
    await asyncio.sleep(0)
