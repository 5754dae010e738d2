"""The ingest hot path in plain SQL: one prepared statement per step, both dialects.

The ORM builds a fresh SQL string for every query, which cost more than a millisecond
per event (profiled); these statements are built once per shape and, on PostgreSQL,
prepared once per connection by asyncpg. Values go in as Python objects (Tortoise
registers sqlite3 adapters for Decimal, date and datetime); SQLite gives text back, so
reads convert.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from orjson import Fragment
from tortoise.timezone import UTC

from app.codec import dumps
from app.services.board_cache import Packed

WALLET_COLUMNS = (
    "player_id",
    "balance",
    "lifetime_earned",
    "level",
    "streak_current",
    "streak_best",
    "last_active_day",
    "last_event_at",
)


@dataclass(slots=True)
class WalletRow:
    player_id: int
    balance: Decimal
    lifetime_earned: Decimal
    level: int
    streak_current: int
    streak_best: int
    last_active_day: date | None
    last_event_at: datetime | None

    def state_values(self) -> list[Any]:
        """The columns a batch writes back, in WALLET_COLUMNS order after player_id."""
        return [
            self.balance,
            self.lifetime_earned,
            self.level,
            self.streak_current,
            self.streak_best,
            self.last_active_day,
            self.last_event_at,
        ]


@dataclass(slots=True)
class DayRow:
    player_id: int
    day: date
    events: int
    earned: Decimal


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class IngestStore:
    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def _marks(self, count: int, start: int = 1) -> str:
        return _marks(self.postgres, count, start)

    async def _rows(self, sql: str, values: Sequence[Any]) -> list[Any]:
        _, rows = await self.conn.execute_query(sql, list(values))
        return rows

    def _latest(self, stored: str, new: str) -> str:
        """The later of two instants. PostgreSQL settles board points after commit, in any
        order; SQLite writes them in the batch's own transaction, one writer at a time."""
        return f"GREATEST({stored}, {new})" if self.postgres else new

    def _in(self, column: str, values: Sequence[Any], start: int, pg_type: str) -> str:
        """`column IN (the values)`: on PostgreSQL `= ANY` of one array parameter, so the
        statement text (and asyncpg's prepared statement) is the same for any number of
        values. With IN lists every batch size was a new statement to prepare, and the
        coalesced single events come in every size."""
        if self.postgres:
            return f"{column} = ANY(${start}::{pg_type}[])"
        return f"{column} IN ({self._marks(len(values), start)})"

    def _list(self, values: Sequence[Any]) -> list[Any]:
        """The parameters of one `_in`: a single array on PostgreSQL, spread on SQLite."""
        return [list(values)] if self.postgres else list(values)

    async def players(self, tenant_id: int, external_ids: Sequence[str]) -> list[Any]:
        sql = (
            "SELECT id, external_id, kind, segment, timezone, attributes, hidden_from_boards "
            f"FROM player WHERE tenant_id = {self._marks(1)} AND "
            f"{self._in('external_id', external_ids, 2, 'text')}"
        )
        rows = await self._rows(sql, [tenant_id, *self._list(external_ids)])
        return [_player_row(r) for r in rows]

    async def open_batch(
        self, tenant_id: int, keys: Sequence[str], external_ids: Sequence[str], now: datetime
    ) -> tuple[list[str], list[Any], bool]:
        """PostgreSQL, the first statement of a batch: the idempotency keys already
        stored, the players found and, when every one of them exists, their wallets
        created where missing and locked in player order (as `lock_wallets`). Returns
        (hits, players, locked); when some player is missing nothing is locked, and the
        caller creates the players and then locks them all with `lock_wallets`."""
        wanted = sorted(set(external_ids))
        rows = await self._rows(OPEN_BATCH_POSTGRES, [tenant_id, wanted, list(keys), now])
        hits = [r["external_id"] for r in rows if r["id"] is None]
        players = [_player_row(r) for r in rows if r["id"] is not None]
        return hits, players, len(players) == len(wanted)

    async def create_players(self, tenant_id: int, external_ids: Sequence[str]) -> None:
        sql = (
            "INSERT INTO player (tenant_id, external_id, kind, attributes, hidden_from_boards, "
            f"created_at) VALUES ({self._marks(6)}) "
            "ON CONFLICT (tenant_id, external_id) DO NOTHING"
        )
        now = datetime.now(UTC)
        await self.conn.execute_many(
            sql, [[tenant_id, pid, "CUSTOMER", "{}", False, now] for pid in external_ids]
        )

    async def idempotency_hits(self, tenant_id: int, keys: Sequence[str]) -> list[str]:
        sql = (
            f"SELECT idempotency_key FROM event WHERE tenant_id = {self._marks(1)} "
            f"AND {self._in('idempotency_key', keys, 2, 'text')}"
        )
        rows = await self._rows(sql, [tenant_id, *self._list(keys)])
        return [r["idempotency_key"] for r in rows]

    async def wallets(self, player_ids: Sequence[int]) -> dict[int, WalletRow]:
        """The wallets as they stand, unlocked (SQLite writes one transaction at a time;
        PostgreSQL batches lock theirs and read them with `read_state`)."""
        sql = (
            f"SELECT {', '.join(WALLET_COLUMNS)} FROM wallet WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')}"
        )
        return _wallet_rows(await self._rows(sql, self._list(player_ids)))

    async def lock_wallets(self, tenant_id: int, player_ids: Sequence[int], now: datetime) -> None:
        """PostgreSQL: the players' wallets, created where missing and locked in one
        statement that takes them in player order (`read_state` reads them). Locking the
        existing wallets first and creating the missing ones after could deadlock: two
        batches would each hold a wallet the other was about to create or lock (seen
        with four batches of 500)."""
        await self.conn.execute_query(LOCK_WALLETS_POSTGRES, [sorted(player_ids), tenant_id, now])

    async def create_wallets(
        self, tenant_id: int, player_ids: Iterable[int], now: datetime
    ) -> None:
        sql = (
            f"INSERT INTO wallet (player_id, tenant_id, balance, lifetime_earned, level, "
            f"streak_current, streak_best, updated_at) VALUES ({self._marks(8)}) "
            f"ON CONFLICT (player_id) DO NOTHING"
        )
        await self.conn.execute_many(
            sql, [[pid, tenant_id, Decimal(0), Decimal(0), 1, 0, 0, now] for pid in player_ids]
        )

    async def read_state(
        self, player_ids: Sequence[int], days: Sequence[date]
    ) -> tuple[dict[int, WalletRow], dict[tuple[int, date], DayRow]]:
        """PostgreSQL, once the wallets are locked: the wallets and the players' `days`
        in one statement (a new statement, so it sees what the batches it waited for
        committed)."""
        rows = await self.conn.execute_query_dict(
            READ_STATE_POSTGRES, [sorted(player_ids), list(days)]
        )
        wallets = _wallet_rows(r for r in rows if r["day"] is None)
        return wallets, _day_rows(r for r in rows if r["day"] is not None)

    async def days(
        self, player_ids: Sequence[int], days: Sequence[date]
    ) -> dict[tuple[int, date], DayRow]:
        second = 2 if self.postgres else len(player_ids) + 1
        sql = (
            f"SELECT player_id, day, events, earned FROM player_day WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')} AND "
            f"{self._in('day', days, second, 'date')}"
        )
        return _day_rows(await self._rows(sql, [*self._list(player_ids), *self._list(days)]))

    async def active_days(self, player_ids: Sequence[int], since: date) -> dict[int, set[date]]:
        second = 2 if self.postgres else len(player_ids) + 1
        sql = (
            f"SELECT player_id, day FROM player_day WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')} AND day >= {self._marks(1, second)}"
        )
        out: dict[int, set[date]] = defaultdict(set)
        for r in await self._rows(sql, [*self._list(player_ids), since]):
            out[r["player_id"]].add(_date(r["day"]))
        return out

    async def insert_events(self, rows: list[list[Any]]) -> None:
        sql = (
            "INSERT INTO event (id, tenant_id, player_id, event_type, category, value, "
            "occurred_at, recorded_at, source, metadata, points_awarded, idempotency_key, "
            f"payload_hash, outcome) VALUES ({self._marks(14)})"
        )
        await self.conn.execute_many(sql, rows)

    async def insert_transactions(self, rows: list[list[Any]]) -> list[int]:
        """Ids in the order of `rows` (ids are assigned in insertion order)."""
        values = ", ".join(f"({self._marks(9, 9 * i + 1)})" for i in range(len(rows)))
        sql = (
            "INSERT INTO point_transaction (tenant_id, player_id, kind, amount, "
            "balance_after, reason, event_id, idempotency_key, created_at) "
            f"VALUES {values} RETURNING id"
        )
        # execute_query drops the rows of an INSERT; execute_query_dict keeps RETURNING's.
        result = await self.conn.execute_query_dict(sql, [v for row in rows for v in row])
        return sorted(r["id"] for r in result)

    async def write_batch(
        self,
        events: list[list[Any]],
        transactions: list[list[Any]],
        wallets: list[WalletRow],
        days: Iterable[DayRow],
        scores: list[list[Any]],
        now: datetime,
    ) -> Written:
        """All of a batch's writes. `events` rows: the event table's columns in
        `insert_events` order, the metadata as JSON text and the outcome as a dict (both
        encoded here; the rows are consumed). `scores` rows: tenant id, player id, period,
        period key, points to add.

        SQLite adds the scores here. So does PostgreSQL for a batch of at most
        INLINE_SCORES_MAX events, in the same statement, and returns them packed for
        Redis. A larger batch parks them in one `board_pending` row of this transaction,
        for `settle_board_points` to add after commit: the upserts (four rows per player,
        each moving the rank index) then run outside the wallet locks, which serialise
        every batch sharing a player, and the next batch's work overlaps them. The pending
        row commits with the ledger, so a crash in between loses nothing:
        `board_points.settle_left` picks up what is left."""
        if not self.postgres:
            for row in events:
                row[13] = dumps(row[13])
            await self.insert_events(events)
            ids = await self.insert_transactions(transactions) if transactions else []
            await self.update_wallets(wallets, now)
            await self.upsert_days(days)
            return Written(ids, totals=await self.add_scores(scores, now))
        for row in events:
            row[9] = Fragment(row[9])  # the metadata, already JSON text
        values = [
            dumps(events),
            now,
            dumps([[w.player_id, *w.state_values()] for w in wallets]),
            dumps([[d.player_id, d.day, d.events, d.earned] for d in days]),
            dumps(transactions),
            events[0][1],  # the tenant: one per batch
            dumps(scores),
            # The batch's players again, as an array: `= ANY` of it gives the planner a
            # row estimate for the wallet update and the players' lookup (it takes any
            # function's rows, jsonb_array_elements' included, as 100, and a small
            # table's sequential scan would then beat 100 index probes).
            [w.player_id for w in wallets],
        ]
        # WITH statements: execute_query fetches their rows as they come (no dicts).
        if len(events) <= INLINE_SCORES_MAX:
            _, rows = await self.conn.execute_query(WRITE_BATCH_INLINE_POSTGRES, values)
            return Written(
                sorted(row[0] for row in rows if row[0] is not None),
                boards=[Packed(r[2], r[3], r[4], r[5]) for r in rows if r[0] is None],
            )
        _, rows = await self.conn.execute_query(WRITE_BATCH_POSTGRES, values)
        return Written(
            sorted(row_id for row_id, pending in rows if not pending),
            pending=next((row_id for row_id, pending in rows if pending), None),
        )

    async def settle_board_points(self, pending_id: int) -> tuple[int | None, list[Packed]]:
        """PostgreSQL: adds one pending row's points to the period scores and deletes it,
        in one statement (so exactly once, whoever gets there first). Returns the tenant
        and the rows as they now stand, packed per board for Redis; (None, []) when it
        was settled already."""
        _, rows = await self.conn.execute_query(SETTLE_BOARD_POINTS_POSTGRES, [pending_id])
        if not rows:
            return None, []
        return rows[0][0], [Packed(period, key, n, packed) for _, period, key, n, packed in rows]

    async def pending_board_points(self, older_than: datetime) -> list[int]:
        """PostgreSQL: the ids of the board points parked before `older_than`, oldest
        first."""
        rows = await self.conn.execute_query_dict(
            "SELECT id FROM board_pending WHERE created_at < $1 ORDER BY id", [older_than]
        )
        return [r["id"] for r in rows]

    async def add_scores(self, rows: list[list[Any]], now: datetime) -> list[ScoreTotal]:
        """Adds points to period score rows; returns the rows as they now stand."""
        totals: list[ScoreTotal] = []
        # In (player, period, key) order, the order every writer locks these rows in.
        rows = sorted(rows, key=lambda r: (r[1], r[2], r[3]))
        for start in range(0, len(rows), SCORE_CHUNK):
            chunk = rows[start : start + SCORE_CHUNK]
            values = ", ".join(f"({self._marks(6, 6 * i + 1)})" for i in range(len(chunk)))
            sql = (
                "INSERT INTO period_score (tenant_id, player_id, period, period_key, points, "
                f"reached_at) VALUES {values} ON CONFLICT (tenant_id, period, period_key, "
                "player_id) DO UPDATE SET points = period_score.points + excluded.points, "
                f"reached_at = {self._latest('period_score.reached_at', 'excluded.reached_at')} "
                "RETURNING player_id, period, period_key, points, reached_at"
            )
            result = await self.conn.execute_query_dict(
                sql, [v for row in chunk for v in (*row, now)]
            )
            totals += [_score_total(r) for r in result]
        return totals

    async def update_wallets(self, rows: list[WalletRow], now: datetime) -> None:
        sql = (
            f"UPDATE wallet SET balance = {self._marks(1)}, lifetime_earned = "
            f"{self._marks(1, 2)}, level = {self._marks(1, 3)}, streak_current = "
            f"{self._marks(1, 4)}, streak_best = {self._marks(1, 5)}, last_active_day = "
            f"{self._marks(1, 6)}, last_event_at = {self._marks(1, 7)}, updated_at = "
            f"{self._marks(1, 8)} WHERE player_id = {self._marks(1, 9)}"
        )
        await self.conn.execute_many(
            sql,
            [[*w.state_values(), now, w.player_id] for w in rows],
        )

    async def upsert_days(self, rows: Iterable[DayRow]) -> None:
        sql = (
            f"INSERT INTO player_day (player_id, day, events, earned) VALUES "
            f"({self._marks(4)}) ON CONFLICT (player_id, day) DO UPDATE SET "
            "events = excluded.events, earned = excluded.earned"
        )
        await self.conn.execute_many(sql, [[r.player_id, r.day, r.events, r.earned] for r in rows])


