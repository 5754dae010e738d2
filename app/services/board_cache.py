"""Leaderboards in Redis sorted sets: a copy of the period score rows that serves reads.

PostgreSQL (or SQLite) is the record; with REDIS_URL set each tenant-wide public board
(tenant, period, key) has three keys:

- `…:z`, a sorted set: score = −points in cents, member = reached-at microseconds and the
  player's primary key, both zero-padded. Ascending order is then points descending,
  earlier to reach them first, lower player id first: exactly the SQL order, so the same
  data never gives two orders. Cents are exact in a double up to 2^53.
- `…:h`, a hash: player pk -> member (to move a player whose score grew).
- `…:s`, the state: `building` while a rebuild runs (writes apply, reads go to SQL),
  `ready` after. A missing state means the set is missing or incomplete: reads go to SQL
  and one process rebuilds it from the record (`SET NX` on the state is the lock).
  A ready board always has as many members as hash entries (every write changes both
  in one script); when it has not (one key evicted or deleted), reads and writes drop
  all three keys, and it is rebuilt.

Writes carry absolute values read back from the committed rows, and a set only ever
takes a higher score for a player (period points only grow), so writes arriving out of
order, twice, or racing a rebuild all end at the record's value. Keys of closed periods
expire `retention` days after the period ends. Scoped boards (team, segment, kind) are
served from SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise

from app.engine import periods
from app.services.board_scripts import APPLY, RANKS, READ
from app.services.common import zone

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("questline.boards")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 5_000
RANKS_CHUNK = 1_000  # players per RANKS call
# A rebuild refreshes its `building` lock this often; a crashed rebuilder's lock lapses.
BUILD_LOCK_SECONDS = 120


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """A committed period score row, as the record holds it."""

    tenant_id: int
    player_id: int
    period: str
    period_key: str
    points: Decimal
    reached_at: datetime
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class Ranked:
    player_id: int
    rank: int  # 1-based
    points: Decimal


@dataclass(frozen=True, slots=True)
class CachedPage:
    total: int
    offset: int
    entries: list[Ranked]
    me: Ranked | None
    # player pk -> (rank, points) in the previous period; None: look it up elsewhere.
    previous: dict[int, tuple[int, Decimal]] | None


def member(row: Any) -> str:
    """The sorted set member of a score row (anything with reached_at and player_id)."""
    reached = row.reached_at if row.reached_at.tzinfo else row.reached_at.replace(tzinfo=UTC)
    micros = (reached - EPOCH) // timedelta(microseconds=1)
    return f"{micros:017d}{row.player_id:012d}"


def score(points: Decimal) -> int:
    """Negative cents: ascending order is most points first (points have 2 places)."""
    return -int(points.scaleb(2).to_integral_value())


def points_of(raw: bytes | str | float) -> Decimal:
    return Decimal(-round(float(raw))) / 100


def pk_of(raw: bytes | str) -> int:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return int(text[-12:])


@dataclass
class BoardCache:
    redis: Redis
    prefix: str
    retention_days: int = 40
    stats: dict[str, int] = field(
        default_factory=lambda: {
            "reads": 0,
            "fallbacks": 0,
            "writes": 0,
            "lost_writes": 0,
            "rebuilds": 0,
        }
    )
    _apply: Any = field(init=False)
    _read: Any = field(init=False)
    _ranks: Any = field(init=False)
    _rebuilding: dict[tuple[int, str, str], asyncio.Task[int]] = field(default_factory=dict)
    # Boards whose writes Redis missed: their state is dropped once Redis answers again,
    # so they rebuild from the record instead of serving a stale copy.
    _stale: set[tuple[int, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._apply = self.redis.register_script(APPLY)
        self._read = self.redis.register_script(READ)
        self._ranks = self.redis.register_script(RANKS)

    def keys(self, tenant_id: int, period: str, key: str) -> list[str]:
        base = f"{self.prefix}:lb:t{tenant_id}:{period}:{key}"
        return [f"{base}:z", f"{base}:h", f"{base}:s"]

    def expire_at(self, period: str, key: str, timezone: str) -> int:
        """When a board's keys go: `retention` days after its period closes (0: never)."""
        end = periods.end_day(period, key)
        if end is None:
            return 0
        closes = datetime.combine(end, time(0), tzinfo=zone(timezone))
        return int((closes + timedelta(days=self.retention_days)).timestamp())

    # ------------------------------------------------------------------ writes

    async def apply(self, rows: Sequence[ScoreRow], timezone: str) -> None:
        """After commit: the rows' absolute scores into their boards. Best effort: a
        failure marks the boards stale (rebuilt later) and never fails the caller."""
        boards: dict[tuple[int, str, str], list[Any]] = {}
        for row in rows:
            boards.setdefault((row.tenant_id, row.period, row.period_key), []).append(row)
        await self._write(
            {board: (len(some), _packed(some, _hidden(some))) for board, some in boards.items()},
            timezone,
        )

    async def apply_scores(
        self, tenant_id: int, timezone: str, scores: Sequence[Any], hidden: Container[int]
    ) -> None:
        """`apply` for one tenant's written score rows (ingest_rows.ScoreTotal, without
        tenant or privacy): the players in `hidden` leave the public boards."""
        await self.apply_packed(tenant_id, timezone, pack_scores(scores, hidden))

    async def apply_packed(
        self,
        tenant_id: int,
        timezone: str,
        boards: Sequence[Packed],
        announce: Sequence[tuple[str, bytes]] = (),
    ) -> bool:
        """`apply` for rows already packed per board (PostgreSQL packs a settlement's).
        `announce`: Redis pub/sub (channel, payload) pairs to publish in the same call,
        after the writes (Hub.encoded). False when Redis failed (nothing published)."""
        return await self._write(
            {(tenant_id, b.period, b.period_key): (b.count, b.packed) for b in boards},
            timezone,
            announce,
        )

    async def _write(
        self,
        boards: dict[tuple[int, str, str], tuple[int, str]],
        tz: str,
        announce: Sequence[tuple[str, bytes]] = (),
    ) -> bool:
        if not boards and not announce:
            return True
        count = sum(n for n, _ in boards.values())
        keys: list[str] = []
        args: list[Any] = []
        for (tenant_id, period, key), (_, packed) in boards.items():
            keys.extend(self.keys(tenant_id, period, key))
            args.extend((self.expire_at(period, key, tz), packed))
        for channel, payload in announce:
            args.extend((channel, payload))
        try:
            await self._drop_stale()
            await self._apply(keys=keys, args=args)
        except Exception as exc:  # Redis down: the record has it; the copy is now stale
            self.stats["lost_writes"] += count
            self._stale.update(boards)
            log.warning("leaderboard cache write failed (%s): boards will rebuild", exc)
            return False
        self.stats["writes"] += count
        return True

    async def _drop_stale(self) -> None:
        if not self._stale:
            return
        stale = list(self._stale)
        async with self.redis.pipeline(transaction=False) as pipe:
            for board in stale:
                pipe.delete(self.keys(*board)[2])
            await pipe.execute()
        self._stale.difference_update(stale)

    # ------------------------------------------------------------------ reads

    async def page(
        self,
        tenant_id: int,
        timezone: str,
        period: str,
        key: str,
        previous_key: str | None,
        *,
        offset: int,
        count: int,
        around: int | None,
    ) -> CachedPage | None:
        """The page from Redis, or None when SQL must answer (the board is not ready,
        Redis is down, or the around player is not on the public board)."""
        keys = self.keys(tenant_id, period, key)
        keys += self.keys(tenant_id, period, previous_key or "-")
        args = [offset, count, "" if around is None else around]
        raw = await self._run_read(self._read, keys, args, (tenant_id, timezone, period, key))
        if raw is None:
            return None
        total, rank, start, flat, before, my_score = raw
        if rank == -2 or (total == 0 and around is None):
            # Not on the public board (hidden or no score), or an empty set: the record
            # knows (an emptied set is found there, and rebuilt).
            self.stats["fallbacks"] += 1
            if total == 0:
                self._check_empty(tenant_id, timezone, period, key)
            return None
        if previous_key is not None and before in (b"", ""):
            self.ensure(tenant_id, timezone, period, previous_key)
        entries = [
            Ranked(pk_of(flat[i]), start + i // 2 + 1, points_of(flat[i + 1]))
            for i in range(0, len(flat), 2)
        ]
        me = None
        if around is not None:
            me = next((e for e in entries if e.player_id == around), None)
            if me is None:  # an empty page (first: 0)
                me = Ranked(around, rank + 1, points_of(my_score))
        previous = None
        if isinstance(before, list):
            ids = [e.player_id for e in entries] + ([around] if around is not None else [])
            previous = {
                pk: (int(before[2 * n]) + 1, points_of(before[2 * n + 1]))
                for n, pk in enumerate(ids)
                if int(before[2 * n]) >= 0
            }
        self.stats["reads"] += 1
        return CachedPage(total, start, entries, me, previous)

    async def places(
        self, tenant_id: int, timezone: str, period: str, key: str, pks: Sequence[int]
    ) -> dict[int, Ranked] | None:
        """The 1-based ranks and points of these players on a public board, RANKS_CHUNK
        players per script call (each call holds Redis for its players' lookups only).
        Players not on the public board (hidden, or without a score) are left out. None
        when SQL must answer (the board is not ready, or Redis failed)."""
        keys = self.keys(tenant_id, period, key)
        found: dict[int, Ranked] = {}
        for start in range(0, len(pks), RANKS_CHUNK):
            chunk = pks[start : start + RANKS_CHUNK]
            raw = await self._run_read(self._ranks, keys, chunk, (tenant_id, timezone, period, key))
            if raw is None:
                return None
            if int(raw[0]) == 0:  # an emptied set is found in the record (and rebuilt)
                self._check_empty(tenant_id, timezone, period, key)
            for n, pk in enumerate(chunk):
                rank = int(raw[1 + 2 * n])
                if rank >= 0:
                    found[pk] = Ranked(pk, rank + 1, points_of(raw[2 + 2 * n]))
        self.stats["reads"] += 1
        return found

    async def _run_read(
        self, script: Any, keys: list[str], args: Sequence[Any], board: tuple[int, str, str, str]
    ) -> Any:
        """A read script's answer, or None when SQL must answer: Redis failed, or the
        board (tenant id, timezone, period, key) is missing or being built (one process
        then rebuilds it)."""
        try:
            await self._drop_stale()
            raw = await script(keys=keys, args=args)
        except Exception as exc:
            log.warning("leaderboard cache read failed (%s): served from SQL", exc)
            self.stats["fallbacks"] += 1
            return None
        if raw is None:
            self.stats["fallbacks"] += 1
            self.ensure(*board)
        return raw

    # ------------------------------------------------------------------ rebuilds

    def ensure(self, tenant_id: int, timezone: str, period: str, key: str) -> None:
        """Starts a rebuild of a missing board in the background (once per process; the
        state lock makes it once across processes)."""
        board = (tenant_id, period, key)
        if board in self._rebuilding:
            return
        task = asyncio.create_task(self._rebuild_quietly(tenant_id, timezone, period, key))
        self._rebuilding[board] = task
        task.add_done_callback(lambda _: self._rebuilding.pop(board, None))

    def _check_empty(self, tenant_id: int, timezone: str, period: str, key: str) -> None:
        board = (tenant_id, period, key)
        if board in self._rebuilding:
            return

        async def check() -> int:
            if await record_count(tenant_id, period, key) == 0:
                return 0
            log.warning("leaderboard %s is empty in Redis but not in the record", board)
            await self.redis.delete(self.keys(tenant_id, period, key)[2])
            return await self.rebuild(tenant_id, timezone, period, key, lock=True)

        task = asyncio.create_task(_quietly(check()))
        self._rebuilding[board] = task
        task.add_done_callback(lambda _: self._rebuilding.pop(board, None))

    async def _rebuild_quietly(self, tenant_id: int, timezone: str, period: str, key: str) -> int:
        return await _quietly(self.rebuild(tenant_id, timezone, period, key, lock=True))

    async def close(self) -> None:
        """Stops background rebuilds (a later read starts them again)."""
        tasks = list(self._rebuilding.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_rebuilds(self) -> None:
        """Waits for the background rebuilds this process started (tests, shutdown)."""
        while self._rebuilding:
            await asyncio.gather(*list(self._rebuilding.values()), return_exceptions=True)

    async def rebuild(
        self,
        tenant_id: int,
        timezone: str,
        period: str,
        key: str,
        *,
        lock: bool = False,
        progress: Callable[[int], Awaitable[None] | None] | None = None,
    ) -> int:
        """Restores one board from the record; returns the players written.

        With `lock`, only when no state is set (a missing board), taking the state as the
        lock; without, the board is dropped and rebuilt whatever its state (the CLI).
        Writes that commit meanwhile apply too (the state exists), and the higher score
        wins, so nothing committed during the rebuild is lost."""
        zset, hash_, state = self.keys(tenant_id, period, key)
        if lock:
            if not await self.redis.set(state, "building", nx=True, ex=BUILD_LOCK_SECONDS):
                return 0
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(zset, hash_)
                pipe.set(state, "building", ex=BUILD_LOCK_SECONDS)
                await pipe.execute()
        expire_at = self.expire_at(period, key, timezone)
        written = 0
        try:
            async for chunk in record_rows(tenant_id, period, key):
                await self._apply(
                    keys=[zset, hash_, state], args=[expire_at, _packed(chunk, _hidden(chunk))]
                )
                await self.redis.expire(state, BUILD_LOCK_SECONDS)
                written += len(chunk)
                if progress is not None:
                    done = progress(len(chunk))
                    if done is not None:
                        await done
        except BaseException:
            # Not ready: let go of the lock so that the next read starts again.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.redis.delete(state))
            raise
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(state, "ready")
            if expire_at:
                for name in (zset, hash_, state):
                    pipe.expireat(name, expire_at)
            await pipe.execute()
        self.stats["rebuilds"] += 1
        log.info("leaderboard t%s %s %s rebuilt: %d players", tenant_id, period, key, written)
        return written


@dataclass(frozen=True, slots=True)
class Packed:
    """One board's rows in APPLY's form (`_packed`): `count` rows as JSON text."""

    period: str
    period_key: str
    count: int
    packed: str


def pack_scores(scores: Iterable[Any], hidden: Container[int]) -> list[Packed]:
    """Written score rows (with period, period_key, player_id, points, reached_at), packed
    per board; players in `hidden` get an empty member (off the public boards)."""
    boards: dict[tuple[str, str], list[Any]] = {}
    for row in scores:
        boards.setdefault((row.period, row.period_key), []).append(row)
    return [
        Packed(period, key, len(rows), _packed(rows, hidden))
        for (period, key), rows in boards.items()
    ]


def _hidden(rows: Iterable[ScoreRow]) -> set[int]:
    return {row.player_id for row in rows if row.hidden}


def _packed(rows: Iterable[Any], hidden: Container[int]) -> str:
    """APPLY's rows: (pk, score, member) triples in one flat JSON array of strings. A
    batch's rows share a few reached-at instants: each one's member prefix is made once.
    Players in `hidden` get an empty member."""
    out: list[str] = []
    prefixes: dict[datetime, str] = {}
    for row in rows:
        pk = row.player_id
        if pk in hidden:
            out += (str(pk), str(score(row.points)), "")
            continue
        prefix = prefixes.get(row.reached_at)
        if prefix is None:
            prefix = prefixes[row.reached_at] = member(row)[:-12]
        out += (str(pk), str(score(row.points)), f"{prefix}{pk:012d}")
    return json.dumps(out, separators=(",", ":"))


async def _quietly(work: Awaitable[int]) -> int:
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("leaderboard rebuild failed (%s)", exc)
        return 0


# ---------------------------------------------------------------------- the record


def _marks(postgres: bool, count: int, start: int = 1) -> list[str]:
    return [f"${n}" if postgres else "?" for n in range(start, start + count)]


async def record_rows(tenant_id: int, period: str, key: str, chunk: int = CHUNK):
    """The public board's rows from the record, in chunks by player id (keyset)."""
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    a, b, c, d, e = _marks(postgres, 5)
    after = 0
    while True:
        rows = await conn.execute_query_dict(
            "SELECT s.player_id, s.points, s.reached_at FROM period_score s "
            "JOIN player p ON p.id = s.player_id "
            f"WHERE s.tenant_id = {a} AND s.period = {b} AND s.period_key = {c} "
            f"AND p.hidden_from_boards = {d} AND s.player_id > {e} "
            f"ORDER BY s.player_id LIMIT {int(chunk)}",
            [tenant_id, period, key, False, after],
        )
        if not rows:
            return
        yield [
            ScoreRow(
                tenant_id,
                r["player_id"],
                period,
                key,
                Decimal(str(r["points"])),
                _instant(r["reached_at"]),
            )
            for r in rows
        ]
        after = rows[-1]["player_id"]


async def record_count(tenant_id: int, period: str, key: str) -> int:
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    a, b, c, d = _marks(postgres, 4)
    rows = await conn.execute_query_dict(
        "SELECT COUNT(*) AS n FROM period_score s JOIN player p ON p.id = s.player_id "
        f"WHERE s.tenant_id = {a} AND s.period = {b} AND s.period_key = {c} "
        f"AND p.hidden_from_boards = {d}",
        [tenant_id, period, key, False],
    )
    return int(rows[0]["n"])


async def player_rows(tenant_id: int, player_id: int, hidden: bool) -> list[ScoreRow]:
    """All of a player's score rows (to move them in or out of the public boards)."""
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    a, b = _marks(postgres, 2)
    rows = await conn.execute_query_dict(
        "SELECT period, period_key, points, reached_at FROM period_score "
        f"WHERE tenant_id = {a} AND player_id = {b}",
        [tenant_id, player_id],
    )
    return [
        ScoreRow(
            tenant_id,
            player_id,
            r["period"],
            r["period_key"],
            Decimal(str(r["points"])),
            _instant(r["reached_at"]),
            hidden,
        )
        for r in rows
    ]


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
