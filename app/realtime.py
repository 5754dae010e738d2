"""Publish/subscribe for live updates, behind a small interface of our own.

broadcaster carries messages between processes (Redis when REDIS_URL is set, in
memory otherwise). On top of it this hub keeps one broadcaster subscription per
channel per process (a per-channel lock: broadcaster 0.3.1 loses concurrent
subscriptions to one channel), decodes each message once, and fans it out to bounded
per-subscriber queues: a subscriber that falls too far behind is dropped with
`SubscriberTooSlow` and the others are unaffected.

Direct subscribers (`subscribe_direct`) skip the per-subscriber queue and task: they
are grouped by what they render (e.g. one GraphQL document and its variables), each
message is rendered once per group, and the one payload is offered to every member's
`Sink`, which writes it without waiting (app.live has the WebSocket one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend
from redis.asyncio import Redis

from app import aio, shutdown
from app.codec import dumps_bytes
from app.errors import SubscriberTooSlow

log = logging.getLogger("questline.realtime")


class _ReadyAfterSubscribeRedisBackend(RedisBackend):
    """broadcaster's Redis backend marks itself ready before redis-py has registered
    the channel; with redis-py 8 the listener then exits and never wakes (PITFALLS 1).
    Register first, then wake the listener. It also never reconnects (PITFALLS 2): a
    dead listener is flagged so the hub's watchdog can rebuild the subscriptions."""

    failed = False

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()

    async def _pubsub_listener(self) -> None:
        try:
            await super()._pubsub_listener()
        except Exception:
            self.failed = True
            raise


_CLOSED = object()
HEARTBEAT_SECONDS = 0.5
RETRY_MAX_SECONDS = 4.0  # the longest wait between attempts while Redis is away
CONNECT_SECONDS = 3.0  # at most, for the subscriber connection to Redis
# What "look again" subscribers get once the hub has resubscribed after an outage.
RESUBSCRIBED: dict[str, Any] = {"resubscribed": True}
# Many messages in one command: a pipeline of one PUBLISH per message costs the server
# process a command's packing and parsing each, and a batch of 500 events sends ~1,000.
PUBLISH_MANY = """
for i = 1, #ARGV, 2 do
    redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
"""
PUBLISH_CHUNK = 500  # messages per script call


class Sink(Protocol):
    """A direct subscriber: takes rendered payloads without blocking the hub."""

    def offer(self, payload: str) -> None: ...

    def end(self) -> None:
        """The stream is over (hub closed or transport failed)."""


Render = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass
class _Group:
    """Direct subscribers of one channel that render every message identically."""

    render: Render
    sinks: dict[Sink, None] = field(default_factory=dict)  # ordered set


@dataclass
class _Channel:
    queues: set[asyncio.Queue[Any]] = field(default_factory=set)
    signals: set[asyncio.Queue[Any]] = field(default_factory=set)  # one-slot, collapsing
    groups: dict[Hashable, _Group] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    def members(self) -> int:
        return (
            len(self.queues) + len(self.signals) + sum(len(g.sinks) for g in self.groups.values())
        )


# How long a heartbeat's ping in flight may take to end by itself at disconnect.
REDIS_PING_GRACE = 3.0


async def _ended(task: asyncio.Task[None]) -> None:
    """`task` ended by itself (its ping answered or timed out), else cancelled."""
    await asyncio.wait({task}, timeout=REDIS_PING_GRACE)
    await aio.stop(task, 1)


def retry_delay(failures: int) -> float:
    """Seconds before the hub's next look at Redis after `failures` failed attempts in a
    row: the heartbeat while all is well, doubling per failure up to RETRY_MAX_SECONDS
    (0.5, 1, 2, 4, 4, ...), so an outage is not met by a steady stream of connects."""
    return min(HEARTBEAT_SECONDS * 2 ** min(failures, 16), RETRY_MAX_SECONDS)