# PostgreSQL: every write of a batch in one statement (data-modifying CTEs). Fixed text,
# so asyncpg prepares it once per connection; one round trip instead of four. Each table's
# rows arrive as one JSON array of arrays, encoded by orjson: asyncpg's binary encoding of
# ~25,000 typed array elements per batch of 500 cost the server ~5x the CPU, inside the
# wallet locks. The ledger lines' foreign keys to the new events are checked at the end
# of the statement, when the events exist. $1 events, $2 now, $3 wallets, $4 days,
# $5 ledger lines, $6 the tenant, $7 board points (rows as `write_batch` takes them).
# A small batch adds its board points in the same statement (WRITE_BATCH_INLINE_POSTGRES);
# a large one parks them for after commit (WRITE_BATCH_POSTGRES, board_points.settle).
_WRITE_ROWS = """
WITH new_events AS (
    INSERT INTO event (id, tenant_id, player_id, event_type, category, value, occurred_at,
                       recorded_at, source, metadata, points_awarded, idempotency_key,
                       payload_hash, outcome)
    SELECT (e->>0)::uuid, $6, (e->>2)::int, e->>3, e->>4, (e->>5)::numeric,
           (e->>6)::timestamptz, $2, e->>8, e->9, (e->>10)::numeric, e->>11, e->>12, e->13
    FROM jsonb_array_elements($1::jsonb) AS e
), updated_wallets AS (
    UPDATE wallet AS w
    SET balance = (v->>1)::numeric, lifetime_earned = (v->>2)::numeric,
        level = (v->>3)::int, streak_current = (v->>4)::int, streak_best = (v->>5)::int,
        last_active_day = (v->>6)::date, last_event_at = (v->>7)::timestamptz, updated_at = $2
    FROM jsonb_array_elements($3::jsonb) AS v
    WHERE w.player_id = (v->>0)::int AND w.player_id = ANY($8::int[])
), upserted_days AS (
    INSERT INTO player_day (player_id, day, events, earned)
    SELECT (d->>0)::int, (d->>1)::date, (d->>2)::int, (d->>3)::numeric
    FROM jsonb_array_elements($4::jsonb) AS d
    ON CONFLICT (player_id, day) DO UPDATE SET events = excluded.events, earned = excluded.earned
), new_lines AS (
    INSERT INTO point_transaction (tenant_id, player_id, kind, amount, balance_after, reason,
                                   event_id, created_at)
    SELECT $6, (t->>1)::int, t->>2, (t->>3)::numeric, (t->>4)::numeric, t->>5,
           (t->>6)::uuid, $2
    FROM jsonb_array_elements($5::jsonb) WITH ORDINALITY AS x(t, n)
    ORDER BY n  -- ids in the order of the lines
    RETURNING id
)
"""

