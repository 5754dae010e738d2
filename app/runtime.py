"""What the lifespan opens and every service may use: settings, the hub, Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.realtime import Hub
from app.services.board_cache import BoardCache
from app.services.coalesce import Coalescer
from app.settings import Settings
from app.ws_auth import SocketCredentials

if TYPE_CHECKING:
    from redis.asyncio import Redis


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

    def __post_init__(self) -> None:
        self.hub = Hub(self.settings.redis_url, prefix=self.settings.redis_prefix)

    def use_redis(self, redis: Redis) -> None:
        self.redis = redis
        self.boards = BoardCache(
            redis, self.settings.redis_prefix, self.settings.leaderboard_retention_days
        )
