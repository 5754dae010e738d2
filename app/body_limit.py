"""A cap on the size of an HTTP request's body, before the app reads it.

Strawberry reads a POST's whole body into memory before it parses it, so without a cap
one request of a few gigabytes (by mistake or not) takes a worker's memory. The largest
legitimate request is a `recordEvents` batch of 1,000 events, each with metadata of up
to 16 KB: about 17 MB. A body over the limit is answered 413 with a GraphQL-shaped
error, and nothing runs: at once when its Content-Length says so, else as soon as the
chunks received pass it. WebSockets are not HTTP bodies (uvicorn bounds their messages,
`--ws-max-size`) and pass through untouched.
"""

from __future__ import annotations

from typing import Any

from app.codec import dumps_bytes


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:  # else the app answered without reading it all
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = dumps_bytes(
            {
                "data": None,
                "errors": [
                    {
                        "message": f"the request body is over {self.max_bytes:,} bytes",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                    }
                ],
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn refuses a malformed one before we see it
    return None