# Period score rows upserted from `source` (rows: player_id, period, period_key, points,
# with tenant_id and reached_at beside them), locked in (player, period, key) order like
# every other writer of period scores, so concurrent writers cannot deadlock; a late
# write never moves reached_at back. `written` returns the rows as they now stand.
_UPSERT_SCORES = """
    INSERT INTO period_score (tenant_id, player_id, period, period_key, points, reached_at)
    {source}
    ORDER BY 2, 3, 4
    ON CONFLICT (tenant_id, period, period_key, player_id) DO UPDATE
    SET points = period_score.points + excluded.points,
        reached_at = GREATEST(period_score.reached_at, excluded.reached_at)
    RETURNING tenant_id, player_id, period, period_key, points, reached_at
"""
# The `written` rows per board, already in the Redis APPLY script's form (board_cache: a
# JSON array of pk, score, member strings; hidden players with an empty member), so the
# server does no per-row work: the tenant, the board, the row count and that text.
_PACK_BOARDS = """
SELECT w.tenant_id, w.period, w.period_key, COUNT(*) AS n,
       '[' || string_agg(
           '"' || w.player_id || '","' || (-(w.points * 100))::bigint || '","' ||
           CASE WHEN p.hidden_from_boards THEN ''
                ELSE lpad(((EXTRACT(EPOCH FROM w.reached_at) * 1000000)::bigint)::text, 17, '0')
                     || lpad(w.player_id::text, 12, '0') END || '"',
           ',') || ']' AS packed
FROM written AS w JOIN player AS p ON p.id = w.player_id{players}
GROUP BY w.tenant_id, w.period, w.period_key
"""

