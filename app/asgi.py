"""`create_app(settings)`: the Starlette application and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from tortoise import Tortoise
from tortoise.contrib.starlette import RegisterTortoise

from app import aio, live, shutdown
from app.body_limit import BodyLimitMiddleware
from app.db import tortoise_config
from app.graphql_view import QuestlineGraphQL
from app.runtime import Runtime, redis_client
from app.services import board_points, rank_watch
from app.services.access import listen_for_revocations
from app.settings import Settings
from app.ws_frames import FrameWriterMiddleware
from schema import build_schema

log = logging.getLogger("questline")

# The cyclic GC's first-generation threshold in a server process (CPython's default: 700).
GC_GEN0_THRESHOLD = 10_000

FRONTEND = Path(__file__).resolve().parent.parent / "frontend-demo"


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    rt = Runtime(settings=settings)
    schema = build_schema(mask_errors=settings.production)
    graphql = QuestlineGraphQL(
        schema,
        rt,
        graphql_ide="graphiql" if settings.ide_enabled else None,
        allowed_origins=settings.allowed_origins,
        keep_alive=True,
        keep_alive_interval=15,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        # Tortoise, Redis and the hub in one nest: a failure half-way closes what opened.
        async with contextlib.AsyncExitStack() as stack:
            # Closed in reverse order, each step bounded and timed (app.shutdown).
            orm = RegisterTortoise(app, config=tortoise_config(settings))
            await orm.init_orm()
            # Tortoise bounds the pool's close at 10 s (then terminates it).
            stack.push_async_callback(shutdown.step("the database pool", orm.close_orm, 15))
            stack.push_async_callback(shutdown.report_held_connections)
            if settings.redis_url:
                redis = redis_client(settings)  # bounded (app.runtime.REDIS_TIMEOUT)
                stack.push_async_callback(shutdown.step("the Redis client", redis.aclose, 2))
                rt.use_redis(redis)
                boards = rt.boards
                assert boards is not None
                stack.push_async_callback(shutdown.step("board rebuilds", boards.close, 2))
            await rt.hub.connect()
            stack.push_async_callback(shutdown.step("the hub", rt.hub.disconnect, 6))
            # In-flight events finish (their callers get outcomes) before the pool closes.
            stack.push_async_callback(shutdown.step("queued events", rt.coalescer.wait_idle, 5))
            revocations = asyncio.create_task(listen_for_revocations(rt.hub, rt.sockets.revoked))
            # Before the hub closes its connections: a stalled unsubscribe is cut off.
            stack.push_async_callback(
                shutdown.step("the revocation listener", lambda: aio.stop(revocations), 2)
            )
            credentials = asyncio.create_task(rt.sockets.check_forever(settings))
            stack.push_async_callback(
                shutdown.step("the sockets' credential check", lambda: aio.stop(credentials), 2)
            )
            if settings.is_postgres:  # board points a crashed batch left pending
                sweep = asyncio.create_task(board_points.settle_forever(rt.boards, rt.hub))
                stack.push_async_callback(
                    shutdown.step("the board sweep", lambda: aio.stop(sweep), 2)
                )
            # Start-up made a large, long-lived heap (schema, models, ORM state): freeze it
            # so the cyclic GC stops rescanning it; its full passes were the long tail
            # of request latency. A request leaves no reference cycles behind
            # (schema.build.ExecutionContext), so what the collector would find is the
            # requests in flight, alive: it runs after GC_GEN0_THRESHOLD net allocations
            # instead of 700 (measured at 50 clients: ~7% of the worker's CPU, 0.6 s
            # in 10 s, down to 0.05 s).
            if not gc.get_freeze_count():  # once per process
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
            if not settings.production:
                log.warning(
                    "DEV MODE: requests without credentials act as admin of tenant "
                    "'default'. Set QUESTLINE_ENV=production to require API keys."
                )
            yield {"rt": rt}

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await Tortoise.get_connection("default").execute_query("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if rt.redis is None:
            checks["redis"] = "not configured (in-process pub/sub)"
        else:
            try:
                await rt.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" or v.startswith("not configured") for v in checks.values())
        body = {
            "ready": ready,
            **checks,
            "subscriptions": rt.hub.total_subscribers(),
            "realtime": {**rt.hub.stats(), **live.stats(), **rank_watch.stats(rt)},
        }
        if rt.boards is not None:
            body["leaderboards"] = dict(rt.boards.stats)
        return JSONResponse(body, status_code=200 if ready else 503)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    # The Vite build when present, else the placeholder page.
    for folder in (FRONTEND / "dist", FRONTEND / "public"):
        if folder.is_dir():
            routes.append(Mount("/", StaticFiles(directory=folder, html=True)))
            break
    middleware = [
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes),
        Middleware(FrameWriterMiddleware),  # sees uvicorn's own `send`
    ]
    if settings.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.allowed_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.rt = rt
    return app
