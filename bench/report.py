"""Turns the collected bench data into the Markdown ingest section of bench/RESULTS.md."""

from __future__ import annotations

import statistics
from typing import Any

from envinfo import SOURCE_DIRS
from harness import CLIENT_CORE, MIB, REDIS_PREFIX, SERVER_CORE

START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"

TARGETS = {
    "single50_eps": 1000.0,  # events/s at 50 clients, at least
    "single50_p99": 50.0,  # ms at 50 clients, at most
    "single1_p50": 3.0,  # ms at 1 client, at most
    "batch_eps": 10000.0,  # events/s batched, at least
}


def stat(values: list[float | None]) -> tuple[float, float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "eps":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "mib":
        return f"{value / MIB:.1f}"
    if unit == "pct":
        return f"{value:.0%}"
    return f"{value}"


def row(label: str, values: list[float | None], unit: str, per_run: bool = True) -> str:
    s = stat(values)
    cells = ["n/a"] * 3 if s is None else [fmt(x, unit) for x in s]
    if per_run:
        cells += [fmt(x, unit) for x in values]
    return f"| {label} | " + " | ".join(cells) + " |"


def table_head(first: str, runs: int) -> list[str]:
    return [
        f"| {first} | median | min | max | "
        + " | ".join(f"run {n + 1}" for n in range(runs))
        + " |",
        "| --- | ---: | ---: | ---: |" + " ---: |" * runs,
    ]


def med(values: list[float | None]) -> float | None:
    s = stat(values)
    return s[0] if s else None


def verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if at_least else value <= target
    return "**met**" if ok else "**NOT met**"


def failures_of(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> int:
    return sum(r[k]["failures"] for r in runs for k in keys if k in r)


MEASURES = ("single1", "single50", "batch")
# (label, measurement, field, unit) of the per-backend table; {c}, {bc}, {bs} filled in.
METRICS = (
    ("recordEvent, 1 client: events/s", "single1", "events_per_s", "eps"),
    ("recordEvent, 1 client: p50 ms", "single1", "p50_ms", "ms"),
    ("recordEvent, 1 client: p99 ms", "single1", "p99_ms", "ms"),
    ("recordEvent, {c} clients: events/s", "single50", "events_per_s", "eps"),
    ("recordEvent, {c} clients: p50 ms", "single50", "p50_ms", "ms"),
    ("recordEvent, {c} clients: p99 ms", "single50", "p99_ms", "ms"),
    ("recordEvent, {c} clients: server worker CPU (core 0)", "single50", "server_cpu_util", "pct"),
    ("recordEvent, {c} clients: core 1 busy (client + DB)", "single50", "core1", "pct"),
    ("recordEvents, {bc} clients x {bs} events: events/s", "batch", "events_per_s", "eps"),
    ("recordEvents, {bc} clients x {bs} events: p50 ms per batch", "batch", "p50_ms", "ms"),
    ("recordEvents: server worker CPU (core 0)", "batch", "server_cpu_util", "pct"),
    ("recordEvents: core 1 busy (client + DB)", "batch", "core1", "pct"),
)
NOOP_METRICS = (
    ("no-op, 1 client: events/s", "single1", "events_per_s", "eps"),
    ("no-op, 1 client: p50 ms", "single1", "p50_ms", "ms"),
    ("no-op, {c} clients: events/s", "single50", "events_per_s", "eps"),
    ("no-op, {c} clients: p50 ms", "single50", "p50_ms", "ms"),
    ("no-op, {c} clients: p99 ms", "single50", "p99_ms", "ms"),
    ("no-op batches, {bc} clients x {bs} events: events/s", "batch", "events_per_s", "eps"),
    ("no-op batches, {bc} clients x {bs} events: p50 ms per batch", "batch", "p50_ms", "ms"),
    ("no-op batches: server worker CPU (core 0)", "batch", "server_cpu_util", "pct"),
)
TARGET_ROWS = (
    ("single50_eps", "single50", "events_per_s", "≥ 1,000 single events/s at {c} clients"),
    ("single50_p99", "single50", "p99_ms", "p99 ≤ 50 ms at {c} clients"),
    ("single1_p50", "single1", "p50_ms", "p50 ≤ 3 ms at 1 client"),
    ("batch_eps", "batch", "events_per_s", "≥ 10,000 events/s batched"),
)


def values(runs: list[dict[str, Any]], measure: str, name: str) -> list[float | None]:
    out = []
    for r in runs:
        m = r.get(measure) or {}
        out.append((m.get("cores_busy") or {}).get("cpu1") if name == "core1" else m.get(name))
    return out


def measured(runs: list[dict[str, Any]]) -> bool:
    return bool(runs) and all(k in runs[0] for k in MEASURES)


def code_note(data: dict[str, Any]) -> str:
    prints = list(dict.fromkeys(data.get("fingerprints", [])))
    if len(prints) <= 1:
        return f"{prints[0] if prints else 'unknown'}, unchanged during the bench"
    return (
        f"**changed during the bench** ({' -> '.join(prints)}): the runs measured different "
        "code and are not comparable"
    )


def settle_note(data: dict[str, Any]) -> list[str]:
    runs = data["backends"].get("postgres", {}).get("runs", [])
    settles = [r["settle"] for r in runs if r.get("settle")]
    if not settles:
        return []
    took = ", ".join(f"{s['vacuum_s']:g}" for s in settles)
    return [
        f"- PostgreSQL's autovacuum is {settles[0]['autovacuum']} on this machine: before "
        "each PostgreSQL run the bench runs `VACUUM ANALYZE` (as autovacuum would between "
        f"them; took {took} s). Without it the planner keeps the statistics of the empty "
        "database and the updated rows' dead versions pile up from run to run."
    ]


def report_header(data: dict[str, Any]) -> list[str]:
    args, m, v = data["args"], data["machine"], data["versions"]
    lines = [
        START,
        "## Ingest: `recordEvent` / `recordEvents`",
        "",
        f"- Date: {data['date']}; whole bench took {data.get('elapsed_s', 0):.0f} s.",
        f"- Command: `{data['command']}`",
        f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['ram_gib']} GiB RAM, Linux {m['kernel']}.",
        f"- Pinning ({data['pinning']}): the uvicorn worker on core {SERVER_CORE}; the load "
        f"generator and the executemany ceilings on core {CLIENT_CORE}. PostgreSQL and Redis "
        "are not pinned: they share the two cores with the others.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Code: git {data.get('git', 'unknown')}; source fingerprint (sha256 of "
        f"{', '.join(SOURCE_DIRS)}) {code_note(data)}.",
        f"- Each measurement: {args['warmup']:g} s warm-up, then {args['duration']:g} s "
        f"measured; {args['runs']} runs; median, min and max over the runs. Events go to "
        f"{args['players']:,} players (`bench-p{{n}}`, upserted before the runs) with the "
        "telco types APP_LOGIN (1), DATA_USAGE (250.0) and RECHARGE (10.0), a small "
        "`metadata` and a unique `idempotencyKey` each. Latency is per HTTP request, as the "
        f"client sees it. Before the first run, {args.get('history', 0):,} such events are "
        "recorded as a history (batches of 500 through the API).",
        "- Server: one uvicorn worker (`--workers 1`, uvloop + httptools), "
        "`QUESTLINE_ENV=dev`, an admin API key; PostgreSQL runs with "
        f"`REDIS_URL=redis://127.0.0.1:6379/0` (`REDIS_PREFIX={REDIS_PREFIX}`), SQLite with "
        "in-process pub/sub. A fresh server per run; peak RSS is its VmHWM after the run. "
        "The runs share one database per backend, so each run starts with the events of the "
        "previous ones stored (first row of each table).",
        *settle_note(data),
        "- The bench tenant's daily cap is raised to 100,000,000 points (the cap step still "
        "runs): with the telco preset's 1,000 the 2,000 bench players reach it within the "
        "first runs, and capped events earn nothing and write no period scores.",
        f"- Load generator: `bench/loadgen.py --client {args['client']}`, closed loop, one "
        "keep-alive HTTP/1.1 connection per client. Every answer is parsed: an HTTP error, "
        "a top-level `errors` or a non-empty payload `errors` is a failure, counted and "
        "excluded from throughput.",
    ]
    check, noop = data.get("client_check"), data["noop"]
    if check and noop:
        ours = med(values(noop[:1], "single50", "events_per_s")) or 0
        theirs = check["events_per_s"]
        verdict_text = (
            "httpx is the bottleneck on one core, hence the raw client"
            if theirs < 0.9 * ours
            else "httpx keeps up"
        )
        lines.append(
            f"- Client check (run 1, no-op server, {args['clients']} clients): "
            f"httpx.AsyncClient {theirs:,.0f} req/s (client CPU {check['client_cpu_util']:.0%}) "
            f"vs `{args['client']}` {ours:,.0f} req/s: {verdict_text}."
        )
    return lines


def report_backend(data: dict[str, Any], backend: str) -> tuple[list[str], int]:
    args, runs = data["args"], data["backends"][backend]["runs"]
    title = "PostgreSQL + Redis" if backend == "postgres" else "SQLite, in-process pub/sub"
    lines = ["", f"### {title}", ""]
    if not measured(runs):
        return [*lines, "Not measured (baselines only)."], 0
    fill = {"c": args["clients"], "bc": args["batch_clients"], "bs": args["batch_size"]}
    lines += table_head("metric", len(runs))
    stored = [r.get("stored_before") for r in runs]
    lines.append(
        "| events already stored when the run starts | | | | "
        + " | ".join(fmt(x, "eps") for x in stored)
        + " |"
    )
    for label, measure, name, unit in METRICS:
        lines.append(row(label.format(**fill), values(runs, measure, name), unit))
    lines.append(row("server peak RSS (VmHWM), MiB", [r["peak_rss"] for r in runs], "mib"))
    fails = failures_of(runs, MEASURES)
    requests = sum(r[k]["requests"] for r in runs for k in MEASURES)
    lines += ["", f"Failed requests: {fails} of {requests:,}."]
    if fails:
        lines[-1] += " **Throughput and latency above count only the successful ones.** Samples:"
        samples = {s for r in runs for k in MEASURES for s in r[k]["failure_samples"]}
        lines += [f"- `{s[:300]}`" for s in sorted(samples)[:6]]
    mismatches = sum(r["batch"]["outcome_mismatches"] for r in runs)
    if mismatches:
        lines.append(
            f"Note: {mismatches} batches answered with an `outcomes` list whose length is not "
            "the batch size."
        )
    return lines, fails


def report(data: dict[str, Any]) -> str:
    args, noop = data["args"], data["noop"]
    fill = {"c": args["clients"], "bc": args["batch_clients"], "bs": args["batch_size"]}
    lines = report_header(data)
    total_failures = failures_of(noop, MEASURES)
    for backend in data["backends"]:
        more, fails = report_backend(data, backend)
        lines += more
        total_failures += fails

    lines += [
        "",
        "### Baselines (same run)",
        "",
        *table_head("baseline", len(noop)),
    ]
    for label, measure, name, unit in NOOP_METRICS:
        lines.append(
            row("framework ceiling, " + label.format(**fill), values(noop, measure, name), unit)
        )
    lines.append(
        row("framework ceiling: server peak RSS, MiB", [r["peak_rss"] for r in noop], "mib")
    )
    for backend, info in data["backends"].items():
        label = (
            "database ceiling: asyncpg executemany into PostgreSQL"
            if backend == "postgres"
            else "database ceiling: sqlite3 executemany into SQLite (WAL)"
        )
        lines.append(
            row(f"{label}: rows/s", [r["ceiling"]["events_per_s"] for r in info["runs"]], "eps")
        )
    lines += [
        "",
        "Framework ceiling: `bench/baseline_app.py`, Strawberry on Starlette with a "
        "`noop(input: RecordEventInput!)` mutation that returns the same payload shape and does "
        "nothing, and a `noopBatch(input: [RecordEventInput!]!)` that answers a batch like "
        "`recordEvents` (one outcome per event), with ParserCache and ValidationCache, served "
        f"and driven exactly like the app ({failures_of(noop, MEASURES)} failed requests): "
        "what parsing, coercing and answering the requests costs on one worker, with no "
        "work between. Database ceiling: "
        "event-like rows (player_id, event_type, value, occurred_at, metadata jsonb; primary "
        "key only) inserted into a scratch table of the bench database on one connection, one "
        f"`executemany` (one transaction) per batch of {args['batch_size']}, as many rows as "
        f"the batched recordEvents run of the same run stored (at least "
        f"{args['ceiling_min_rows']:,}).",
    ]

    noop50 = med(values(noop, "single50", "events_per_s"))
    noop_batch = med(values(noop, "batch", "events_per_s"))
    ratios, verdicts = [], {}
    for backend, info in data["backends"].items():
        runs = info["runs"]
        if not measured(runs):
            continue
        q50 = med(values(runs, "single50", "events_per_s"))
        qb = med(values(runs, "batch", "events_per_s"))
        ceiling = med([r["ceiling"]["events_per_s"] for r in runs])
        cells = []
        for num, den in ((q50, noop50), (qb, noop_batch), (qb, ceiling)):
            cells.append(
                f"{num / den:.1%} ({fmt(num, 'eps')} / {fmt(den, 'eps')})" if num and den else "n/a"
            )
        ratios.append(f"| {backend} | " + " | ".join(cells) + " |")
        verdicts[backend] = {}
        for key, measure, name, _ in TARGET_ROWS:
            value = med(values(runs, measure, name))
            eps = key.endswith("eps")
            shown = fmt(value, "eps") + " events/s" if eps else fmt(value, "ms") + " ms"
            verdicts[backend][key] = f"{shown}: {verdict(value, TARGETS[key], at_least=eps)}"
    if ratios:
        lines += [
            "",
            "### Ratios (medians)",
            "",
            f"| backend | single events/s ÷ no-op events/s, {args['clients']} clients "
            "| batched events/s ÷ no-op batched events/s "
            "| batched events/s ÷ executemany rows/s |",
            "| --- | ---: | ---: | ---: |",
            *ratios,
        ]
    if verdicts:
        names = list(verdicts)
        lines += [
            "",
            "### Targets (medians)",
            "",
            "| target | " + " | ".join(names) + " |",
            "| --- |" + " --- |" * len(names),
        ]
        for key, _, _, label in TARGET_ROWS:
            cells = " | ".join(verdicts[b][key] for b in names)
            lines.append(f"| {label.format(**fill)} | {cells} |")
    if total_failures:
        lines += ["", f"**{total_failures} requests failed in this bench; see above.**"]
    lines += ["", "Raw data: `bench/out/ingest-latest.json` (git-ignored).", END]
    return "\n".join(lines) + "\n"
