"""What the lifespan opens and every service may use: settings, the hub, Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.realtime import Hub
from app.services.coalesce import Coalescer
from app.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass
class Runtime:
    settings: Settings
    hub: Hub = field(init=False)
    redis: Redis | None = None
    coalescer: Coalescer = field(default_factory=Coalescer)

    def __post_init__(self) -> None:
        self.hub = Hub(self.settings.redis_url, prefix=self.settings.redis_prefix)
