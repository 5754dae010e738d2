"""The ingest hot path in plain SQL: one prepared statement per step, both dialects.

The ORM builds a fresh SQL string for every query, which cost more than a millisecond
per event (profiled); these statements are built once per shape and, on PostgreSQL,
prepared once per connection by asyncpg. Values go in as Python objects (Tortoise
registers sqlite3 adapters for Decimal, date and datetime); SQLite gives text back, so
reads convert.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

from orjson import Fragment
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.timezone import UTC

from app.codec import dumps, sql_json
from app.services.board_cache import Packed
from app.services.ingest_rows import (
    DayRow,
    Opened,
    ScoreTotal,
    WalletRow,
    Written,
    day_rows,
    player_row,
    score_total,
    to_date,
    wallet_rows,
)
from app.services.ingest_sql import (
    LOCK_WALLETS_POSTGRES,
    OPEN_BATCH_POSTGRES,
    READ_STATE_POSTGRES,
    SETTLE_BOARD_POINTS_POSTGRES,
    WALLET_COLUMNS,
    WRITE_BATCH_INLINE_POSTGRES,
    WRITE_BATCH_POSTGRES,
)

# A statement and its parameters.
_Query = tuple[str, list[Any]]
_T = TypeVar("_T")


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

    def _players_query(self, tenant_id: int, external_ids: Sequence[str]) -> _Query:
        sql = (
            "SELECT id, external_id, kind, segment, timezone, attributes, hidden_from_boards "
            f"FROM player WHERE tenant_id = {self._marks(1)} AND "
            f"{self._in('external_id', external_ids, 2, 'text')}"
        )
        return sql, [tenant_id, *self._list(external_ids)]

    async def players(self, tenant_id: int, external_ids: Sequence[str]) -> list[Any]:
        rows = await self._rows(*self._players_query(tenant_id, external_ids))
        return [player_row(r) for r in rows]

    async def open_batch(
        self,
        tenant_id: int,
        keys: Sequence[str],
        external_ids: Sequence[str],
        days: Sequence[date],
    ) -> Opened:
        """PostgreSQL, the first statement of a batch (OPEN_BATCH_POSTGRES): the
        idempotency keys already stored, the players found and, when every one of them
        and their wallets exist, the wallets locked in player order with their state and
        the player_day rows of `days` (candidate days: a superset of those the batch
        needs). When something is missing nothing is locked, and the caller creates it
        and locks with `lock_wallets`; when the state is not `fresh` it reads it again
        with `read_state`.

        SQLite reads the same in one hand-over to its thread (`_open_sqlite`): its
        transactions run one at a time, so what it reads is current and stays so."""
        wanted = sorted(set(external_ids))
        if not self.postgres:
            return await self._one_hop(self._open_sqlite, tenant_id, keys, wanted, days)
        rows = await self._rows(OPEN_BATCH_POSTGRES, [tenant_id, wanted, list(keys), list(days)])
        parts: dict[str, list[Any]] = {"p": [], "k": [], "w": [], "d": []}
        for r in rows:
            parts[r["part"]].append(r)
        locked = bool(parts["w"])
        return Opened(
            hits=[r["external_id"] for r in parts["k"]],
            players=[player_row(r, pk="player_id") for r in parts["p"]],
            locked=locked,
            fresh=locked and all(r["fresh"] for r in parts["w"]),
            wallets=wallet_rows(parts["w"]),
            days=day_rows(parts["d"]),
        )

    def _open_sqlite(
        self,
        db: _Logged,
        tenant_id: int,
        keys: Sequence[str],
        wanted: list[str],
        days: Sequence[date],
    ) -> Opened:
        """SQLite, on the connection's thread: `open_batch`'s keys, players and (every
        player and wallet found) wallets and days."""
        hits = [r[0] for r in db.execute(*self._hits_query(tenant_id, keys))] if keys else []
        players = [player_row(r) for r in db.execute(*self._players_query(tenant_id, wanted))]
        wallets: dict[int, WalletRow] = {}
        found: dict[tuple[int, date], DayRow] = {}
        complete = len(players) == len(wanted)
        if complete:
            pids = sorted(p.id for p in players)
            wallets = wallet_rows(db.execute(*self._wallets_query(pids)))
            complete = len(wallets) == len(pids)
            if complete:
                found = day_rows(db.execute(*self._days_query(pids, days)))
        return Opened(hits, players, complete, complete, wallets, found)

    async def _one_hop(self, work: Callable[..., _T], *args: Any) -> _T:
        """SQLite: `work(connection, *args)` run on the connection's own thread, all its
        statements in one hand-over. aiosqlite runs each call on that thread, and a
        hand-over (queue, thread wake-up, event loop wake-up) costs ~140 µs of CPU,
        twenty times a small statement's own time: a single event made a dozen. `work`
        reads only its arguments, made for it. Errors as Tortoise raises them."""
        conn = self.conn._connection  # the transaction's aiosqlite.Connection
        try:
            return await conn._execute(work, _Logged(conn._conn, self.conn.log), *args)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc

    async def create_players(self, tenant_id: int, external_ids: Sequence[str]) -> set[str]:
        """Creates the players not there yet; returns the ids this call created (not those
        a concurrent batch created first)."""
        now = datetime.now(UTC)
        columns = "tenant_id, external_id, kind, attributes, hidden_from_boards, created_at"
        if self.postgres:
            sql = (
                f"INSERT INTO player ({columns}) SELECT $1, x, 'CUSTOMER', '{{}}'::jsonb, "
                "FALSE, $3 FROM unnest($2::text[]) AS x"
            )
            values: list[Any] = [tenant_id, list(external_ids), now]
        else:
            rows = ", ".join(f"({self._marks(6, 6 * i + 1)})" for i in range(len(external_ids)))
            sql = f"INSERT INTO player ({columns}) VALUES {rows}"
            values = [v for x in external_ids for v in (tenant_id, x, "CUSTOMER", "{}", False, now)]
        sql += " ON CONFLICT (tenant_id, external_id) DO NOTHING RETURNING external_id"
        # execute_query_dict: Tortoise's execute_query drops an INSERT's RETURNING rows.
        return {r["external_id"] for r in await self.conn.execute_query_dict(sql, values)}

    async def remove_players(self, player_ids: Sequence[int]) -> None:
        """Takes back players this transaction created (and their wallets) when none of
        their events was recorded: a refused event writes nothing."""
        for table, column in (("wallet", "player_id"), ("player", "id")):
            sql = f"DELETE FROM {table} WHERE {self._in(column, player_ids, 1, 'int')}"
            await self.conn.execute_query(sql, self._list(player_ids))

    def _hits_query(self, tenant_id: int, keys: Sequence[str]) -> _Query:
        sql = (
            f"SELECT idempotency_key FROM event WHERE tenant_id = {self._marks(1)} "
            f"AND {self._in('idempotency_key', keys, 2, 'text')}"
        )
        return sql, [tenant_id, *self._list(keys)]

    async def idempotency_hits(self, tenant_id: int, keys: Sequence[str]) -> list[str]:
        rows = await self._rows(*self._hits_query(tenant_id, keys))
        return [r["idempotency_key"] for r in rows]

    async def wallets(self, player_ids: Sequence[int]) -> dict[int, WalletRow]:
        """The wallets as they stand, unlocked (SQLite writes one transaction at a time;
        PostgreSQL batches lock theirs and read them with `read_state`)."""
        return wallet_rows(await self._rows(*self._wallets_query(player_ids)))

    def _wallets_query(self, player_ids: Sequence[int]) -> _Query:
        sql = (
            f"SELECT {', '.join(WALLET_COLUMNS)} FROM wallet WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')}"
        )
        return sql, self._list(player_ids)

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
        wallets = wallet_rows(r for r in rows if r["day"] is None)
        return wallets, day_rows(r for r in rows if r["day"] is not None)

    async def days(
        self, player_ids: Sequence[int], days: Sequence[date]
    ) -> dict[tuple[int, date], DayRow]:
        return day_rows(await self._rows(*self._days_query(player_ids, days)))

    def _days_query(self, player_ids: Sequence[int], days: Sequence[date]) -> _Query:
        second = 2 if self.postgres else len(player_ids) + 1
        sql = (
            f"SELECT player_id, day, events, earned FROM player_day WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')} AND "
            f"{self._in('day', days, second, 'date')}"
        )
        return sql, [*self._list(player_ids), *self._list(days)]

    async def active_days(self, player_ids: Sequence[int], since: date) -> dict[int, set[date]]:
        second = 2 if self.postgres else len(player_ids) + 1
        sql = (
            f"SELECT player_id, day FROM player_day WHERE "
            f"{self._in('player_id', player_ids, 1, 'int')} AND day >= {self._marks(1, second)}"
        )
        out: dict[int, set[date]] = defaultdict(set)
        for r in await self._rows(sql, [*self._list(player_ids), since]):
            out[r["player_id"]].add(to_date(r["day"]))
        return out

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
        `EVENT_INSERT` order, the metadata as JSON text and the outcome as a dict (both
        encoded here; the rows are consumed). `scores` rows: tenant id, player id, period,
        period key, points to add.

        SQLite adds the scores here. So does PostgreSQL for a batch of at most
        INLINE_SCORES_MAX events, in the same statement, and returns them packed for
        Redis. A larger batch parks them in one `board_pending` row of this transaction,
        for `settle_board_points` to add after commit: the upserts (four rows per player,
        each moving the rank index) then run outside the wallet locks, which serialise
        every batch sharing a player, and the next batch's work overlaps them. The pending
        row commits with the ledger, so a crash in between loses nothing:
        `board_points.settle_left` picks up what is left.

        SQLite runs its five writes in one hand-over to its thread (`_write_sqlite`)."""
        if not self.postgres:
            for row in events:
                row[13] = dumps(row[13])
            ids, totals = await self._one_hop(
                self._write_sqlite, events, transactions, wallets, list(days), scores, now
            )
            return Written(ids, totals=totals)
        for row in events:
            row[9] = Fragment(row[9])  # the metadata, already JSON text
        values = [
            sql_json(events),
            now,
            sql_json([[w.player_id, *w.state_values()] for w in wallets]),
            sql_json([[d.player_id, d.day, d.events, d.earned] for d in days]),
            sql_json(transactions),
            events[0][1],  # the tenant: one per batch
            sql_json(scores),
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

    def _write_sqlite(
        self,
        db: _Logged,
        events: list[list[Any]],
        transactions: list[list[Any]],
        wallets: list[WalletRow],
        days: list[DayRow],
        scores: list[list[Any]],
        now: datetime,
    ) -> tuple[list[int], list[ScoreTotal]]:
        """SQLite, on the connection's thread: events, ledger lines (their new ids in
        the order of the lines: ids are assigned in insertion order), wallets, days and
        period scores (the rows as they now stand)."""
        db.executemany(EVENT_INSERT, events)
        ids: list[int] = []
        if transactions:
            ids = sorted(r[0] for r in db.execute(*self._transactions_query(transactions)))
        db.executemany(*self._wallets_update(wallets, now))
        db.executemany(*self._days_upsert(days))
        totals: list[ScoreTotal] = []
        for query in self._scores_queries(scores, now):
            totals += [score_total(r) for r in db.execute(*query)]
        return ids, totals

    def _transactions_query(self, rows: list[list[Any]]) -> _Query:
        values = ", ".join(f"({self._marks(9, 9 * i + 1)})" for i in range(len(rows)))
        sql = (
            "INSERT INTO point_transaction (tenant_id, player_id, kind, amount, "
            "balance_after, reason, event_id, idempotency_key, created_at) "
            f"VALUES {values} RETURNING id"
        )
        return sql, [v for row in rows for v in row]

    async def add_scores(self, rows: list[list[Any]], now: datetime) -> list[ScoreTotal]:
        """Adds points to period score rows; returns the rows as they now stand."""
        totals: list[ScoreTotal] = []
        for query in self._scores_queries(rows, now):
            totals += [score_total(r) for r in await self.conn.execute_query_dict(*query)]
        return totals

    def _scores_queries(self, rows: list[list[Any]], now: datetime) -> list[_Query]:
        """The upserts that add `rows` (tenant, player, period, key, points) to the period
        scores, returning the rows as they then stand, SCORE_CHUNK rows each."""
        queries: list[_Query] = []
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
            queries.append((sql, [v for row in chunk for v in (*row, now)]))
        return queries

    def _wallets_update(self, rows: list[WalletRow], now: datetime) -> _Query:
        """SQLite: the wallets' new state, one parameter row per wallet (executemany)."""
        sql = (
            "UPDATE wallet SET balance = ?, lifetime_earned = ?, level = ?, streak_current = ?, "
            "streak_best = ?, last_active_day = ?, last_event_at = ?, updated_at = ? "
            "WHERE player_id = ?"
        )
        return sql, [[*w.state_values(), now, w.player_id] for w in rows]

    def _days_upsert(self, rows: Iterable[DayRow]) -> _Query:
        """SQLite: the players' day rows, one parameter row per day (executemany)."""
        sql = (
            "INSERT INTO player_day (player_id, day, events, earned) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (player_id, day) DO UPDATE SET events = excluded.events, "
            "earned = excluded.earned"
        )
        return sql, [[r.player_id, r.day, r.events, r.earned] for r in rows]


class _Logged:
    """A sqlite3 connection whose statements are logged as Tortoise logs its own (debug,
    `tortoise.db_client`): statements run in one hand-over stay visible and counted."""

    def __init__(self, db: sqlite3.Connection, log: logging.Logger) -> None:
        self.db, self.log = db, log

    def execute(self, sql: str, values: Sequence[Any]) -> sqlite3.Cursor:
        self.log.debug("%s: %s", sql, values)
        return self.db.execute(sql, values)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        self.log.debug("%s: %s", sql, rows)
        return self.db.executemany(sql, rows)


# SQLite: a batch's events, one parameter row per event (executemany).
EVENT_INSERT = (
    "INSERT INTO event (id, tenant_id, player_id, event_type, category, value, occurred_at, "
    "recorded_at, source, metadata, points_awarded, idempotency_key, payload_hash, outcome) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# PostgreSQL: batches of up to this many events add their board points before commit,
# in the write statement: a lone event or a few coalesced ones hold their wallets' locks
# a little longer and save the settlement's round trip and its pending row.
INLINE_SCORES_MAX = 64

# Rows per period score upsert (six values each, within SQLite's variable limit).
SCORE_CHUNK = 500


@lru_cache(maxsize=4096)
def _marks(postgres: bool, count: int, start: int = 1) -> str:
    if postgres:
        return ", ".join(f"${n}" for n in range(start, start + count))
    return ", ".join("?" * count)
