"""Issue 3 over the API: streaks in the player's timezone, the `questline decay`
command, the daily cap that grows with the level, and rule conditions on the player
(level, attributes, segment)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models import Tenant
from tests.api.test_presets import days_ago, record
from tests.conftest import gql
from tests.service.test_cli import questline

PLAYER = """
query($id: ID!) {
  player(id: $id) {
    timezone
    streak { current best lastActiveDay }
    wallet { balance lifetimeEarned dailyCap earnedToday }
    level { number }
    transactions(first: 100) { edges { node { kind amount balanceAfter reason eventId } } }
  }
}"""

UPSERT = """
mutation($input: PlayerInput!) {
  upsertPlayer(input: $input) { player { id timezone attributes } errors { code message } }
}"""

ADJUST = """
mutation($id: ID!, $amount: Float!) {
  adjustPoints(input: {playerId: $id, amount: $amount, reason: "test funds"}) {
    wallet { balance lifetimeEarned dailyCap }
    errors { code message }
  }
}"""


async def player(client, key, pid):
    result = await gql(client, PLAYER, {"id": pid}, token=key)
    found = result.data["player"]
    assert found is not None, pid
    return found


async def upsert(client, key, **fields):
    result = await gql(client, UPSERT, {"input": fields}, token=key)
    assert result.data["upsertPlayer"]["errors"] == [], result.data["upsertPlayer"]["errors"]
    return result.data["upsertPlayer"]["player"]


async def adjust(client, key, pid, amount):
    result = await gql(client, ADJUST, {"id": pid, "amount": amount}, token=key)
    assert result.data["adjustPoints"]["errors"] == [], result.data["adjustPoints"]["errors"]
    return result.data["adjustPoints"]["wallet"]


def ledger(found) -> list[dict]:
    """The player's ledger lines, newest first."""
    return [edge["node"] for edge in found["transactions"]["edges"]]


def assert_ledger_sums_to_balance(found) -> None:
    lines = ledger(found)
    balance = Decimal(str(found["wallet"]["balance"]))
    assert sum(Decimal(str(line["amount"])) for line in lines) == balance, lines
    assert not lines or Decimal(str(lines[0]["balanceAfter"])) == balance, lines


def local_day(tz: str, days_back: int = 0) -> date:
    return datetime.now(ZoneInfo(tz)).date() - timedelta(days=days_back)


def at_local(tz: str, days_back: int, hour: int, minute: int = 0) -> datetime:
    """That wall-clock time `days_back` local days ago in `tz` (days_back >= 1: in the
    past whatever the time now)."""
    assert days_back >= 1
    return datetime.combine(local_day(tz, days_back), time(hour, minute), ZoneInfo(tz))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def call(client, key, pid, moment: datetime | None = None, event_type="call_completed"):
    fields = {"playerId": pid, "eventType": event_type}
    if moment is not None:
        fields["occurredAt"] = iso(moment)
    return (await record(client, key, **fields))["pointsAwarded"]


# ------------------------------------------------------------------ streaks, local days
# Callcenter: a call is 10 points, × 1.5 from the second consecutive active day, so the
# points show the streak the engine saw on the event's day.

TOKYO = "Asia/Tokyo"  # UTC+9 all year: local midnight is 15:00 UTC
HONOLULU = "Pacific/Honolulu"  # UTC-10 all year: local midnight is 10:00 UTC


async def test_two_events_of_one_utc_day_on_two_local_days_make_a_two_day_streak(
    client, make_tenant
):
    key = await make_tenant("callcenter", timezone=TOKYO)
    late = at_local(TOKYO, 2, 23, 30)  # 14:30 UTC
    early = at_local(TOKYO, 1, 0, 30)  # 15:30 UTC, the same UTC day
    assert late.astimezone(UTC).date() == early.astimezone(UTC).date()

    assert await call(client, key, "tokyo", late) == 10
    assert await call(client, key, "tokyo", early) == 15  # the second local day: × 1.5
    found = await player(client, key, "tokyo")
    assert found["timezone"] == TOKYO  # the tenant's: the player has none
    assert found["streak"] == {
        "current": 2,
        "best": 2,
        "lastActiveDay": local_day(TOKYO, 1).isoformat(),
    }


