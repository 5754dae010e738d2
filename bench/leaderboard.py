"""Leaderboard benchmark: reads at a million players, rebuild time, and the write cost.

    python bench/leaderboard.py --runs 3 --duration 8

PostgreSQL + Redis. It recreates the bench database (`questline_bench`), migrates and
seeds it, then loads a tenant `lb` with COPY: 1,000,000 players on the ALL_TIME board
and 100,000 on today's DAILY, WEEKLY and MONTHLY boards (plus yesterday's DAILY board,
snapshotted as the nightly `questline leaderboard snapshot` would), with many ties.
Then, --runs times:

- rebuild: `questline leaderboard rebuild` of the ALL_TIME board (1M) and of the DAILY
  board (100k) from PostgreSQL, wall time of the command;
- reads: `leaderboard(period, first: 10, around: X)` over HTTP for a random player X,
  at 1 and 50 clients, one uvicorn worker pinned to core 0 and the load generator on
  core 1: from Redis (ALL_TIME 1M, DAILY 100k) and from the SQL fallback (a second
  server without REDIS_URL; DAILY 100k);
- writes: `recordEvent` at 50 clients and `recordEvents` batches of 500 into a tenant
  with the four period boards and into the same preset with `leaderboards: false`
  (the board updates' cost is the difference);
- baseline: a Strawberry no-op mutation (the framework's ceiling) at 1 and 50 clients;
- with `--baseline-rev REV`: the Redis ALL_TIME reads (1 client, paced) once more on the
  code of REV, checked out in a git worktree and served against the same databases,
  before this code's reads in odd runs and after them in even runs (an A/B in one run).

Results go to bench/RESULTS.md between the leaderboard markers; raw data to bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from envinfo import git_state, machine, versions
from harness import (
    MIB,
    REDIS_URL,
    Processes,
    Server,
    backend_env,
    loadgen,
    log,
    noop_server,
    pg_settle,
    prepare,
    redis_cleanup,
    run_bench,
    run_cli,
)
from worktrees import drop, worktree

# Its own database and Redis prefix: the other benches may run on this machine too.
harness.PG_DB = "questline_lbbench"
harness.PG_URL = f"postgres://postgres@127.0.0.1:5432/{harness.PG_DB}"
harness.REDIS_PREFIX = "qlbench-lb"

START, END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"
TENANT = "lb"
READ_TARGET_P99_MS = 10.0
WRITE_COST_TARGET = 0.20


# ---------------------------------------------------------------- data

PLAYER_COLUMNS = ["tenant_id", "external_id", "kind", "attributes", "hidden_from_boards"]
PLAYER_COLUMNS.append("created_at")
WALLET_COLUMNS = ["player_id", "tenant_id", "balance", "lifetime_earned", "level"]
WALLET_COLUMNS += ["streak_current", "streak_best", "last_active_day", "updated_at"]
SCORE_COLUMNS = ["tenant_id", "player_id", "period", "period_key", "points", "reached_at"]


async def load_boards(all_time: int, periodic: int) -> dict[str, Any]:
    """COPY the lb tenant's players, wallets and period score rows."""
    import asyncpg

    conn = await asyncpg.connect(harness.PG_URL.replace("postgres://", "postgresql://"))
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenant WHERE slug = $1", TENANT)
        now = datetime.now(UTC)
        today = now.date()
        yesterday = today - timedelta(days=1)
        t0 = time.monotonic()
        await conn.copy_records_to_table(
            "player",
            columns=PLAYER_COLUMNS,
            records=(
                (tenant_id, f"lb-p{n}", "CUSTOMER", "{}", False, now) for n in range(all_time)
            ),
        )
        ids = dict(
            await conn.fetch("SELECT external_id, id FROM player WHERE tenant_id = $1", tenant_id)
        )
        pks = [ids[f"lb-p{n}"] for n in range(all_time)]
        rng = random.Random(42)
        await conn.copy_records_to_table(
            "wallet",
            columns=WALLET_COLUMNS,
            records=(
                (pk, tenant_id, 0, 0, 1, n % 9, n % 9, today, now) for n, pk in enumerate(pks)
            ),
        )
        keys = {
            "DAILY": today.isoformat(),
            "WEEKLY": "{}-W{:02d}".format(*today.isocalendar()[:2]),
            "MONTHLY": f"{today.year}-{today.month:02d}",
        }
        epoch = now - timedelta(days=30)

        def rows(period: str, key: str, count: int):
            for pk in pks[:count]:
                # Whole points from a narrow range: many ties, broken by reached-at.
                points = rng.randrange(0, 50_000)
                reached = epoch + timedelta(seconds=rng.randrange(0, 30 * 86400))
                yield (tenant_id, pk, period, key, points, reached)

        boards = [("ALL_TIME", "all", all_time)]
        boards += [(period, key, periodic) for period, key in keys.items()]
        boards.append(("DAILY", yesterday.isoformat(), periodic))
        for period, key, count in boards:
            await conn.copy_records_to_table(
                "period_score",
                columns=SCORE_COLUMNS,
                records=rows(period, key, count),
            )
        # Start the runs from a settled database: the load's dirty pages written and the
        # tables' statistics and visibility maps current.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        return {
            "tenant_id": tenant_id,
            "keys": keys,
            "yesterday": yesterday.isoformat(),
            "load_s": round(time.monotonic() - t0, 1),
        }
    finally:
        await conn.close()


