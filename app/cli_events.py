"""The `questline` commands that bring events in: `ingest` (a file), `worker` (Redis
streams) and `simulate` (synthetic traffic). Registered on app.cli's `cli`, which
imports this module."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli import _count_bar, _run, _settings, cli, console
from app.errors import UserError
from app.settings import Settings


@cli.command()
def ingest(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (a header row, then a record per row) or JSONL (a JSON object per line)."
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            help="A data source id, or a type (cdr, billing, crm, app, network, custom): "
            "the tenant's first active source of that type."
        ),
    ],
    tenant: Annotated[str, typer.Option(help="Tenant slug.")] = "default",
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="csv or jsonl (default: from the extension)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Records per transaction, 1-1000.")] = 500,
    state: Annotated[
        Path | None, typer.Option(help="The checkpoint (default: FILE.ingest-state.json).")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint: read from the start.")
    ] = False,
    retries: Annotated[
        int,
        typer.Option(min=0, max=100, help="Tries again of a batch the database does not answer."),
    ] = 8,
) -> None:
    """Load a file of raw records through a data source, as normalizeEvent does: in
    batches, with a progress bar; Ctrl-C stops after the batch in flight and a re-run
    resumes there. Exit 0: every record applied (or a duplicate); 1: some rejected;
    2: a usage error (a changed file whose records had no ids included); 3: the
    database did not answer through --retries; 130/143: stopped by SIGINT/SIGTERM."""
    import logging

    from app.runtime import opened_runtime
    from app.services.file_ingest import (
        DatabaseAway,
        Plan,
        Stopped,
        plan_ingest,
        run_ingest,
    )

    # A database outage: one line per retry (run_ingest's), not a pool's traceback.
    logging.getLogger("asyncpg.pool").addFilter(_without_traceback)

    async def work(settings: Settings) -> tuple[Any, list[int]]:
        stop = asyncio.Event()
        phase = ["stopping, nothing written"]  # what a signal leads to, now
        with _stop_on_signals(stop, phase) as received:
            try:
                plan = await plan_ingest(
                    file,
                    tenant=tenant,
                    source=source,
                    fmt=file_format,
                    batch_size=batch_size,
                    state_path=state,
                    restart=restart,
                    stop=stop,
                )
            except UserError as exc:
                console.print(exc.message, style="red", markup=False, soft_wrap=True)
                raise typer.Exit(2) from None
            except Stopped:
                console.print(f"stopped before reading {file}'s records", markup=False)
                raise typer.Exit(128 + received[0]) from None
            if plan.note:
                console.print(plan.note, markup=False, soft_wrap=True)
            if plan.status == "complete":
                return plan, []
            console.print(
                f"{file} ({plan.format}, {plan.size:,} bytes) -> tenant {plan.tenant.slug}, "
                f"data source #{plan.source.id} {plan.source.name!r} "
                f"({plan.source.source_type})",
                markup=False,
                soft_wrap=True,
            )
            # A kill is safe too: the next run resumes before the batch it stopped.
            phase[0] = (
                "finishing the batch in flight, then saving the checkpoint "
                "(Ctrl-\\ quits at once; a re-run resumes)"
            )
            if stop.is_set():  # a signal between the digest and here
                raise typer.Exit(128 + received[0])
            async with opened_runtime(settings) as rt:
                with _ingest_bar(plan) as on_progress:
                    try:
                        result = await run_ingest(
                            rt, plan, progress=on_progress, stop=stop, retries=retries
                        )
                    except DatabaseAway as exc:
                        console.print(
                            f"{exc}: stopped; the checkpoint holds every batch committed, "
                            "run the same command again to resume",
                            style="red",
                            markup=False,
                            soft_wrap=True,
                        )
                        raise typer.Exit(3) from None
        return result, received

    result, received = _run(work)
    if isinstance(result, Plan):  # already ingested: its summary again
        total, rejects = result.start.counts, result.rejects_path
        console.print(_ingest_summary(total, None), markup=False, soft_wrap=True)
    else:
        total, rejects = result.total, result.rejects_path
        console.print(_ingest_summary(total, result), markup=False, soft_wrap=True)
        if not result.complete:
            console.print(
                f"[yellow]interrupted after line {result.line}, the checkpoint saved: run the "
                "same command again to resume[/yellow]",
                soft_wrap=True,
            )
            raise typer.Exit(128 + (received[0] if received else signal.SIGINT))
    if total.rejected:
        console.print(
            f"[red]{_records(total.rejected)} rejected: see {escape(str(rejects))}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _ingest_summary(total: Any, result: Any) -> str:
    bonus = f" (+{total.bonus:,.2f} level-up bonus)" if total.bonus else ""
    line = (
        f"read {_records(total.read)}: {total.applied:,} applied, "
        f"{total.duplicates:,} duplicates, {total.rejected:,} rejected; "
        f"{total.points:,.2f} points awarded{bonus}"
    )
    if result is not None:
        rate = result.run.read / result.elapsed if result.elapsed > 0 else 0.0
        this_run = f" for {_records(result.run.read)}" if result.run.read != total.read else ""
        line += f"; {result.elapsed:.2f} s{this_run}, {rate:,.0f} events/s"
    return line


def _records(count: int) -> str:
    return f"{count:,} record" + ("" if count == 1 else "s")


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, then: str | list[str] = "") -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM sets `stop`: the batch in flight finishes (`then` says what
    follows; a one-item list says all there is to say, for a caller whose answer
    changes as it goes). Not cancelled half-way: cancelling a transaction as it begins
    leaves Tortoise unable to close."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            said = then[0] if isinstance(then, list) else f"finishing the batch in flight{then}"
            console.print(
                f"{signal.Signals(signum).name}: {said}",
                markup=False,
                soft_wrap=True,
            )
        received.append(signum)
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield received
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _ingest_bar(plan: Any) -> Iterator[Callable[[int, Any], None]]:
    """A progress bar by bytes read, with the run's events per second."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    with Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            plan.path.name, total=plan.size, completed=plan.start.offset, rate=""
        )

        def advance(offset: int, run: Any) -> None:
            elapsed = time.monotonic() - started
            rate = f"{run.read / elapsed:,.0f} events/s" if elapsed > 0 else ""
            progress.update(task, completed=offset, rate=rate)

        yield advance


