"""The pure engine on issue 3: rule conditions on the player (level, attributes,
segment), the daily cap a level sets, level-up bonuses past the cap, streaks over
local days and decay amounts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app import presets
from app.engine import conditions, decay, levels, streaks
from app.engine.outcome import EventFacts, PlayerFacts, PlayerState, apply_event
from app.engine.periods import local_day
from app.engine.rules import parse_rules

DAY = date(2026, 3, 10)
ZERO = Decimal(0)


def conditional_rules(**extra):
    return parse_rules(
        {
            "rules": [
                {
                    "event_type": "sale",
                    "steps": [
                        {"type": "base", "points": 10},
                        {
                            "type": "add",
                            "points": 5,
                            "label": "level 2+",
                            "when": {">=": [{"var": "player.level"}, 2]},
                        },
                        {
                            "type": "multiply",
                            "factor": 2,
                            "label": "vip",
                            "when": {"==": [{"var": "player.attributes.vip"}, True]},
                        },
                        {
                            "type": "add",
                            "label": "bonus attribute",
                            "points": {"var": ["player.attributes.bonus", 0]},
                        },
                        {
                            "type": "add",
                            "points": 1,
                            "label": "gold",
                            "when": {"==": [{"var": "player.segment"}, "gold"]},
                        },
                        {
                            "type": "add",
                            "points": 2,
                            "label": "agent",
                            "when": {"==": [{"var": "player.kind"}, "AGENT"]},
                        },
                    ],
                }
            ],
            "level_formula": {"step": 100},
            **extra,
        }
    )


def award(rules, player=None, state=None, earned=ZERO, event_type="sale", day=DAY):
    return apply_event(
        rules,
        state or PlayerState(),
        EventFacts(event_type, Decimal(1), day),
        player or PlayerFacts(),
        earned_on_day=earned,
    )


def labels(result) -> list[str]:
    return [line.description for line in result.lines]


@pytest.mark.parametrize(("level", "points"), [(1, 10), (2, 15), (7, 15)])
def test_a_step_on_the_players_level(level, points):
    rules = conditional_rules()
    lifetime = Decimal(100 * (level - 1))
    result = award(rules, state=PlayerState(lifetime=lifetime, level=level))
    assert result.points == points
    assert ("level 2+" in labels(result)) is (level >= 2)


def test_the_level_condition_sees_the_level_before_the_event():
    rules = conditional_rules()
    result = award(rules, state=PlayerState(balance=Decimal(95), lifetime=Decimal(95)))
    assert result.level_change is not None and result.level_change.to_level == 2
    assert result.points == 10  # the event made the level: its condition saw level 1


@pytest.mark.parametrize(
    ("attributes", "points", "applied"),
    [
        ({"vip": True}, 20, ["base 10", "vip"]),
        ({"vip": False}, 10, ["base 10"]),
        ({"vip": "yes"}, 10, ["base 10"]),  # mistyped: the condition does not hold
        ({}, 10, ["base 10"]),  # missing
        ({"vip": True, "bonus": 4}, 24, ["base 10", "vip", "bonus attribute"]),
        ({"bonus": "lots"}, 10, ["base 10"]),  # an amount that is no number adds nothing
    ],
)
def test_steps_on_the_players_attributes(attributes, points, applied):
    result = award(conditional_rules(), PlayerFacts(attributes=attributes))
    assert result.points == points
    assert labels(result) == applied


def test_steps_on_the_players_segment_and_kind():
    rules = conditional_rules()
    assert award(rules, PlayerFacts(segment="gold")).points == 11
    assert award(rules, PlayerFacts(segment="silver")).points == 10
    assert award(rules, PlayerFacts(kind="AGENT")).points == 12
    assert award(rules, PlayerFacts(kind="CUSTOMER")).points == 10


def test_conditions_are_safe_on_missing_and_mistyped_facts():
    facts = {"player": {"level": 2, "attributes": {"n": "abc"}}}
    assert conditions.truthy(None, facts)
    assert conditions.truthy({">=": [{"var": "player.level"}, 2]}, facts)
    assert not conditions.truthy({">=": [{"var": "player.level"}, 3]}, facts)
    assert not conditions.truthy({"==": [{"var": "player.attributes.nope"}, True]}, facts)
    assert conditions.number({"var": "player.attributes.missing"}, facts) == 0
    assert conditions.number({"var": "player.attributes.n"}, facts) == 0
    assert conditions.number({"*": [{"var": "player.level"}, 5]}, facts) == 10


# ------------------------------------------------------------------ the daily cap by level

CALLCENTER = parse_rules(presets.load("callcenter"))


@pytest.mark.parametrize(("level", "cap"), [(1, 500), (2, 550), (3, 600), (10, 950)])
def test_callcenter_cap_is_500_plus_50_per_level_above_1(level, cap):
    assert levels.daily_cap(CALLCENTER, levels.info(level, CALLCENTER)) == cap


def test_a_level_privilege_overrides_the_cap_and_none_lifts_it():
    rules = parse_rules(
        {
            "rules": [{"event_type": "x", "steps": [{"type": "base", "points": 50}]}],
            "daily_cap": {"base": 100, "per_level": 10},
            "levels": [
                {"number": 1, "name": "a", "lifetime_points": 0},
                {"number": 2, "name": "b", "lifetime_points": 10, "privileges": {"daily_cap": 300}},
                {
                    "number": 3,
                    "name": "c",
                    "lifetime_points": 20,
                    "privileges": {"daily_cap": None},
                },
                {"number": 4, "name": "d", "lifetime_points": 30, "privileges": {"other": 1}},
            ],
        }
    )
    caps = [levels.daily_cap(rules, levels.info(n, rules)) for n in (1, 2, 3, 4)]
    assert caps == [Decimal(100), Decimal(300), None, Decimal(130)]


@pytest.mark.parametrize(("level", "room"), [(1, ZERO), (2, Decimal(50)), (3, Decimal(50))])
def test_a_higher_level_earns_past_level_1s_cap(level, room):
    lifetime = Decimal(1000 * (level - 1))
    state = PlayerState(balance=lifetime, lifetime=lifetime, level=level)
    result = award(CALLCENTER, state=state, earned=Decimal(500), event_type="lead_converted")
    assert result.points == room
    if room < 50:
        assert result.lines[-1].rule == "daily_cap"
        assert result.lines[-1].amount == room - 50


def test_the_level_up_bonus_is_paid_in_full_past_the_cap():
    state = PlayerState(balance=Decimal(990), lifetime=Decimal(990))
    result = award(CALLCENTER, state=state, earned=Decimal(480), event_type="lead_converted")
    assert result.points == 20 and result.lines[-1].amount == -30
    assert [(e.kind, e.amount) for e in result.entries] == [
        ("EARN", Decimal(20)),
        ("LEVEL_UP_BONUS", Decimal(125)),
    ]
    assert result.state.balance == Decimal(1135) and result.state.level == 2
    assert result.earned_on_day == Decimal(500)  # the bonus is not counted toward the cap


# ------------------------------------------------------------------ streaks over local days


def test_local_days_decide_the_streak():
    tokyo = ZoneInfo("Asia/Tokyo")
    late = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # Tokyo 23:30 on the 10th
    early = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # Tokyo 00:30 on the 11th
    days = [local_day(t, tokyo) for t in (late, early)]
    assert days == [date(2026, 3, 10), date(2026, 3, 11)]
    state, _ = streaks.observe(streaks.StreakState(), days[0])
    state, on_day = streaks.observe(state, days[1])
    assert on_day == 2
    utc = [local_day(t, UTC) for t in (late, early)]
    assert utc[0] == utc[1]


def test_a_missed_day_resets_and_the_best_is_kept():
    state = streaks.StreakState()
    for offset in (0, 1, 2, 4):
        state, on_day = streaks.observe(state, DAY + timedelta(days=offset))
    assert (on_day, state.current, state.best) == (1, 1, 3)
    assert state.as_of(DAY + timedelta(days=5)) == 1
    assert state.as_of(DAY + timedelta(days=6)) == 0  # a whole day missed since


# ------------------------------------------------------------------ decay


def test_decay_is_due_after_30_days_and_once_per_period():
    rule = CALLCENTER.decay
    assert rule is not None and (rule.after_days, rule.percent) == (30, 5)
    last = datetime(2026, 1, 1, tzinfo=UTC)
    assert not decay.is_due(rule, last, None, last + timedelta(days=29, hours=23))
    assert decay.is_due(rule, last, None, last + timedelta(days=30))
    decayed = last + timedelta(days=31)
    assert not decay.is_due(rule, last, decayed, decayed + timedelta(hours=12))
    assert decay.is_due(rule, last, decayed, decayed + timedelta(days=30))
    assert not decay.is_due(rule, None, None, decayed)  # never active: nothing to decay
    assert decay.amount(rule, Decimal(150)) == Decimal("7.50")
    assert decay.amount(rule, Decimal("0.01")) == Decimal("0.00")
    assert decay.amount(rule, ZERO) == ZERO
