"""The `questline` command: one entry point for operators and integrators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from app import presets
from app.db import orm, redacted_url, run_migrations
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
    console.print(f"migrated {redacted_url(settings.database_url)}")


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
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_timeout_seconds,
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


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to a file."""
    from schema import build_schema

    output.write_text(build_schema().as_str() + "\n", encoding="utf-8")
    console.print(f"wrote {output}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    cli()


# The commands that bring events in live in their own module; importing it registers
# them on `cli` (it imports this module's `cli`, so it comes last).
from app import cli_events  # noqa: E402, F401

if __name__ == "__main__":  # `python -m app.cli`: run the module's own import, which
    from app.cli import main as imported_main  # holds every command

    imported_main()