class Hub:
    """Channels are plain names (e.g. `t1:player:42:points`); the hub namespaces them."""

    def __init__(self, redis_url: str = "", prefix: str = "questline", queue_size: int = 256):
        self.prefix = prefix
        self.queue_size = queue_size
        self._redis_url = redis_url
        # Publishing goes straight to Redis (pipelined for batches); broadcaster listens.
        self._publisher: Redis | None = (
            Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
            if redis_url
            else None
        )
        self._publish_many = (
            self._publisher.register_script(PUBLISH_MANY) if self._publisher else None
        )
        self._broadcast = self._new_broadcast()
        self._channels: dict[str, _Channel] = {}
        # Per channel: its lock and how many hold or wait for it (gone at 0, so the
        # locks of per-player channels do not pile up).
        self._locks: dict[str, list[Any]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()  # disconnect: the heartbeat ends between pings
        self.published = 0
        self.lost = 0  # messages that could not be published (Redis down)
        self.reconnects = 0
        self.retries = 0  # failed looks at Redis while it was away
        self.renders = 0  # direct groups' renderings (one per message per group)

    def _new_broadcast(self) -> Broadcast:
        if self._redis_url:
            return Broadcast(backend=_ReadyAfterSubscribeRedisBackend(self._redis_url))
        return Broadcast("memory://")

    def _name(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    async def connect(self) -> None:
        """Subscribes to Redis. A server may start while Redis is down (or hangs): its
        API serves at once, and live updates begin when the heartbeat finds Redis back."""
        broken = False
        try:
            await asyncio.wait_for(self._broadcast.connect(), CONNECT_SECONDS)
        except Exception as exc:
            if self._publisher is None:
                raise
            log.warning("Redis unreachable at start (%r): live updates wait for it", exc)
            broken = True
        if self._publisher is not None:
            self._watchdog = asyncio.create_task(self._watch(broken))

    def stats(self) -> dict[str, int]:
        return {
            "subscriptions": self.total_subscribers(),
            "published": self.published,
            "lost": self.lost,
            "reconnects": self.reconnects,
            "retries": self.retries,
            "renders": self.renders,
        }

    async def _watch(self, broken: bool = False) -> None:
        """Heartbeat: notice a dead Redis subscription and rebuild it once Redis is back,
        trying again with backoff (`retry_delay`) while it stays away."""
        assert self._publisher is not None
        failures = int(broken)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), retry_delay(failures))
            if self._closing.is_set():
                return
            backend = self._broadcast._backend
            try:
                await self._publisher.ping()
            except Exception:
                if not broken:
                    log.warning("Redis unreachable: live updates paused until it returns")
                broken = True
                failures += 1
                self.retries += 1
                continue
            if broken or getattr(backend, "failed", False):
                try:
                    await self._resubscribe()
                except Exception as exc:  # Redis went away again: retried after a backoff
                    log.warning("resubscribing failed: %s", exc)
                    broken = True
                    failures += 1
                    self.retries += 1
                    continue
            broken, failures = False, 0

    async def _resubscribe(self) -> None:
        old, self._broadcast = self._broadcast, self._new_broadcast()
        await asyncio.wait_for(self._broadcast.connect(), CONNECT_SECONDS)
        for channel, entry in list(self._channels.items()):
            if entry.reader is not None:
                await aio.stop(entry.reader, 2)
            entry.ready = asyncio.Event()
            entry.error = None
            entry.reader = asyncio.create_task(self._read(channel, entry))
            await entry.ready.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.disconnect(), 2)
        # What was published while Redis was away is lost. "Look again" subscribers
        # (live boards, ranks) look now: a board that changed meanwhile is pushed.
        for entry in self._channels.values():
            for signal in list(entry.signals):
                if signal.empty():
                    signal.put_nowait(RESUBSCRIBED)
        self.reconnects += 1
        log.warning("Redis is back: %d channels resubscribed", len(self._channels))

    async def disconnect(self) -> None:
        """Closes every subscription and both Redis connections; each step bounded
        and, when slow, named in the log (app.shutdown)."""
        if self._watchdog is not None:
            # Told to end, not cancelled mid-ping: a redis-py ping cancelled while
            # its connection is being closed could ignore the cancellation for ever,
            # and a command's exit (asyncio.run waits for every task) with it.
            self._closing.set()
            watchdog = self._watchdog
            await shutdown.step("the hub's heartbeat", lambda: _ended(watchdog), 4)()
        for channel in list(self._channels.values()):
            if channel.reader:
                channel.reader.cancel()
            for queue in channel.queues:
                _offer(queue, _CLOSED)
            for signal in channel.signals:
                with contextlib.suppress(asyncio.QueueFull):
                    signal.put_nowait(_CLOSED)
            _end_sinks(channel)
        self._channels.clear()
        # Each step bounded: a stalled Redis connection must not hold up shutdown.
        with contextlib.suppress(Exception):
            await shutdown.step("the hub's listener", self._broadcast.disconnect, 2)()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await shutdown.step("the hub's publisher", self._publisher.aclose, 2)()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send one message to every subscriber of `channel` in every process."""
        await self.publish_many([(channel, message)])

    @property
    def via_redis(self) -> bool:
        return self._publisher is not None

    def encoded(self, messages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, bytes]]:
        """Messages as Redis publishes them (namespaced channel, payload), for a caller
        that sends them in a script of its own; it reports back with `sent`."""
        return [(self._name(c), dumps_bytes(m)) for c, m in messages]

    def sent(self, count: int, ok: bool) -> None:
        if ok:
            self.published += count
        else:
            self.lost += count

    async def publish_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Each message encoded once; through Redis in one script call per chunk."""
        if not messages:
            return
        encoded = self.encoded(messages)
        if self._publish_many is None:
            for channel, payload in encoded:
                await self._broadcast.publish(channel, payload)
            self.published += len(encoded)
            return
        for start in range(0, len(encoded), PUBLISH_CHUNK):
            chunk = encoded[start : start + PUBLISH_CHUNK]
            try:
                await self._publish_many(args=[v for pair in chunk for v in pair])
            except Exception as exc:  # the data is committed: live updates are best effort
                self.lost += len(encoded) - start
                log.warning("could not publish %d messages: %s", len(encoded) - start, exc)
                return
            self.published += len(chunk)

    def total_subscribers(self) -> int:
        return sum(e.members() for e in self._channels.values())

    def subscriber_count(self, channel: str) -> int:
        entry = self._channels.get(channel)
        return entry.members() if entry else 0

    async def _read(self, channel: str, entry: _Channel) -> None:
        try:
            async with self._broadcast.subscribe(self._name(channel)) as subscriber:
                entry.ready.set()
                async for event in subscriber:
                    if event is None:
                        break
                    message = json.loads(event.message)  # exact: orjson reads big ints as floats
                    for queue in list(entry.queues):
                        _offer(queue, message)
                    for signal in list(entry.signals):
                        if signal.empty():  # a change already waits: this one adds nothing
                            signal.put_nowait(message)
                    if entry.groups:
                        await self._render(channel, entry, message)
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
            _end_sinks(entry)

    async def _render(self, channel: str, entry: _Channel, message: dict[str, Any]) -> None:
        """Each group renders the message once; every member gets that one payload."""
        for group in list(entry.groups.values()):
            try:
                payload = await group.render(message)
            except Exception:  # one bad rendering must not stop the channel
                log.exception("rendering a message of %s failed", channel)
                continue
            self.renders += 1
            for sink in list(group.sinks):
                sink.offer(payload)

    async def _join(self, channel: str) -> _Channel:
        """The channel's entry, its reader started and ready; call with the lock held."""
        entry = self._channels.get(channel)
        if entry is None or entry.error is not None:
            entry = _Channel()
            self._channels[channel] = entry
            entry.reader = asyncio.create_task(self._read(channel, entry))
        await entry.ready.wait()
        if entry.error is not None:
            del self._channels[channel]
            raise ConnectionError(f"cannot subscribe to {channel}: {entry.error}")
        return entry

    async def _leave(self, channel: str, entry: _Channel) -> None:
        """Drops the channel once its last member left; call with the lock held."""
        if not entry.members() and self._channels.get(channel) is entry:
            del self._channels[channel]
            if entry.reader:
                # Bounded: a stalled Redis unsubscribe must not hang the caller.
                await aio.stop(entry.reader, 2)

    @contextlib.asynccontextmanager
    async def _channel_lock(self, channel: str) -> AsyncIterator[None]:
        """One channel's joins and leaves, one at a time."""
        held = self._locks.get(channel)
        if held is None:
            held = self._locks[channel] = [asyncio.Lock(), 0]
        held[1] += 1
        try:
            async with held[0]:
                yield
        finally:
            held[1] -= 1
            if not held[1]:
                del self._locks[channel]

    @contextlib.asynccontextmanager
    async def subscribe_direct(
        self, channel: str, key: Hashable, render: Render, sink: Sink
    ) -> AsyncIterator[None]:
        """Registered on return: from then on every message of `channel` is rendered
        once per `key` (by the first member's `render`) and offered to `sink`."""
        async with self._channel_lock(channel):
            entry = await self._join(channel)
            group = entry.groups.get(key)
            if group is None:
                group = entry.groups[key] = _Group(render)
            group.sinks[sink] = None
        try:
            yield
        finally:
            async with self._channel_lock(channel):
                group.sinks.pop(sink, None)
                if not group.sinks and entry.groups.get(key) is group:
                    del entry.groups[key]
                await self._leave(channel, entry)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, *, signal: bool = False
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Registered on return: anything published afterwards is delivered. With
        `signal`, messages that arrive while one waits collapse into it (for "look
        again" notices, which never overflow)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1 if signal else self.queue_size)
        members = "signals" if signal else "queues"
        async with self._channel_lock(channel):
            entry = await self._join(channel)
            getattr(entry, members).add(queue)
        try:
            yield _drain(queue)
        finally:
            async with self._channel_lock(channel):
                getattr(entry, members).discard(queue)
                await self._leave(channel, entry)


def _end_sinks(entry: _Channel) -> None:
    for group in entry.groups.values():
        for sink in list(group.sinks):
            sink.end()


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
