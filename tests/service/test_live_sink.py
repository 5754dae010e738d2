"""app.live's WebSocket sink: writes at once, keeps order behind a full socket, and drops
a subscriber that falls too far behind. The socket is a stand-in whose `send` waits while
its buffer is "full", like uvicorn's."""

from __future__ import annotations

import asyncio
import json

import pytest

from app import live
from app.live import WebSocketSink
from app.realtime import SubscriberTooSlow


class Socket:
    def __init__(self) -> None:
        self.scope: dict = {}  # not uvicorn: no FrameWriter, sends go through ASGI
        self.sent: list[str] = []
        self.writable = asyncio.Event()
        self.writable.set()

    async def send(self, message: dict) -> None:
        await self.writable.wait()
        assert message["type"] == "websocket.send"
        self.sent.append(message["text"])


def frames(socket: Socket) -> list[tuple[str, int]]:
    out = []
    for text in socket.sent:
        message = json.loads(text)
        assert message["type"] == "next"
        out.append((message["id"], message["payload"]["n"]))
    return out


async def test_a_free_socket_is_written_at_once_with_its_operation_id():
    socket = Socket()
    sink = WebSocketSink(socket, "op-7")  # type: ignore[arg-type]
    sink.offer('{"n":1}')
    assert frames(socket) == [("op-7", 1)]  # no task, no await
    assert sink.writer is None


async def test_a_full_socket_gets_the_rest_in_order_from_a_task():
    socket = Socket()
    sink = WebSocketSink(socket, "1")  # type: ignore[arg-type]
    socket.writable.clear()
    for n in range(5):
        sink.offer(json.dumps({"n": n}))
    assert socket.sent == []
    socket.writable.set()
    await asyncio.wait_for(sink.writer, 2)
    assert frames(socket) == [("1", n) for n in range(5)]
    sink.offer('{"n":5}')  # written at once again
    assert frames(socket)[-1] == ("1", 5)
    await sink.close()


async def test_a_subscriber_too_far_behind_is_dropped(monkeypatch):
    monkeypatch.setattr(live, "BACKLOG", 3)
    socket = Socket()
    sink = WebSocketSink(socket, "1")  # type: ignore[arg-type]
    socket.writable.clear()
    for n in range(10):
        sink.offer(json.dumps({"n": n}))
    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(sink.done, 1)
    await sink.close()


def test_a_dropped_subscription_says_why_in_production_too():
    """Production masks unexpected errors; falling behind is not one: the subscriber
    must learn to re-query."""
    from graphql import GraphQLError

    from app.errors import shown_to_clients
    from app.live import _masked

    dropped = GraphQLError(
        "subscriber fell too far behind; re-query",
        original_error=SubscriberTooSlow("subscriber fell too far behind; re-query"),
    )
    assert shown_to_clients(dropped)
    assert "too far behind" in _masked(dropped)["message"]
    crashed = GraphQLError("boom", original_error=RuntimeError("internals"))
    assert _masked(crashed)["message"] == "Unexpected error."
