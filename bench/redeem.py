"""Redeem benchmark: `redeemReward` throughput and latency, on one hot item with stock
and spread over 1,000 items, against baselines measured in the same run.

    python bench/redeem.py --backend postgres|sqlite|both --runs 3 --duration 10

For each backend it recreates its own database (PostgreSQL `questline_bench_redeem`, or
/tmp/qlbench/redeem.sqlite3; never the ingest bench's), migrates, seeds, creates an
admin key, then through the API: players bench-p0..p{N-1} with 1,000,000 points each,
one hot item (stock 10,000,000) and 1,000 items (stock 100,000 each), all costing 1
point. Then, --runs times, one uvicorn worker pinned to core 0 is driven by
bench/loadgen.py pinned to core 1:

- redeemReward on the hot item at 1 and at --clients clients (every call takes the
  same item row: the conditional stock UPDATE serialises them);
- redeemReward spread over the 1,000 items at --clients clients;
- recordEvent at --clients clients on the same server (the ingest path: a baseline);
- a Strawberry no-op server (bench/baseline_app.py) at --clients clients (the framework
  ceiling).

After the runs, the stock each item lost must equal the redemptions the load
generators saw succeed (a failed check is reported and exits 1). Results replace the
part of bench/RESULTS.md between `<!-- redeem:start -->` and `<!-- redeem:end -->`;
raw data goes to bench/out/redeem-latest.json.

Exit status: 0 ok; 1 some requests failed or the stock check failed; 2 setup error;
3 redeemReward is not in the schema.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from envinfo import git_state, machine, source_fingerprint, versions
from harness import (
    BENCH,
    CLIENT_CORE,
    OUT,
    RESULTS,
    ROOT,
    SERVER_CORE,
    SQLITE_DIR,
    BenchBlocked,
    Processes,
    Server,
    SetupError,
    gql,
    graphql_calls,
    log,
    run_bench,
    write_section,
)
from loadgen import SchemaMissing, check
from report import fmt, med, row, table_head

# Our own database, Redis prefix and files: the ingest bench may run on another day
# against its own, and must not lose them to this one.
harness.PG_DB = "questline_bench_redeem"
harness.PG_URL = f"postgres://postgres@127.0.0.1:5432/{harness.PG_DB}"
harness.SQLITE_FILE = SQLITE_DIR / "redeem.sqlite3"
harness.REDIS_PREFIX = "qlbench-redeem"

START, END = "<!-- redeem:start -->", "<!-- redeem:end -->"
LOGS = OUT / "redeem-logs"
HOT_STOCK = 10_000_000
MANY_STOCK = 100_000
FUNDS = 1_000_000

UPSERT = "mutation($id: ID!) { upsertPlayer(input: {id: $id}) { player { id } errors { code } } }"
ADJUST = (
    "mutation($id: ID!) { adjustPoints(input: {playerId: $id, "
    f'amount: {FUNDS}, reason: "bench"}}) {{ wallet {{ balance }} errors {{ code message }} }} }}'
)
CREATE = (
    "mutation($input: RewardItemInput!) { createRewardItem(input: $input) "
    "{ reward { id } errors { code message } } }"
)
REDEEM = (
    "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) "
    "{ redemption { id status code } wallet { balance } errors { code message } } }"
)
MEASURES = ("hot1", "hot", "many", "record")


def calls(server: Server, key: str, bodies: list[bytes], field: str, what: str) -> list[Any]:
    answers = asyncio.run(graphql_calls(server.url, key, bodies, 8))
    out = []
    for status, content in answers:
        try:
            ok, message, _ = check(status, content, field, 1)
        except SchemaMissing as exc:
            raise BenchBlocked(f"`{field}` is not in the schema yet: {exc}") from None
        if not ok:
            raise SetupError(f"{what} failed: {message}")
        out.append(json.loads(content)["data"][field])
    return out


def populate(server: Server, key: str, players: int, items: int) -> dict[str, Any]:
    """Funded players and the items, through the API; returns the item ids."""
    t0 = time.monotonic()
    ids = [f"bench-p{n}" for n in range(players)]
    calls(server, key, [gql(UPSERT, {"id": i}) for i in ids], "upsertPlayer", "upsertPlayer")
    calls(server, key, [gql(ADJUST, {"id": i}) for i in ids], "adjustPoints", "adjustPoints")

    def item(name: str, stock: int) -> bytes:
        values = {"name": name, "category": "DIGITAL", "pointsCost": 1, "stock": stock}
        return gql(CREATE, {"input": values})

    (hot,) = calls(server, key, [item("hot", HOT_STOCK)], "createRewardItem", "createRewardItem")
    many = calls(
        server,
        key,
        [item(f"item-{n}", MANY_STOCK) for n in range(items)],
        "createRewardItem",
        "createRewardItem",
    )
    hot_id = int(hot["reward"]["id"])
    many_ids = sorted(int(m["reward"]["id"]) for m in many)
    if many_ids != list(range(many_ids[0], many_ids[0] + items)):
        raise SetupError("the items' ids are not consecutive")
    probe = {"playerId": "bench-p0", "rewardId": str(hot_id), "idempotencyKey": "probe"}
    (answer,) = calls(server, key, [gql(REDEEM, {"input": probe})], "redeemReward", "probe")
    log(
        f"  {players} players with {FUNDS:,} points, 1 hot item + {items} items "
        f"in {time.monotonic() - t0:.1f}s; probe: {json.dumps(answer)[:160]}"
    )
    return {"hot": hot_id, "many": (many_ids[0], many_ids[-1]), "probe": answer}


def stocks(backend: str) -> dict[int, int | None]:
    """Every item's stock, read from the database itself (not through the API)."""
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(harness.SQLITE_FILE)) as conn:
            return dict(conn.execute("SELECT id, stock FROM reward_item").fetchall())

    async def read() -> dict[int, int | None]:
        import asyncpg

        conn = await asyncpg.connect(harness.PG_URL.replace("postgres://", "postgresql://", 1))
        try:
            rows = await conn.fetch("SELECT id, stock FROM reward_item")
            return {r["id"]: r["stock"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(read())


def other_benches() -> int:
    """Processes of another checkout's benchmarks (they share our two cores)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "/bench/" in cmd and str(ROOT) not in cmd:
                count += 1
    return count


def server_for(procs: Processes, name: str, app: list[str], env: dict[str, str]) -> Server:
    server = Server(procs, name, app, env)
    server.log_path = LOGS / f"{name}.log"
    return server


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    shutil.rmtree(LOGS, ignore_errors=True)
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
        "backends": {b: {"runs": []} for b in backends},
    }
    keys, setup = {}, {}
    for backend in backends:
        log(f"{backend}: prepare")
        keys[backend] = harness.prepare(backend)
        server = server_for(procs, f"{backend}-setup", ["app.asgi:create_app"], env(backend))
        server.start()
        try:
            setup[backend] = populate(server, keys[backend], args.players, args.items)
        finally:
            server.stop()
        setup[backend]["stocks_before"] = stocks(backend)
        data["backends"][backend]["setup"] = {
            k: v for k, v in setup[backend].items() if k != "stocks_before"
        }

    for run in range(args.runs):
        log(f"run {run + 1}/{args.runs}: framework ceiling (no-op server)")
        noop = server_for(
            procs, f"noop-r{run + 1}", ["--app-dir", str(BENCH), "baseline_app:create_app"], env()
        )
        noop.start()
        try:
            single = harness.loadgen(procs, args, noop, "", "noop", args.clients)
            data["noop"].append({"single": single})
        finally:
            noop.stop()
        for backend in backends:
            log(f"run {run + 1}/{args.runs}: {backend}")
            key, info = keys[backend], setup[backend]
            hot = ("--rewards", str(info["hot"]))
            many = ("--rewards", "{}-{}".format(*info["many"]))
            server = server_for(
                procs, f"{backend}-r{run + 1}", ["app.asgi:create_app"], env(backend)
            )
            record: dict[str, Any] = {
                "fingerprint": source_fingerprint(),
                "other_benches": other_benches(),
            }
            data["fingerprints"].append(record["fingerprint"])
            server.start()
            try:
                record["hot1"] = harness.loadgen(procs, args, server, key, "redeem", 1, extra=hot)
                record["hot"] = harness.loadgen(
                    procs, args, server, key, "redeem", args.clients, extra=hot
                )
                record["many"] = harness.loadgen(
                    procs, args, server, key, "redeem", args.clients, extra=many
                )
                record["record"] = harness.loadgen(procs, args, server, key, "record", args.clients)
                record["peak_rss"] = server.peak_rss()
            finally:
                server.stop()
            record["other_benches_after"] = other_benches()
            data["backends"][backend]["runs"].append(record)

    for backend in backends:  # the stock lost is exactly what was redeemed
        after = stocks(backend)
        info, runs = setup[backend], data["backends"][backend]["runs"]
        before = info["stocks_before"]
        hot_lost = before[info["hot"]] - after[info["hot"]]
        hot_ok = sum(r[m]["ok_events"] for r in runs for m in ("hot1", "hot"))
        first, last = info["many"]
        many_lost = sum(before[i] - after[i] for i in range(first, last + 1))
        many_ok = sum(r["many"]["ok_events"] for r in runs)
        data["backends"][backend]["stock_check"] = {
            "hot": [hot_lost, hot_ok],
            "many": [many_lost, many_ok],
            "ok": hot_lost == hot_ok and many_lost == many_ok,
            "min_stock": min(v for v in after.values() if v is not None),
        }
        log(f"  {backend} stock check: {data['backends'][backend]['stock_check']}")
    return data


def env(backend: str | None = None) -> dict[str, str]:
    return harness.backend_env(backend) if backend else harness.base_env()


# ---------------------------------------------------------------- the report

METRICS = (
    ("redeemReward, hot item, 1 client: redemptions/s", "hot1", "events_per_s", "eps"),
    ("redeemReward, hot item, 1 client: p50 ms", "hot1", "p50_ms", "ms"),
    ("redeemReward, hot item, {c} clients: redemptions/s", "hot", "events_per_s", "eps"),
    ("redeemReward, hot item, {c} clients: p50 ms", "hot", "p50_ms", "ms"),
    ("redeemReward, hot item, {c} clients: p99 ms", "hot", "p99_ms", "ms"),
    ("redeemReward, hot item: server worker CPU (core 0)", "hot", "server_cpu_util", "pct"),
    ("redeemReward, hot item: core 1 busy (client + DB)", "hot", "core1", "pct"),
    ("redeemReward, 1,000 items, {c} clients: redemptions/s", "many", "events_per_s", "eps"),
    ("redeemReward, 1,000 items, {c} clients: p50 ms", "many", "p50_ms", "ms"),
    ("redeemReward, 1,000 items, {c} clients: p99 ms", "many", "p99_ms", "ms"),
    ("redeemReward, 1,000 items: server worker CPU (core 0)", "many", "server_cpu_util", "pct"),
    ("baseline: recordEvent, {c} clients: events/s", "record", "events_per_s", "eps"),
    ("baseline: recordEvent, {c} clients: p99 ms", "record", "p99_ms", "ms"),
)


def values(runs: list[dict[str, Any]], measure: str, name: str) -> list[float | None]:
    out = []
    for r in runs:
        m = r.get(measure) or {}
        out.append((m.get("cores_busy") or {}).get("cpu1") if name == "core1" else m.get(name))
    return out


def report(data: dict[str, Any]) -> str:
    args, m, v = data["args"], data["machine"], data["versions"]
    c = args["clients"]
    prints = list(dict.fromkeys(data["fingerprints"]))
    code = (
        f"{prints[0]}, unchanged during the bench"
        if len(prints) == 1
        else f"**changed during the bench** ({' -> '.join(prints)}): runs not comparable"
    )
    pinning = (
        f"the uvicorn worker on core {SERVER_CORE}, the load generator on core {CLIENT_CORE}; "
        "PostgreSQL and Redis are not pinned"
        if data["pinning"] != "none"
        else "none (fewer than 2 cores or no way to pin)"
    )
    lines = [
        START,
        "## Redeem: `redeemReward`",
        "",
        f"- Date: {data['date']}; whole bench took {data.get('elapsed_s', 0):.0f} s.",
        f"- Command: `{data['command']}`",
        f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['ram_gib']} GiB RAM, "
        f"Linux {m['kernel']}. Pinning: {pinning}.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Code: git {data['git']}; source fingerprint {code}.",
        f"- Each measurement: {args['warmup']:g} s warm-up, then {args['duration']:g} s "
        f"measured; {args['runs']} runs; median, min and max over the runs. "
        f"{args['players']:,} players (`bench-p{{n}}`, {FUNDS:,} points each); every "
        f"redemption is 1 point, quantity 1, a random player, a unique `idempotencyKey`. "
        f"Hot item: one item with stock {HOT_STOCK:,} that every call redeems. 1,000 items: "
        f"each call picks one of {args['items']:,} items (stock {MANY_STOCK:,} each). Items "
        "without approval: each success is a FULFILLED redemption with a generated code.",
        "- Server: one uvicorn worker, `QUESTLINE_ENV=dev`, an admin API key; PostgreSQL with "
        "Redis (`REDIS_PREFIX=qlbench-redeem`), SQLite with in-process pub/sub. A fresh "
        "server per run; the runs share one database per backend (redemptions accumulate).",
        "- Load generator: `bench/loadgen.py --client raw`, closed loop, one keep-alive "
        "connection per client. Every answer is parsed; an HTTP error, a top-level error "
        "or a non-empty payload `errors` is a failure, counted and excluded.",
        "- Baselines in the same run: `recordEvent` on the same server and database (the "
        f"ingest path) and the Strawberry no-op server `bench/baseline_app.py`, both at {c} "
        "clients.",
        "- Machine shared: two cores, shared with PostgreSQL, Redis and other engineers' "
        "work. Each table counts the processes of other checkouts' benchmarks seen around "
        "each run: where that is not 0 the run competed with them for the cores.",
        "",
    ]
    total_failures = 0
    for backend, info in data["backends"].items():
        runs = info["runs"]
        title = "PostgreSQL + Redis" if backend == "postgres" else "SQLite, in-process pub/sub"
        lines += [f"### {title}", ""]
        lines += table_head("metric", len(runs))
        for label, measure, name, unit in METRICS:
            lines.append(row(label.format(c=c), values(runs, measure, name), unit))
        lines.append(row("server peak RSS (VmHWM), MiB", [r.get("peak_rss") for r in runs], "mib"))
        busy = [max(r.get("other_benches", 0), r.get("other_benches_after", 0)) for r in runs]
        lines.append(
            "| processes of other benchmarks seen (before/after the run) | | | | "
            + " | ".join(str(n) for n in busy)
            + " |"
        )
        failures = sum(r[k]["failures"] for r in runs for k in MEASURES)
        requests = sum(r[k]["requests"] for r in runs for k in MEASURES)
        total_failures += failures
        check_ = info.get("stock_check", {})
        lines += [
            "",
            f"Failed requests: {failures:,} of {requests:,}.",
            f"Stock check: the hot item lost {check_.get('hot', ['?'])[0]:,} and the load "
            f"generators saw {check_.get('hot', [0, '?'])[1]:,} successes; the 1,000 items lost "
            f"{check_.get('many', ['?'])[0]:,} for {check_.get('many', [0, '?'])[1]:,} "
            f"successes; lowest stock {check_.get('min_stock', '?'):,}: "
            + ("**consistent**." if check_.get("ok") else "**INCONSISTENT**."),
            "",
        ]
    noop = [n["single"] for n in data["noop"]]
    lines += ["### Baselines and ratios (same run)", ""]
    lines += table_head("baseline", len(noop))
    label = f"no-op mutation, {c} clients"
    lines.append(row(f"{label}: requests/s", [n["events_per_s"] for n in noop], "eps"))
    lines.append(row(f"{label}: p99 ms", [n["p99_ms"] for n in noop], "ms"))
    lines += [
        "",
        "Redemptions/s (medians) as a share of the baselines:",
        "",
        "| backend | hot ÷ no-op | 1,000 items ÷ no-op | hot ÷ recordEvent "
        "| 1,000 items ÷ recordEvent |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    noop_med = med([n["events_per_s"] for n in noop])
    for backend, info in data["backends"].items():
        runs = info["runs"]
        hot, many, rec = (med(values(runs, k, "events_per_s")) for k in ("hot", "many", "record"))

        def ratio(a: float | None, b: float | None) -> str:
            if not a or not b:
                return "n/a"
            return f"{a / b:.1%} ({fmt(a, 'eps')} / {fmt(b, 'eps')})"

        lines.append(
            f"| {backend} | {ratio(hot, noop_med)} | {ratio(many, noop_med)} | "
            f"{ratio(hot, rec)} | {ratio(many, rec)} |"
        )
    lines += ["", "Reading (computed from the medians above):", ""]
    for backend, info in data["backends"].items():
        runs = info["runs"]
        hot, many = (med(values(runs, k, "events_per_s")) for k in ("hot", "many"))
        cpu = med(values(runs, "hot", "server_cpu_util"))
        if hot and many:
            limit = (
                "the server worker's CPU, not the hot item's row lock, limits throughput"
                if hot >= 0.8 * many and (cpu or 0) >= 0.8
                else "the hot item's row lock costs throughput"
            )
            lines.append(
                f"- {backend}: hot item ÷ 1,000 items = {hot / many:.0%}, worker CPU "
                f"{fmt(cpu, 'pct')} on the hot item: {limit}."
            )
    if total_failures:
        lines += ["", f"**{total_failures} requests failed in this bench; see above.**"]
    lines += ["", "Raw data: `bench/out/redeem-latest.json` (git-ignored).", END]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Questline redeem benchmark (see bench/README.md).")
    p.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients")
    p.add_argument("--players", type=int, default=1000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--client", choices=("raw", "h11", "httpx"), default="raw")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the RESULTS.md section from bench/out/redeem-latest.json; measure nothing",
    )
    args = p.parse_args(argv)
    if not (1 <= args.runs <= 20 and 0 < args.duration <= 300 and 0 <= args.warmup <= 60):
        p.error("need 1 <= runs <= 20, 0 < duration <= 300, 0 <= warmup <= 60")
    if not (1 <= args.clients <= 1000 and 1 <= args.players <= 100_000):
        p.error("need 1 <= clients <= 1000 and 1 <= players <= 100000")
    if not 1 <= args.items <= 10_000:
        p.error("need 1 <= items <= 10000")
    args.batch_size = 1  # read by harness.loadgen
    args.command_line = shlex.join(["python", "bench/redeem.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        write_section(report(json.loads((OUT / "redeem-latest.json").read_text())), START, END)
        log(f"rewrote {RESULTS.relative_to(ROOT)} (redeem section) from the last raw data")
        return 0
    status, data = run_bench("redeem", args, bench, report, (START, END))
    if data is None:
        return status
    runs = [r for info in data["backends"].values() for r in info["runs"]]
    failed = sum(r[k]["failures"] for r in runs for k in MEASURES)
    failed += sum(n["single"]["failures"] for n in data["noop"])
    consistent = all(info.get("stock_check", {}).get("ok") for info in data["backends"].values())
    if failed or not consistent:
        log(f"{failed} requests failed; stock consistent: {consistent}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