# Rows: a ledger line's id (in the lines' order), and the parked points' id (pending).
WRITE_BATCH_POSTGRES = (
    _WRITE_ROWS.rstrip("\n")
    + """, board_points AS (
    INSERT INTO board_pending (tenant_id, created_at, player_ids, periods, period_keys, points)
    SELECT $6, $2, array_agg((s->>1)::int ORDER BY n), array_agg(s->>2 ORDER BY n),
           array_agg(s->>3 ORDER BY n), array_agg((s->>4)::numeric ORDER BY n)
    FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(s, n)
    HAVING count(*) > 0
    RETURNING id
)
SELECT id, FALSE AS pending FROM new_lines
UNION ALL
SELECT id, TRUE FROM board_points
"""
)
# Rows: a ledger line's id (in the lines' order) with NULLs, then one row per board
# (NULL id): the tenant, period, period key, row count and packed rows.
WRITE_BATCH_INLINE_POSTGRES = (
    _WRITE_ROWS.rstrip("\n")
    + ", written AS ("
    + _UPSERT_SCORES.format(
        source="SELECT $6, (s->>1)::int, s->>2, s->>3, (s->>4)::numeric, $2::timestamptz "
        "FROM jsonb_array_elements($7::jsonb) AS s"
    )
    + """)
SELECT id, NULL::int AS tenant_id, NULL::text AS period, NULL::text AS period_key,
       NULL::bigint AS n, NULL::text AS packed
FROM new_lines
UNION ALL
(SELECT NULL, b.* FROM ("""
    + _PACK_BOARDS.format(players=" AND p.id = ANY($8::int[])")
    + """) AS b)
"""
)