@cli.command()
def simulate(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")] = "default",
    players: Annotated[int, typer.Option(help="Simulated players.")] = 50,
    rate: Annotated[float, typer.Option(help="Live events per second.")] = 20.0,
    duration: Annotated[
        float | None, typer.Option(help="Seconds of live traffic (default: until Ctrl-C).")
    ] = None,
    events: Annotated[int | None, typer.Option(help="Live events to send (or --duration).")] = None,
    backfill_days: Annotated[int, typer.Option(help="Days of history to send first.")] = 0,
    seed: Annotated[
        int | None, typer.Option(help="Same seed, same events and idempotency keys.")
    ] = None,
    player_prefix: Annotated[str, typer.Option(help="The players' id prefix.")] = "sim-",
) -> None:
    """Synthetic traffic from the tenant's preset mix: backfill days, then live at --rate.
    Ctrl-C or SIGTERM stops after the batch in flight, with the summary (exit 0); exit 2:
    a usage error, nothing written."""
    from app.runtime import opened_runtime
    from app.services import simulate as sim

    def say(text: str, style: str | None = None) -> None:
        console.print(text, style=style, markup=False, soft_wrap=True)

    options = sim.Options(
        players=players,
        rate=rate,
        duration=duration,
        events=events,
        backfill_days=backfill_days,
        seed=seed,
        player_prefix=player_prefix,
    )
    try:
        options.check()
    except UserError as exc:
        say(exc.message, "red")
        raise typer.Exit(2) from None

    async def work(settings: Settings) -> tuple[sim.Plan, sim.Summary]:
        try:
            plan = await sim.prepare(tenant, options)  # writes nothing
        except UserError as exc:
            say(exc.message, "red")
            raise typer.Exit(2) from None
        row, live = plan.tenant, options.live_limit
        say(
            f"simulating tenant {row.slug} ({row.preset}, {row.timezone}): {players} players "
            f"{player_prefix}1 … {player_prefix}{players}"
            + (f", {backfill_days} days of history" if backfill_days else "")
            + f", then {rate:g} events/s"
            + (f" for {live} events" if live is not None else " until Ctrl-C")
            + f"; idempotency keys sim-{plan.run_id}-N"
        )
        kinds = len({e.event_type for e in plan.mix.events})
        if plan.derived:
            say(
                f"mix derived from the tenant's rules ({plan.derived}): "
                f"{kinds} event types, value 1, equal weights",
                "yellow",
            )
        else:
            say(f"mix: preset {row.preset}'s simulation section, {kinds} event types")
        stop = asyncio.Event()
        # The server's kind of Runtime: with REDIS_URL, its Redis boards and subscribers.
        async with opened_runtime(settings) as rt:
            with _stop_on_signals(stop), _count_bar() as progress:
                tasks: dict[str, Any] = {}

                def advance(phase: str, done: int, total: int | None) -> None:
                    if phase not in tasks:
                        tasks[phase] = progress.add_task(phase, total=total)
                    progress.update(tasks[phase], completed=done)

                summary = await sim.simulate(rt, plan, progress=advance, stop=stop)
        return plan, summary

    plan, summary = _run(work)
    rejected = sum(summary.rejected.values())
    codes = ", ".join(f"{code} {n}" for code, n in sorted(summary.rejected.items()))
    say(
        ("stopped: " if summary.stopped else "done: ")
        + f"{summary.sent} events sent in {summary.elapsed:.1f} s "
        f"({summary.per_second:.1f} events/s) to tenant {plan.tenant.slug}"
    )
    say(
        f"  applied {summary.applied}, duplicates {summary.duplicates}, "
        f"rejected {rejected}" + (f" ({codes})" if codes else "")
    )
    say(
        f"  points awarded {summary.points:,.2f} (+ {summary.level_up_bonus:,.2f} level-up "
        f"bonus), {summary.level_ups} level-ups, {len(summary.players)} players"
    )


