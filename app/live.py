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
per-subscriber loop. A document of plain fields is not even executed: app.flat_render
reads the payload's attributes as the execution would, ~10x cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator, Hashable
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

from app import aio
from app.errors import SubscriberTooSlow, shown_to_clients
from app.flat_render import Fallback, compile_render
from app.ws_frames import frame_writer

BACKLOG = 256  # frames waiting for one slow socket before it is dropped (the queue size)


@dataclass(frozen=True, slots=True)
class _Current:
    handler: BaseGraphQLTransportWSHandler[Any, Any]
    operation: Operation[Any, Any]


_OPERATION: ContextVar[_Current | None] = ContextVar("questline_ws_operation", default=None)


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """Strawberry's graphql-transport-ws handler; marks each operation's task so that
    `live()` can deliver to its socket directly. A message of the wrong shape closes
    the socket with 4400, as the protocol says (Strawberry's raised, and the socket
    closed without a code); a query that does not parse gets an `error` message (it
    got a bare `complete`)."""

    async def handle_message(self, message: Any) -> None:
        problem = _malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "subscribe" and self.connection_acknowledged:
            try:
                _parse(message["payload"]["query"])
            except GraphQLError as error:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [error.formatted]}
                )
                return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[Any, None]) -> None:
        _OPERATION.set(_Current(self, operation))  # this task's context only
        await super().run_operation(operation)


def _malformed(message: Any) -> str | None:
    """What is wrong with a client message's shape (None: nothing)."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message is a JSON object with a type"
    if message["type"] != "subscribe":
        return None
    payload = message.get("payload")
    if not isinstance(message.get("id"), str) or not isinstance(payload, dict):
        return "subscribe needs an id and a payload object"
    if not isinstance(payload.get("query"), str):
        return "subscribe needs payload.query, a string"
    if not isinstance(payload.get("variables") or {}, dict):
        return "payload.variables must be an object"
    if not isinstance(payload.get("operationName") or "", str):
        return "payload.operationName must be a string"
    return None


def _masked(error: GraphQLError) -> dict[str, Any]:
    if shown_to_clients(error):
        return error.formatted
    return GraphQLError("Unexpected error.", error.nodes, path=error.path).formatted


@lru_cache(maxsize=256)
def _parse(query: str) -> Any:
    return parse(query)


@lru_cache(maxsize=256)
def _compiled(strawberry_schema: Any, query: str, operation_name: str | None) -> Any:
    """The document's flat renderer (None: it is executed), one per document: every
    subscriber of a document shares it, idle ones included."""
    return compile_render(
        strawberry_schema._schema,
        _parse(query),
        operation_name,
        strawberry_schema.config.name_converter.get_graphql_name,
    )


def _renderer(current: _Current, context: Any, build: Callable[[dict[str, Any]], Any]):
    op = current.operation
    strawberry_schema = current.handler.schema
    schema = strawberry_schema._schema  # type: ignore[attr-defined]
    document = _parse(op.query)  # valid: Strawberry checked it before the resolver ran
    fast = _compiled(strawberry_schema, op.query, op.operation_name)

    async def render(message: dict[str, Any]) -> str:
        global _fast_renders
        if fast is not None:
            try:
                text = fast(build(message))
            except Fallback:
                pass  # this message needs the execution: its errors, its nulls
            else:
                _fast_renders += 1
                return text
        # Each message is rendered from current rows: the connection's loaders would
        # hand back what they cached for the previous one (a wallet, a player).
        context.refresh_loaders()
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


_encoded: tuple[str, bytes] = ("", b"")
_direct_frames = 0  # frames written straight to a transport (app.ws_frames), per process


def _utf8(text: str) -> bytes:
    """`text` encoded, once for all the members a payload is offered to in a row."""
    global _encoded
    if _encoded[0] is not text:
        _encoded = (text, text.encode())
    return _encoded[1]


class WebSocketSink:
    """One subscriber's socket. `offer` writes now when the socket takes it at once
    (nearly always): straight to the transport where uvicorn's protocol allows it
    (app.ws_frames), else through ASGI; otherwise frames queue, in order, for a task
    of its own."""

    def __init__(self, websocket: WebSocket, operation_id: str) -> None:
        self.websocket = websocket
        self.frames = frame_writer(websocket.scope)
        self.head = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        self.head_bytes = self.head.encode()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.backlog: deque[str] | None = None  # set while the writer task runs
        self.writer: asyncio.Task[None] | None = None
        self.lost = False

    def _send(self, text: str) -> Any:
        return self.websocket.send({"type": "websocket.send", "text": text})

    def offer(self, payload: str) -> None:
        global _direct_frames
        if self.lost or self.done.done():
            return
        if self.backlog is not None:
            if len(self.backlog) >= BACKLOG:
                self.fail(SubscriberTooSlow("subscriber fell too far behind; re-query"))
            else:
                self.backlog.append(self.head + payload + "}")
            return
        if self.frames is not None:
            try:
                if self.frames.write_text((self.head_bytes, _utf8(payload), b"}")):
                    _direct_frames += 1
                    return
            except Exception:  # the socket is gone; the handler ends the operation
                self.lost = True
                return
        coro = self._send(self.head + payload + "}")
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
            await aio.stop(self.writer)


def _direct(info: Any) -> tuple[_Current, WebSocket] | None:
    """This operation's handler and socket when it runs over graphql-transport-ws."""
    current = _OPERATION.get()
    websocket = getattr(current.handler.websocket, "ws", None) if current else None
    if current is None or not isinstance(websocket, WebSocket):
        return None
    return current, websocket


