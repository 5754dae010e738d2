"""The fan-out bench's report (bench/fanout.py): the RESULTS.md section rendered from its
raw data, so that it can be rendered again from bench/out/fanout-latest.json."""

from __future__ import annotations

import statistics
from typing import Any

from envinfo import SOURCE_DIRS
from harness import CLIENT_CORE, MIB, SERVER_CORE

START, END = "<!-- fanout:start -->", "<!-- fanout:end -->"
TARGETS_P99 = {2000: 100.0, 10000: 250.0}  # ms, issue 4
TARGET_IDLE_KB = 50.0


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f}"
    if unit == "kb":
        return f"{value:.1f}"
    if unit == "pct":
        return f"{value:.0%}"
    if unit == "mib":
        return f"{value / MIB:.1f}"
    if unit == "s":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


ROWS = (
    ("connect time, s (all N subscribed)", "connect_s", "s"),
    ("server RSS before connecting, MiB", "rss_before", "mib"),
    ("server RSS with N idle subscriptions, MiB", "rss_after", "mib"),
    ("memory per idle subscription, KB", "idle_kb_per_sub", "kb"),
    ("steady: delivery latency p50, ms", "p50_ms", "ms"),
    ("steady: delivery latency p99, ms", "p99_ms", "ms"),
    ("steady: delivery latency max, ms", "max_ms", "ms"),
    ("steady: sender's mutation round trip p50, ms", "sender_p50_ms", "ms"),
    ("steady: server worker CPU (core 0)", "steady_server_cpu", "pct"),
    ("burst: deliveries/s", "burst_deliveries_per_s", "n"),
    ("burst: first send to last delivery, s", "burst_s", "s"),
    ("leaderboardChanged updates received (all board subscribers)", "board_updates", "n"),
    ("deliveries missing (steady + burst)", "missing", "n"),
    ("deliveries of events whose send failed at the sender", "unconfirmed", "n"),
    ("subscriptions failed or closed", "lost", "n"),
)


def value_of(m: dict[str, Any], name: str) -> float | None:
    if name == "missing":
        return m["missing_steady"] + m["missing_burst"]
    if name == "unconfirmed":  # absent from runs recorded before it was counted
        return m.get("unconfirmed_steady", 0) + m.get("unconfirmed_burst", 0)
    if name == "lost":
        return m["failed"] + m["closed"]
    return m.get(name)


