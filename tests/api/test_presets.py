"""Each preset reproduces its seed's numbers, through recordEvent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import gql

RECORD = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) {
    outcome {
      pointsAwarded duplicate
      breakdown { rule description amount }
      wallet { balance lifetimeEarned earnedToday dailyCap }
      levelUp { from to bonusPoints level { number name lifetimePointsRequired nextLevelAt } }
      event { id eventType category value source player { id } }
    }
    errors { field message code }
  }
}"""


async def record(client, key, **event):
    result = await gql(client, RECORD, {"input": event}, token=key)
    payload = result.data["recordEvent"]
    assert payload["errors"] == [], payload["errors"]
    outcome = payload["outcome"]
    total = sum(Decimal(str(line["amount"])) for line in outcome["breakdown"])
    assert total == Decimal(str(outcome["pointsAwarded"])), outcome["breakdown"]
    return outcome


def days_ago(n: int, hour: int = 12) -> str:
    """That hour n days ago, never later than now (just after midnight, noon today is
    still to come and would be refused as a future event)."""
    now = datetime.now(UTC)
    moment = now.replace(hour=hour, minute=0, second=0, microsecond=0) - timedelta(days=n)
    return min(moment, now).isoformat()


# ------------------------------------------------------------------ habits (seed 003)


async def test_habits_paid_invoice_finance_value_2_is_4_points(client, make_tenant):
    key = await make_tenant("habits")
    outcome = await record(
        client, key, playerId="u1", eventType="paid_invoice", category="finance", value=2.0
    )
    assert outcome["pointsAwarded"] == 4.0
    assert [line["rule"] for line in outcome["breakdown"]] == ["per_unit", "category_weight"]
    assert outcome["event"]["player"] == {"id": "u1"}  # the first event created the player


@pytest.mark.parametrize(
    ("category", "weight"),
    [
        ("finance", 2.0),
        ("learning", 1.5),
        ("health", 1.2),
        ("productivity", 1.0),
        ("social", 0.8),
    ],
)
async def test_habits_category_weights(client, make_tenant, category, weight):
    key = await make_tenant("habits")
    outcome = await record(client, key, playerId="u", eventType="x", category=category, value=10)
    assert outcome["pointsAwarded"] == 10 * weight


async def test_habits_streak_bonus_5_percent_per_day_from_day_3_at_most_50(client, make_tenant):
    key = await make_tenant("habits")
    awarded = []
    for n in range(12, -1, -1):  # 13 consecutive days, the last one today
        outcome = await record(
            client,
            key,
            playerId="s",
            eventType="completed_task",
            category="productivity",
            value=10,
            occurredAt=days_ago(n),
        )
        awarded.append(outcome["pointsAwarded"])
    # day 1-2 no bonus; day 3 +15 %; day 7 +35 %; day 10+ capped at +50 %
    assert awarded[:3] == [10.0, 10.0, 11.5]
    assert awarded[6] == 13.5
    assert awarded[9:] == [15.0, 15.0, 15.0, 15.0]
    player = await gql(client, '{ player(id: "s") { streak { current best } } }', token=key)
    assert player.data["player"]["streak"] == {"current": 13, "best": 13}


async def test_habits_levels_span_100_points(client, make_tenant):
    key = await make_tenant("habits")
    first = await record(client, key, playerId="l", eventType="x", category="finance", value=49)
    assert first["levelUp"] is None  # 98 points: still level 1
    second = await record(client, key, playerId="l", eventType="x", category="finance", value=60)
    assert second["levelUp"]["from"] == 1 and second["levelUp"]["to"] == 3  # 218: two levels
    assert second["levelUp"]["level"]["lifetimePointsRequired"] == 200.0
    assert second["levelUp"]["level"]["nextLevelAt"] == 300.0


# ------------------------------------------------------------------ call centre (seed 002)


@pytest.mark.parametrize(
    ("event_type", "points"),
    [
        ("call_completed", 10),
        ("lead_converted", 50),
        ("quality_review", 5),
        ("customer_feedback", 3),
        ("perfect_call", 30),
    ],
)
async def test_callcenter_point_table(client, make_tenant, event_type, points):
    key = await make_tenant("callcenter")
    outcome = await record(client, key, playerId="a", eventType=event_type)
    assert outcome["pointsAwarded"] == points


async def test_callcenter_streak_multiplier_from_the_second_day(client, make_tenant):
    key = await make_tenant("callcenter")
    day1 = await record(
        client, key, playerId="a", eventType="call_completed", occurredAt=days_ago(1)
    )
    day2 = await record(client, key, playerId="a", eventType="call_completed")
    perfect = await record(client, key, playerId="a", eventType="perfect_call")
    assert (day1["pointsAwarded"], day2["pointsAwarded"], perfect["pointsAwarded"]) == (10, 15, 45)