async def test_two_events_on_two_utc_days_of_one_local_day_count_as_one_day(client, make_tenant):
    key = await make_tenant("callcenter", timezone=TOKYO)
    morning = at_local(TOKYO, 1, 8)  # 23:00 UTC the day before
    later = at_local(TOKYO, 1, 10)  # 01:00 UTC
    assert morning.astimezone(UTC).date() != later.astimezone(UTC).date()

    assert await call(client, key, "tokyo", morning) == 10
    assert await call(client, key, "tokyo", later) == 10  # the same local day: no multiplier
    found = await player(client, key, "tokyo")
    assert found["streak"] == {
        "current": 1,
        "best": 1,
        "lastActiveDay": local_day(TOKYO, 1).isoformat(),
    }


async def test_a_missed_local_day_resets_the_streak_and_the_best_is_kept(client, make_tenant):
    key = await make_tenant("callcenter", timezone=TOKYO)
    run = [at_local(TOKYO, 5, 12), at_local(TOKYO, 4, 12), at_local(TOKYO, 3, 23, 30)]
    assert [await call(client, key, "t", moment) for moment in run] == [10, 15, 15]
    # Local day 2 is missed, though in UTC the next event is on the very next day.
    back = at_local(TOKYO, 1, 0, 30)
    assert back.astimezone(UTC).date() - run[-1].astimezone(UTC).date() == timedelta(days=1)
    assert await call(client, key, "t", back) == 10  # the streak starts again
    found = await player(client, key, "t")
    assert (found["streak"]["current"], found["streak"]["best"]) == (1, 3)
    assert await call(client, key, "t") == 15  # today (now): the second day of the new run
    found = await player(client, key, "t")
    assert found["streak"] == {
        "current": 2,
        "best": 3,
        "lastActiveDay": local_day(TOKYO).isoformat(),
    }


async def test_a_players_own_timezone_decides_their_days(client, make_tenant):
    """A UTC tenant; one player lives in Honolulu, another has no timezone of their own."""
    key = await make_tenant("callcenter")
    assert (await upsert(client, key, id="hnl", timezone=HONOLULU))["timezone"] == HONOLULU
    late = at_local(HONOLULU, 2, 23, 30)  # 09:30 UTC
    early = at_local(HONOLULU, 1, 0, 30)  # 10:30 UTC, the same UTC day
    assert late.astimezone(UTC).date() == early.astimezone(UTC).date()

    assert [await call(client, key, "hnl", m) for m in (late, early)] == [10, 15]
    assert [await call(client, key, "utc", m) for m in (late, early)] == [10, 10]
    hnl = await player(client, key, "hnl")
    assert hnl["timezone"] == HONOLULU
    assert hnl["streak"] == {
        "current": 2,
        "best": 2,
        "lastActiveDay": local_day(HONOLULU, 1).isoformat(),
    }
    utc = await player(client, key, "utc")
    assert utc["timezone"] == "UTC"
    assert utc["streak"]["best"] == 1
    assert utc["streak"]["lastActiveDay"] == early.astimezone(UTC).date().isoformat()


async def test_a_players_own_timezone_overrides_the_tenants(client, make_tenant):
    """A Tokyo tenant; the player keeps UTC days: two Tokyo days that are one UTC day
    are one day for them."""
    key = await make_tenant("callcenter", timezone=TOKYO)
    await upsert(client, key, id="u", timezone="UTC")
    late, early = at_local(TOKYO, 2, 23, 30), at_local(TOKYO, 1, 0, 30)
    assert [await call(client, key, "u", m) for m in (late, early)] == [10, 10]
    found = await player(client, key, "u")
    assert found["timezone"] == "UTC"
    assert found["streak"]["best"] == 1
    assert found["streak"]["lastActiveDay"] == early.astimezone(UTC).date().isoformat()


# ------------------------------------------------------------------ questline decay


