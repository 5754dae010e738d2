"""What the lifespan opens and every service may use: settings, the hub, Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.realtime import Hub
from app.services.board_cache import BoardCache
from app.services.coalesce import Coalescer
from app.settings import Settings
from app.ws_auth import SocketCredentials

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Seconds a Redis call may take (connecting, or waiting for an answer).
REDIS_TIMEOUT = 2.0


@dataclass
class Runtime:
    settings: Settings
    hub: Hub = field(init=False)
    redis: Redis | None = None
    coalescer: Coalescer = field(default_factory=Coalescer)
    # Leaderboards in Redis sorted sets (None: served from SQL).
    boards: BoardCache | None = None
    # The open WebSockets by credential: closed when it is revoked or expires.
    sockets: SocketCredentials = field(default_factory=SocketCredentials)
    # rankChanged's shared looks by (tenant id, period) (app.services.rank_watch).
    rank_watches: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hub = Hub(self.settings.redis_url, prefix=self.settings.redis_prefix)

    def use_redis(self, redis: Redis) -> None:
        self.redis = redis
        self.boards = BoardCache(
            redis, self.settings.redis_prefix, self.settings.leaderboard_retention_days
        )


def redis_client(settings: Settings) -> Redis:
    """The Redis client of the boards. Bounded: a Redis that hangs (rather than refuses)
    must not hold every mutation's answer while its data is already committed. A board
    write that times out is lost like a refused one (the record has it)."""
    from redis.asyncio import Redis

    return Redis.from_url(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
    )


@asynccontextmanager
async def opened_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A Runtime opened as the server's lifespan opens it (the Redis boards when
    REDIS_URL is set, the hub), for a command that records events outside the server:
    its boards and live updates reach the servers' readers and subscribers."""
    rt = Runtime(settings=settings)
    redis = redis_client(settings) if settings.redis_url else None
    if redis is not None:
        rt.use_redis(redis)
    try:
        await rt.hub.connect()
        try:
            yield rt
        finally:
            await rt.hub.disconnect()
    finally:
        if rt.boards is not None:
            await rt.boards.close()
        if redis is not None:
            await redis.aclose()
