"""The database ceiling: raw executemany inserts into the bench database, per backend."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import PG_URL, SQLITE_DIR, SQLITE_FILE, SetupError, log


def event_rows(count: int, players: int) -> list[tuple[str, str, float, datetime, str]]:
    rng = random.Random(count)
    now = datetime.now(UTC)
    kinds = (("APP_LOGIN", 1.0), ("DATA_USAGE", 250.0), ("RECHARGE", 10.0))
    rows = []
    for n in range(count):
        event_type, value = rng.choice(kinds)
        meta = json.dumps({"cell": f"c{n % 97}", "idempotencyKey": f"ceil-{n}"})
        rows.append(
            (
                f"bench-p{rng.randrange(players)}",
                event_type,
                value,
                now - timedelta(seconds=n),
                meta,
            )
        )
    return rows


async def _pg_ceiling(count: int, players: int, batch: int) -> dict[str, Any]:
    import asyncpg

    rows = event_rows(count, players)
    conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_scratch_events; "
            "CREATE TABLE bench_scratch_events (id bigserial PRIMARY KEY, player_id text NOT NULL,"
            " event_type text NOT NULL, value double precision NOT NULL,"
            " occurred_at timestamptz NOT NULL, metadata jsonb NOT NULL)"
        )
        insert = (
            "INSERT INTO bench_scratch_events (player_id, event_type, value, occurred_at, metadata)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)"
        )
        t0 = time.perf_counter()
        for i in range(0, count, batch):
            await conn.executemany(insert, rows[i : i + batch])
        elapsed = time.perf_counter() - t0
        stored = await conn.fetchval("SELECT count(*) FROM bench_scratch_events")
        await conn.execute("DROP TABLE bench_scratch_events")
    finally:
        await conn.close()
    if stored != count:
        raise SetupError(f"executemany ceiling stored {stored} rows, expected {count}")
    return {"rows": count, "seconds": elapsed, "events_per_s": count / elapsed}


def sqlite_ceiling(count: int, players: int, batch: int) -> dict[str, Any]:
    """stdlib sqlite3 executemany, one transaction per batch, Tortoise's pragmas (WAL)."""
    rows = [(p, t, v, at.isoformat(), m) for p, t, v, at, m in event_rows(count, players)]
    conn = sqlite3.connect(SQLITE_FILE, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA journal_size_limit=16384")
        conn.execute("DROP TABLE IF EXISTS bench_scratch_events")
        conn.execute(
            "CREATE TABLE bench_scratch_events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " player_id TEXT NOT NULL, event_type TEXT NOT NULL, value REAL NOT NULL,"
            " occurred_at TEXT NOT NULL, metadata JSON NOT NULL)"
        )
        insert = (
            "INSERT INTO bench_scratch_events (player_id, event_type, value, occurred_at, metadata)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        t0 = time.perf_counter()
        for i in range(0, count, batch):
            conn.execute("BEGIN")
            conn.executemany(insert, rows[i : i + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        (stored,) = conn.execute("SELECT count(*) FROM bench_scratch_events").fetchone()
        conn.execute("DROP TABLE bench_scratch_events")
    finally:
        conn.close()
    if stored != count:
        raise SetupError(f"executemany ceiling stored {stored} rows, expected {count}")
    return {"rows": count, "seconds": elapsed, "events_per_s": count / elapsed}


def db_ceiling(backend: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    if backend == "postgres":
        result = asyncio.run(_pg_ceiling(count, args.players, args.batch_size))
    else:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        result = sqlite_ceiling(count, args.players, args.batch_size)
    log(
        f"  {backend:10} executemany {result['rows']:,} rows in batches of {args.batch_size}: "
        f"{result['events_per_s']:,.0f} rows/s"
    )
    return result