def _group_key(name: Hashable, op: Operation[Any, Any]) -> Hashable:
    return (
        name,
        op.query,
        json.dumps(op.variables, sort_keys=True, default=str),
        op.operation_name,
    )


async def live(
    info: Any, channel: str, build: Callable[[dict[str, Any]], Any]
) -> AsyncGenerator[Any, None]:
    """Every message of `channel`, as `build(message)` for this subscription's
    selection set. `build` must depend on the message only (check access first)."""
    hub = info.context.rt.hub
    direct = _direct(info)
    if direct is None:
        async with hub.subscribe(channel) as messages:
            async for message in messages:
                yield build(message)
        return
    current, websocket = direct
    key = _group_key(channel, current.operation)
    sink = WebSocketSink(websocket, current.operation.id)
    try:
        render = _renderer(current, info.context, build)
        async with hub.subscribe_direct(channel, key, render, sink):
            await sink.done  # SubscriberTooSlow ends it with an error, like a queue
    finally:
        await sink.close()
    return
    yield  # an async generator, like every subscription resolver


# ------------------------------------------------------------------ shared feeds


@dataclass(eq=False)
class _Feed:
    """One group's source, run once for every member; `last` greets newcomers."""

    sinks: dict[WebSocketSink, None]
    last: str | None = None
    task: asyncio.Task[None] | None = None


_FEEDS: dict[Hashable, _Feed] = {}
_feed_renders = 0  # renderings by all feeds of this process
_fast_renders = 0  # renderings without executing the document (app.flat_render)


def stats() -> dict[str, int]:
    return {
        "feeds": len(_FEEDS),
        "feed_subscribers": sum(len(f.sinks) for f in _FEEDS.values()),
        "feed_renders": _feed_renders,
        "direct_frames": _direct_frames,
        "fast_renders": _fast_renders,
    }


async def live_feed(
    info: Any,
    name: Hashable,
    values: Callable[[], AsyncGenerator[Any, None]],
    build: Callable[[Any], Any],
) -> AsyncGenerator[Any, None]:
    """Every value of `values()`, as `build(value)` for this subscription's selection
    set. Over graphql-transport-ws, subscribers with the same `name`, document and
    variables share one `values()` and one rendering (and encoding) per value; a
    newcomer gets the latest value at once. `name` must cover everything `values` and
    `build` depend on, the tenant included (check access first)."""
    direct = _direct(info)
    if direct is None:
        async for value in values():
            info.context.refresh_loaders()  # as `render` does
            yield build(value)
        return
    current, websocket = direct
    key = _group_key(name, current.operation)
    sink = WebSocketSink(websocket, current.operation.id)
    feed = _FEEDS.get(key)
    if feed is None:
        feed = _FEEDS[key] = _Feed({})
        render = _renderer(current, info.context, build)
        feed.task = asyncio.create_task(_pump(key, feed, values(), render))
    feed.sinks[sink] = None
    if feed.last is not None:
        sink.offer(feed.last)
    try:
        await sink.done  # the source failing, or this socket too slow, ends it
    finally:
        feed.sinks.pop(sink, None)
        if not feed.sinks and _FEEDS.get(key) is feed:
            del _FEEDS[key]
            assert feed.task is not None
            feed.task.cancel()
        await sink.close()
    return
    yield  # an async generator, like every subscription resolver


async def _pump(
    key: Hashable, feed: _Feed, values: AsyncGenerator[Any, None], render: Callable[[Any], Any]
) -> None:
    global _feed_renders
    error: BaseException | None = None
    try:
        async with contextlib.aclosing(values):  # type: ignore[type-var]
            async for value in values:
                feed.last = await render(value)
                _feed_renders += 1
                for sink in list(feed.sinks):
                    sink.offer(feed.last)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every member's subscription ends with this error
        error = exc
    finally:
        if _FEEDS.get(key) is feed:
            del _FEEDS[key]
    for sink in list(feed.sinks):
        if error is None:
            sink.end()
        else:
            sink.fail(error)
