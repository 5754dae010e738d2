"""The pure reward rules: eligibility, the state machine, codes, the wheel's draw."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine import rewards as r

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ITEM = r.ItemTerms(points_cost=Decimal("100.00"), stock=5, per_player_limit=3)
RICH = r.Standing(balance=Decimal("1000.00"), level=3, held=0)


def code_of(item: r.ItemTerms, player: r.Standing, quantity: int = 1) -> str | None:
    problem = r.redeem_problem(item, player, quantity, NOW)
    return problem.code if problem else None


def test_a_player_with_points_redeems():
    assert code_of(ITEM, RICH, 3) is None
    assert r.total_cost(ITEM, 3) == Decimal("300.00")


@pytest.mark.parametrize(
    ("item", "player", "quantity", "code"),
    [
        (ITEM, RICH, 0, "INVALID"),
        (ITEM, RICH, -1, "INVALID"),
        (ITEM, RICH, 101, "LIMIT_REACHED"),
        (ITEM, r.Standing(Decimal(1000), 1, held=2), 2, "LIMIT_REACHED"),
        (ITEM, RICH, 6, "LIMIT_REACHED"),  # the per-player limit comes before the stock
        (r.ItemTerms(Decimal(1), stock=2), RICH, 3, "OUT_OF_STOCK"),
        (r.ItemTerms(Decimal(1), stock=0), RICH, 1, "OUT_OF_STOCK"),
        (ITEM, r.Standing(Decimal("99.99")), 1, "INSUFFICIENT_POINTS"),
        (r.ItemTerms(Decimal(1), min_level=4), RICH, 1, "INVALID"),
        (r.ItemTerms(Decimal(1), available_from=NOW + timedelta(seconds=1)), RICH, 1, "INVALID"),
        (r.ItemTerms(Decimal(1), available_until=NOW), RICH, 1, "INVALID"),
        (r.ItemTerms(Decimal(1), active=False), RICH, 1, "NOT_FOUND"),
        (r.ItemTerms(Decimal(1), uses_code_pool=True), RICH, 2, "INVALID"),
    ],
)
def test_refusals_have_a_code_and_a_message(item, player, quantity, code):
    problem = r.redeem_problem(item, player, quantity, NOW)
    assert problem is not None and problem.code == code and problem.message


def test_the_window_includes_its_start_and_excludes_its_end():
    window = r.ItemTerms(Decimal(1), available_from=NOW, available_until=NOW + timedelta(hours=1))
    assert code_of(window, RICH) is None
    assert r.redeem_problem(window, RICH, 1, NOW + timedelta(hours=1)) is not None


def test_unlimited_stock_and_no_limit():
    assert code_of(r.ItemTerms(Decimal(0)), r.Standing(), r.MAX_QUANTITY) is None


def test_the_state_machine_follows_the_approval_flow():
    assert r.transition_problem("PENDING", "APPROVED", "FULFILLED") is None
    assert r.transition_problem("FULFILLED", "COMPLETED") is None
    assert r.transition_problem("FULFILLED", "EXPIRED") is None
    for start, target in [
        ("PENDING", "COMPLETED"),
        ("PENDING", "FULFILLED"),
        ("FULFILLED", "REJECTED"),
        ("FULFILLED", "CANCELLED"),
        ("APPROVED", "CANCELLED"),
        ("COMPLETED", "REJECTED"),
        ("REJECTED", "APPROVED"),
        ("CANCELLED", "PENDING"),
        ("EXPIRED", "COMPLETED"),
    ]:
        problem = r.transition_problem(start, target)
        assert problem is not None and problem.code == "INVALID_TRANSITION", (start, target)
    assert r.sources_of("REJECTED") == {"PENDING", "APPROVED"}
    assert r.sources_of("CANCELLED") == {"PENDING"}
    terminal = {s for s, nexts in r.TRANSITIONS.items() if not nexts}
    assert terminal == {"COMPLETED", "REJECTED", "CANCELLED", "EXPIRED"}
    assert r.REFUNDING.issubset(terminal) and not (r.REFUNDING & r.HOLDING)


def test_an_expired_code_cannot_be_completed():
    assert r.completion_problem("FULFILLED", None, NOW) is None
    assert r.completion_problem("FULFILLED", NOW + timedelta(seconds=1), NOW) is None
    assert r.completion_problem("FULFILLED", NOW, NOW).message == "the code has expired"
    assert r.completion_problem("PENDING", None, NOW).code == "INVALID_TRANSITION"


CODE = re.compile(r"^REWARD-([0-9A-HJKMNP-TV-Z]{4}-){3}[0-9A-HJKMNP-TV-Z]{4}$")


@given(st.binary(min_size=10, max_size=10))
def test_codes_carry_all_80_random_bits(random_bytes):
    code = r.format_code("REWARD", random_bytes)
    assert CODE.match(code)
    digits = code.removeprefix("REWARD-").replace("-", "")
    number = 0
    for char in digits:
        number = number * 32 + r.CODE_ALPHABET.index(char)
    assert number == int.from_bytes(random_bytes, "big")  # nothing lost: distinct bytes, codes


def test_codes_need_exactly_10_bytes_and_keep_the_prefix():
    assert r.format_code("GIFT", bytes(10)) == "GIFT-0000-0000-0000-0000"
    with pytest.raises(ValueError):
        r.format_code("REWARD", bytes(9))
    assert r.code_expiry(NOW, 30) == NOW + timedelta(days=30)
    assert r.code_expiry(NOW, None) is None


WHEEL = r.parse_wheel(
    {
        "prizes": [
            {"label": "10 points", "kind": "POINTS", "points": 10, "weight": 5},
            {"label": "Mug", "kind": "REWARD", "rewardId": 7, "weight": 1},
            {"label": "Try again", "kind": "NOTHING", "weight": 4},
        ],
        "spin_cost": "25",
        "free_spins_per_day": 1,
        "daily_budget": "100",
    }
)


def test_the_wheel_parses_and_discloses_its_odds():
    assert isinstance(WHEEL, r.WheelSpec)
    assert r.total_weight(WHEEL.prizes) == 10
    assert r.odds(WHEEL.prizes) == [Decimal("0.5"), Decimal("0.1"), Decimal("0.4")]
    assert sum(r.odds(WHEEL.prizes)) == 1


def test_each_number_lands_on_the_prize_its_weight_covers():
    landed = Counter(r.draw(WHEEL.prizes, n) for n in range(10))
    assert landed == {0: 5, 1: 1, 2: 4}  # uniform numbers give exactly the disclosed odds
    assert [r.draw(WHEEL.prizes, n) for n in (0, 4, 5, 6, 9)] == [0, 0, 1, 2, 2]
    for bad in (-1, 10):
        with pytest.raises(ValueError):
            r.draw(WHEEL.prizes, bad)


@pytest.mark.parametrize(
    "prizes",
    [
        [],
        [{"label": "x", "kind": "POINTS", "weight": 1}],  # no points
        [{"label": "x", "kind": "POINTS", "points": 5, "rewardId": 1, "weight": 1}],
        [{"label": "x", "kind": "REWARD", "weight": 1}],
        [{"label": "x", "kind": "NOTHING", "points": 1, "weight": 1}],
        [{"label": "x", "kind": "NOTHING", "weight": 0}],
        [{"label": "", "kind": "NOTHING", "weight": 1}],
        [{"label": "x", "kind": "JACKPOT", "weight": 1}],
        [{"label": "x", "kind": "POINTS", "points": "0.001", "weight": 1}],
    ],
)
def test_a_bad_wheel_is_a_problem_not_an_exception(prizes):
    problem = r.parse_wheel({"prizes": prizes})
    assert isinstance(problem, r.Problem) and problem.code == "INVALID" and problem.message


def test_free_spins_then_paid_spins_then_none():
    assert isinstance(WHEEL, r.WheelSpec)
    assert r.spin_price(WHEEL, 0, Decimal(0)) == r.SpinPrice(True, Decimal(0))
    assert r.spin_price(WHEEL, 1, Decimal(25)) == r.SpinPrice(False, Decimal(25))
    assert r.spin_price(WHEEL, 1, Decimal("24.99")).code == "INSUFFICIENT_POINTS"
    free_only = WHEEL.model_copy(update={"spin_cost": Decimal(0)})
    assert r.spin_price(free_only, 1, Decimal(1000)).code == "LIMIT_REACHED"


def test_the_budget_stops_spins_before_the_biggest_prize_would_overrun_it():
    costs = {7: Decimal(40)}
    assert isinstance(WHEEL, r.WheelSpec)
    biggest = max(r.prize_value(p, costs) for p in WHEEL.prizes)
    assert biggest == 40
    assert r.budget_allows(Decimal(100), Decimal(60), biggest)
    assert not r.budget_allows(Decimal(100), Decimal("60.01"), biggest)
    assert r.budget_allows(None, Decimal(10**9), biggest)
