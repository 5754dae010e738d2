"""The Strawberry view: builds the context and authenticates HTTP and WebSocket callers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected

from app.codec import dumps_bytes
from app.context import Context
from app.errors import AuthError
from app.live import LiveTransportWSHandler
from app.runtime import Runtime
from app.services.access import authenticate, bearer


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Every WebSocket message as a text frame, as both GraphQL WebSocket protocols
    require: Strawberry sends the view's `encode_json` bytes as binary frames, which
    browsers hand over as Blobs and the graphql-ws client refuses ("Message is missing
    the 'type' property")."""

    async def send_json(self, message: Any) -> None:
        try:
            await self.ws.send_text(dumps_bytes(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class QuestlineGraphQL(GraphQL[Context, None]):
    # Lets live subscriptions write one shared rendering per message (app.live).
    graphql_transport_ws_handler_class = LiveTransportWSHandler
    websocket_adapter_class = TextWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, schema: Any, rt: Runtime, **kwargs: Any) -> None:
        super().__init__(schema, **kwargs)
        self.rt = rt

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(rt=self.rt, request=request, response=response)
        if isinstance(request, Request):
            try:
                credential = bearer(request.headers.get("authorization"))
                context.authenticated(await authenticate(self.rt.settings, credential))
            except AuthError as exc:
                context._auth_error = exc  # raised by the first resolver that needs a viewer
        return context

    async def on_ws_connect(self, context: Context) -> Any:
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization")
        if raw is None and isinstance(context.request, WebSocket):
            raw = context.request.headers.get("authorization")
        try:
            credential = bearer(raw) if raw else None
            context.authenticated(await authenticate(self.rt.settings, credential))
        except AuthError as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        if credential is not None and isinstance(context.request, WebSocket):
            self.rt.sockets.add(credential, context.request)  # closed if it stops passing
        return {"tenant": context.viewer.tenant.slug, "access": context.viewer.access.value}

    def encode_json(self, data: object) -> bytes:
        return dumps_bytes(data)  # a batch's answer is large; orjson encodes it fastest

    def create_response(  # type: ignore[override]
        self, response_data: Any, sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        response.headers.setdefault("Cache-Control", "no-store")
        return response
