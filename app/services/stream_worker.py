"""Events from Redis streams, applied exactly once by a consumer group (`questline worker`).

Producers XADD entries to `{prefix}:events:{tenant slug}`; each worker of the group
`questline` reads its share, applies a batch with one `record_events` call (published
after commit, as the API's events are; one event at a time if the database refuses the
batch: `record_batch`) and acknowledges the batch only once it has committed. Exactly
once: an entry without an idempotency key gets `stream:{entry id}`, so an entry applied
but not acknowledged (a worker killed in between) comes back as a duplicate. A refused
entry (not UTF-8, not JSON, INVALID, CONFLICT, unknown source, ...) goes to
`{stream}:rejected` with the reason and is acknowledged with its batch: it never holds
up the stream. Entries a dead worker left pending are claimed after `claim_idle_seconds`.

Redis or the database failing: nothing is acknowledged, and the worker tries again
after a capped backoff, starting with its own pending entries (the idempotency keys
make that safe); one log line per try, the traceback at debug level. The database work
of a batch is given up after `worker_db_timeout_seconds`: a database that stops
answering is an outage like the others. The tenants are read at start-up the same way,
so a worker started before its database waits for it. A stream that Redis lost with
its group (restarted without its data) is made again at once.

A stop (`stop` set) ends a blocking read at once and lets the batch in flight finish;
the worker then leaves the group of each stream where it holds no pending entry (XGROUP
DELCONSUMER), so that the names of workers gone do not pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app import aio
from app.db import redacted_url
from app.errors import ErrorCode, UserError
from app.runtime import REDIS_TIMEOUT, Runtime, opened_runtime
from app.services import board_points
from app.services.event_input import EventInput
from app.services.isolate import failure, record_batch
from app.services.stream_entries import Entry, SourceLookup, dead_letter, entry_input
from app.services.tenants import get_tenant
from app.settings import Settings
from models import Tenant

T = TypeVar("T")

log = logging.getLogger("questline.worker")

GROUP = "questline"
# The dead-letter stream keeps about this many entries (XADD MAXLEN ~).
DEAD_LETTER_MAXLEN = 100_000
PROGRESS_SECONDS = 10.0
# A tenant's row (its rules) is read again this often, as the server's cache does.
TENANT_SECONDS = 5.0
BACKOFF_FIRST, BACKOFF_CAP = 0.5, 30.0


def stream_key(prefix: str, slug: str) -> str:
    return f"{prefix}:events:{slug}"


def rejected_key(prefix: str, slug: str) -> str:
    return f"{stream_key(prefix, slug)}:rejected"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    consumer: str
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_seconds: float = 60.0


@dataclass(slots=True)
class WorkerStats:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    points: Decimal = Decimal(0)  # pointsAwarded of the events applied, exact
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, other: WorkerStats) -> None:
        self.read += other.read
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.points += other.points

    def summary(self) -> str:
        return (
            f"{self.read} entries read: {self.applied} applied, {self.duplicates} "
            f"duplicates, {self.rejected} rejected; {self.points} points awarded "
            f"in {self.elapsed:.1f} s"
        )


@dataclass(slots=True)
class _Stream:
    tenant: Tenant
    key: str
    rejected: str
    read_at: float = field(default_factory=time.monotonic)  # when `tenant` was read


class DatabaseTimeout(TimeoutError):
    """Database work given up after `worker_db_timeout_seconds`."""


class Bounded:
    """Database work, each piece in a task of its own given up after `limit` seconds.

    A database that accepts and never answers (a stalled connection, packets dropped)
    would hold the worker for ever, and its stop with it. A piece given up is cancelled
    and not awaited: asyncpg waits for the server to take a cancellation before it lets
    the connection go, which a stalled server never does (the pool's close terminates
    it). Its own task also keeps Tortoise's connection context to itself: a transaction
    cancelled as it begins leaves the context naming it, after which the task that ran
    it can no longer close Tortoise."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._given_up: set[asyncio.Task[Any]] = set()  # referenced until they end

    async def __call__(self, work: Coroutine[Any, Any, T], what: str) -> T:
        task = asyncio.create_task(work)
        try:
            await asyncio.wait({task}, timeout=self.limit)
        finally:
            if not task.done():  # timed out, or the caller was cancelled
                task.cancel()
                self._given_up.add(task)
                task.add_done_callback(_forget(self._given_up))
        if not task.done():
            raise DatabaseTimeout(f"the database did not answer {what} within {self.limit:g} s")
        return task.result()