def redis_memory(tenant_id: int, period: str, key: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        base = f"{harness.REDIS_PREFIX}:lb:t{tenant_id}:{period}:{key}"
        zset = client.memory_usage(f"{base}:z", samples=0) or 0
        hash_ = client.memory_usage(f"{base}:h", samples=0) or 0
        return {"members": client.zcard(f"{base}:z"), "bytes": zset + hash_}
    finally:
        client.close()


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    run_cli(args, env, timeout=900)
    return round(time.monotonic() - t0, 2)


def disable_boards(slug: str) -> None:
    """The same preset without leaderboards (`leaderboards: false` in its rules)."""
    import asyncpg

    async def work() -> None:
        conn = await asyncpg.connect(harness.PG_URL.replace("postgres://", "postgresql://"))
        try:
            await conn.execute(
                "UPDATE tenant SET config = config || '{\"leaderboards\": false}'::jsonb, "
                "config_version = config_version + 1 WHERE slug = $1",
                slug,
            )
        finally:
            await conn.close()

    asyncio.run(work())


def api_key(env: dict[str, str], slug: str) -> str:
    out = run_cli(["apikey", "create", "--tenant", slug, "--role", "admin", "--name", "b"], env)
    return [line.strip() for line in out.splitlines() if line.strip()][-1]


# ---------------------------------------------------------------- the bench


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    env = backend_env("postgres")
    data: dict[str, Any] = {
        "command": args.command_line,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": harness.PINNING,
        "versions": versions(["postgres"]),
        "git": git_state(),
        "args": {k: v for k, v in vars(args).items() if k != "command_line"},
        "runs": [],
    }
    log("prepare: database, tenants, keys")
    boards_key = prepare("postgres")  # tenant `default` (telco), with leaderboards
    run_cli(["tenant", "create", "flat", "--preset", "telco"], env)
    disable_boards("flat")
    harness.raise_daily_cap("postgres", "flat")  # like `default` (see BENCH_DAILY_CAP)
    flat_key = api_key(env, "flat")
    run_cli(["tenant", "create", TENANT, "--preset", "telco"], env)
    lb_key = api_key(env, TENANT)
    log(f"load: {args.all_time:,} ALL_TIME players, {args.periodic:,} on each other board")
    loaded = asyncio.run(load_boards(args.all_time, args.periodic))
    log(f"  loaded in {loaded['load_s']} s")
    run_cli(["leaderboard", "snapshot", "--tenant", TENANT], env, timeout=900)
    data["loaded"] = loaded
    daily = loaded["keys"]["DAILY"]
    sql_env = {**env, "REDIS_URL": ""}

    base = worktree(args.baseline_rev) if args.baseline_rev else None
    try:
        for run in range(args.runs):
            record: dict[str, Any] = {}
            log(f"run {run + 1}/{args.runs}: rebuild")
            redis_cleanup()
            record["rebuild_all_s"] = timed_cli(
                [
                    "leaderboard",
                    "rebuild",
                    "--tenant",
                    TENANT,
                    "--period",
                    "ALL_TIME",
                    "--key",
                    "all",
                ],
                env,
            )
            record["rebuild_daily_s"] = timed_cli(
                ["leaderboard", "rebuild", "--tenant", TENANT, "--period", "DAILY", "--key", daily],
                env,
            )
            run_cli(["leaderboard", "rebuild", "--tenant", TENANT], env, timeout=900)
            record["memory_all"] = redis_memory(loaded["tenant_id"], "ALL_TIME", "all")
            log(
                f"  rebuild ALL_TIME {record['rebuild_all_s']} s, "
                f"DAILY {record['rebuild_daily_s']} s;"
                f" Redis {record['memory_all']['bytes'] / MIB:.0f} MiB for "
                f"{record['memory_all']['members']:,} players"
            )

            log(f"run {run + 1}/{args.runs}: framework ceiling (no-op server)")
            noop = noop_server(procs, f"lb-noop-r{run + 1}")
            try:
                record["noop1"] = loadgen(procs, args, noop, "", "noop", 1)
                record["noop50"] = loadgen(procs, args, noop, "", "noop", args.clients)
            finally:
                noop.stop()

            if base is not None and run % 2 == 0:  # the baseline's reads first in every other run
                record.update(baseline_reads(procs, args, base, env, lb_key, run))
            log(f"run {run + 1}/{args.runs}: reads from Redis")
            server = Server(procs, f"lb-redis-r{run + 1}", ["app.asgi:create_app"], env)
            server.start()
            try:
                for period, players in (("ALL_TIME", args.all_time), ("DAILY", args.periodic)):
                    extra = [f"--period={period}", f"--players={players}"]
                    for clients in (1, args.clients):
                        record[f"redis_{period}_{clients}"] = loadgen(
                            procs, args, server, lb_key, "board", clients, extra=extra
                        )
                    paced = paced_reads(procs, args, server, lb_key, extra)
                    record[f"redis_{period}_paced"] = paced
                record["redis_rss"] = server.peak_rss()
                log(f"run {run + 1}/{args.runs}: writes with and without boards")
                tenants = [("boards", boards_key), ("flat", flat_key)]
                for name, key in tenants if run % 2 == 0 else tenants[::-1]:  # alternate
                    # Each side starts from a vacuumed database (autovacuum is off here).
                    record[f"settle_{name}_50"] = pg_settle()
                    record[f"write_{name}_50"] = loadgen(
                        procs, args, server, key, "record", args.clients
                    )
                    record[f"settle_{name}_batch"] = pg_settle()
                    record[f"write_{name}_batch"] = loadgen(procs, args, server, key, "records", 4)
                stats = _readyz(server)
                record["boards_stats"] = stats.get("leaderboards")
            finally:
                server.stop()

            if base is not None and run % 2 == 1:
                record.update(baseline_reads(procs, args, base, env, lb_key, run))
            log(f"run {run + 1}/{args.runs}: reads from SQL (no REDIS_URL)")
            server = Server(procs, f"lb-sql-r{run + 1}", ["app.asgi:create_app"], sql_env)
            server.start()
            try:
                extra = ["--period=DAILY", f"--players={args.periodic}"]
                for clients in (1, args.clients):
                    record[f"sql_DAILY_{clients}"] = loadgen(
                        procs, args, server, lb_key, "board", clients, extra=extra
                    )
                record["sql_DAILY_paced"] = paced_reads(procs, args, server, lb_key, extra)
                extra = ["--period=ALL_TIME", f"--players={args.all_time}"]
                record["sql_ALL_TIME_1"] = loadgen(
                    procs, args, server, lb_key, "board", 1, extra=extra
                )
            finally:
                server.stop()
            data["runs"].append(record)
    finally:
        if base is not None:
            drop(base)
    return data


def _readyz(server: Server) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(server.url.replace("/graphql", "/readyz"), timeout=10) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------- report


def _med(runs: list[dict[str, Any]], name: str, field: str) -> float | None:
    values = [r[name][field] for r in runs if r.get(name) and r[name].get(field) is not None]
    return statistics.median(values) if values else None


def _cells(runs: list[dict[str, Any]], name: str, field: str, fmt: str) -> str:
    values = [r.get(name, {}).get(field) for r in runs]
    med = _med(runs, name, field)
    shown = [fmt.format(v) if v is not None else "n/a" for v in values]
    return (fmt.format(med) if med is not None else "n/a") + " | " + " / ".join(shown)


def paced_reads(
    procs: Processes, args: argparse.Namespace, server: Server, key: str, extra: list[str]
) -> dict[str, Any]:
    """`--clients` readers, each on its own schedule, `--paced-rate` reads/s in all."""
    interval = f"--interval={args.clients / args.paced_rate}"
    return loadgen(procs, args, server, key, "board", args.clients, extra=[*extra, interval])


def baseline_reads(
    procs: Processes, args: argparse.Namespace, base: Path, env: dict[str, str], key: str, run: int
) -> dict[str, Any]:
    """The Redis-served ALL_TIME reads (1 client, and the paced clients) on the code of
    `--baseline-rev`, against the same databases: the A/B of a change in one run."""
    log(f"run {run + 1}/{args.runs}: reads from Redis, baseline {args.baseline_rev}")
    server = Server(procs, f"lb-base-r{run + 1}", ["app.asgi:create_app"], env, cwd=base)
    server.start()
    extra = ["--period=ALL_TIME", f"--players={args.all_time}"]
    try:
        return {
            "base_ALL_TIME_1": loadgen(procs, args, server, key, "board", 1, extra=extra),
            "base_ALL_TIME_paced": paced_reads(procs, args, server, key, extra),
        }
    finally:
        server.stop()


def _cpu_per_read(runs: list[dict[str, Any]], name: str) -> str:
    """The worker's CPU per read, ms: its CPU share over the reads per second."""
    values = [
        r[name]["server_cpu_util"] / r[name]["requests_per_s"] * 1000
        for r in runs
        if r.get(name, {}).get("server_cpu_util") and r[name].get("requests_per_s")
    ]
    if not values:
        return "n/a | n/a"
    shown = " / ".join(f"{v:.2f}" for v in values)
    return f"{statistics.median(values):.2f} | {shown}"


def report(data: dict[str, Any]) -> str:
    runs = data["runs"]
    a = data["args"]
    c = a["clients"]
    lines = [
        START,
        "## Leaderboards (bench/leaderboard.py)",
        "",
        f"Measured {data['date']} on {data['machine'].get('cpu', '?')}, "
        f"{data['machine'].get('nproc', '?')} cores; pinning: {data['pinning']}; "
        f"{data['git']}. Command: `{data['command']}`. Versions: "
        + ", ".join(f"{k} {v}" for k, v in data["versions"].items())
        + ".",
        "",
        f"Data: tenant `lb`, {a['all_time']:,} players on the ALL_TIME board and "
        f"{a['periodic']:,} on today's DAILY, WEEKLY and MONTHLY boards and yesterday's "
        f"DAILY board (snapshotted), points drawn from 0 to 49,999 (many ties); loaded with "
        f"COPY in {data['loaded']['load_s']} s. Reads: `leaderboard(period, first: 10, "
        "around: X)` with X a random player on the board, closed loop, "
        f"{a['duration']} s measured after {a['warmup']} s warm-up, one uvicorn worker. "
        "Medians of the runs, then each run."
        + (
            f" The `baseline {a['baseline_rev']}` rows: the same ALL_TIME reads on that "
            "revision's code (a git worktree) against the same databases, before this "
            "code's reads in odd runs and after them in even runs."
            if a.get("baseline_rev")
            else ""
        ),
        "",
        "| measure | median | runs |",
        "| --- | ---: | --- |",
    ]
    reads = [
        ("Redis, ALL_TIME (1M)", "redis_ALL_TIME"),
        ("Redis, DAILY (100k)", "redis_DAILY"),
        ("SQL fallback, DAILY (100k)", "sql_DAILY"),
    ]
    paced = f"{c} clients paced to {a['paced_rate']:.0f} reads/s in all"
    for label, name in reads:
        for clients in (1, c, "paced"):
            key = f"{name}_{clients}"
            clients = paced if clients == "paced" else f"{clients} client(s)"
            for field in ("p50_ms", "p99_ms"):
                lines.append(
                    f"| {label}, {clients}: {field[:3]} ms | {_cells(runs, key, field, '{:.2f}')} |"
                )
            lines.append(
                f"| {label}, {clients}: reads/s | "
                f"{_cells(runs, key, 'requests_per_s', '{:,.0f}')} |"
            )
    lines.append(
        "| Redis, ALL_TIME (1M), 1 client: worker CPU per read, ms | "
        f"{_cpu_per_read(runs, 'redis_ALL_TIME_1')} |"
    )
    if a.get("baseline_rev"):
        rev = a["baseline_rev"]
        for clients, key in (("1 client", "base_ALL_TIME_1"), (paced, "base_ALL_TIME_paced")):
            for field in ("p50_ms", "p99_ms"):
                lines.append(
                    f"| baseline {rev}: Redis, ALL_TIME (1M), {clients}: {field[:3]} ms | "
                    f"{_cells(runs, key, field, '{:.2f}')} |"
                )
            lines.append(
                f"| baseline {rev}: Redis, ALL_TIME (1M), {clients}: reads/s | "
                f"{_cells(runs, key, 'requests_per_s', '{:,.0f}')} |"
            )
        lines.append(
            f"| baseline {rev}: Redis, ALL_TIME (1M), 1 client: worker CPU per read, ms | "
            f"{_cpu_per_read(runs, 'base_ALL_TIME_1')} |"
        )
    lines.append(
        "| SQL fallback, ALL_TIME (1M), 1 client: p50 ms | "
        f"{_cells(runs, 'sql_ALL_TIME_1', 'p50_ms', '{:.2f}')} |"
    )
    for clients in (1, c):
        key = f"noop{clients}"
        lines.append(
            f"| baseline: no-op Strawberry mutation, {clients} client(s): p99 ms | "
            f"{_cells(runs, key, 'p99_ms', '{:.2f}')} |"
        )
        lines.append(
            f"| baseline: no-op Strawberry mutation, {clients} client(s): requests/s | "
            f"{_cells(runs, key, 'requests_per_s', '{:,.0f}')} |"
        )
    rebuild_all = [r["rebuild_all_s"] for r in runs]
    rebuild_daily = [r["rebuild_daily_s"] for r in runs]
    lines.append(
        f"| rebuild ALL_TIME ({a['all_time']:,}) from PostgreSQL, s | "
        f"{statistics.median(rebuild_all):.1f} | "
        + " / ".join(f"{v:.1f}" for v in rebuild_all)
        + " |"
    )
    lines.append(
        f"| rebuild DAILY ({a['periodic']:,}) from PostgreSQL, s | "
        f"{statistics.median(rebuild_daily):.1f} | "
        + " / ".join(f"{v:.1f}" for v in rebuild_daily)
        + " |"
    )
    mem = runs[-1]["memory_all"]
    lines.append(
        f"| Redis memory, ALL_TIME set + hash | {mem['bytes'] / MIB:.0f} MiB "
        f"({mem['bytes'] / max(mem['members'], 1):.0f} B/player) | |"
    )
    for label, name in (
        (f"recordEvent, {c} clients, events/s", "50"),
        ("recordEvents, 4 clients x 500, events/s", "batch"),
    ):
        lines.append(
            f"| {label}, four period boards | "
            f"{_cells(runs, f'write_boards_{name}', 'events_per_s', '{:,.0f}')} |"
        )
        lines.append(
            f"| {label}, no leaderboards | "
            f"{_cells(runs, f'write_flat_{name}', 'events_per_s', '{:,.0f}')} |"
        )
    settles = [r[k] for r in runs for k in sorted(r) if k.startswith("settle_")]
    if settles:
        lines += [
            "",
            f"Writes: tenant `default` (telco, four period boards) against tenant `flat` "
            "(the same preset with `leaderboards: false`), on one server, in alternating "
            "order; both with the daily cap raised to 100,000,000 points, so that every run's "
            "events earn points (with the preset's 1,000 a day the 2,000 bench players were "
            "capped within the first runs, and capped events write no period scores). "
            f"PostgreSQL's autovacuum is {settles[0]['autovacuum']} on this machine, "
            "so each write measurement starts after a `VACUUM ANALYZE` (median "
            f"{statistics.median(s['vacuum_s'] for s in settles):.1f} s), as autovacuum "
            "would between them: the period score rows are updated in place, and their dead "
            "versions would otherwise pile up from one measurement to the next.",
        ]
    lines += ["", "Against the targets:", ""]
    p99 = _med(runs, f"redis_ALL_TIME_{c}", "p99_ms")
    noop99 = _med(runs, f"noop{c}", "p99_ms")
    paced99 = _med(runs, "redis_ALL_TIME_paced", "p99_ms")
    rate = _med(runs, f"redis_ALL_TIME_{c}", "requests_per_s")
    lines.append(
        f"- Redis reads, p99 at {c} clients ≤ {READ_TARGET_P99_MS:.0f} ms: closed loop "
        + ("**met**" if p99 is not None and p99 <= READ_TARGET_P99_MS else "**NOT met**")
        + f" ({p99:.1f} ms on ALL_TIME at {rate:,.0f} reads/s, the worker's ceiling; the "
        f"no-op Strawberry mutation's own p99 at {c} back-to-back clients is {noop99:.1f} "
        f"ms in the same run, ratio {p99 / noop99:.2f}×: with {c} requests always in "
        f"flight, Little's law needs {c / (READ_TARGET_P99_MS / 1000):,.0f} requests/s per "
        "worker for 10 ms). "
        f"Paced, {c} clients at {a['paced_rate']:.0f} reads/s in all: "
        + ("**met**" if paced99 is not None and paced99 <= READ_TARGET_P99_MS else "**NOT met**")
        + f" (p99 {paced99:.2f} ms). 1 client: p99 "
        f"{_med(runs, 'redis_ALL_TIME_1', 'p99_ms'):.2f} ms."
    )
    for label, name in ((f"recordEvent at {c} clients", "50"), ("batches of 500", "batch")):
        on = _med(runs, f"write_boards_{name}", "events_per_s")
        off = _med(runs, f"write_flat_{name}", "events_per_s")
        cost = 1 - on / off if on and off else None
        lines.append(
            f"- Board updates cost ≤ {WRITE_COST_TARGET:.0%} of throughput, {label}: "
            + ("**met**" if cost is not None and cost <= WRITE_COST_TARGET else "**NOT met**")
            + f" ({on:,.0f} vs {off:,.0f} events/s: {cost:.0%})."
        )
    failures = sum(m.get("failures", 0) for r in runs for m in r.values() if isinstance(m, dict))
    lines += ["", f"Failed requests: {failures}.", END]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Questline leaderboard benchmark.")
    p.add_argument("--runs", type=int, default=3)
    harness.add_load_options(p, duration=8.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument(
        "--paced-rate", type=float, default=200.0, help="reads/s of the paced clients in all"
    )
    p.add_argument("--all-time", type=int, default=1_000_000)
    p.add_argument("--periodic", type=int, default=100_000)
    p.add_argument("--players", type=int, default=2000, help="players of the write load")
    p.add_argument(
        "--baseline-rev",
        default=None,
        help="also measure the Redis ALL_TIME reads on this git revision (same databases)",
    )
    args = p.parse_args(argv)
    if args.periodic > args.all_time:
        p.error("--periodic must not exceed --all-time")
    args.command_line = shlex.join(["python", "bench/leaderboard.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    status, _ = run_bench("leaderboard", parse_args(argv), bench, report, (START, END))
    return status


if __name__ == "__main__":
    sys.exit(main())
