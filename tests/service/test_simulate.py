"""`questline simulate`: synthetic traffic per preset, recorded like any batch of events."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tortoise.functions import Sum

from app import presets
from app.errors import UserError
from app.services import ingest
from app.services.leaderboards import board
from app.services.players import boards_channel
from app.services.simulate import Options, prepare, simulate
from app.services.tenants import create_tenant, ensure_tenant
from models import Event, Period, PeriodScore, Player, PlayerDay, PointTransaction, Tenant, Wallet
from tests.conftest import REDIS_URL
from tests.service.test_board_cache import both, ready
from tests.service.test_cli import questline, start_questline
from tests.service.test_ledger import assert_invariant

FAST = 1e6  # events per second: the live phase's schedule never waits on these tests


async def run(rt, slug: str, **options):
    plan = await prepare(slug, Options(**{"rate": FAST, **options}))
    return plan, await simulate(rt, plan)


async def ledger_state(tenant) -> tuple:
    rows = PointTransaction.filter(tenant_id=tenant.id)
    total = await rows.annotate(s=Sum("amount")).first().values_list("s", flat=True)
    return (
        await rows.count(),
        Decimal(str(total or 0)),
        await Event.filter(tenant_id=tenant.id).count(),
    )


@pytest.mark.parametrize("preset", ["telco", "callcenter", "habits", "agents"])
async def test_each_preset_runs_clean_with_its_own_event_types(rt, preset):
    tenant = await create_tenant(f"sim-{preset}", preset=preset)
    plan, summary = await run(rt, tenant.slug, players=20, events=300, seed=11)
    assert plan.derived is None
    assert (summary.sent, summary.applied, summary.rejected) == (300, 300, Counter())
    mix = presets.simulation(preset)
    events = await Event.filter(tenant_id=tenant.id)
    assert len(events) == 300 and all(e.source == "simulate" for e in events)
    sent = Counter(e.event_type for e in events)
    assert set(sent) <= {entry.event_type for entry in mix.events}
    total = sum(e.weight for e in mix.events if not e.once_per_day)
    for entry in mix.events:  # every type with a share of 5 % or more was sent
        if entry.once_per_day or entry.weight / total >= 0.05:
            assert sent[entry.event_type] > 0, entry.event_type
    categories = {e.event_type: e.category for e in mix.events}
    assert all(e.category == (categories[e.event_type] or e.category) for e in events)
    players = await Player.filter(tenant_id=tenant.id)
    assert {p.kind.value for p in players} == {mix.player_kind}
    assert summary.points == sum((e.points_awarded for e in events), Decimal(0))
    assert len(summary.players) == len({e.player_id for e in events})
    await assert_invariant()


async def test_agents_bonuses_and_multipliers_fire_on_some_events_and_not_others(rt):
    tenant = await create_tenant("sim-agents", preset="agents")
    _, summary = await run(rt, tenant.slug, players=15, events=400, seed=3)
    assert summary.applied == 400
    branches: dict[str, Counter] = defaultdict(Counter)
    for event in await Event.filter(tenant_id=tenant.id, event_type="message_response"):
        lines = {rule: Decimal(amount) for rule, _, amount in event.outcome["lines"]}
        quick, quality = event.metadata["responseTime"] < 120, event.metadata["quality"] > 0.8
        assert ("add" in lines) is quick and ("multiply" in lines) is quality, event.metadata
        if quick:
            assert lines["add"] == 3
        branches["+3"][quick] += 1
        branches["×1.5"][quality] += 1
        assert sum(lines.values()) == event.points_awarded
    assert all(branches[step][True] > 5 and branches[step][False] > 5 for step in ("+3", "×1.5"))


async def test_a_seeded_run_repeats_as_duplicates_and_leaves_the_ledger_as_it_was(rt):
    tenant = await create_tenant("sim-again", preset="callcenter")
    options = Options(players=12, events=150, backfill_days=2, seed=42, rate=FAST)
    plan = await prepare(tenant.slug, options)
    first = await simulate(rt, plan)
    assert first.applied == first.sent > 150 and not first.rejected and first.run_id == "s42"
    keys = await Event.filter(tenant_id=tenant.id).values_list("idempotency_key", flat=True)
    assert sorted(keys) == sorted(f"sim-s42-{n}" for n in range(1, first.sent + 1))
    before = await ledger_state(tenant)
    # The same run again (on the same day: backfilled times are of the days before it).
    again_plan = replace(await prepare(tenant.slug, options), today=plan.today)
    assert again_plan.run_id == "s42"
    again = await simulate(rt, again_plan)
    assert (again.sent, again.duplicates, again.applied) == (first.sent, first.sent, 0)
    assert not again.rejected and again.points == 0 and again.level_ups == 0
    assert await ledger_state(tenant) == before
    await assert_invariant()
    other = await simulate(rt, await prepare(tenant.slug, replace(options, seed=43)))
    assert other.applied == other.sent and other.run_id == "s43"


async def test_unseeded_runs_use_fresh_keys(rt):
    tenant = await create_tenant("sim-fresh", preset="telco")
    a = await run(rt, tenant.slug, players=5, events=20)
    b = await run(rt, tenant.slug, players=5, events=20)
    assert a[0].run_id != b[0].run_id
    assert (a[1].applied, b[1].applied) == (20, 20)
    assert await Event.filter(tenant_id=tenant.id).count() == 40


async def test_backfill_builds_streaks_and_past_days_boards(rt):
    tenant = await create_tenant("sim-past", preset="habits", timezone="America/New_York")
    plan, summary = await run(rt, tenant.slug, players=12, events=0, backfill_days=7, seed=5)
    assert summary.applied == summary.sent > 12 * 7 * 0.65 and not summary.rejected
    today = plan.today
    events = await Event.filter(tenant_id=tenant.id).order_by("occurred_at")
    zone = ZoneInfo("America/New_York")
    local_days = {e.occurred_at.astimezone(zone).date() for e in events}
    assert local_days == {today - timedelta(days=n) for n in range(1, 8)}
    assert all(6 <= e.occurred_at.astimezone(zone).hour < 23 for e in events)
    wallets = await Wallet.filter(tenant_id=tenant.id)
    assert max(w.streak_best for w in wallets) > 1  # streaks grew...
    active = PlayerDay.filter(player__tenant_id=tenant.id)
    days = Counter(await active.values_list("player_id", flat=True))
    assert min(days.values()) < 7  # ...and broke: someone skipped a day
    past = (today - timedelta(days=3)).isoformat()
    assert await PeriodScore.filter(tenant_id=tenant.id, period="DAILY", period_key=past).exists()
    page = await board(tenant, Period.DAILY, period_key=past, first=5)
    assert page.period_key == past and page.total_players > 0 and page.entries
    assert page.entries[0].points > 0
    await assert_invariant()


async def test_a_tenant_whose_rules_changed_gets_a_mix_from_its_rules(rt):
    tenant = await create_tenant("sim-custom", preset="callcenter")
    config = dict(tenant.config)
    config["rules"] = [
        {"event_type": "escalation", "steps": [{"type": "base", "points": 4}]},
        {"event_type": "call_completed", "steps": [{"type": "base", "points": 1}]},
    ]
    await Tenant.filter(id=tenant.id).update(config=config, config_version=2)
    plan, summary = await run(rt, tenant.slug, players=5, events=60, seed=1)
    assert plan.derived == "the tenant's rules differ from preset callcenter's"
    assert [e.event_type for e in plan.mix.events] == ["escalation", "call_completed"]
    assert summary.applied == 60 and not summary.rejected
    events = await Event.filter(tenant_id=tenant.id)
    assert {e.event_type for e in events} == {"escalation", "call_completed"}
    assert all(e.value == 1 and e.metadata == {} for e in events)


async def test_a_preset_without_a_simulation_section_gets_a_mix_from_its_rules(
    rt, tmp_path, monkeypatch
):
    tenant = await create_tenant("sim-plain", preset="habits")
    text = (presets.PRESET_DIR / "habits.yaml").read_text().split("\nsimulation:")[0]
    (tmp_path / "habits.yaml").write_text(text)
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    presets._load.cache_clear()
    try:
        plan, summary = await run(rt, tenant.slug, players=3, events=10, seed=1)
    finally:
        presets._load.cache_clear()
    assert plan.derived == "preset habits has no simulation section"
    assert summary.applied == 10  # habits scores any type (a wildcard rule)
    assert set(await Event.filter(tenant_id=tenant.id).values_list("event_type", flat=True)) == {
        "simulated"
    }


async def test_a_bad_simulation_section_is_refused_when_the_preset_loads(rt, tmp_path, monkeypatch):
    text = (presets.PRESET_DIR / "agents.yaml").read_text()
    bad = text.replace(
        "{event_type: message_response, weight: 40,", "{event_type: message_response, weight: -1,"
    )
    assert bad != text
    (tmp_path / "agents.yaml").write_text(bad)
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    presets._load.cache_clear()
    try:
        with pytest.raises(ValueError) as caught:
            presets.load("agents")
        assert str(caught.value) == (
            "preset agents: simulation.events.1.weight: Input should be greater than 0"
        )
        with pytest.raises(ValueError):
            await create_tenant("sim-bad", preset="agents")
        assert not await Tenant.filter(slug="sim-bad").exists()
    finally:
        presets._load.cache_clear()


async def test_usage_errors_write_nothing(rt, default_tenant):
    for options in (
        Options(players=0),
        Options(rate=0),
        Options(duration=1, events=1),
        Options(backfill_days=-2),
    ):
        with pytest.raises(UserError) as caught:
            await prepare("default", options)
        assert caught.value.code == "INVALID"
    with pytest.raises(UserError) as missing:
        await prepare("nope", Options(events=5))
    assert missing.value.code == "NOT_FOUND"
    assert await Player.all().count() == 0 and await Event.all().count() == 0


async def test_the_cli_runs_50_seeded_events_and_says_what_it_did(app, rt, settings):
    tenant = await ensure_tenant()
    cache = rt.boards
    heard = asyncio.Event()

    async def listen(messages) -> None:
        async for _ in messages:
            heard.set()

    if cache is not None:  # a Redis board in use: the CLI must keep it in step
        await ingest.record_events(rt, tenant, [ingest.EventInput("real", "APP_LOGIN")])
        await ready(cache, tenant)
    async with rt.hub.subscribe(boards_channel(tenant.id)) as messages:
        listener = asyncio.create_task(listen(messages))
        done = await questline(settings, "simulate", "--events", "50", "--seed", "1")
        if REDIS_URL:  # a running server's subscribers hear it (here: this process's hub)
            await asyncio.wait_for(heard.wait(), 10)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stderr.split())  # rich wraps long lines
    assert "mix: preset telco's simulation section" in out
    found = re.search(
        r"done: 50 events sent in ([\d.]+) s \([\d.]+ events/s\) to tenant default", out
    )
    assert found and float(found.group(1)) >= 2.4  # paced: 50 events at 20/s take 2.5 s
    assert "applied 50, duplicates 0, rejected 0" in out
    events = await Event.filter(tenant_id=tenant.id, source="simulate")
    assert sorted(e.idempotency_key for e in events) == sorted(f"sim-s1-{n}" for n in range(1, 51))
    points = sum((e.points_awarded for e in events), Decimal(0))
    assert f"points awarded {points:,.2f} " in out
    if cache is not None:
        cached, sql = await both(tenant, cache, Period.ALL_TIME, first=100)
        assert cached == sql
    await assert_invariant()


async def test_the_cli_refuses_bad_usage_with_one_line_and_exit_2(app, settings, default_tenant):
    for args, message in (
        (["--tenant", "nope"], "no tenant 'nope'"),
        (["--events", "5", "--duration", "5"], "--duration: give --duration or --events, not both"),
        (["--rate", "0"], "--rate: events per second must be above 0"),
    ):
        done = await questline(settings, "simulate", *args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == message
    assert await Player.all().count() == 0 and await Event.all().count() == 0


async def test_sigterm_stops_after_the_batch_in_flight_with_the_summary(app, settings):
    tenant = await ensure_tenant()
    process = await start_questline(settings, "simulate", "--rate", "40", "--seed", "9")
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while await Event.filter(tenant_id=tenant.id).count() < 20:
            assert process.returncode is None and asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    text = " ".join(err.decode().split())
    assert "SIGTERM: finishing the batch in flight" in text
    sent = int(re.search(r"stopped: (\d+) events sent", text).group(1))
    assert sent == await Event.filter(tenant_id=tenant.id).count() >= 20
    assert f"applied {sent}, duplicates 0, rejected 0" in text
    await assert_invariant()
