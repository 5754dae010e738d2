"""The simulation mix as data, and the seeded traffic generator (no database)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app import presets
from app.engine.rules import parse_rules
from app.engine.simulation import Choice, Fixed, Uniform, parse_simulation
from app.errors import UserError
from app.services.simulate import Options, Traffic, derived_mix

PLAYERS = [f"p{n}" for n in range(1, 31)]
DAY = date(2026, 11, 20)


def traffic(preset: str, seed: int | None = 1, players: list[str] = PLAYERS) -> Traffic:
    mix = presets.simulation(preset)
    assert mix is not None
    return Traffic(mix, players, random.Random(seed))


def run(gen: Traffic, days: int = 3, live: int = 200) -> list:
    events = []
    for n, day_plan in enumerate(gen.backfill_plan(days)):
        events += gen.backfill_day(date(2026, 11, 10 + n), day_plan, UTC)
    events += [gen.live(DAY) for _ in range(live)]
    return events


def within(dist, value) -> bool:
    match dist:
        case Fixed():
            return value == dist.fixed
        case Uniform():
            low, high = dist.uniform
            return low <= value <= high
        case Choice():
            return value in dist.choice
    return False


@pytest.mark.parametrize("preset", presets.available())
def test_every_preset_has_a_valid_mix_of_its_own_event_types(preset):
    data = presets.load(preset)
    mix = presets.simulation(preset)
    assert mix is not None
    rules = parse_rules(data)
    for entry in mix.events:
        assert rules.rule_for(entry.event_type) is not None
        if rules.categories:
            assert entry.category in rules.categories


@pytest.mark.parametrize("preset", presets.available())
def test_the_same_seed_gives_the_same_events_and_another_seed_others(preset):
    first, again, other = run(traffic(preset, 5)), run(traffic(preset, 5)), run(traffic(preset, 6))
    assert first == again  # player, type, category, value, metadata, time and order
    assert [(e.player_id, e.event_type, e.value) for e in first] != [
        (e.player_id, e.event_type, e.value) for e in other
    ]


@pytest.mark.parametrize("preset", presets.available())
def test_events_follow_their_entry_in_the_mix(preset):
    mix = presets.simulation(preset)
    by_type = defaultdict(list)
    for entry in mix.events:
        by_type[entry.event_type].append(entry)
    events = run(traffic(preset), days=2, live=1000)
    for event in events:
        assert event.player_id in PLAYERS and event.source == "simulate"
        entries = by_type[event.event_type]
        assert any(
            event.category == entry.category
            and within(entry.value, float(event.value))
            and set(event.metadata) == set(entry.metadata)
            and all(within(entry.metadata[k], v) for k, v in event.metadata.items())
            for entry in entries
        ), event
    assert {e.event_type for e in events} == set(by_type)


def test_weights_set_the_share_of_each_event_type():
    gen = traffic("agents", seed=3)
    counts = Counter(gen.live(DAY).event_type for _ in range(6000))
    drawn = [e for e in presets.simulation("agents").events if not e.once_per_day]
    total = sum(e.weight for e in drawn)
    for entry in drawn:
        share = counts[entry.event_type] / 6000
        assert abs(share - entry.weight / total) < 0.05, (entry.event_type, share)


def test_a_daily_event_comes_once_per_active_player_and_day_and_first():
    gen = traffic("agents", seed=9)
    plan = gen.backfill_plan(1)[0]
    events = gen.backfill_day(DAY, plan, UTC)
    firsts: dict[str, str] = {}
    for event in events:
        firsts.setdefault(event.player_id, event.event_type)
    daily = Counter(e.player_id for e in events if e.event_type == "daily_streak")
    assert set(firsts.values()) == {"daily_streak"}
    assert set(daily.values()) == {1} and len(daily) == len(plan)
    live = [gen.live(DAY) for _ in range(500)]
    seen: dict[str, list[str]] = defaultdict(list)
    for event in live:
        seen[event.player_id].append(event.event_type)
    for types in seen.values():
        assert types[0] == "daily_streak" and types.count("daily_streak") == 1
    again = [gen.live(date(2026, 11, 21)) for _ in range(50)]  # a new day: again once each
    assert again[0].event_type == "daily_streak"


def test_backfill_spreads_events_over_the_active_hours_in_time_order():
    tz = ZoneInfo("Europe/Helsinki")
    gen = traffic("callcenter", seed=2)
    plans = gen.backfill_plan(30)
    low, high = presets.simulation("callcenter").events_per_day
    for day_plan in plans:
        assert all(low <= count <= high for _, count in day_plan)
    day = date(2026, 10, 25)  # the day Helsinki leaves summer time: 25 hours
    events = gen.backfill_day(day, plans[0], tz)
    assert len(events) == sum(count for _, count in plans[0])
    times = [e.occurred_at for e in events]
    assert times == sorted(times) and all(t.tzinfo == UTC for t in times)
    for t in times:
        local = t.astimezone(tz)
        assert local.date() == day and 8 <= local.hour < 18


def test_some_players_are_active_on_a_day_and_others_not_so_streaks_grow_and_break():
    gen = traffic("agents", seed=4)
    plans = gen.backfill_plan(30)
    active = [{player for player, _ in day_plan} for day_plan in plans]
    share = sum(len(day) for day in active) / (30 * len(PLAYERS))
    assert abs(share - 0.8) < 0.05
    runs = []
    for player in range(len(PLAYERS)):
        days = [player in day for day in active]
        assert any(days) and not all(days)
        longest = current = 0
        for on in days:
            current = current + 1 if on else 0
            longest = max(longest, current)
        runs.append(longest)
    assert max(runs) >= 5


def test_without_a_seed_runs_differ():
    mix = presets.simulation("telco")
    a = Traffic(mix, PLAYERS, random.Random())
    b = Traffic(mix, PLAYERS, random.Random())
    assert [a.live(DAY) for _ in range(50)] != [b.live(DAY) for _ in range(50)]


def test_a_mix_derived_from_rules_sends_each_type_with_value_1():
    rules = parse_rules(presets.load("callcenter"))
    mix = derived_mix(rules)
    assert [e.event_type for e in mix.events] == [r.event_type for r in rules.rules]
    assert all(e.weight == 1 and e.value == Fixed(fixed=1) and not e.metadata for e in mix.events)
    wildcard_only = derived_mix(parse_rules(presets.load("habits")))
    assert [e.event_type for e in wildcard_only.events] == ["simulated"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"events": []}, "simulation.events: List should have at least 1 item"),
        ({"events": [{"event_type": "a", "weight": 0}]}, "simulation.events.0.weight"),
        (
            {"events": [{"event_type": "a", "value": {"uniform": [5, 1]}}]},
            "simulation.events.0.value.uniform: uniform is [low, high] with low <= high",
        ),
        (
            {"events": [{"event_type": "a", "value": {"between": [1, 2]}}]},
            "simulation.events.0.value: a value, or a mapping with one of fixed, uniform or choice",
        ),
        ({"events": [{"event_type": "a", "value": -1}]}, "an event's value is a number >= 0"),
        ({"events": [{"event_type": "a", "value": "lots"}]}, "an event's value is a number"),
        (
            {
                "events": [
                    {"event_type": "a", "metadata": {"q": {"choice": [1, 2], "weights": [1]}}}
                ]
            },
            "simulation.events.0.metadata.q.choice: weights needs one weight per choice",
        ),
        ({"events": [{"event_type": "zzz"}]}, "simulation.events.0: no rule for event type 'zzz'"),
        (
            {"events": [{"event_type": "a", "category": "fun"}]},
            "simulation.events.0: unknown category 'fun'",
        ),
        ({"events": [{"event_type": "a", "once_per_day": True}]}, "at least one event"),
        ({"active_share": 0, "events": [{"event_type": "a"}]}, "simulation.active_share"),
        ({"events_per_day": [5, 2], "events": [{"event_type": "a"}]}, "events_per_day"),
        ({"active_hours": [9, 25], "events": [{"event_type": "a"}]}, "active_hours"),
        ({"player_kind": "ROBOT", "events": [{"event_type": "a"}]}, "simulation.player_kind"),
        ({"events": [{"event_type": "a", "wieght": 2}]}, "simulation.events.0.wieght"),
    ],
)
def test_a_bad_simulation_section_is_refused_with_the_place_and_the_reason(section, message):
    with pytest.raises(ValueError) as caught:
        parse_simulation(section, ["a", "b"], ["work"])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (Options(players=0), "--players"),
        (Options(rate=0), "--rate"),
        (Options(rate=-5), "--rate"),
        (Options(rate=float("nan")), "--rate"),
        (Options(duration=5, events=5), "not both"),
        (Options(duration=0), "--duration"),
        (Options(events=-1), "--events"),
        (Options(backfill_days=-1), "--backfill-days"),
        (Options(player_prefix=" x"), "--player-prefix"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(UserError) as caught:
        options.check()
    assert message in caught.value.message


def test_live_limit_follows_events_or_duration():
    assert Options(events=7).live_limit == 7
    assert Options(rate=20, duration=2.5).live_limit == 50
    assert Options().live_limit is None
    Options(events=0, backfill_days=3).check()  # history only


def test_live_events_carry_no_time_so_they_are_recorded_when_sent():
    mix = presets.simulation("telco")
    assert {e.event_type for e in mix.events} >= {"DATA_USAGE", "RECHARGE", "APP_LOGIN"}
    gen = Traffic(mix, ["x"], random.Random(0))
    first = gen.live(datetime(2026, 1, 1, tzinfo=UTC).date())
    assert first.player_id == "x" and first.occurred_at is None  # live: recorded now
