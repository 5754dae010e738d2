"""Fan-out benchmark: many WebSocket subscribers on one server process.

    python bench/fanout.py --subscribers 2000,10000 --runs 3

It recreates its own PostgreSQL database (`questline_fanout`, Redis prefix
`qlfanout`), migrates, seeds and creates an admin key. Then, --runs times, for each
subscriber count N, it measures the baseline (bench/fanout_baseline_app.py: a minimal
Strawberry subscription app, no Questline logic) and Questline (PostgreSQL + Redis, as
in production), each in a fresh uvicorn worker pinned to core 0:

1. N subscribers connect from --client-procs processes (bench/wsload.py) pinned to
   core 1, in the --mix of kinds (default: 90 % `pointsChanged` of one shared "hot"
   player, 5 % `leaderboardChanged`, 5 % `pointsChanged` of a player of their own);
2. the server's RSS before and after connecting: memory per idle subscription;
3. steady phase: --rate events/s for --duration s for the hot player (`recordEvent` over
   HTTP; the baseline's `publish`); each delivery's latency is its receive time minus
   the transaction's `createdAt` (set by the server when the event arrives, before the
   transaction commits, so it includes the commit: an upper bound);
4. burst phase: --burst events back-to-back (one in flight); deliveries/s is the number
   of burst deliveries over the time from the first send to the last delivery.

Results go to bench/RESULTS.md (between the fan-out markers), raw data to bench/out/.
Exit status: 0 ok; 1 subscriptions failed or deliveries went missing (reported);
2 setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import resource
import select
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from envinfo import git_state, machine, source_fingerprint, versions
from fanout_report import END, START, fmt, report
from harness import (
    BENCH,
    CLIENT_CORE,
    OUT,
    ROOT,
    Processes,
    Server,
    SetupError,
    backend_env,
    base_env,
    busy_share,
    cores_busy,
    log,
    prepare,
    proc_cpu_seconds,
    run_bench,
)
from loadgen import RawClient

# Its own database and Redis prefix: the ingest bench (maybe run by someone else) keeps its.
harness.PG_DB = "questline_fanout"
harness.PG_URL = f"postgres://postgres@127.0.0.1:5432/{harness.PG_DB}"
harness.REDIS_PREFIX = "qlfanout"

LOGS = OUT / "fanout-logs"

RECORD_EVENT = (
    "mutation($input: RecordEventInput!) { recordEvent(input: $input) "
    "{ outcome { pointsAwarded } errors { code message } } }"
)
PUBLISH = "mutation($id: ID!) { publish(playerId: $id) { receivers } }"


# ---------------------------------------------------------------- helpers


def vm_rss(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 if match else None


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def raise_nofile(need: int) -> dict[str, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; children (server, clients) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"soft_before": soft, "soft": now, "hard": hard}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def http_json(port: int, path: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return json.loads(reply.read())


class Clients:
    """The wsload processes of one measurement."""

    def __init__(self, procs: Processes, url: str, args: argparse.Namespace, n: int, **kw: str):
        self.procs = procs
        self.children: list[subprocess.Popen[bytes]] = []
        k = max(1, min(args.client_procs, n))
        for i in range(k):
            count = n // k + (1 if i < n % k else 0)
            first = sum(n // k + (1 if j < n % k else 0) for j in range(i))
            cmd = [
                sys.executable,
                str(BENCH / "wsload.py"),
                f"--url={url}",
                f"--count={count}",
                f"--first={first}",
                f"--mix={args.mix}",
                *(f"--{name}={value}" for name, value in kw.items()),
            ]
            self.children.append(
                procs.popen(
                    cmd,
                    core=CLIENT_CORE,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=(LOGS / "wsload.err").open("ab"),
                )
            )

    def read_all(self, timeout: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout
        for child in self.children:
            assert child.stdout is not None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SetupError("subscriber processes did not answer in time")
                ready, _, _ = select.select([child.stdout], [], [], left)
                if ready:
                    line = child.stdout.readline()
                    if not line:
                        raise SetupError(f"a subscriber process exited ({child.poll()})")
                    out.append(json.loads(line))
                    break
        return out

    def command(self, text: str, timeout: float = 60) -> list[dict[str, Any]]:
        """`{i}` in the text is the child's number."""
        for i, child in enumerate(self.children):
            assert child.stdin is not None
            child.stdin.write(text.replace("{i}", str(i)).encode() + b"\n")
            child.stdin.flush()
        return self.read_all(timeout)

    def stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(Exception):
                assert child.stdin is not None
                child.stdin.write(b"quit\n")
                child.stdin.flush()
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
            self.procs.stop(child)