# One pending row's points into the period scores, the row deleted in the same statement:
# applied once, whoever runs it; the rows come back packed per board.
SETTLE_BOARD_POINTS_POSTGRES = (
    """
WITH claimed AS (
    DELETE FROM board_pending WHERE id = $1
    RETURNING tenant_id, created_at, player_ids, periods, period_keys, points
), written AS ("""
    + _UPSERT_SCORES.format(
        source="SELECT c.tenant_id, s.player_id, s.period, s.period_key, s.points, c.created_at "
        "FROM claimed AS c CROSS JOIN LATERAL unnest(c.player_ids, c.periods, c.period_keys, "
        "c.points) AS s(player_id, period, period_key, points)"
    )
    + ")"
    + _PACK_BOARDS.format(players="")
)


# Missing wallets inserted and existing ones locked, in player order, in one statement.
# `WHERE FALSE` locks a conflicting row without writing a new version of it (PostgreSQL:
# "all rows will be locked when the ON CONFLICT DO UPDATE action is taken"): a no-op
# update would double every wallet's writes, and the batch's own update of a row written
# earlier in its transaction re-runs the wallet's foreign-key checks.
LOCK_WALLETS_POSTGRES = """
INSERT INTO wallet (player_id, tenant_id, balance, lifetime_earned, level, streak_current,
                    streak_best, updated_at)
SELECT p, $2, 0, 0, 1, 0, 0, $3 FROM unnest($1::int[]) AS p ORDER BY p
ON CONFLICT (player_id) DO UPDATE SET updated_at = excluded.updated_at WHERE FALSE
"""
# A batch's first statement on PostgreSQL (IngestStore.open_batch): the players, the stored
# idempotency keys (rows without an id) and, only if every player was found, the lock of
# LOCK_WALLETS_POSTGRES. A data-modifying WITH runs whether or not the query reads it.
#
# It also sets plan_cache_mode for the rest of the transaction (set_config(…, true) is
# SET LOCAL): the batch's next statements run on their prepared generic plans instead
# of being planned again at every execution. PostgreSQL otherwise keeps re-planning the
# write statement (its custom plans look cheaper: they know the array has one player),
# which was 0.36 ms of a lone event's 0.86 ms write. The generic plans are the ones
# these statements were written for (`= ANY` row estimates, no partial index). The
# last branch returns no row; it makes the (volatile, so materialised) CTE run.
OPEN_BATCH_POSTGRES = """
WITH generic AS (
    SELECT set_config('plan_cache_mode', 'force_generic_plan', true) AS mode
), found AS (
    SELECT id, external_id, kind, segment, timezone, attributes, hidden_from_boards
    FROM player WHERE tenant_id = $1 AND external_id = ANY($2::text[])
), locked AS (
    INSERT INTO wallet (player_id, tenant_id, balance, lifetime_earned, level, streak_current,
                        streak_best, updated_at)
    SELECT id, $1, 0, 0, 1, 0, 0, $4 FROM found
    WHERE (SELECT count(*) FROM found) = cardinality($2::text[])
    ORDER BY id
    ON CONFLICT (player_id) DO UPDATE SET updated_at = excluded.updated_at WHERE FALSE
)
SELECT id, external_id, kind, segment, timezone, attributes, hidden_from_boards FROM found
UNION ALL
SELECT NULL, idempotency_key, NULL, NULL, NULL, NULL, NULL
FROM event WHERE tenant_id = $1 AND idempotency_key = ANY($3::text[])
UNION ALL
SELECT NULL, mode, NULL, NULL, NULL, NULL, NULL FROM generic WHERE mode IS NULL
"""
# The wallets and the player_day rows of IngestStore.days, told apart by `day`. Read by a
# statement of its own once the locks are held: under READ COMMITTED a new statement sees
# what the batches it waited for committed (the locking statement's own snapshot
# predates them).
READ_STATE_POSTGRES = f"""
SELECT {", ".join(WALLET_COLUMNS)}, NULL::date AS day, NULL::int AS events,
       NULL::numeric AS earned
FROM wallet WHERE player_id = ANY($1::int[])
UNION ALL
SELECT player_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, day, events, earned
FROM player_day WHERE player_id = ANY($1::int[]) AND day = ANY($2::date[])
"""


