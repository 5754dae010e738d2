"""The `questline` command, run as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal

from app.services.ingest import EventInput, record_events
from models import ApiKey, Tenant, Wallet
from tests.conftest import ROOT, gql


async def start_questline(settings, *args: str, **env: str) -> asyncio.subprocess.Process:
    """The CLI started against the test database and Redis (prefix included)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "REDIS_PREFIX": settings.redis_prefix,
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def questline(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the CLI without blocking the event loop (the app under test keeps running)."""
    process = await start_questline(settings, *args)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:  # never left running after its test
        process.kill()
        await process.wait()
        raise
    return subprocess.CompletedProcess(
        list(args), process.returncode or 0, out.decode(), err.decode()
    )


async def test_tenant_apikey_and_token_commands(app, settings):
    created = await questline(
        settings,
        "tenant",
        "create",
        "shop",
        "--preset",
        "callcenter",
        "--timezone",
        "Europe/Helsinki",
    )
    assert created.returncode == 0, created.stderr
    assert "created tenant shop (callcenter, Europe/Helsinki)" in created.stderr
    tenant = await Tenant.get(slug="shop")
    assert tenant.timezone == "Europe/Helsinki"

    key = await questline(settings, "apikey", "create", "--tenant", "shop", "--role", "integrator")
    assert key.returncode == 0, key.stderr
    last_line = key.stdout.strip().splitlines()[-1]
    assert last_line.startswith("ql_")
    row = await ApiKey.get(tenant=tenant)
    assert last_line.startswith(f"ql_{row.prefix}_") and row.role == "integrator"

    revoked = await questline(settings, "apikey", "revoke", row.prefix)
    assert revoked.returncode == 0 and (await ApiKey.get(id=row.id)).revoked

    token = await questline(settings, "player-token", "--tenant", "shop", "--player", "p1")
    assert token.returncode == 0 and token.stdout.strip().count(".") == 2


async def test_bad_input_exits_non_zero_with_a_clear_message_and_writes_nothing(app, settings):
    bad_role = await questline(
        settings, "apikey", "create", "--tenant", "default", "--role", "root"
    )
    assert bad_role.returncode == 1 and "unknown role 'root'" in bad_role.stderr
    bad_preset = await questline(settings, "tenant", "create", "x", "--preset", "casino")
    assert bad_preset.returncode == 1 and "unknown preset 'casino'" in bad_preset.stderr
    bad_tz = await questline(
        settings, "tenant", "create", "y", "--preset", "habits", "--timezone", "Nowhere/Land"
    )
    assert bad_tz.returncode == 1 and "unknown timezone" in bad_tz.stderr
    assert await Tenant.filter(slug__in=["x", "y"]).count() == 0
    assert await ApiKey.all().count() == 0


async def test_seed_is_idempotent_and_export_schema_writes_the_sdl(app, settings, tmp_path):
    for _ in range(2):
        seeded = await questline(settings, "seed")
        assert seeded.returncode == 0, seeded.stderr
    assert await Tenant.filter(slug="default").count() == 1
    from models import RewardItem

    assert await RewardItem.filter(tenant__slug="default").count() == 4  # not 8
    out = tmp_path / "s.graphql"
    exported = await questline(settings, "export-schema", "--output", str(out))
    assert exported.returncode == 0
    assert out.read_text() == (ROOT / "schema.graphql").read_text()


async def test_seed_records_a_week_of_demo_events_at_any_time_of_day(app, settings):
    from datetime import UTC, datetime, timedelta

    from app.services.seed import demo_events

    for hour in (0, 12, 23):
        now = datetime(2026, 11, 21, hour, 0, tzinfo=UTC)
        events = demo_events(now)
        assert all(e.occurred_at <= now + timedelta(minutes=2) for e in events)
        assert events == demo_events(now + timedelta(minutes=30))  # same date, same events
    seeded = await questline(settings, "seed")
    assert "refused" not in seeded.stderr and "36 demo events recorded" in seeded.stderr


async def test_seeded_events_reach_boards_that_already_exist(
    app, rt, client, default_tenant, settings
):
    """With REDIS_URL, a board read from Redis: `seed` writes to it as the server would
    (it used to write only the record, and the Redis board missed the demo players)."""
    board = "{ leaderboard(period: ALL_TIME, first: 10) { entries { points player { id } } } }"
    await record_events(rt, default_tenant, [EventInput("early", "APP_LOGIN", idempotency_key="e")])
    assert len((await gql(client, board)).data["leaderboard"]["entries"]) == 1
    if rt.boards is not None:
        await rt.boards.wait_rebuilds()
    seeded = await questline(settings, "seed")
    assert seeded.returncode == 0, seeded.stderr
    entries = (await gql(client, board)).data["leaderboard"]["entries"]  # Redis or SQL
    shown = {e["player"]["id"]: Decimal(str(e["points"])) for e in entries}
    wallets = Wallet.filter(tenant=default_tenant).values_list(
        "player__external_id", "lifetime_earned"
    )
    assert shown == dict(await wallets) and len(shown) == 5  # "early" and the four demo players
