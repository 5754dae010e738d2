"""The `questline` command: one entry point for operators and integrators."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from app import presets
from app.db import orm, run_migrations
from app.errors import ErrorCode, UserError
from app.settings import Settings
from models.leaderboards import Period

T = TypeVar("T")

cli = typer.Typer(
    help="Questline: a gamification engine served as one GraphQL API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tenant_cli = typer.Typer(help="Tenants.", no_args_is_help=True)
apikey_cli = typer.Typer(help="API keys.", no_args_is_help=True)
leaderboard_cli = typer.Typer(help="Leaderboards.", no_args_is_help=True)
cli.add_typer(tenant_cli, name="tenant")
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(leaderboard_cli, name="leaderboard")

console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        console.print(f"[red]settings: {exc}[/red]")
        raise typer.Exit(2) from None


def _run(work: Callable[[Settings], Awaitable[T]], *, with_orm: bool = True) -> T:
    """Run one async step with the ORM open; UserErrors become a clear exit."""
    settings = _settings()

    async def main() -> T:
        if not with_orm:
            return await work(settings)
        async with orm(settings):
            return await work(settings)

    try:
        return asyncio.run(main())
    except UserError as exc:
        console.print(f"[red]error ({exc.code}): {exc.message}[/red]")
        raise typer.Exit(1) from None


async def _settle_left_points(settings: Settings) -> int:
    """Board points a crashed batch left pending, into the record (and Redis's copy)."""
    from app.services.board_cache import BoardCache
    from app.services.board_points import settle_left

    if not settings.redis_url:
        return await settle_left(older_than=timedelta(0))
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    try:
        cache = BoardCache(redis, settings.redis_prefix, settings.leaderboard_retention_days)
        return await settle_left(cache, older_than=timedelta(0))
    finally:
        await redis.aclose()


@cli.command()
def migrate() -> None:
    """Apply pending database migrations."""
    settings = _settings()
    asyncio.run(run_migrations(settings))
    console.print(f"migrated {_redact(settings.database_url)}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations before serving.")
    ] = True,
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql in dev)."""
    import uvicorn

    settings = _settings()
    if migrate_first:
        asyncio.run(run_migrations(settings))
    if not settings.production:
        _run(_ensure_default)
    if workers > 1 and not settings.redis_url:
        console.print(
            "[yellow]several workers without REDIS_URL: live updates reach only "
            "the subscribers of the worker that published[/yellow]"
        )
    console.print(f"Questline on http://{host}:{port}/graphql ({settings.questline_env})")
    uvicorn.run(
        "app.asgi:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws="auto",
        log_level="info",
        timeout_graceful_shutdown=5,
    )


async def _ensure_default(settings: Settings) -> None:
    from app.services.tenants import ensure_tenant

    await ensure_tenant()


@cli.command()
def seed() -> None:
    """Create tenant `default` (telco preset) and its demo data; safe to run twice."""
    from app.services.seed import seed_demo

    summary = _run(seed_demo)
    for line in summary:
        console.print(line)


@cli.command()
def decay(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
) -> None:
    """Decay inactive balances as each tenant's rules say; safe to run twice."""
    from app.runtime import opened_runtime
    from app.services.ledger import run_decay
    from models import Tenant

    async def work(settings: Settings) -> list[tuple[str, Any]]:
        async with opened_runtime(settings) as rt:
            query = Tenant.filter(slug=tenant) if tenant else Tenant.all()
            return [(row.slug, await run_decay(rt, row)) for row in await query.order_by("slug")]

    results = _run(work)
    if tenant and not results:
        console.print(f"[red]no tenant {tenant!r}[/red]")
        raise typer.Exit(1)
    for slug, run in results:
        console.print(f"{slug}: decayed {run.points} points from {run.players} inactive players")


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
) -> None:
    """Load a file of raw records through a data source, as normalizeEvent does: in
    batches, with a progress bar; Ctrl-C stops after the batch in flight and a re-run
    resumes there. Exit 0: every record applied (or a duplicate); 1: some rejected;
    2: a usage error; 130/143: stopped by SIGINT/SIGTERM."""
    from app.runtime import opened_runtime
    from app.services.file_ingest import Plan, plan_ingest, run_ingest

    async def work(settings: Settings) -> tuple[Any, list[int]]:
        try:
            plan = await plan_ingest(
                file,
                tenant=tenant,
                source=source,
                fmt=file_format,
                batch_size=batch_size,
                state_path=state,
                restart=restart,
            )
        except UserError as exc:
            console.print(exc.message, style="red", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        if plan.note:
            console.print(plan.note, markup=False, soft_wrap=True)
        if plan.status == "complete":
            return plan, []
        console.print(
            f"{file} ({plan.format}, {plan.size:,} bytes) -> tenant {plan.tenant.slug}, "
            f"data source #{plan.source.id} {plan.source.name!r} ({plan.source.source_type})",
            markup=False,
            soft_wrap=True,
        )
        stop = asyncio.Event()
        async with opened_runtime(settings) as rt:
            # A kill is safe too: the next run resumes before the batch it stopped.
            then = ", then saving the checkpoint (Ctrl-\\ quits at once; a re-run resumes)"
            with _stop_on_signals(stop, then) as received, _ingest_bar(plan) as on_progress:
                result = await run_ingest(rt, plan, progress=on_progress, stop=stop)
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
def _stop_on_signals(stop: asyncio.Event, then: str = "") -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM sets `stop`: the batch in flight finishes (`then` says what
    follows). Not cancelled half-way: cancelling a transaction as it begins leaves
    Tortoise unable to close."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            console.print(
                f"{signal.Signals(signum).name}: finishing the batch in flight{then}",
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


def _count_bar() -> Any:
    """A progress bar per task: description, bar, done / total, time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


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


@leaderboard_cli.command("rebuild")
def leaderboard_rebuild(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
    period: Annotated[Period | None, typer.Option(help="One period (default: all).")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="One period key, e.g. 2026-11-20 (default: current and previous)."),
    ] = None,
) -> None:
    """Restore the Redis leaderboards from the database (the record)."""
    from app.services.board_cache import BoardCache, record_count
    from app.services.board_points import settle_left
    from app.services.leaderboards import boards_to_rebuild
    from models import Tenant

    if key is not None and period is None:
        console.print("[red]--key needs --period[/red]")
        raise typer.Exit(2)

    async def work(settings: Settings) -> list[tuple[str, str, str, int]]:
        from redis.asyncio import Redis

        if not settings.redis_url:
            raise UserError(
                ErrorCode.INVALID, "REDIS_URL is not set: leaderboards are served from SQL"
            )
        redis = Redis.from_url(settings.redis_url)
        cache = BoardCache(redis, settings.redis_prefix, settings.leaderboard_retention_days)
        done: list[tuple[str, str, str, int]] = []
        try:
            # Points a crashed batch left pending belong in the record first.
            await settle_left(cache, older_than=timedelta(0))
            query = Tenant.filter(slug=tenant) if tenant else Tenant.all()
            rows = await query.order_by("slug")
            if tenant and not rows:
                raise UserError(ErrorCode.NOT_FOUND, f"no tenant {tenant!r}")
            with _count_bar() as progress:
                for row in rows:
                    boards = boards_to_rebuild(row, period.value if period else None, key)
                    for board_period, board_key in boards:
                        total = await record_count(row.id, board_period, board_key)
                        task = progress.add_task(
                            f"{row.slug} {board_period} {board_key}", total=total
                        )
                        written = await cache.rebuild(
                            row.id,
                            row.timezone,
                            board_period,
                            board_key,
                            progress=lambda n, task=task: progress.advance(task, n),
                        )
                        done.append((row.slug, board_period, board_key, written))
        finally:
            await redis.aclose()
        return done

    for slug, board_period, board_key, written in _run(work):
        console.print(f"{slug} {board_period} {board_key}: {written} players")


@leaderboard_cli.command("snapshot")
def leaderboard_snapshot(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
) -> None:
    """Snapshot closed periods (top 100, each player's final rank); safe to run twice."""
    from app.services.leaderboards import snapshot_closed
    from models import Tenant

    async def work(settings: Settings) -> list[tuple[str, list[tuple[str, str]]]]:
        query = Tenant.filter(slug=tenant) if tenant else Tenant.all()
        rows = await query.order_by("slug")
        if tenant and not rows:
            raise UserError(ErrorCode.NOT_FOUND, f"no tenant {tenant!r}")
        await _settle_left_points(settings)  # closed periods' final ranks count them
        return [(row.slug, await snapshot_closed(row)) for row in rows]

    for slug, done in _run(work):
        console.print(f"{slug}: {len(done)} closed periods snapshotted")
        for board_period, board_key in done:
            console.print(f"  {board_period} {board_key}")


@cli.command()
def expire(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
) -> None:
    """Mark FULFILLED redemptions whose code has expired as EXPIRED; safe to run twice."""
    from app.services.rewards import expire_codes
    from app.services.tenants import get_tenant

    async def work(settings: Settings) -> int:
        return await expire_codes(await get_tenant(tenant) if tenant else None)

    count = _run(work)
    console.print(f"expired {count} redemption codes" + (f" of tenant {tenant}" if tenant else ""))


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


@tenant_cli.command("create")
def tenant_create(
    slug: str,
    preset: Annotated[str, typer.Option(help=f"One of: {', '.join(presets.available())}.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA timezone for day boundaries.")] = None,
) -> None:
    """Create a tenant from a preset."""
    from app.services.tenants import create_tenant

    async def work(settings: Settings) -> Any:
        return await create_tenant(slug, preset=preset, name=name, timezone=timezone)

    tenant = _run(work)
    console.print(f"created tenant {tenant.slug} ({tenant.preset}, {tenant.timezone})")


@tenant_cli.command("list")
def tenant_list() -> None:
    """List tenants."""
    from models import Tenant

    async def work(settings: Settings) -> list[Tenant]:
        return await Tenant.all().order_by("slug")

    for tenant in _run(work):
        typer.echo(f"{tenant.slug}\t{tenant.preset}\t{tenant.timezone}\t{tenant.name}")


@apikey_cli.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    role: Annotated[str, typer.Option(help="admin, integrator or viewer.")],
    name: Annotated[str, typer.Option(help="A label for operators.")] = "",
) -> None:
    """Create an API key; the key is printed once, as the last line."""
    from app.services.access import create_api_key

    async def work(settings: Settings) -> Any:
        return await create_api_key(tenant, role, name)

    row, key = _run(work)
    console.print(
        f"created {row.role.value} key {row.prefix} for tenant {tenant}; "
        "store it now, it is not shown again:"
    )
    typer.echo(key)


@apikey_cli.command("revoke")
def apikey_revoke(prefix: Annotated[str, typer.Argument(help="The key or its prefix.")]) -> None:
    """Revoke an API key: it stops working at once."""
    from app.runtime import Runtime
    from app.services.access import revoke_api_key

    async def work(settings: Settings) -> Any:
        rt = Runtime(settings=settings)  # tells running servers (through Redis) at once
        await rt.hub.connect()
        try:
            return await revoke_api_key(prefix, rt.hub)
        finally:
            await rt.hub.disconnect()

    row = _run(work)
    console.print(f"revoked key {row.prefix}")


@cli.command("player-token")
def player_token(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    player: Annotated[str, typer.Option(help="The integrator's player id.")],
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds.")] = None,
) -> None:
    """Mint a read-only token for one player's widget; printed as the last line."""
    from app.services.access import mint_player_token
    from app.services.tenants import get_tenant

    async def work(settings: Settings) -> str:
        row = await get_tenant(tenant)
        return await mint_player_token(
            settings, row, player, timedelta(seconds=ttl) if ttl else None
        )

    token = _run(work)
    console.print(f"token for player {player} of tenant {tenant}:")
    typer.echo(token)


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
) -> None:
    """Apply events from Redis streams `{REDIS_PREFIX}:events:{tenant}` (consumer group
    `questline`) until SIGTERM or Ctrl-C."""
    import os
    import signal
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

    async def work(settings: Settings) -> WorkerStats | None:
        stop, me = asyncio.Event(), asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and me is not None:  # a second signal: stop at once
                me.cancel()
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        slugs = None if all_tenants else (tenant or ["default"])
        try:
            return await run_worker(settings, slugs, options, stop)
        except asyncio.CancelledError:
            return None

    stats = _run(work)
    if stats is None:
        console.print("[yellow]stopped at once: unacknowledged entries stay pending[/yellow]")
        raise typer.Exit(1)
    console.print(f"worker {options.consumer} stopped: {stats.summary()}", soft_wrap=True)


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to a file."""
    from schema import build_schema

    output.write_text(build_schema().as_str() + "\n", encoding="utf-8")
    console.print(f"wrote {output}")


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(parts.password, "***"))
    return urlunsplit(parts)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