@cli.command()
def worker(
    tenant: Annotated[
        list[str] | None, typer.Option(help="Tenant slug; repeat for several (default: default).")
    ] = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Every tenant that exists at start.")
    ] = False,
    consumer: Annotated[
        str | None, typer.Option(help="This worker's name in the group (default: hostname-pid).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Entries per batch.")] = 500,
    block_ms: Annotated[
        int, typer.Option(min=1, max=60_000, help="How long a read waits for entries.")
    ] = 1000,
    claim_idle_seconds: Annotated[
        float, typer.Option(min=1, help="Take over entries pending this long elsewhere.")
    ] = 60,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log each failure with its traceback.")
    ] = False,
) -> None:
    """Apply events from Redis streams `{REDIS_PREFIX}:events:{tenant}` (consumer group
    `questline`) until SIGTERM or Ctrl-C: the first finishes the batch in flight, a
    second exits at once. Exit 0 after a stop; 1: stopped at once, or an unknown
    tenant; 2: a usage error."""
    import logging
    import os
    import socket

    from app.services.stream_worker import WorkerOptions, WorkerStats, run_worker

    settings = _settings()
    if not settings.redis_url:
        console.print("[red]REDIS_URL is not set: the worker reads Redis streams[/red]")
        raise typer.Exit(2)
    if tenant and all_tenants:
        console.print("[red]give --tenant or --all-tenants, not both[/red]")
        raise typer.Exit(2)
    options = WorkerOptions(
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        batch_size=batch_size,
        block_ms=block_ms,
        claim_idle_seconds=claim_idle_seconds,
    )

    if debug:
        logging.getLogger("questline").setLevel(logging.DEBUG)
    else:  # a database outage: one line per try, as the worker's own, not a traceback
        logging.getLogger("asyncpg.pool").addFilter(_without_traceback)

    async def work(settings: Settings) -> WorkerStats:
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                _exit_at_once(signum)
            console.print(
                f"{signal.Signals(signum).name}: finishing the batch in flight "
                "(a second signal exits at once)",
                markup=False,
                soft_wrap=True,
            )
            stop.set()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        slugs = None if all_tenants else (tenant or ["default"])
        return await run_worker(settings, slugs, options, stop)

    stats = _run(work)
    console.print(f"worker {options.consumer} stopped: {stats.summary()}", soft_wrap=True)


def _exit_at_once(signum: int) -> None:
    """The worker's second signal: the process ends now, clean-up skipped. Cancelling
    would wait for it, and a database that stopped answering can hold it for ever (a
    pool's close waits for its connections, asyncio.run for every task). Nothing needs
    undoing: unacknowledged entries stay pending in Redis for the next worker, and the
    database rolls back a transaction whose connection is gone."""
    import os
    import sys

    console.print(
        f"[yellow]{signal.Signals(signum).name} again: stopped at once; unacknowledged "
        "entries stay pending for the next worker[/yellow]",
        soft_wrap=True,
    )
    sys.stderr.flush()
    os._exit(1)


def _without_traceback(record: Any) -> bool:
    """A log record's exception as one line of its message instead of a traceback."""
    if record.exc_info and record.exc_info[1] is not None:
        from app.services.stream_worker import failure

        record.msg = f"{record.getMessage()} ({failure(record.exc_info[1])})"
        record.args, record.exc_info, record.exc_text = None, None, None
    return True
