"""A small graphql-transport-ws client for tests, with a deadline on every receive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

PROTOCOL = "graphql-transport-ws"


class GraphQLWebSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    @classmethod
    async def connect(
        cls, url: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> GraphQLWebSocket:
        """`options` go to websockets.connect (e.g. compression=None: no
        permessage-deflate, which the library offers by default)."""
        ws = await websockets.connect(url, subprotocols=[PROTOCOL], **options)
        client = cls(ws)
        await client.send({"type": "connection_init", "payload": payload or {}})
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, within: float = 10.0) -> dict[str, Any]:
        """The next message that is not a keep-alive ping."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), within)
            # Text frames only, as the protocol says (browsers and the graphql-ws client
            # refuse binary ones).
            assert isinstance(raw, str), f"a binary frame: {raw[:80]!r}"
            message = json.loads(raw)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.next_id += 1
        op_id = str(self.next_id)
        await self.send(
            {
                "type": "subscribe",
                "id": op_id,
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return op_id

    async def close(self) -> None:
        await self.ws.close()