# PostgreSQL: batches of up to this many events add their board points before commit,
# in the write statement: a lone event or a few coalesced ones hold their wallets' locks
# a little longer and save the settlement's round trip and its pending row.
INLINE_SCORES_MAX = 64

# Rows per period score upsert (six values each, within SQLite's variable limit).
SCORE_CHUNK = 500


@dataclass(slots=True)
class Written:
    """What a batch's writes return: the new ledger ids in the order of the lines, and
    its board points as written (`totals`, SQLite; `boards`, packed, PostgreSQL) or left
    pending (`pending`, PostgreSQL's large batches)."""

    ids: list[int]
    totals: list[ScoreTotal] = field(default_factory=list)
    boards: list[Packed] = field(default_factory=list)
    pending: int | None = None


@dataclass(frozen=True, slots=True)
class ScoreTotal:
    """A period score row after a write: what the Redis boards copy."""

    player_id: int
    period: str
    period_key: str
    points: Decimal
    reached_at: datetime


def _wallet_rows(rows: Iterable[Any]) -> dict[int, WalletRow]:
    return {
        r["player_id"]: WalletRow(
            r["player_id"],
            _decimal(r["balance"]),
            _decimal(r["lifetime_earned"]),
            r["level"],
            r["streak_current"],
            r["streak_best"],
            _date(r["last_active_day"]),
            _datetime(r["last_event_at"]),
        )
        for r in rows
    }