async def test_decay_command_takes_5_percent_of_an_idle_balance_once(client, make_tenant, settings):
    key = await make_tenant("callcenter", slug="decaying")
    for _ in range(3):  # 150 points, 40 days ago
        await record(
            client, key, playerId="idle", eventType="lead_converted", occurredAt=days_ago(40)
        )
    await record(
        client, key, playerId="recent", eventType="lead_converted", occurredAt=days_ago(29)
    )
    await record(client, key, playerId="active", eventType="lead_converted")

    first = await questline(settings, "decay", "--tenant", "decaying")
    assert first.returncode == 0, first.stderr
    assert "decaying: decayed 7.50 points from 1 inactive players" in first.stderr

    idle = await player(client, key, "idle")
    assert idle["wallet"]["balance"] == 142.5  # 150 − 5 %
    assert idle["wallet"]["lifetimeEarned"] == 150.0  # decay takes from the balance only
    newest = ledger(idle)[0]
    assert newest == {
        "kind": "DECAY",
        "amount": -7.5,
        "balanceAfter": 142.5,
        "reason": "5 % decay after 30 inactive days",
        "eventId": None,
    }
    assert_ledger_sums_to_balance(idle)

    second = await questline(settings, "decay", "--tenant", "decaying")
    assert second.returncode == 0, second.stderr
    assert "decaying: decayed 0 points from 0 inactive players" in second.stderr
    again = await player(client, key, "idle")
    assert again["wallet"]["balance"] == 142.5
    assert [line["kind"] for line in ledger(again)].count("DECAY") == 1
    assert_ledger_sums_to_balance(again)

    for pid in ("recent", "active"):  # active within the last 30 days: untouched
        found = await player(client, key, pid)
        assert found["wallet"]["balance"] == 50.0, pid
        assert [line["kind"] for line in ledger(found)] == ["EARN"], pid
        assert_ledger_sums_to_balance(found)


async def test_decay_command_without_a_tenant_runs_every_tenant(client, make_tenant, settings):
    calls = await make_tenant("callcenter", slug="cc-all")
    habits = await make_tenant("habits", slug="habits-all")  # no decay in its rules
    await record(
        client, calls, playerId="idle", eventType="lead_converted", occurredAt=days_ago(31)
    )
    await record(client, habits, playerId="idle", eventType="x", value=10, occurredAt=days_ago(90))

    done = await questline(settings, "decay")
    assert done.returncode == 0, done.stderr
    assert "cc-all: decayed 2.50 points from 1 inactive players" in done.stderr
    assert "habits-all: decayed 0 points from 0 inactive players" in done.stderr
    assert (await player(client, calls, "idle"))["wallet"]["balance"] == 47.5
    untouched = await player(client, habits, "idle")
    assert untouched["wallet"]["balance"] == 10.0 and len(ledger(untouched)) == 1

    unknown = await questline(settings, "decay", "--tenant", "nobody")
    assert unknown.returncode == 1 and "no tenant 'nobody'" in unknown.stderr


# ------------------------------------------------------------------ daily cap by level


@pytest.mark.parametrize(("award", "level", "cap"), [(1000, 2, 550), (2000, 3, 600)])
async def test_callcenter_daily_cap_grows_50_per_level(client, make_tenant, award, level, cap):
    key = await make_tenant("callcenter")
    await upsert(client, key, id="lv")
    wallet = await adjust(client, key, "lv", award)  # admin awards are not capped
    assert wallet["dailyCap"] == cap
    found = await player(client, key, "lv")
    assert found["level"]["number"] == level
    assert found["wallet"]["dailyCap"] == cap  # 500 + 50 × (level − 1)

    conversions = cap // 50  # 50 points each, streak 1: all of them fit
    for _ in range(conversions):
        outcome = await record(client, key, playerId="lv", eventType="lead_converted")
        assert outcome["pointsAwarded"] == 50 and outcome["wallet"]["dailyCap"] == cap
    assert outcome["wallet"]["earnedToday"] == cap  # more than level 1's 500

    over = await record(client, key, playerId="lv", eventType="lead_converted")
    assert over["pointsAwarded"] == 0
    assert over["breakdown"][-1] == {
        "rule": "daily_cap",
        "description": f"daily cap {cap} reached",
        "amount": -50.0,
    }
    found = await player(client, key, "lv")
    assert found["wallet"]["earnedToday"] == cap
    assert found["level"]["number"] == level  # no level crossed on the way
    bonus = 125 * (level - 1)
    assert found["wallet"]["balance"] == award + bonus + cap
    assert_ledger_sums_to_balance(found)


async def test_a_level_1_player_stops_at_500(client, make_tenant):
    key = await make_tenant("callcenter")
    for _ in range(10):
        await record(client, key, playerId="one", eventType="lead_converted")
    over = await record(client, key, playerId="one", eventType="lead_converted")
    assert over["pointsAwarded"] == 0 and over["wallet"]["dailyCap"] == 500.0
    assert over["breakdown"][-1]["description"] == "daily cap 500 reached"


