"""Schema A/B: PostgreSQL's cost per event under two migration targets, alternating.

    python bench/schema_ab.py --rounds 5 --duration 8 \
        --targets models.0013_board_score_unique_by_player,models.0014_board_score_key_is_primary

For a change of indexes or constraints only, which the current code runs on either way:
both sides are measured on the same code, in the same window, so the VM's changes of
speed (up to half within a day here) fall on both. It recreates its own PostgreSQL
database (`questline_schema_ab`, Redis prefix `qlbench-ab`), seeded as the ingest bench's
(tenant `default`, telco, four period boards), and then, --rounds times, for each target
in turn (the order alternating from round to round): migrates the database to the
target (forwards or back), vacuums it, starts one uvicorn worker pinned to core 0 and
drives it from core 1 with single events at 1 and 50 clients and batches of 500 from 4
clients. It reports events/s, the median latency and PostgreSQL's CPU per event: the
user + system time
of every `postgres` process over the load, read from /proc, divided by the events the
load generator counted. Round 1 warms the database up: listed, left out of the medians.
Results go to bench/RESULTS.md between the schema-ab markers; raw data to bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from envinfo import git_state, machine, versions
from harness import Processes, Server, backend_env, loadgen, log, pg_settle, prepare, run_bench

harness.PG_DB = "questline_schema_ab"
harness.PG_URL = f"postgres://postgres@127.0.0.1:5432/{harness.PG_DB}"
harness.REDIS_PREFIX = "qlbench-ab"
START, END = "<!-- schema-ab:start -->", "<!-- schema-ab:end -->"
LOADS = (
    ("record", 1, "single events, 1 client"),
    ("record", 50, "single events, 50 clients"),
    ("records", 4, "batches of 500, 4 clients"),
)


def postgres_cpu() -> dict[str, float]:
    """User + system CPU seconds of each running `postgres` process, by pid."""
    seconds = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name.startswith("postgres"):
            fields = rest.split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def postgres_cpu_spent(before: dict[str, float], after: dict[str, float]) -> float:
    """What the processes running at the end spent since `before` (a process that
    exits in between, such as the VACUUM's backend, takes its total with it: it
    would count negative)."""
    return sum(total - before.get(pid, 0.0) for pid, total in after.items())


def migrate_to(target: str) -> None:
    sys.path.insert(0, str(harness.ROOT))
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate

    from app.db import tortoise_config
    from app.settings import Settings

    async def work() -> None:
        try:
            config = tortoise_config(Settings(database_url=harness.PG_URL))
            await migrate(config=config, target=target)
        finally:
            await Tortoise.close_connections()

    asyncio.run(work())


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    targets = args.targets.split(",")
    if len(targets) != 2:
        raise harness.SetupError("--targets names two migrations: app.name,app.name")
    data: dict[str, Any] = {
        "command": args.command_line,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": harness.PINNING,
        "versions": versions(["postgres"]),
        "git": git_state(),
        "targets": targets,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "runs": [],
    }
    env = backend_env("postgres")
    log("prepare: database, tenant, key")
    key = prepare("postgres")
    for round_ in range(args.rounds):
        for target in targets if round_ % 2 == 0 else targets[::-1]:
            migrate_to(target)
            name = f"ab-r{round_ + 1}-{'AB'[targets.index(target)]}"
            server = Server(procs, name, ["app.asgi:create_app"], env)
            server.start()
            record: dict[str, Any] = {"round": round_ + 1, "target": target}
            try:
                for op, clients, _ in LOADS:
                    pg_settle()
                    before = postgres_cpu()
                    result = loadgen(procs, args, server, key, op, clients)
                    spent = postgres_cpu_spent(before, postgres_cpu())
                    events = result["events_per_s"] * args.duration
                    load = f"{op}x{clients}"
                    record[f"{load}_events_per_s"] = result["events_per_s"]
                    record[f"{load}_p50_ms"] = result["p50_ms"]
                    record[f"{load}_pg_us"] = round(spent / events * 1e6, 1) if events else None
                    record[f"{load}_failures"] = result["failures"]
            finally:
                server.stop()
            data["runs"].append(record)
    return data


def _cell(value: float | None, column: int, bold: bool = False) -> str:
    """A table cell: latencies (columns 2 and 3) to 0.01 ms, the rest to 0.1."""
    if value is None:
        return "n/a"
    text = f"{value:,.2f}" if column in (2, 3) else f"{value:,.1f}"
    return f"**{text}**" if bold else text


def report(data: dict[str, Any]) -> str:
    targets, runs = data["targets"], data["runs"]
    lines = [
        START,
        "## Schema A/B: PostgreSQL's cost per event under two migration targets",
        "",
        f"- Date: {data['date']}; took {data.get('elapsed_s', 0):.0f} s.",
        f"- Command: `{data['command']}`",
        "- Machine: nproc {nproc}, {cpu}, {ram_gib} GiB RAM, Linux {kernel}".format(
            **data["machine"]
        )
        + f"; pinning: {data['pinning']}.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in data['versions'].items())}.",
        f"- Code: {data['git']} (the same code on both schemas).",
        "- Targets: " + "; ".join(f"{'AB'[i]} = `{t}`" for i, t in enumerate(targets)) + ".",
        f"- Each load: {data['warmup_s']:g} s of warm-up, then {data['duration_s']:g} s "
        "measured, after `VACUUM ANALYZE`; the "
        "order of A and B alternates from round to round. PostgreSQL CPU per event is the "
        "user + system time of every postgres process over the load (warm-up included) "
        "divided by the events measured. Round 1 is listed and left out of the medians.",
        "",
    ]
    for op, clients, title in LOADS:
        load = f"{op}x{clients}"
        lines += [
            f"### {title}",
            "",
            "| round | A events/s | B events/s | A p50 ms | B p50 ms "
            "| A PostgreSQL µs/event | B PostgreSQL µs/event |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        by_round: dict[int, dict[str, dict[str, Any]]] = {}
        for run in runs:
            by_round.setdefault(run["round"], {})[run["target"]] = run
        columns: dict[str, list[float]] = {n: [] for n in ("A", "B", "Ap", "Bp", "Apg", "Bpg")}
        for number, pair in sorted(by_round.items()):
            a, b = pair.get(targets[0], {}), pair.get(targets[1], {})
            cells = [
                side.get(f"{load}_{measure}")
                for measure in ("events_per_s", "p50_ms", "pg_us")
                for side in (a, b)
            ]
            lines.append(
                f"| {number}{' (warm-up)' if number == 1 else ''} | "
                + " | ".join(_cell(c, i) for i, c in enumerate(cells))
                + " |"
            )
            if number > 1:
                for name, cell in zip(columns, cells, strict=True):
                    if cell is not None:
                        columns[name].append(cell)
        medians = [statistics.median(v) if v else None for v in columns.values()]
        lines.append(
            "| median | " + " | ".join(_cell(m, i, bold=True) for i, m in enumerate(medians)) + " |"
        )
        lines.append("")
    failures = sum(run.get(f"{op}x{n}_failures", 0) for run in runs for op, n, _ in LOADS)
    lines += [f"Failed requests: {failures}.", END]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", required=True, help="two migrations: app.name,app.name")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--players", type=int, default=2000)
    harness.add_load_options(p, duration=8.0)
    args = p.parse_args(argv)
    args.command_line = shlex.join(["python", "bench/schema_ab.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    status, _ = run_bench("schema-ab", parse_args(argv), bench, report, (START, END))
    return status


if __name__ == "__main__":
    sys.exit(main())
