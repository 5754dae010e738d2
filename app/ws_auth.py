"""Open WebSockets keep their credential honest: a revoked API key or an expired player
token closes the sockets it opened.

A WebSocket authenticates once, at `connection_init`; its subscriptions then stream for
as long as it stays open. The server remembers each open socket by its credential
(weakly: a closed socket is forgotten with it). Every CHECK_SECONDS it authenticates each
credential again, once however many sockets share it, and closes the sockets of one
that no longer passes (revoked, expired, its tenant gone) with code 4403 and the reason.
A revocation heard on the hub closes that key's sockets at once, in every server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from app import auth
from app.errors import AuthError
from app.services.access import authenticate
from app.settings import Settings

log = logging.getLogger("questline.ws")

CHECK_SECONDS = 5.0  # as long as an API key's verification is cached (KEY_CACHE_SECONDS)
FORBIDDEN = 4403  # the close code of a refused socket (as at connection_init)


class SocketCredentials:
    def __init__(self) -> None:
        self._sockets: dict[str, weakref.WeakSet[WebSocket]] = {}

    def add(self, credential: str, websocket: WebSocket) -> None:
        self._sockets.setdefault(credential, weakref.WeakSet()).add(websocket)

    async def revoked(self, prefix: str) -> None:
        """An API key revoked (heard on the hub): its sockets close now."""
        for credential in list(self._sockets):
            if auth.split_api_key(credential) == prefix:
                await self._close(credential, "this API key has been revoked")

    async def check(self, settings: Settings) -> None:
        """Every credential with open sockets, authenticated again."""
        for credential in list(self._sockets):
            if not self._sockets.get(credential):
                self._sockets.pop(credential, None)
                continue
            try:
                await authenticate(settings, credential)
            except AuthError as exc:
                await self._close(credential, exc.message)

    async def check_forever(self, settings: Settings, every: float = CHECK_SECONDS) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.check(settings)
            except Exception as exc:  # the database is down: try again next round
                log.warning("checking the credentials of open sockets failed (%s)", exc)

    async def _close(self, credential: str, reason: str) -> None:
        sockets = list(self._sockets.pop(credential, ()))
        if sockets:
            log.info("closing %d sockets: %s", len(sockets), reason)
        for websocket in sockets:
            await close(websocket, reason)


async def close(websocket: Any, reason: str) -> None:
    """Closes with FORBIDDEN and `reason`, unless the socket is closed already."""
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):  # closed meanwhile by either side
        await websocket.close(code=FORBIDDEN, reason=reason[:120])