async def test_level_up_bonus_is_not_capped_and_the_new_cap_applies_at_once(client, make_tenant):
    key = await make_tenant("callcenter")
    await upsert(client, key, id="up")
    await adjust(client, key, "up", 510)  # lifetime 510: level 1, cap 500
    for event_type in ["lead_converted"] * 9 + ["call_completed"] * 3:  # 480 rule points
        await record(client, key, playerId="up", eventType=event_type)

    crossing = await record(client, key, playerId="up", eventType="lead_converted")
    assert crossing["pointsAwarded"] == 20  # 50, capped to the 20 left of 500
    assert crossing["breakdown"][-1] == {
        "rule": "daily_cap",
        "description": "daily cap 500 reached",
        "amount": -30.0,
    }
    # 1,010 lifetime points: level 2, and its 125 bonus in full, though the cap was hit.
    assert crossing["levelUp"]["to"] == 2 and crossing["levelUp"]["bonusPoints"] == 125.0
    assert crossing["wallet"] == {
        "balance": 1135.0,  # 510 + 500 + 125
        "lifetimeEarned": 1135.0,
        "earnedToday": 500.0,  # the bonus does not count toward the cap
        "dailyCap": 550.0,
    }
    found = await player(client, key, "up")
    assert [(t["kind"], t["amount"]) for t in ledger(found)[:2]] == [
        ("LEVEL_UP_BONUS", 125.0),
        ("EARN", 20.0),
    ]
    # Level 2's cap from the next event on: 50 more today, then nothing.
    assert (await record(client, key, playerId="up", eventType="lead_converted"))[
        "pointsAwarded"
    ] == 50
    last = await record(client, key, playerId="up", eventType="call_completed")
    assert last["pointsAwarded"] == 0
    assert last["breakdown"][-1]["description"] == "daily cap 550 reached"
    found = await player(client, key, "up")
    assert found["wallet"]["earnedToday"] == 550.0 and found["wallet"]["balance"] == 1185.0
    assert_ledger_sums_to_balance(found)


async def use_rules(slug: str, **config) -> None:
    """Replaces parts of a tenant's point rules (before its key is first used)."""
    tenant = await Tenant.get(slug=slug)
    tenant.config = {**tenant.config, **config}
    tenant.config_version += 1
    await tenant.save()


async def test_a_level_privilege_sets_the_daily_cap(client, make_tenant):
    key = await make_tenant("callcenter", slug="privileged")
    await use_rules(
        "privileged",
        rules=[{"event_type": "call_completed", "steps": [{"type": "base", "points": 50}]}],
        daily_cap={"base": 100, "per_level": 10},
        levels=[
            {"number": 1, "name": "Rookie", "lifetime_points": 0},
            {"number": 2, "name": "Pro", "lifetime_points": 1000, "privileges": {"daily_cap": 300}},
            {
                "number": 3,
                "name": "Star",
                "lifetime_points": 5000,
                "privileges": {"daily_cap": None},
            },
        ],
        level_up_bonus=0,
    )
    expected = {"rookie": (0, 1, 100.0), "pro": (1000, 2, 300.0), "star": (5000, 3, None)}
    for pid, (award, level, cap) in expected.items():
        await upsert(client, key, id=pid)
        if award:
            await adjust(client, key, pid, award)
        found = await player(client, key, pid)
        assert (found["level"]["number"], found["wallet"]["dailyCap"]) == (level, cap), pid

    earned = {}
    for pid in expected:
        outcomes = [
            await record(client, key, playerId=pid, eventType="call_completed") for _ in range(8)
        ]
        earned[pid] = sum(o["pointsAwarded"] for o in outcomes)
        capped = [
            o for o in outcomes if o["breakdown"] and o["breakdown"][-1]["rule"] == "daily_cap"
        ]
        if expected[pid][2] is None:
            assert capped == [], pid
    assert earned == {"rookie": 100, "pro": 300, "star": 400}  # 8 × 50 uncapped for the star
    assert (await player(client, key, "pro"))["wallet"]["earnedToday"] == 300.0


# ------------------------------------------------------------------ conditions on the player

