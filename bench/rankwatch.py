"""rankChanged at scale: N subscribers each following their own player's rank.

    python bench/rankwatch.py --subscribers 500,2000 --runs 3 --duration 15 \
        --baseline-rev bae3f1c

Every player's widget following its own rank is the common case of `rankChanged`.
For each N and each code (this checkout, and the code of `--baseline-rev` in a git
worktree), on a fresh database each time (so every measurement starts from the same
board and sends the same events), it loads N players `rk-<n>` on the default tenant's
ALL_TIME board (PostgreSQL + Redis, one event each), starts one uvicorn worker on core
0, connects N WebSocket subscribers from two processes on core 1 (bench/ranksubs.py),
waits until each has its first rank, and records `--rate` events a second for random
`rk` players for `--duration` seconds (each moves the board, so every follower's rank
is looked at up to 4 times a second). Measured: the worker's CPU share over the
window, the rankChanged messages delivered, and the round trip of the sender's
`recordEvent` (how responsive the worker stays). Results go between the rankwatch
markers of bench/RESULTS.md; raw data to bench/out/rankwatch-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from envinfo import git_state, machine, versions
from fanout import raise_nofile
from harness import (
    BENCH,
    ROOT,
    Processes,
    Server,
    SetupError,
    backend_env,
    gql,
    log,
    pg_settle,
    prepare,
    proc_cpu_seconds,
    run_bench,
)
from worktrees import drop, worktree

harness.PG_DB = "questline_rkbench"
harness.PG_URL = f"postgres://postgres@127.0.0.1:5432/{harness.PG_DB}"
harness.REDIS_PREFIX = "qlbench-rk"

MARKERS = ("<!-- rankwatch:start -->", "<!-- rankwatch:end -->")
RECORD_EVENTS = (
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) "
    "{ outcomes { pointsAwarded } errors { code message } } }"
)
RECORD_EVENT = (
    "mutation($input: RecordEventInput!) { recordEvent(input: $input) "
    "{ outcome { pointsAwarded } errors { code message } } }"
)


async def load_players(url: str, key: str, count: int) -> None:
    bodies = []
    for start in range(0, count, 500):
        events = [
            {
                "playerId": f"rk-{n}",
                "eventType": "APP_LOGIN",
                "value": 1 + n % 97,
                "idempotencyKey": f"rk-load-{n}",
            }
            for n in range(start, min(start + 500, count))
        ]
        bodies.append(gql(RECORD_EVENTS, {"input": events}))
    for answer in await harness.graphql_calls(url, key, bodies, 2):
        status, content = answer
        payload = json.loads(content)["data"]["recordEvents"]
        if status != 200 or payload["errors"]:
            raise SetupError(f"loading players failed: {content[:300]!r}")


async def send_events(
    url: str, key: str, players: int, rate: float, duration: float
) -> list[float]:
    """`rate` recordEvent calls a second for random rk players; their round trips (ms)."""
    rng = random.Random(11)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    client = harness.RawClient(url, headers)
    took: list[float] = []
    tag = uuid.uuid4().hex[:8]
    try:
        start = time.monotonic()
        for n in range(int(rate * duration)):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = gql(
                RECORD_EVENT,
                {
                    "input": {
                        "playerId": f"rk-{rng.randrange(players)}",
                        "eventType": "APP_LOGIN",
                        "value": rng.randrange(1, 200),
                        "idempotencyKey": f"rk-{tag}-{n}",
                    }
                },
            )
            t0 = time.monotonic()
            status, content = await asyncio.wait_for(client.post(body), 30)
            took.append((time.monotonic() - t0) * 1000)
            if status != 200 or b'"errors":[]' not in content:
                raise SetupError(f"recordEvent failed: {content[:300]!r}")
    finally:
        await client.close()
    return took


def wait_ready(outs: list[Path], expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [json.loads(p.read_text()) for p in outs if p.exists()]
        if len(counts) == len(outs) and all(c.get("ready") for c in counts):
            return total(counts)
        time.sleep(0.2)
    raise SetupError(f"subscribers not ready after {timeout}s (expected {expected})")


def total(counts: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("subscribed", "firsts", "messages", "errors")
    out: dict[str, Any] = {k: sum(c[k] for c in counts) for k in keys}
    out["error_samples"] = [s for c in counts for s in c.get("error_samples", [])][:3]
    return out


def measure(
    args: argparse.Namespace, procs: Processes, code: str, app_dir: Path, n: int
) -> dict[str, Any]:
    """One measurement on a fresh database: every one starts from the same board and
    sends the same events, so the two codes get the same work."""
    key = prepare("postgres")
    env = backend_env("postgres")
    server = Server(procs, f"rk-{code}-{n}", ["app.asgi:create_app"], env, cwd=app_dir)
    server.start()
    ws_url = server.url.replace("http://", "ws://")
    outs = [BENCH / "out" / f"ranksubs-{i}.json" for i in range(2)]
    subs = []
    try:
        asyncio.run(load_players(server.url, key, n))
        pg_settle()
        for i, out in enumerate(outs):
            out.unlink(missing_ok=True)
            half = n // 2
            cmd = [
                sys.executable,
                str(BENCH / "ranksubs.py"),
                f"--url={ws_url}",
                f"--key={key}",
                f"--first={i * half}",
                f"--count={half if i == 0 else n - half}",
                f"--out={out}",
            ]
            subs.append(procs.popen(cmd, core=harness.CLIENT_CORE, cwd=ROOT))
        t0 = time.monotonic()
        ready = wait_ready(outs, n, timeout=120 + n / 20)
        connect_s = time.monotonic() - t0
        time.sleep(1.0)  # the first looks settle
        cpu0, w0 = proc_cpu_seconds(server.pid), time.monotonic()
        took = asyncio.run(send_events(server.url, key, n, args.rate, args.duration))
        cpu1, wall = proc_cpu_seconds(server.pid), time.monotonic() - w0
        time.sleep(1.0)  # the last looks arrive
        for proc in subs:
            procs.stop(proc)
        done = total([json.loads(p.read_text()) for p in outs])
    finally:
        for proc in subs:
            procs.stop(proc)
        server.stop()
    result = {
        "code": code,
        "subscribers": n,
        "connect_s": round(connect_s, 1),
        "ready": ready,
        "messages_in_window": done["messages"] - ready["messages"],
        "errors": done["errors"],
        "error_samples": done["error_samples"],
        "server_cpu": round((cpu1 - cpu0) / wall, 3) if cpu0 is not None else None,
        "send_p50_ms": round(statistics.median(took), 2),
        "send_p99_ms": round(sorted(took)[int(0.99 * (len(took) - 1))], 2),
        "sent": len(took),
    }
    log(
        f"  {code:8} N={n:<6} worker cpu {result['server_cpu']:.0%}  "
        f"recordEvent p50 {result['send_p50_ms']:.1f} ms p99 {result['send_p99_ms']:.1f} ms  "
        f"rank messages {result['messages_in_window']:,}  errors {result['errors']}"
    )
    return result


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    sizes = [int(x) for x in args.subscribers.split(",")]
    raise_nofile(2 * max(sizes) + 1000)
    data: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(["postgres"]),
        "code": git_state(),
        "args": vars(args),
        "runs": [],
    }
    codes = [("current", ROOT)]
    base = worktree(args.baseline_rev) if args.baseline_rev else None
    try:
        if base is not None:
            codes.append((f"base {args.baseline_rev}", base))
        for run in range(args.runs):
            for n in sizes:
                for code, app_dir in codes if run % 2 == 0 else codes[::-1]:
                    log(f"run {run + 1}/{args.runs}: {code}, {n:,} subscribers")
                    data["runs"].append(measure(args, procs, code, app_dir, n))
    finally:
        if base is not None:
            drop(base)
    return data


def report(data: dict[str, Any]) -> str:
    m, args = data["machine"], data["args"]
    lines = [
        MARKERS[0],
        "## rankChanged: N subscribers following their own rank",
        "",
        f"- Command: `python bench/rankwatch.py --subscribers {args['subscribers']} "
        f"--runs {args['runs']} --duration {args['duration']} --rate {args['rate']}"
        + (f" --baseline-rev {args['baseline_rev']}`" if args["baseline_rev"] else "`"),
        f"- Machine: {m.get('cpu')}, nproc {m.get('nproc')}; code {data['code']}; "
        f"took {data.get('elapsed_s', 0):.0f} s.",
        "- " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
        "- Per measurement: a fresh database with N players `rk-<n>` on the ALL_TIME board "
        "(one event each) and a fresh uvicorn worker on core 0 (PostgreSQL + Redis), N "
        "WebSocket subscribers from two processes on core 1, each following "
        "`rankChanged(playerId: rk-<n>, period: ALL_TIME)` of its own player (all on the "
        f"board); once each has its first rank, {args['rate']} `recordEvent`/s for random "
        f"rk players for {args['duration']} s. Worker CPU over that window; rank messages "
        "delivered in it; the sender's recordEvent round trip. Codes alternate order per "
        "run; medians over the runs.",
        "",
        "| code | subscribers | worker CPU | recordEvent p50 ms | recordEvent p99 ms "
        "| rank messages | errors | runs (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in data["runs"]:
        groups.setdefault((r["code"], r["subscribers"]), []).append(r)
    for (code, n), runs in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):

        def med(field: str, rows: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[field] for r in rows)

        lines.append(
            f"| {code} | {n:,} | {med('server_cpu'):.0%} | {med('send_p50_ms'):.2f} | "
            f"{med('send_p99_ms'):.2f} | {med('messages_in_window'):,.0f} | "
            f"{sum(r['errors'] for r in runs)} | "
            + " / ".join(f"{r['server_cpu']:.0%}" for r in runs)
            + " |"
        )
    lines += ["", "Raw data: `bench/out/rankwatch-latest.json` (git-ignored).", MARKERS[1]]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--subscribers", default="500,2000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--rate", type=float, default=20.0, help="recordEvent calls a second")
    p.add_argument("--baseline-rev", default=None, help="also measure this git revision")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    status, _ = run_bench("rankwatch", args, bench, report, MARKERS)
    return status


if __name__ == "__main__":
    sys.exit(main())
