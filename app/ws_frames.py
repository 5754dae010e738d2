"""Text frames written straight to a WebSocket's transport, for the live fan-out.

A message to 2,000 viewers is 2,000 sends. Through Starlette's `WebSocket.send` each
one is an ASGI message dict and a chain of coroutines (Starlette's state checks, its
exception wrapper, uvicorn's `send`, the websockets library's framing) before the
socket write: profiled, the write was ~55% of a delivery's cost and the rest was
that path. `FrameWriter` does the same write without it, on uvicorn's sans-io
WebSocket protocol (`--ws auto` picks it): the frame header built here when no
extension was negotiated, else the websockets connection's own framing (a client
that negotiated permessage-deflate gets its frames compressed, as before).

It writes only while the connection could take the frame at once: open, accepted, not
closing, not in a fragmented message, nothing of the connection's waiting to be
flushed, and the transport not paused for a full buffer. Otherwise `write_text`
answers False and the caller sends through ASGI (which waits for the buffer to
drain). `FrameWriterMiddleware` finds the protocol, which is the receiver of the `send`
callable uvicorn hands the app, and puts its writer into the WebSocket's scope.
"""

from __future__ import annotations

import struct
from typing import Any

from websockets.protocol import OPEN

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn without the websockets extra
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

SCOPE_KEY = "questline.frame_writer"
# What `write_text` reads, checked on each connection before it gets a writer: a uvicorn
# or websockets release without one of them leaves every send on the ASGI path.
_PROTOCOL_ATTRIBUTES = (
    "conn",
    "transport",
    "disconnected",
    "close_sent",
    "handshake_complete",
    "initial_response",
    "writable",
)
_CONNECTION_ATTRIBUTES = ("state", "expect_continuation_frame", "writes", "extensions")

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_FIN_TEXT = 0x81  # FIN, opcode 1 (text); server frames are not masked


def text_frame_header(length: int) -> bytes:
    """RFC 6455 §5.2: the header of an unmasked, final text frame of `length` bytes."""
    if length < 126:
        return _SHORT.pack(_FIN_TEXT, length)
    if length < 65536:
        return _MEDIUM.pack(_FIN_TEXT, 126, length)
    return _LONG.pack(_FIN_TEXT, 127, length)


class FrameWriter:
    """Writes whole text frames to one uvicorn sans-io WebSocket connection now."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def write_text(self, parts: tuple[bytes, ...]) -> bool:
        """The UTF-8 text `b"".join(parts)` as one frame, written now; False (nothing
        written) when the connection cannot take it at once."""
        p = self._protocol
        conn = p.conn
        transport = p.transport
        if (
            p.disconnected
            or p.close_sent
            or not p.handshake_complete
            or p.initial_response is not None
            or not p.writable.is_set()
            or transport.is_closing()
            or conn.state is not OPEN
            or conn.expect_continuation_frame
            or conn.writes
        ):
            return False
        if conn.extensions:
            conn.send_text(b"".join(parts))
            transport.write(b"".join(conn.data_to_send()))
        else:
            transport.write(b"".join((text_frame_header(sum(map(len, parts))), *parts)))
        return True


class FrameWriterMiddleware:
    """A WebSocket served by uvicorn's sans-io protocol gets a `FrameWriter` at
    `scope[SCOPE_KEY]`; anything else passes through untouched. It must sit ahead of
    Starlette's exception middleware, which wraps `send`: app.asgi puts it behind only
    Starlette's ServerErrorMiddleware and our body limit (app.body_limit), which pass a
    WebSocket's `send` through as it is."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            if _supported(protocol):
                scope[SCOPE_KEY] = FrameWriter(protocol)
        await self.app(scope, receive, send)


def _supported(protocol: Any) -> bool:
    return (
        WebSocketsSansIOProtocol is not None
        and isinstance(protocol, WebSocketsSansIOProtocol)
        and all(hasattr(protocol, name) for name in _PROTOCOL_ATTRIBUTES)
        and all(hasattr(protocol.conn, name) for name in _CONNECTION_ATTRIBUTES)
    )


def frame_writer(scope: dict[str, Any]) -> FrameWriter | None:
    return scope.get(SCOPE_KEY)