CONDITIONAL_RULES = [
    {
        "event_type": "sale",
        "steps": [
            {"type": "base", "points": 10},
            {
                "type": "add",
                "points": 5,
                "label": "level 2+ bonus",
                "when": {">=": [{"var": "player.level"}, 2]},
            },
            {
                "type": "multiply",
                "factor": 2,
                "label": "VIP × 2",
                "when": {"==": [{"var": "player.attributes.vip"}, True]},
            },
            {
                "type": "add",
                "points": 3,
                "label": "loyal customer +3",
                "when": {">=": [{"var": "player.attributes.tenureYears"}, 5]},
            },
            {
                "type": "add",
                "points": 1,
                "label": "gold segment +1",
                "when": {"==": [{"var": "player.segment"}, "gold"]},
            },
        ],
    }
]


async def conditional_tenant(make_tenant) -> str:
    key = await make_tenant("habits", slug="conditions")
    # Levels of 100 lifetime points, no level-up bonus.
    await use_rules("conditions", rules=CONDITIONAL_RULES, level_up_bonus=0)
    return key


def labels(outcome) -> list[str]:
    return [line["description"] for line in outcome["breakdown"]]


async def test_a_step_on_the_players_level_applies_from_level_2(client, make_tenant):
    key = await conditional_tenant(make_tenant)
    first = await record(client, key, playerId="p", eventType="sale")
    assert first["pointsAwarded"] == 10 and labels(first) == ["base 10"]
    await adjust(client, key, "p", 85)  # 95 lifetime points: still level 1
    crossing = await record(client, key, playerId="p", eventType="sale")
    # The condition sees the level the player had when the event came: 1.
    assert crossing["pointsAwarded"] == 10 and crossing["levelUp"]["to"] == 2
    at_two = await record(client, key, playerId="p", eventType="sale")
    assert at_two["pointsAwarded"] == 15
    assert at_two["breakdown"][-1] == {
        "rule": "add",
        "description": "level 2+ bonus",
        "amount": 5.0,
    }
    assert (await player(client, key, "p"))["level"]["number"] == 2


async def test_steps_on_the_players_attributes_and_segment(client, make_tenant):
    key = await conditional_tenant(make_tenant)
    await upsert(client, key, id="vip", attributes={"vip": True, "tenureYears": 6})
    await upsert(client, key, id="plain", attributes={"vip": False, "tenureYears": 2})
    await upsert(client, key, id="odd", attributes={"vip": "yes", "tenureYears": "long"})
    await upsert(client, key, id="gold", segment="gold")

    vip = await record(client, key, playerId="vip", eventType="sale")
    assert vip["pointsAwarded"] == 23  # 10 × 2 + 3
    assert labels(vip) == ["base 10", "VIP × 2", "loyal customer +3"]
    for pid in ("plain", "odd", "new"):  # false, mistyped, missing (a new player): no bonus
        outcome = await record(client, key, playerId=pid, eventType="sale")
        assert outcome["pointsAwarded"] == 10 and labels(outcome) == ["base 10"], pid
    gold = await record(client, key, playerId="gold", eventType="sale")
    assert gold["pointsAwarded"] == 11 and labels(gold)[-1] == "gold segment +1"

    # New attributes count from the next event on.
    await upsert(client, key, id="plain", attributes={"vip": True, "tenureYears": 5})
    upgraded = await record(client, key, playerId="plain", eventType="sale")
    assert upgraded["pointsAwarded"] == 23
    await upsert(client, key, id="vip", attributes={})
    downgraded = await record(client, key, playerId="vip", eventType="sale")
    assert downgraded["pointsAwarded"] == 10


async def test_conditions_hold_per_player_within_one_batch(client, make_tenant):
    key = await conditional_tenant(make_tenant)
    await upsert(client, key, id="vip", attributes={"vip": True})
    await upsert(client, key, id="lvl")
    await adjust(client, key, "lvl", 100)  # level 2
    batch = """mutation($input: [RecordEventInput!]!) {
      recordEvents(input: $input) { outcomes { pointsAwarded } errors { code message } } }"""
    result = await gql(
        client,
        batch,
        {
            "input": [
                {"playerId": "vip", "eventType": "sale"},
                {"playerId": "lvl", "eventType": "sale"},
                {"playerId": "nobody-yet", "eventType": "sale"},
            ]
        },
        token=key,
    )
    payload = result.data["recordEvents"]
    assert payload["errors"] == []
    assert [o["pointsAwarded"] for o in payload["outcomes"]] == [20, 15, 10]