def _forget(tasks: set[asyncio.Task[Any]]) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was given up, its failure is not news

    return done


@contextlib.asynccontextmanager
async def worker_runtime(
    settings: Settings, block_ms: int, name: str | None = None
) -> AsyncIterator[tuple[Runtime, Redis]]:
    """The Runtime as the server's lifespan builds it (`opened_runtime`: Redis boards, the
    hub on Redis) with the PostgreSQL board sweep, and a client for the streams whose
    reads may block (`name`: its CLIENT SETNAME, which CLIENT LIST shows)."""
    streams = Redis.from_url(
        settings.redis_url,
        socket_timeout=block_ms / 1000 + REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        client_name=name,
    )
    try:
        # Redis down: the hub says so and catches up when it is back.
        async with opened_runtime(settings) as rt:
            sweep: asyncio.Task[None] | None = None
            if settings.is_postgres:  # board points a crashed batch left pending
                sweep = asyncio.create_task(board_points.settle_forever(rt.boards, rt.hub))
            try:
                yield rt, streams
            finally:
                if sweep is not None:
                    await aio.stop(sweep, 2)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(streams.aclose(), 2)


def consumer_client_name(consumer: str) -> str:
    """The stream client's name in CLIENT LIST (no spaces, which Redis refuses)."""
    return "questline-worker:" + "".join("_" if c.isspace() else c for c in consumer)


async def run_worker(
    settings: Settings,
    slugs: Sequence[str] | None,
    options: WorkerOptions,
    stop: asyncio.Event,
) -> WorkerStats:
    """Consumes the streams of `slugs` (None: every tenant there is now) until `stop`."""
    bounded, started = Bounded(settings.worker_db_timeout_seconds), WorkerStats()
    tenants = await _tenants(settings, slugs, bounded, stop)
    if tenants is None:  # stopped before the database answered
        return started
    name = consumer_client_name(options.consumer)
    async with worker_runtime(settings, options.block_ms, name) as (rt, redis):
        streams = [
            _Stream(
                t,
                stream_key(settings.redis_prefix, t.slug),
                rejected_key(settings.redis_prefix, t.slug),
            )
            for t in tenants
        ]
        return await StreamWorker(rt, redis, streams, options, stop, bounded).run()


async def _tenants(
    settings: Settings, slugs: Sequence[str] | None, bounded: Bounded, stop: asyncio.Event
) -> list[Tenant] | None:
    """The tenants to serve, read once the database answers (None: stopped before). A
    worker started before its database waits for it as it waits out an outage later:
    the same backoff, one line per try. An unknown tenant is a UserError at once."""

    async def read() -> list[Tenant]:
        if slugs is None:
            return await Tenant.all().order_by("slug")
        return [await get_tenant(slug) for slug in dict.fromkeys(slugs)]

    delay = BACKOFF_FIRST
    while not stop.is_set():
        try:
            tenants = await bounded(read(), "the read of the tenants")
        except UserError:
            raise
        except Exception as exc:
            log.warning(
                "database %s unavailable (%s); retrying in %.1f s: is it running and "
                "migrated (questline migrate), and is DATABASE_URL right?",
                redacted_url(settings.database_url),
                failure(exc),
                delay,
            )
            log.debug("the read of the tenants failed", exc_info=exc)
        else:
            if not tenants:
                raise UserError(ErrorCode.NOT_FOUND, "there are no tenants")
            return tenants
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, BACKOFF_CAP)
    return None


