"""Ingest benchmark: `recordEvent` and `recordEvents` throughput and latency.

    python bench/ingest.py --backend postgres|sqlite|both --runs 3 --duration 10

For each backend it recreates its own database (PostgreSQL `questline_bench`, or
/tmp/qlbench/bench.sqlite3), migrates, seeds, creates an admin key and upserts the
bench players; then, --runs times, it starts one uvicorn worker pinned to core 0 and
drives it from a load generator (bench/loadgen.py) pinned to core 1:
single events at 1 and 50 clients, batches of 500, and the server's peak RSS.
Baselines measured in the same run: a Strawberry/Starlette no-op server (framework
ceiling) and raw `executemany` inserts (database ceiling). Results go to
bench/RESULTS.md (between the ingest markers) and raw data to bench/out/.

This file is the CLI and the bench itself; process, server and machine plumbing is in
bench/harness.py, the executemany ceilings in bench/ceilings.py and the Markdown report
in bench/report.py.

Exit status: 0 ok; 1 some requests failed (reported, never measured as throughput);
2 setup error; 3 the mutations under test are not in the schema yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script: bench/ is sys.path[0] already; this keeps the siblings importable
# under `python -P` too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from ceilings import db_ceiling
from envinfo import git_state, machine, source_fingerprint, versions
from harness import (
    MIB,
    OUT,
    BenchBlocked,
    Processes,
    Server,
    SetupError,
    backend_env,
    gql,
    graphql_calls,
    loadgen,
    log,
    noop_server,
    pg_recreate,
    pg_settle,
    prepare,
    run_bench,
)
from loadgen import RECORD_EVENT, RECORD_EVENTS, EventFactory, SchemaMissing, check
from report import END, MEASURES, START, failures_of, report

UPSERT_PLAYER = (
    "mutation($input: PlayerInput!) { upsertPlayer(input: $input) "
    "{ player { id } errors { code message } } }"
)


def preload(server: Server, key: str, args: argparse.Namespace) -> int:
    """A history of `--history` events before the first run (batches of 500 through the
    API), so that the first run, like the others, starts from a database with events
    in it and statistics that know it."""
    factory = EventFactory(args.players, f"history-{uuid.uuid4().hex[:8]}", 0)
    batches = [
        gql(RECORD_EVENTS, {"input": [factory.event() for _ in range(500)]})
        for _ in range(args.history // 500)
    ]
    t0 = time.monotonic()
    for status, content in asyncio.run(graphql_calls(server.url, key, batches, 4)):
        ok, message, _ = check(status, content, "recordEvents", 500)
        if not ok:
            raise SetupError(f"history recordEvents failed: {message}")
    log(f"  recorded a history of {len(batches) * 500:,} events in {time.monotonic() - t0:.1f}s")
    return len(batches) * 500


def preflight(server: Server, key: str, players: int) -> dict[str, Any]:
    """Upsert the bench players, then one recordEvent and one recordEvents call."""
    bodies = [
        gql(
            UPSERT_PLAYER,
            {"input": {"id": f"bench-p{n}", "segment": ("prepaid", "postpaid")[n % 2]}},
        )
        for n in range(players)
    ]
    t0 = time.monotonic()
    answers = asyncio.run(graphql_calls(server.url, key, bodies, 8))
    for status, content in answers:
        ok, message, _ = check(status, content, "upsertPlayer", 1)
        if not ok:
            raise SetupError(f"upsertPlayer failed: {message}")
    log(
        f"  upserted {players} players bench-p0..bench-p{players - 1} "
        f"in {time.monotonic() - t0:.1f}s"
    )
    tag = uuid.uuid4().hex[:10]
    probe = {
        "playerId": "bench-p0",
        "eventType": "APP_LOGIN",
        "value": 1,
        "source": "bench",
        "idempotencyKey": f"probe-{tag}",
    }
    batch = [
        {**probe, "playerId": f"bench-p{n}", "idempotencyKey": f"probe-{tag}-{n}"} for n in (1, 2)
    ]
    found = {}
    for name, query, variables, expected in (
        ("recordEvent", RECORD_EVENT, {"input": probe}, 1),
        ("recordEvents", RECORD_EVENTS, {"input": batch}, 2),
    ):
        ((status, content),) = asyncio.run(
            graphql_calls(server.url, key, [gql(query, variables)], 1)
        )
        try:
            ok, message, _ = check(status, content, name, expected)
        except SchemaMissing as exc:
            raise BenchBlocked(f"`{name}` is not in the schema yet: {exc}") from None
        if not ok:
            raise SetupError(f"probe {name} failed: {message}")
        found[name] = json.loads(content)["data"][name]
        log(f"  probe {name}: {json.dumps(found[name])[:200]}")
    return found


# ---------------------------------------------------------------- the bench


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    shutil.rmtree(OUT / "ingest-logs", ignore_errors=True)
    data: dict[str, Any] = {
        "command": args.command_line,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": harness.PINNING,
        "args": {k: v for k, v in vars(args).items() if k != "command_line"},
        "versions": versions(backends),
        "git": git_state(),
        "fingerprints": [source_fingerprint()],
        "noop": [],
        "client_check": None,
        "backends": {b: {"runs": [], "probe": None} for b in backends},
    }
    keys: dict[str, str] = {}
    stored = dict.fromkeys(backends, 0)  # events recorded so far, to show history growth
    if not args.baselines_only:
        for backend in backends:
            log(f"{backend}: prepare")
            keys[backend] = prepare(backend)
            server = Server(
                procs, f"{backend}-preflight", ["app.asgi:create_app"], backend_env(backend)
            )
            server.start()
            try:
                data["backends"][backend]["probe"] = preflight(server, keys[backend], args.players)
                stored[backend] = 3 + preload(server, keys[backend], args)  # probes, history
            finally:
                server.stop()
    elif "postgres" in backends:
        asyncio.run(pg_recreate())

    for run in range(args.runs):
        log(f"run {run + 1}/{args.runs}: framework ceiling (no-op server)")
        noop = noop_server(procs, f"noop-r{run + 1}")
        try:
            entry = {
                "single1": loadgen(procs, args, noop, "", "noop", 1),
                "single50": loadgen(procs, args, noop, "", "noop", args.clients),
                "batch": loadgen(procs, args, noop, "", "noops", args.batch_clients),
            }
            if run == 0 and args.client != "httpx" and not args.skip_client_check:
                data["client_check"] = loadgen(
                    procs, args, noop, "", "noop", args.clients, client="httpx"
                )
            entry["peak_rss"] = noop.peak_rss()
        finally:
            noop.stop()
        data["noop"].append(entry)

        for backend in backends:
            record: dict[str, Any] = {}
            if not args.baselines_only:
                log(f"run {run + 1}/{args.runs}: {backend}")
                server = Server(
                    procs, f"{backend}-r{run + 1}", ["app.asgi:create_app"], backend_env(backend)
                )
                if backend == "postgres":
                    record["settle"] = pg_settle()
                record["fingerprint"] = source_fingerprint()
                data["fingerprints"].append(record["fingerprint"])
                server.start()
                record["stored_before"] = stored[backend]
                try:
                    key = keys[backend]
                    record["single1"] = loadgen(procs, args, server, key, "record", 1)
                    record["single50"] = loadgen(procs, args, server, key, "record", args.clients)
                    record["batch"] = loadgen(
                        procs, args, server, key, "records", args.batch_clients
                    )
                    record["peak_rss"] = server.peak_rss()
                    log(f"  {backend:10} server peak RSS {(record['peak_rss'] or 0) / MIB:.1f} MiB")
                finally:
                    server.stop()
                    stored[backend] += sum(
                        m.get("ok_events", 0) for m in record.values() if isinstance(m, dict)
                    )
            rows = max(args.ceiling_min_rows, record.get("batch", {}).get("window_events", 0))
            record["ceiling"] = db_ceiling(backend, rows, args)
            data["backends"][backend]["runs"].append(record)
    return data


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Questline ingest benchmark (see bench/README.md).")
    p.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    p.add_argument("--clients", type=int, default=50, help="concurrent single-event clients")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--batch-clients", type=int, default=4, help="concurrent batch clients")
    p.add_argument("--players", type=int, default=2000)
    p.add_argument(
        "--history", type=int, default=50_000, help="events recorded before the first run"
    )
    p.add_argument("--client", choices=("raw", "h11", "httpx"), default="raw")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--ceiling-min-rows", type=int, default=20_000)
    p.add_argument("--skip-client-check", action="store_true", help="no httpx comparison")
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="only the no-op server and the executemany ceilings (no Questline server)",
    )
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = p.parse_args(argv)
    if not (1 <= args.runs <= 20 and 0 < args.duration <= 300 and 0 <= args.warmup <= 60):
        p.error("need 1 <= runs <= 20, 0 < duration <= 300, 0 <= warmup <= 60")
    if not (1 <= args.clients <= 1000 and 1 <= args.batch_clients <= 100):
        p.error("need 1 <= clients <= 1000 and 1 <= batch-clients <= 100")
    if not (1 <= args.batch_size <= 10_000 and 1 <= args.players <= 1_000_000):
        p.error("need 1 <= batch-size <= 10000 and 1 <= players <= 1000000")
    args.command_line = shlex.join(["python", "bench/ingest.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status, data = run_bench("ingest", args, bench, report, (START, END))
    if data is None:
        return status
    if len(set(data["fingerprints"])) > 1:
        log("WARNING: the server's source changed during the bench; the runs are not comparable")
    failed = failures_of(data["noop"], MEASURES) + sum(
        failures_of(info["runs"], MEASURES) for info in data["backends"].values()
    )
    if failed:
        log(f"{failed} requests failed: see RESULTS.md")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