async def test_callcenter_daily_cap_500_then_level_up_bonus_125(client, make_tenant):
    key = await make_tenant("callcenter")
    total = 0.0
    for _ in range(11):  # 11 conversions on day one: 550 points, capped at 500
        outcome = await record(
            client, key, playerId="c", eventType="lead_converted", occurredAt=days_ago(1)
        )
        total += outcome["pointsAwarded"]
    assert total == 500.0
    assert outcome["breakdown"][-1]["rule"] == "daily_cap"
    # Next day: 10 more conversions at ×1.5 reach 1,000 lifetime points -> level 2 (Bronze).
    for _ in range(7):
        outcome = await record(client, key, playerId="c", eventType="lead_converted")
        if outcome["levelUp"]:
            break
    assert outcome["levelUp"]["to"] == 2 and outcome["levelUp"]["bonusPoints"] == 125.0
    assert outcome["levelUp"]["level"]["name"] == "Bronze"
    assert outcome["wallet"]["dailyCap"] == 550.0  # 500 + 50 × (2 − 1)


async def test_callcenter_levels_table(client, make_tenant):
    key = await make_tenant("callcenter")
    result = await gql(
        client, "{ levels { number name lifetimePointsRequired nextLevelAt } }", token=key
    )
    table = result.data["levels"]
    assert len(table) == 10
    assert [lv["name"] for lv in table] == ["Bronze"] * 3 + ["Silver"] * 3 + ["Gold"] * 3 + [
        "Legend"
    ]
    assert table[3]["lifetimePointsRequired"] == 3000.0 and table[9]["nextLevelAt"] is None


async def test_callcenter_unknown_event_type_is_refused(client, make_tenant):
    key = await make_tenant("callcenter")
    result = await gql(
        client, RECORD, {"input": {"playerId": "a", "eventType": "coffee_break"}}, token=key
    )
    error = result.data["recordEvent"]["errors"][0]
    assert error["code"] == "INVALID" and error["field"] == ["input", "eventType"]
    players = await gql(client, "{ players { id } }", token=key)
    assert players.data["players"] == []  # nothing written, not even the player


# ------------------------------------------------------------------ agents (seed 004)


async def test_agents_message_response_quick_and_quality_is_12(client, make_tenant):
    key = await make_tenant("agents")
    outcome = await record(
        client,
        key,
        playerId="ag",
        eventType="message_response",
        metadata={"responseTime": 60, "quality": 0.9},
    )
    assert outcome["pointsAwarded"] == 12  # (5 + 3) × 1.5
    slow = await record(
        client,
        key,
        playerId="ag",
        eventType="message_response",
        metadata={"responseTime": 300, "quality": 0.5},
    )
    assert slow["pointsAwarded"] == 5


@pytest.mark.parametrize(
    ("event_type", "metadata", "points"),
    [
        ("lead_qualified", {"accuracy": 0.95}, 30),
        ("lead_qualified", {}, 20),
        ("call_completed", {"duration": 240, "satisfaction": 5}, 26),  # (15 + 5) × 1.3
        ("new_contact", {"dataQuality": 0.9, "vip": True}, 23),  # (10 + 5) × 1.5 = 22.5 -> 23
        ("daily_streak", {}, 50),
        ("inbound_handled", {"waitTime": 30, "handledToday": 60}, 24),  # (15 + 5) × 1.2
        ("outbound_success", {"converted": True, "efficiency": 0.9}, 42),  # (20 + 10) × 1.4
    ],
)
async def test_agents_reward_points_table(client, make_tenant, event_type, metadata, points):
    key = await make_tenant("agents")
    outcome = await record(client, key, playerId="ag", eventType=event_type, metadata=metadata)
    assert outcome["pointsAwarded"] == points


async def test_agents_lead_qualified_streak_multiplier_after_5_days(client, make_tenant):
    key = await make_tenant("agents")
    for n in range(5, 0, -1):
        await record(client, key, playerId="q", eventType="lead_qualified", occurredAt=days_ago(n))
    sixth = await record(client, key, playerId="q", eventType="lead_qualified")
    assert sixth["pointsAwarded"] == 24  # 20 × 1.2 on the sixth consecutive day


# ------------------------------------------------------------------ telco (seeds 000/001)


async def test_telco_point_rules_and_wildcard(client, make_tenant):
    key = await make_tenant("telco")
    cases = {
        "APP_LOGIN": (1, 5),
        "RECHARGE": (10, 10),
        "DATA_USAGE": (250, 2.5),
        "BUNDLE_PURCHASE": (1, 50),
        "AUTO_RENEW_SETUP": (1, 100),
        "PAYMENT_ON_TIME": (1, 20),
        "CALL": (4, 2),
        "NETWORK_DROP": (1, 0),
    }
    for event_type, (value, points) in cases.items():
        outcome = await record(client, key, playerId="t", eventType=event_type, value=value)
        assert outcome["pointsAwarded"] == points, event_type
