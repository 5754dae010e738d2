"""The GraphQL context: who asks, what the runtime offers, per-request loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from app.errors import AuthError
from app.loaders import Loaders
from app.runtime import Runtime
from app.services.access import Viewer


@dataclass
class Context:
    rt: Runtime
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    _viewer: Viewer | None = None
    _auth_error: AuthError | None = None
    loaders: Loaders = field(default_factory=lambda: Loaders(None))

    @property
    def viewer(self) -> Viewer:
        """The authenticated caller; a top-level error if there is none."""
        if self._viewer is None:
            raise self._auth_error or AuthError("not authenticated")
        return self._viewer

    def authenticated(self, viewer: Viewer) -> None:
        self._viewer = viewer
        self._auth_error = None
        self.loaders = Loaders(viewer.tenant, self.rt.boards)

    def refresh_loaders(self) -> None:
        """Subscriptions reuse one context per connection: no stale cached rows."""
        self.loaders = Loaders(self._viewer.tenant if self._viewer else None, self.rt.boards)


Info = StrawberryInfo[Context, None]