class StreamWorker:
    def __init__(
        self,
        rt: Runtime,
        redis: Redis,
        streams: list[_Stream],
        options: WorkerOptions,
        stop: asyncio.Event,
        bounded: Bounded | None = None,
    ) -> None:
        self.rt, self.redis, self.options, self.stop = rt, redis, options, stop
        self.bounded = bounded or Bounded(rt.settings.worker_db_timeout_seconds)
        self.streams = {s.key: s for s in streams}
        self.stats = WorkerStats()
        self._logged = (time.monotonic(), 0)  # when progress was last logged, at which count

    async def run(self) -> WorkerStats:
        log.info(
            "worker %s: reading %s as group %s",
            self.options.consumer,
            ", ".join(self.streams),
            GROUP,
        )
        delay, ready, mine, next_claim = BACKOFF_FIRST, False, True, 0.0
        recreated = False  # the groups were made again after a NOGROUP, not yet used
        claim_every = max(1.0, self.options.claim_idle_seconds / 2)
        while not self.stop.is_set():
            try:
                if not ready:
                    await self._create_groups()
                    ready = True
                if mine:  # a restart under the same name, or a batch that failed
                    await self._own_pending()
                    mine = False
                if time.monotonic() >= next_claim:
                    await self._claim()
                    next_claim = time.monotonic() + claim_every
                if not self.stop.is_set():
                    await self._read_new()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the stream (restarted without saving)
                    ready = False
                    if not recreated:  # made again at once; a second NOGROUP backs off
                        recreated = True
                        log.warning(
                            "a stream or its group is gone (%s): Redis lost them (restarted "
                            "without its data?); creating them again",
                            failure(exc),
                        )
                        continue
                log.warning("Redis refused (%s); retrying in %.1f s", failure(exc), delay)
            except RedisError as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", failure(exc), delay)
            except Exception as exc:
                log.warning(
                    "a batch failed, not acknowledged (%s); retrying in %.1f s",
                    failure(exc),
                    delay,
                )
                log.debug("the batch's failure", exc_info=exc)
            else:
                delay, recreated = BACKOFF_FIRST, False
                self._progress()
                continue
            mine = True  # what was read and not acknowledged is pending: ours to redo
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            delay = min(delay * 2, BACKOFF_CAP)
        await self._leave()
        return self.stats

    # ------------------------------------------------------------------ reading

    async def _create_groups(self) -> None:
        for key in self.streams:
            try:  # from the start: entries added before any worker ran count too
                await self.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _own_pending(self) -> None:
        """Entries delivered to this consumer and never acknowledged."""
        for stream in self.streams.values():
            after = "0"
            while not self.stop.is_set():
                reply = await self.redis.xreadgroup(
                    GROUP, self.options.consumer, {stream.key: after}, self.options.batch_size
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                await self._handle(stream, entries)
                after = entries[-1][0]

    async def _claim(self) -> None:
        """Entries other consumers left pending longer than claim_idle_seconds."""
        idle = int(self.options.claim_idle_seconds * 1000)
        for stream in self.streams.values():
            start: bytes | str = "0-0"
            while not self.stop.is_set():
                start, entries, *_ = await self.redis.xautoclaim(
                    stream.key, GROUP, self.options.consumer, idle, start, self.options.batch_size
                )
                if entries:
                    log.info("claimed %d entries left pending in %s", len(entries), stream.key)
                    await self._handle(stream, entries)
                if start in (b"0-0", "0-0"):
                    break
            await self._trim(stream)

    async def _read_new(self) -> None:
        """Waits up to block_ms for new entries, or until a stop: the blocking read is
        cancelled then (redis-py drops its connection), not waited out."""
        read = asyncio.create_task(
            self.redis.xreadgroup(
                GROUP,
                self.options.consumer,
                dict.fromkeys(self.streams, ">"),
                self.options.batch_size,
                self.options.block_ms,
            )
        )
        stopped = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            read.cancel()  # nothing if it is done
            await asyncio.wait({read}, timeout=REDIS_TIMEOUT)
        if read.cancelled() or not read.done():
            # Redis may have delivered entries as the read was cancelled: pending on
            # this consumer (which had none before the read), the batch in flight.
            await self._delivered_meanwhile()
            return
        # Delivered to us: handled even when a stop came meanwhile (the batch in flight).
        for key, entries in read.result() or []:
            await self._handle(self.streams[key.decode()], entries)

    async def _delivered_meanwhile(self) -> None:
        for stream in self.streams.values():
            reply = await self.redis.xreadgroup(
                GROUP, self.options.consumer, {stream.key: "0"}, self.options.batch_size
            )
            entries = reply[0][1] if reply else []
            if entries:
                await self._handle(stream, entries)

    async def _leave(self) -> None:
        """On a clean stop, this consumer leaves the group of each stream where it holds
        no pending entry: a consumer is otherwise kept for ever, one more name per worker
        run (hostname-pid). One that holds some stays, for a restart under its name or
        another worker's claim. Not done when the worker is killed."""
        for key in self.streams:
            try:
                consumers = await self.redis.xinfo_consumers(key, GROUP)
                mine = [c for c in consumers if c["name"] == self.options.consumer.encode()]
                if not mine:
                    continue
                if mine[0]["pending"]:  # only this worker gives it entries: none now
                    log.info(
                        "worker %s stays in the group of %s: it holds %d pending entries",
                        self.options.consumer,
                        key,
                        mine[0]["pending"],
                    )
                    continue
                await self.redis.xgroup_delconsumer(key, GROUP, self.options.consumer)
            except RedisError as exc:
                log.warning(
                    "worker %s could not leave the group of %s (%s)",
                    self.options.consumer,
                    key,
                    failure(exc),
                )

    async def _trim(self, stream: _Stream) -> None:
        """Drops the entries that every group of the stream has acknowledged: those
        before its oldest pending one, or after none, up to its last delivered one."""
        floor: tuple[int, int] | None = None
        for group in await self.redis.xinfo_groups(stream.key):
            if group["pending"]:
                bound = _id((await self.redis.xpending(stream.key, group["name"]))["min"])
            else:
                ms, seq = _id(group["last-delivered-id"])
                bound = (ms, seq + 1)
            floor = bound if floor is None else min(floor, bound)
        if floor is not None and floor > (0, 1):
            await self.redis.xtrim(stream.key, minid=f"{floor[0]}-{floor[1]}", approximate=False)

    # ------------------------------------------------------------------ applying

    async def _handle(self, stream: _Stream, entries: list[Entry]) -> None:
        """Applies a batch and acknowledges it (rejected entries dead-lettered) once it
        has committed; raises, acknowledging nothing, when it could not be applied (or
        the database did not answer within worker_db_timeout_seconds)."""
        done, rejects = await self.bounded(self._apply(stream, entries), "a batch")
        async with self.redis.pipeline(transaction=True) as pipe:  # in one MULTI/EXEC
            for index in sorted(rejects):
                entry_id, fields = entries[index]
                pipe.xadd(
                    stream.rejected,
                    dead_letter(entry_id, fields, rejects[index]),
                    maxlen=DEAD_LETTER_MAXLEN,
                    approximate=True,
                )
            pipe.xack(stream.key, GROUP, *(entry_id for entry_id, _ in entries))
            await pipe.execute()
        self.stats.add(done)

    async def _apply(
        self, stream: _Stream, entries: list[Entry]
    ) -> tuple[WorkerStats, dict[int, UserError]]:
        """The database's part of a batch: what it applied, and the entries refused."""
        await self._refresh(stream)
        done = WorkerStats(read=len(entries))
        inputs: list[EventInput] = []
        where: list[tuple[int, str]] = []  # each input's entry and its field ("event"...)
        rejects: dict[int, UserError] = {}
        sources = SourceLookup(stream.tenant)
        for index, (entry_id, fields) in enumerate(entries):
            if not fields:  # deleted from the stream meanwhile: nothing to apply
                continue
            try:
                at, item = await entry_input(entry_id.decode(), fields, sources)
            except UserError as exc:
                rejects[index] = exc
                continue
            inputs.append(item)
            where.append((index, at))
        results = await record_batch(self.rt, stream.tenant, inputs) if inputs else []
        for (index, at), result in zip(where, results, strict=True):
            if isinstance(result, UserError):
                rejects[index] = result.at(at)
            elif result.duplicate:
                done.duplicates += 1
            else:
                done.applied += 1
                done.points += result.points
        done.rejected = len(rejects)
        return done, rejects

    async def _refresh(self, stream: _Stream) -> None:
        """The tenant's row read again now and then: an admin may change its rules."""
        if time.monotonic() - stream.read_at < TENANT_SECONDS:
            return
        tenant = await Tenant.get_or_none(id=stream.tenant.id)
        stream.tenant = tenant or stream.tenant
        stream.read_at = time.monotonic()

    def _progress(self) -> None:
        at, count = self._logged
        now = time.monotonic()
        if now - at >= PROGRESS_SECONDS and self.stats.read != count:
            rate = (self.stats.read - count) / (now - at)
            log.info("worker %s: %s (%.0f/s)", self.options.consumer, self.stats.summary(), rate)
            self._logged = (now, self.stats.read)


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


__all__ = [
    "GROUP",
    "Bounded",
    "DatabaseTimeout",
    "StreamWorker",
    "WorkerOptions",
    "WorkerStats",
    "consumer_client_name",
    "failure",
    "rejected_key",
    "run_worker",
    "stream_key",
    "worker_runtime",
]