def report(data: dict[str, Any]) -> str:
    args, mach, v = data["args"], data["machine"], data["versions"]
    ms = data["measurements"]
    mix = args["mix"]
    lines = [
        START,
        "## Fan-out: WebSocket subscribers on one server process",
        "",
        f"- Date: {data['date']}; whole bench took {data.get('elapsed_s', 0):.0f} s.",
        f"- Command: `{data['command']}`",
        f"- Machine: nproc {mach['nproc']}, {mach['cpu']}, {mach['ram_gib']} GiB RAM, "
        f"Linux {mach['kernel']}. Open files: soft limit raised from "
        f"{data['nofile']['soft_before']} to {data['nofile']['soft']} (hard limit "
        f"{data['nofile']['hard']}), inherited by the server and the clients.",
        f"- **Machine load**: the 2 cores are shared with other engineers' test runs. "
        f"/proc/loadavg {data['loadavg_start']} at the start, {data['loadavg_end']} at the "
        f"end; both cores' busy share over the bench: "
        + ", ".join(f"{k} {val:.0%}" for k, val in data["cores_busy"].items() if val is not None)
        + ". Each measurement's load average is in the raw data.",
        f"- Pinning ({data['pinning']}): the uvicorn worker on core {SERVER_CORE}; the "
        f"subscriber processes and the event sender on core {CLIENT_CORE}. PostgreSQL and "
        "Redis are not pinned.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Code: git {data.get('git', 'unknown')}; source fingerprint (sha256 of "
        f"{', '.join(SOURCE_DIRS)}) "
        + (
            f"{data['fingerprints'][0]}, unchanged during the bench"
            if len(set(data["fingerprints"])) == 1
            else "**changed during the bench**: runs are not comparable"
        )
        + ".",
        f"- Per measurement: a fresh uvicorn worker; {args['client_procs']} subscriber "
        f"processes (`bench/wsload.py`, raw asyncio RFC 6455 client, no permessage-deflate) "
        f"connect N subscribers in the mix `{mix}` (`hot`: `pointsChanged` of one shared "
        "player; `board`: `leaderboardChanged(period: ALL_TIME, first: 10)`; `own`: "
        "`pointsChanged` of a player of its own that gets no events, idle). Memory per idle "
        "subscription = (RSS with N subscribed, after "
        f"{args['settle']:g} s − RSS before, after a warm-up) / N. Steady: "
        f"{args['rate']:g} `recordEvent`/s for the hot player for {args['duration']:g} s; "
        "latency = receive time − the transaction's `createdAt` (stamped when the server "
        "starts on the event, before the commit: so commit included, an upper bound), "
        "over every delivery to every `hot` subscriber. Burst: "
        f"{args['burst'] or 'min(100, 100,000 ÷ hot subscribers)'} events back-to-back "
        "(one in flight); deliveries/s = burst "
        "deliveries ÷ (last delivery − first send).",
        "- Questline: `app.asgi:create_app`, PostgreSQL + Redis (`REDIS_PREFIX=qlfanout`), "
        "`QUESTLINE_ENV=dev`, subscribers authenticate with an admin API key in "
        "`connection_init`. Baseline: `bench/fanout_baseline_app.py`, a minimal Strawberry "
        "subscription app (no database, no Redis, no auth; an HTTP `publish` mutation puts "
        "the message into one asyncio.Queue per subscriber and Strawberry executes the "
        "same selection set per subscriber), served and driven the same way.",
        "",
    ]
    for n in args["subscribers"]:
        lines += [f"### {n:,} subscribers", ""]
        head = "| metric | " + " | ".join(
            f"{t} median | {t} runs" for t in ("Questline", "baseline")
        )
        lines += [head + " |", "| --- |" + " ---: | ---: |" * 2]
        for label, name, unit in ROWS:
            cells = []
            for target in ("questline", "baseline"):
                vals = [value_of(m, name) for m in ms if m["n"] == n and m["target"] == target]
                cells.append(fmt(med(vals), unit))
                cells.append(" / ".join(fmt(x, unit) for x in vals))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        q = [m for m in ms if m["n"] == n and m["target"] == "questline"]
        b = [m for m in ms if m["n"] == n and m["target"] == "baseline"]
        if q:
            kinds = q[0]["kinds"]
            lines += [
                "",
                f"Subscribers by kind: {', '.join(f'{k} {c:,}' for k, c in kinds.items())}; "
                f"load average after each Questline measurement: "
                + ", ".join(m["loadavg_after"] for m in q)
                + ".",
            ]
        qp99, bp99 = med([m["p99_ms"] for m in q]), med([m["p99_ms"] for m in b])
        qd, bd = (
            med([m["burst_deliveries_per_s"] for m in q]),
            med([m["burst_deliveries_per_s"] for m in b]),
        )
        qk, bk = med([m["idle_kb_per_sub"] for m in q]), med([m["idle_kb_per_sub"] for m in b])
        target_p99 = TARGETS_P99.get(n)
        lines += [
            "",
            "| ratio Questline ÷ baseline (medians) | value |",
            "| --- | ---: |",
            f"| p99 latency | {ratio(qp99, bp99)} |",
            f"| burst deliveries/s | {ratio(qd, bd)} |",
            f"| memory per idle subscription | {ratio(qk, bk)} |",
            "",
        ]
        verdicts = []
        if target_p99 is not None:
            verdicts.append(
                f"p99 ≤ {target_p99:g} ms at {n:,}: {fmt(qp99, 'ms')} ms, "
                + verdict(qp99, target_p99)
            )
        if n == 2000:
            verdicts.append(f"seed 004 < 100 ms: {verdict(qp99, 100.0)}")
        verdicts.append(
            f"≤ {TARGET_IDLE_KB:g} KB per idle subscription: {fmt(qk, 'kb')} KB, "
            + verdict(qk, TARGET_IDLE_KB)
        )
        lines += ["Targets (Questline medians): " + "; ".join(verdicts) + ".", ""]
    lines += ["Raw data: `bench/out/fanout-latest.json` (git-ignored).", END]
    return "\n".join(lines) + "\n"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f} ({a:,.1f} / {b:,.1f})" if a is not None and b else "n/a"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "not measured"
    return "**met**" if value <= limit else "**NOT met**"