def _day_rows(rows: Iterable[Any]) -> dict[tuple[int, date], DayRow]:
    out = {}
    for r in rows:
        row = DayRow(r["player_id"], _date(r["day"]), r["events"], _decimal(r["earned"]))
        out[(row.player_id, row.day)] = row
    return out


def _player_row(r: Any) -> _PlayerRow:
    return _PlayerRow(
        r["id"],
        r["external_id"],
        r["kind"],
        r["segment"],
        r["timezone"],
        _json(r["attributes"]),
        bool(r["hidden_from_boards"]),
    )


def _score_total(row: dict[str, Any]) -> ScoreTotal:
    reached = row["reached_at"]
    if isinstance(reached, str):
        reached = datetime.fromisoformat(reached)
    if reached.tzinfo is None:
        reached = reached.replace(tzinfo=UTC)
    return ScoreTotal(
        row["player_id"], row["period"], row["period_key"], Decimal(str(row["points"])), reached
    )


@dataclass(slots=True)
class _PlayerRow:
    id: int
    external_id: str
    kind: str
    segment: str | None
    timezone: str | None
    attributes: dict[str, Any]
    hidden_from_boards: bool = False


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})


@lru_cache(maxsize=4096)
def _marks(postgres: bool, count: int, start: int = 1) -> str:
    if postgres:
        return ", ".join(f"${n}" for n in range(start, start + count))
    return ", ".join("?" * count)
