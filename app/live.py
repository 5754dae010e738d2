"""Live subscriptions whose payload is the same for every subscriber: render once.

A plain Strawberry subscription runs, per subscriber and per message, a task wake-up,
the execution of its selection set and a JSON encoding: ~0.25 ms each on this machine,
so 2,000 viewers of one player take half a second per event. `live()` does better when
the operation runs over graphql-transport-ws (our handler below marks it): the
subscriber joins a group of the hub (app.realtime) keyed by channel, document,
variables and operation name; each message is executed and encoded once per group
(with the first member's context: only for payloads built from the message alone,
after each subscriber's own auth checks), and the one `next` frame, with the
member's operation id spliced in, is written to each member's WebSocket without
awaiting it. A member whose socket cannot take more right now gets the rest in order
from a task of its own and is dropped with `SubscriberTooSlow` once `backlog` frames
wait. Anywhere else (graphql-ws, `schema.subscribe` in tests) `live()` is the plain
per-subscriber loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from inspect import isawaitable
from typing import Any

from graphql import GraphQLError, execute, parse
from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from app.errors import AuthError
from app.realtime import SubscriberTooSlow

BACKLOG = 256  # frames waiting for one slow socket before it is dropped (the queue size)


@dataclass(frozen=True, slots=True)
class _Current:
    handler: BaseGraphQLTransportWSHandler[Any, Any]
    operation: Operation[Any, Any]


_OPERATION: ContextVar[_Current | None] = ContextVar("questline_ws_operation", default=None)


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """Strawberry's graphql-transport-ws handler; marks each operation's task so that
    `live()` can deliver to its socket directly."""

    async def run_operation(self, operation: Operation[Any, None]) -> None:
        _OPERATION.set(_Current(self, operation))  # this task's context only
        await super().run_operation(operation)


def _masked(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    if original is None or isinstance(original, (AuthError, ValueError)):
        return error.formatted
    return GraphQLError("Unexpected error.", error.nodes, path=error.path).formatted


@lru_cache(maxsize=256)
def _parse(query: str) -> Any:
    return parse(query)


def _renderer(current: _Current, context: Any, build: Callable[[dict[str, Any]], Any]):
    op = current.operation
    schema = current.handler.schema._schema  # type: ignore[attr-defined]
    document = _parse(op.query)  # valid: Strawberry checked it before the resolver ran

    async def render(message: dict[str, Any]) -> str:
        result = execute(
            schema,
            document,
            root_value=build(message),  # the subscription field resolves to its event
            context_value=context,
            variable_values=op.variables,
            operation_name=op.operation_name,
        )
        if isawaitable(result):
            result = await result
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_masked(e) for e in result.errors]
        return json.dumps(payload)

    return render


class _Continue:
    """Awaits the rest of a coroutine that was started by hand and suspended."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        value = self.yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation: pass it in
                try:
                    value = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class WebSocketSink:
    """One subscriber's socket. `offer` writes now when the socket takes it at once
    (nearly always); otherwise frames queue, in order, for a task of its own."""

    def __init__(self, websocket: WebSocket, operation_id: str) -> None:
        self.websocket = websocket
        self.head = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.backlog: deque[str] | None = None  # set while the writer task runs
        self.writer: asyncio.Task[None] | None = None
        self.lost = False

    def _send(self, text: str) -> Any:
        return self.websocket.send({"type": "websocket.send", "text": text})

    def offer(self, payload: str) -> None:
        if self.lost or self.done.done():
            return
        text = self.head + payload + "}"
        if self.backlog is not None:
            if len(self.backlog) >= BACKLOG:
                self.fail(SubscriberTooSlow("subscriber fell too far behind; re-query"))
            else:
                self.backlog.append(text)
            return
        coro = self._send(text)
        try:
            yielded = coro.send(None)
        except StopIteration:
            return  # written
        except Exception:  # the socket is gone; the handler ends the operation
            self.lost = True
            return
        # The socket's buffer is full: finish this send, and any later ones, in a task.
        self.backlog = deque()
        self.writer = asyncio.create_task(self._write(_Continue(coro, yielded)))

    async def _write(self, first: _Continue) -> None:
        try:
            await first
            while self.backlog:
                await self._send(self.backlog.popleft())
        except Exception:
            self.lost = True
        finally:
            self.backlog = None

    def end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    async def close(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.writer


async def live(
    info: Any, channel: str, build: Callable[[dict[str, Any]], Any]
) -> AsyncGenerator[Any, None]:
    """Every message of `channel`, as `build(message)` for this subscription's
    selection set. `build` must depend on the message only (check access first)."""
    hub = info.context.rt.hub
    current = _OPERATION.get()
    websocket = getattr(current.handler.websocket, "ws", None) if current else None
    if current is None or not isinstance(websocket, WebSocket):
        async with hub.subscribe(channel) as messages:
            async for message in messages:
                yield build(message)
        return
    op = current.operation
    key = (
        channel,
        op.query,
        json.dumps(op.variables, sort_keys=True, default=str),
        op.operation_name,
    )
    sink = WebSocketSink(websocket, op.id)
    try:
        render = _renderer(current, info.context, build)
        async with hub.subscribe_direct(channel, key, render, sink):
            await sink.done  # SubscriberTooSlow ends it with an error, like a queue
    finally:
        await sink.close()
    return
    yield  # an async generator, like every subscription resolver
