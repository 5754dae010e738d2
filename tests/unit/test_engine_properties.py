"""Properties of the pure engine, checked with hypothesis: exact lines, caps that
hold, streaks independent of arrival order, monotonic levels, bounded decay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine import decay, levels, streaks
from app.engine.outcome import (
    MAX_POINTS,
    ZERO,
    EventFacts,
    OverLimit,
    PlayerFacts,
    PlayerState,
    apply_event,
)
from app.engine.points import CENT
from app.engine.rules import Decay, parse_rules

money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
factor = st.decimals(min_value=0, max_value=5, places=3, allow_nan=False)

step = st.one_of(
    st.builds(lambda p: {"type": "base", "points": str(p)}, money),
    st.builds(lambda p: {"type": "per_unit", "points": str(p)}, factor),
    st.just({"type": "category_weight"}),
    st.builds(
        lambda p: {"type": "add", "points": str(p)},
        st.decimals(min_value=-50, max_value=50, places=2),
    ),
    st.builds(lambda f: {"type": "multiply", "factor": str(f)}, factor),
    st.builds(
        lambda p, d, m: {
            "type": "streak_bonus",
            "percent_per_day": str(p),
            "from_day": d,
            "max_percent": str(m),
        },
        st.decimals(min_value=0, max_value=20, places=1),
        st.integers(1, 5),
        st.decimals(min_value=0, max_value=100, places=0),
    ),
    st.builds(
        lambda f, d: {"type": "streak_multiplier", "factor": str(f), "from_day": d},
        factor,
        st.integers(1, 5),
    ),
    st.builds(lambda m: {"type": "cap", "max": str(m)}, money),
    st.builds(lambda p: {"type": "round", "places": p}, st.integers(0, 2)),
)


def _rules(steps, cap=None):
    config = {
        "rules": [{"event_type": "*", "steps": steps}],
        "categories": {"finance": {"weight": 2.0}, "social": {"weight": 0.8}},
        "level_formula": {"step": 100},
        "level_up_bonus": 5,
    }
    if cap is not None:
        config["daily_cap"] = {"base": str(cap), "per_level": 10}
    return parse_rules(config)


@given(
    steps=st.lists(step, max_size=8),
    value=st.decimals(min_value=0, max_value=1000, places=3),
    category=st.sampled_from([None, "finance", "social"]),
    streak_days=st.integers(0, 12),
)
def test_lines_sum_exactly_to_the_award_which_is_never_negative(
    steps, value, category, streak_days
):
    rules = _rules(steps)
    last = date(2026, 1, 10)
    state = PlayerState(
        streak=streaks.StreakState(streak_days, streak_days, last if streak_days else None)
    )
    result = apply_event(
        rules,
        state,
        EventFacts("x", value, last + timedelta(days=1), category),
        PlayerFacts(),
        earned_on_day=Decimal(0),
    )
    assert sum(line.amount for line in result.lines) == result.points
    assert result.points >= 0
    assert all(line.amount == line.amount.quantize(CENT) for line in result.lines)
    earned = sum((e.amount for e in result.entries), Decimal(0))
    assert result.state.balance == earned  # the ledger lines make the balance
    assert result.entries == [] or result.entries[-1].balance_after == result.state.balance


@given(awards=st.lists(money, min_size=1, max_size=30), cap=money)
def test_a_days_awards_never_exceed_its_cap(awards, cap):
    rules = _rules([{"type": "per_unit", "points": "1"}], cap=cap)
    state, earned_today = PlayerState(), Decimal(0)
    day = date(2026, 3, 1)
    for amount in awards:
        result = apply_event(
            rules, state, EventFacts("x", amount, day), PlayerFacts(), earned_on_day=earned_today
        )
        cap_now = levels.daily_cap(rules, levels.info(state.level, rules))
        assert result.earned_on_day <= max(cap_now, earned_today)
        state, earned_today = result.state, result.earned_on_day


def _reference(days: set[date]) -> tuple[int, int]:
    """(run ending at the last day, longest run) computed directly from the set."""
    last = max(days)
    best = max(streaks.run_ending(days, d) for d in days)
    return streaks.run_ending(days, last), best


@given(offsets=st.lists(st.integers(0, 40), min_size=1, max_size=25))
def test_streaks_do_not_depend_on_arrival_order(offsets):
    start = date(2026, 1, 1)
    state, seen = streaks.StreakState(), set()
    for offset in offsets:
        day = start + timedelta(days=offset)
        if streaks.is_late(state, day):
            state, on_day = streaks.observe_late(state, day, seen)
        else:
            state, on_day = streaks.observe(state, day)
        seen.add(day)
        assert on_day == streaks.run_ending(seen, day)
    current, best = _reference(seen)
    assert (state.current, state.best, state.last_active_day) == (current, best, max(seen))


@given(a=money, b=money)
def test_levels_are_monotonic_and_contain_their_lifetime(a, b):
    rules = parse_rules(
        {
            "rules": [],
            "levels": [
                {"number": 1, "name": "Bronze", "lifetime_points": 0},
                {"number": 2, "name": "Silver", "lifetime_points": 1000},
                {"number": 3, "name": "Gold", "lifetime_points": 5000},
            ],
        }
    )
    low, high = sorted((a, b))
    assert levels.level_for(low, rules).number <= levels.level_for(high, rules).number
    info = levels.level_for(a, rules)
    assert info.lifetime_points_required <= a
    assert info.next_level_at is None or a < info.next_level_at
    assert 0 <= info.progress(a) <= 1


@given(balance=money, percent=st.decimals(min_value="0.01", max_value=100, places=2))
def test_decay_never_takes_more_than_the_balance_and_is_due_once(balance, percent):
    rule = Decay(after_days=30, percent=percent)
    taken = decay.amount(rule, balance)
    assert 0 <= taken <= balance and taken == taken.quantize(CENT)
    last = datetime(2026, 1, 1, tzinfo=UTC)
    now = last + timedelta(days=31)
    assert decay.is_due(rule, last, None, now)
    assert not decay.is_due(rule, last, now, now + timedelta(days=1))


def test_period_keys_follow_iso_weeks_and_calendar_months():
    from app.engine import periods

    day = date(2026, 11, 20)  # a Friday
    assert periods.period_keys(day) == {
        "DAILY": "2026-11-20",
        "WEEKLY": "2026-W47",
        "MONTHLY": "2026-11",
        "ALL_TIME": "all",
    }
    assert periods.period_key("WEEKLY", date(2026, 11, 16)) == "2026-W47"  # Monday
    assert periods.period_key("WEEKLY", date(2026, 11, 22)) == "2026-W47"  # Sunday
    assert periods.period_key("WEEKLY", date(2027, 1, 1)) == "2026-W53"
    assert periods.previous_key("DAILY", day) == "2026-11-19"
    assert periods.previous_key("WEEKLY", day) == "2026-W46"
    assert periods.previous_key("MONTHLY", date(2026, 1, 15)) == "2025-12"
    assert periods.previous_key("ALL_TIME", day) is None
    assert periods.counts_for_boards("EARN", Decimal(1))
    assert not periods.counts_for_boards("REDEEM", Decimal(5))
    assert not periods.counts_for_boards("ADJUST", Decimal(-5))


def test_board_increments_count_earnings_in_the_periods_of_the_events_own_day():
    from zoneinfo import ZoneInfo

    from app.engine import periods

    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    late = datetime(2026, 11, 15, 20, 0, tzinfo=UTC)  # Monday 01:30 in Kolkata: W47
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    got = periods.board_increments(
        [
            (1, now, [("EARN", Decimal("4.00")), ("BONUS", Decimal("0.60"))]),
            (1, now, [("EARN", Decimal("2.00")), ("REDEEM", Decimal("-50.00"))]),
            (1, late, [("EARN", Decimal("1.25")), ("LEVEL_UP_BONUS", Decimal("125"))]),
            (2, now, [("ADJUST", Decimal("-3.00")), ("DECAY", Decimal("-1.00"))]),
            (3, now, [("EARN", Decimal(0))]),
        ],
        kolkata,
    )
    assert got == {
        (1, "DAILY", "2026-11-20"): Decimal("6.60"),
        (1, "WEEKLY", "2026-W47"): Decimal("132.85"),
        (1, "MONTHLY", "2026-11"): Decimal("132.85"),
        (1, "ALL_TIME", "all"): Decimal("132.85"),
        (1, "DAILY", "2026-11-16"): Decimal("126.25"),
    }


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_a_period_key_names_the_days_from_its_first_day_to_its_end(day):
    from app.engine import periods

    for period in ("DAILY", "WEEKLY", "MONTHLY"):
        key = periods.period_key(period, day)
        start, end = periods.first_day(period, key), periods.end_day(period, key)
        assert start is not None and end is not None
        assert start <= day < end
        assert periods.period_key(period, start) == key
        assert periods.period_key(period, end - timedelta(days=1)) == key
        assert periods.period_key(period, end) != key
        assert periods.previous_key(period, end) == key
    assert periods.first_day("ALL_TIME", "all") is None
    assert periods.end_day("ALL_TIME", "all") is None


def _formula_rules(bonus: int):
    return parse_rules(
        {
            "rules": [{"event_type": "*", "steps": [{"type": "per_unit", "points": "1"}]}],
            "level_formula": {"step": 100},
            "level_up_bonus": bonus,
        }
    )


def _one(rules, value, state=None):
    facts = EventFacts("x", Decimal(value), date(2026, 11, 20))
    return apply_event(rules, state or PlayerState(), facts, PlayerFacts(), earned_on_day=ZERO)


def test_a_formula_without_bonus_finds_the_level_of_a_huge_jump_at_once():
    result = _one(_formula_rules(bonus=0), "200000000000")  # 2 × 10^9 levels, no lines
    assert result.state.level == 2_000_000_001
    assert [e.kind for e in result.entries] == ["EARN"]
    with pytest.raises(OverLimit, match="level"):  # beyond a 32-bit level
        _one(_formula_rules(bonus=0), "9999999999999")


def test_level_bonuses_and_points_stay_within_what_the_ledger_holds():
    paid = _one(_formula_rules(bonus=5), "50000")  # 500 levels of 100, a line each
    assert paid.state.level == 527  # the bonuses (5 each) cross 26 more
    assert sum(e.kind == "LEVEL_UP_BONUS" for e in paid.entries) == 526
    with pytest.raises(OverLimit, match="levels"):
        _one(_formula_rules(bonus=5), "200000")
    near = PlayerState(balance=MAX_POINTS - 1, lifetime=MAX_POINTS - 1)
    with pytest.raises(OverLimit, match="below"):
        _one(_formula_rules(bonus=0), "1", near)


def test_a_bonus_that_reaches_the_next_level_by_itself_is_refused():
    with pytest.raises(ValueError, match="below the level formula's step"):
        _formula_rules(bonus=100)  # levels of 100: every level-up would cascade forever
