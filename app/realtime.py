"""Publish/subscribe for live updates, behind a small interface of our own.

broadcaster carries messages between processes (Redis when REDIS_URL is set, in
memory otherwise). On top of it this hub keeps one broadcaster subscription per
channel per process (a per-channel lock: broadcaster 0.3.1 loses concurrent
subscriptions to one channel), decodes each message once, and fans it out to bounded
per-subscriber queues: a subscriber that falls too far behind is dropped with
`SubscriberTooSlow` and the others are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend
from redis.asyncio import Redis

log = logging.getLogger("questline.realtime")


class SubscriberTooSlow(Exception):
    """The subscriber's queue overflowed; it must re-query and subscribe again."""


class _ReadyAfterSubscribeRedisBackend(RedisBackend):
    """broadcaster's Redis backend marks itself ready before redis-py has registered
    the channel; with redis-py 8 the listener then exits and never wakes (PITFALLS 1).
    Register first, then wake the listener."""

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


_CLOSED = object()


@dataclass
class _Channel:
    queues: set[asyncio.Queue[Any]] = field(default_factory=set)
    signals: set[asyncio.Queue[Any]] = field(default_factory=set)  # one-slot, collapsing
    reader: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class Hub:
    """Channels are plain names (e.g. `t1:player:42:points`); the hub namespaces them."""

    def __init__(self, redis_url: str = "", prefix: str = "questline", queue_size: int = 256):
        self.prefix = prefix
        self.queue_size = queue_size
        # Publishing goes straight to Redis (pipelined for batches); broadcaster listens.
        self._publisher: Redis | None = Redis.from_url(redis_url) if redis_url else None
        if redis_url:
            self._broadcast = Broadcast(backend=_ReadyAfterSubscribeRedisBackend(redis_url))
        else:
            self._broadcast = Broadcast("memory://")
        self._channels: dict[str, _Channel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.published = 0

    def _name(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        for channel in list(self._channels.values()):
            if channel.reader:
                channel.reader.cancel()
            for queue in channel.queues:
                _offer(queue, _CLOSED)
            for signal in channel.signals:
                with contextlib.suppress(asyncio.QueueFull):
                    signal.put_nowait(_CLOSED)
        self._channels.clear()
        with contextlib.suppress(Exception):
            await self._broadcast.disconnect()
        if self._publisher is not None:
            await self._publisher.aclose()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send one message to every subscriber of `channel` in every process."""
        await self.publish_many([(channel, message)])

    async def publish_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Each message encoded once; through Redis in one pipeline."""
        if not messages:
            return
        encoded = [(self._name(c), json.dumps(m, default=str)) for c, m in messages]
        if self._publisher is not None:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for channel, payload in encoded:
                    pipe.publish(channel, payload)
                await pipe.execute()
        else:
            for channel, payload in encoded:
                await self._broadcast.publish(channel, payload)
        self.published += len(encoded)

    def total_subscribers(self) -> int:
        return sum(len(e.queues) + len(e.signals) for e in self._channels.values())

    def subscriber_count(self, channel: str) -> int:
        entry = self._channels.get(channel)
        return len(entry.queues) + len(entry.signals) if entry else 0

    async def _read(self, channel: str, entry: _Channel) -> None:
        try:
            async with self._broadcast.subscribe(self._name(channel)) as subscriber:
                entry.ready.set()
                async for event in subscriber:
                    if event is None:
                        break
                    message = json.loads(event.message)
                    for queue in list(entry.queues):
                        _offer(queue, message)
                    for signal in list(entry.signals):
                        if signal.empty():  # a change already waits: this one adds nothing
                            signal.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed: tell this channel's subscribers
            log.warning("subscription to %s failed: %s", channel, exc)
            entry.error = exc
            entry.ready.set()
            for queue in [*entry.queues, *entry.signals]:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_CLOSED)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, *, signal: bool = False
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Registered on return: anything published afterwards is delivered. With
        `signal`, messages that arrive while one waits collapse into it (for "look
        again" notices, which never overflow)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1 if signal else self.queue_size)
        members = "signals" if signal else "queues"
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            entry = self._channels.get(channel)
            if entry is None or entry.error is not None:
                entry = _Channel()
                self._channels[channel] = entry
                entry.reader = asyncio.create_task(self._read(channel, entry))
            await entry.ready.wait()
            if entry.error is not None:
                del self._channels[channel]
                raise ConnectionError(f"cannot subscribe to {channel}: {entry.error}")
            getattr(entry, members).add(queue)
        try:
            yield _drain(queue)
        finally:
            async with lock:
                getattr(entry, members).discard(queue)
                if not entry.queues and not entry.signals and self._channels.get(channel) is entry:
                    del self._channels[channel]
                    if entry.reader:
                        entry.reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await entry.reader


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        # Drop what is queued and leave only the overflow marker: the reader stops.
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(SubscriberTooSlow("subscriber fell too far behind; re-query"))


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[dict[str, Any]]:
    while True:
        item = await queue.get()
        if item is _CLOSED:
            return
        if isinstance(item, SubscriberTooSlow):
            raise item
        yield item