# ---------------------------------------------------------------- the event driver


async def drive(
    url: str, key: str, bodies: list[bytes], rate: float | None
) -> list[tuple[float, float, bool, str]]:
    """Sends the bodies at `rate` per second (open loop, a pool of 4 connections), or
    back-to-back with one in flight when rate is None. (sent, answered, ok, note)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    pool: asyncio.Queue[RawClient] = asyncio.Queue()
    for _ in range(1 if rate is None else 4):
        pool.put_nowait(RawClient(url, headers))
    results: list[tuple[float, float, bool, str]] = []

    async def one(body: bytes) -> None:
        client = await pool.get()
        sent = time.time()
        try:
            status, content = await asyncio.wait_for(client.post(body), 30)
            text = content.decode(errors="replace")
            ok = status == 200 and '"errors"' not in text.replace('"errors":[]', "")
            results.append((sent, time.time(), ok, "" if ok else text[:300]))
        except Exception as exc:
            results.append((sent, time.time(), False, f"{type(exc).__name__}: {exc}"))
        finally:
            pool.put_nowait(client)

    t0 = time.monotonic()
    tasks = []
    for i, body in enumerate(bodies):
        if rate is None:
            await one(body)
            continue
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        await pool.get_nowait().close()
    return results


def event_bodies(target: str, hot: str, count: int, tag: str) -> list[bytes]:
    if target == "baseline":
        return [json.dumps({"query": PUBLISH, "variables": {"id": hot}}).encode()] * count
    return [
        json.dumps(
            {
                "query": RECORD_EVENT,
                "variables": {
                    "input": {
                        "playerId": hot,
                        "eventType": "RECHARGE",
                        "value": 1,
                        "source": "bench",
                        "idempotencyKey": f"{tag}-{i}",
                    }
                },
            }
        ).encode()
        for i in range(count)
    ]


# ---------------------------------------------------------------- one measurement


def measure(
    procs: Processes, args: argparse.Namespace, target: str, n: int, run: int, key: str
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    hot = f"hot-{tag}"  # a fresh player: the preset's daily cap never interferes
    if target == "baseline":
        app, env, key = ["--app-dir", str(BENCH), "fanout_baseline_app:create_app"], base_env(), ""
    else:
        app, env = ["app.asgi:create_app"], backend_env("postgres")
    server = Server(procs, f"{target}-n{n}-r{run + 1}", app, env)
    server.log_path = LOGS / f"{server.name}.log"
    ws_url = f"ws://127.0.0.1:{server.port}/graphql"
    record: dict[str, Any] = {"target": target, "n": n, "loadavg_before": loadavg()}
    cores0 = cores_busy()
    server.start()
    try:
        # Warm up: one event (creates the hot player) and a few subscribers come and go.
        warm = asyncio.run(drive(server.url, key, event_bodies(target, hot, 1, f"w{tag}"), None))
        if not warm[0][2]:
            raise SetupError(f"{target}: the warm-up event failed: {warm[0][3]}")
        warmers = Clients(procs, ws_url, args, 20, hot=hot, key=key)
        warmers.read_all(60)
        warmers.stop()
        time.sleep(1.0)
        record["rss_before"] = vm_rss(server.pid)

        t0 = time.monotonic()
        clients = Clients(procs, ws_url, args, n, hot=hot, key=key)
        try:
            ready = clients.read_all(args.connect_timeout)
            record["connect_s"] = round(time.monotonic() - t0, 2)
            record["subscribed"] = sum(r["ready"] for r in ready)
            record["connect_failed"] = sum(r["failed"] for r in ready)
            record["kinds"] = {}
            for r in ready:
                for kind, count in r["kinds"].items():
                    record["kinds"][kind] = record["kinds"].get(kind, 0) + count
            record["connect_errors"] = [e for r in ready for e in r["errors"]][:5]
            # The server registers a subscription after the client sent `subscribe`.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen = http_json(server.port, "/readyz").get("subscriptions", 0)
                if seen >= record["subscribed"]:
                    break
                time.sleep(0.2)
            record["registered"] = seen
            record["registered_s"] = round(time.monotonic() - t0, 2)
            time.sleep(args.settle)
            record["rss_after"] = vm_rss(server.pid)

            # Steady phase.
            count = max(1, round(args.rate * args.duration))
            bodies = event_bodies(target, hot, count, f"s{tag}")
            cpu0, c0, w0 = proc_cpu_seconds(server.pid), cores_busy(), time.monotonic()
            steady = asyncio.run(drive(server.url, key, bodies, args.rate))
            time.sleep(args.grace)
            cpu1, c1, w1 = proc_cpu_seconds(server.pid), cores_busy(), time.monotonic()
            record["steady_server_cpu"] = (
                round((cpu1 - cpu0) / (w1 - w0), 3) if cpu0 is not None and cpu1 else None
            )
            record["steady_cores"] = busy_share(c0, c1)

            # Burst phase.
            hot_subs = record["kinds"].get("hot", 0)
            size = args.burst or max(5, min(100, 100_000 // max(1, hot_subs)))
            burst_bodies = event_bodies(target, hot, size, f"b{tag}")
            burst_start = time.time()
            burst = asyncio.run(drive(server.url, key, burst_bodies, None))
            expected = hot_subs * (
                sum(1 for r in steady if r[2]) + sum(1 for r in burst if r[2]) + 1
            )
            last, still = -1, time.monotonic()
            while time.monotonic() - still < 3:
                got = sum(c["hot"] for c in clients.command("count"))
                if got >= expected:
                    break
                if got != last:
                    last, still = got, time.monotonic()
                time.sleep(0.25)
            reports = clients.command(f"report {OUT / f'fanout-{tag}'}-{{i}}")
        finally:
            clients.stop()
        record["rss_end"] = vm_rss(server.pid)
    finally:
        server.stop()
    record["loadavg_after"] = loadavg()
    record["cores_busy"] = busy_share(cores0, cores_busy())
    files = [OUT / f"fanout-{tag}-{i}" for i in range(len(reports))]
    record.update(summarise(record, reports, steady, burst, burst_start, expected, hot_subs, files))
    return record


def summarise(
    record: dict[str, Any],
    reports: list[dict[str, Any]],
    steady: list[tuple[float, float, bool, str]],
    burst: list[tuple[float, float, bool, str]],
    burst_start: float,
    expected: int,
    hot_subs: int,
    files: list[Path],
) -> dict[str, Any]:
    data, board = array("d"), array("d")
    for path in files:
        for into, name in ((data, path), (board, Path(f"{path}.board"))):
            with contextlib.suppress(OSError):
                into.frombytes(name.read_bytes())
            name.unlink(missing_ok=True)
    steady_lat, burst_recv = [], []
    first_sent = min((s for s, *_ in steady), default=0)
    for i in range(0, len(data), 2):
        received, created = data[i], data[i + 1]
        if created < first_sent - 0.5:
            continue  # the warm-up event
        if created < burst_start:
            steady_lat.append((received - created) * 1000)
        else:
            burst_recv.append(received)
    steady_lat.sort()
    ok_steady = sum(1 for r in steady if r[2])
    ok_burst = sum(1 for r in burst if r[2])
    burst_span = (max(burst_recv) - burst_start) if burst_recv else None
    sender = sorted((a - s) * 1000 for s, a, ok, _ in steady if ok)
    rss0, rss1 = record.get("rss_before"), record.get("rss_after")
    subscribed = record.get("subscribed") or 0
    return {
        "hot_subscribers": hot_subs,
        "events_steady": len(steady),
        "events_steady_ok": ok_steady,
        "events_burst": len(burst),
        "events_burst_ok": ok_burst,
        "event_failures": [r[3] for r in [*steady, *burst] if not r[2]][:5],
        "deliveries_steady": len(steady_lat),
        "deliveries_burst": len(burst_recv),
        # Deliveries are counted against the events whose sending the sender saw succeed;
        # an event whose mutation timed out at the sender may still be recorded and
        # delivered: those deliveries are counted apart, never as negative missing ones.
        **_shortfall("steady", hot_subs * ok_steady, len(steady_lat)),
        **_shortfall("burst", hot_subs * ok_burst, len(burst_recv)),
        "expected_total": expected,
        "p50_ms": percentile(steady_lat, 0.50),
        "p99_ms": percentile(steady_lat, 0.99),
        "max_ms": steady_lat[-1] if steady_lat else None,
        "sender_p50_ms": percentile(sender, 0.5),
        "sender_p99_ms": percentile(sender, 0.99),
        "burst_deliveries_per_s": len(burst_recv) / burst_span if burst_span else None,
        "burst_s": burst_span,
        "board_updates": len(board),
        "idle_kb_per_sub": ((rss1 - rss0) / subscribed / 1024)
        if rss0 and rss1 and subscribed
        else None,
        "closed": sum(r["closed"] for r in reports),
        "failed": sum(r["failed"] for r in reports) + (record.get("connect_failed") or 0),
        "client_cpu_s": round(sum(r["cpu_s"] for r in reports), 2),
        "client_errors": [e for r in reports for e in r["errors"]][:5],
    }


def _shortfall(phase: str, expected: int, delivered: int) -> dict[str, int]:
    """Deliveries missing from those expected, and deliveries beyond them (of events whose
    send failed at the sender but which the server recorded and delivered anyway)."""
    return {
        f"missing_{phase}": max(expected - delivered, 0),
        f"unconfirmed_{phase}": max(delivered - expected, 0),
    }


# ---------------------------------------------------------------- the bench


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "command": args.command_line,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": harness.PINNING,
        "nofile": args.nofile,
        "args": {k: v for k, v in vars(args).items() if k not in ("command_line", "nofile")},
        "versions": versions(["postgres"]),
        "git": git_state(),
        "fingerprints": [source_fingerprint()],
        "loadavg_start": loadavg(),
        "measurements": [],
    }
    data["versions"]["websockets"] = _version("websockets")
    log("prepare the database")
    key = prepare("postgres")
    cores0 = cores_busy()
    for run in range(args.runs):
        for n in args.subscribers:
            for target in args.targets:
                log(f"run {run + 1}/{args.runs}: {target}, {n:,} subscribers")
                data["fingerprints"].append(source_fingerprint())
                m = measure(procs, args, target, n, run, key)
                m["run"] = run + 1
                data["measurements"].append(m)
                log(
                    f"  connect {m['connect_s']}s  idle {fmt(m['idle_kb_per_sub'], 'kb')} KB/sub  "
                    f"p50 {fmt(m['p50_ms'], 'ms')} p99 {fmt(m['p99_ms'], 'ms')} ms  "
                    f"burst {fmt(m['burst_deliveries_per_s'], 'n')} deliveries/s  "
                    f"missing {m['missing_steady']}+{m['missing_burst']}  "
                    f"closed {m['closed']} failed {m['failed']}  "
                    f"server cpu {fmt(m['steady_server_cpu'], 'pct')}  load {m['loadavg_after']}"
                )
                for text in m["event_failures"] + m["client_errors"] + m["connect_errors"]:
                    log(f"    {text}")
    data["cores_busy"] = busy_share(cores0, cores_busy())
    data["loadavg_end"] = loadavg()
    return data


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Questline fan-out benchmark (see bench/README.md).")
    p.add_argument("--subscribers", default="2000,10000", help="comma-separated counts")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mix", default="hot=0.9,board=0.05,own=0.05")
    p.add_argument("--rate", type=float, default=2.0, help="steady events/s")
    p.add_argument("--duration", type=float, default=20.0, help="steady seconds")
    p.add_argument("--burst", type=int, default=0, help="burst events (default: ~100k deliveries)")
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=2.0)
    p.add_argument("--connect-timeout", type=float, default=180.0)
    p.add_argument(
        "--targets", default="baseline,questline", help="which servers, e.g. only questline"
    )
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = p.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    if not args.targets or not set(args.targets) <= {"baseline", "questline"}:
        p.error("--targets takes baseline and/or questline")
    try:
        args.subscribers = [int(x) for x in args.subscribers.split(",") if x.strip()]
    except ValueError:
        p.error("--subscribers takes comma-separated integers")
    if not args.subscribers or not all(1 <= n <= 100_000 for n in args.subscribers):
        p.error("need 1 <= subscribers <= 100000")
    if not (1 <= args.runs <= 20 and 0 < args.rate <= 1000 and 0 < args.duration <= 600):
        p.error("need 1 <= runs <= 20, 0 < rate <= 1000, 0 < duration <= 600")
    args.command_line = shlex.join(["python", "bench/fanout.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.nofile = raise_nofile(max(args.subscribers) + 1024)
    if args.nofile["soft"] < max(args.subscribers) + 100:
        log(f"WARNING: open-file limit {args.nofile} is below the subscriber count")
    status, data = run_bench("fanout", args, bench, report, (START, END))
    if data is None:
        return status
    lost = sum(
        m["failed"] + m["closed"] + m["missing_steady"] + m["missing_burst"]
        for m in data["measurements"]
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
