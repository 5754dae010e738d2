"""Spin & win: configuration, disclosed odds, free and paid spins, the daily budget,
reward prizes, the audit trail; races for the budget and free spins on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest

from app.engine import rewards as rules
from app.errors import UserError
from app.services import wheel
from app.services.tenants import create_tenant
from models import PointTransaction, Redemption, RewardItem, Spin, WheelDay
from tests.service.rewards_helpers import assert_invariant, balance, fund, item, snapshot


@pytest.fixture
async def casino(rt):
    return await create_tenant("agents", preset="agents")


def points(amount, weight=1, label=None):
    return {
        "label": label or f"{amount} points",
        "kind": "POINTS",
        "points": amount,
        "weight": weight,
    }


NOTHING = {"label": "Try again", "kind": "NOTHING", "weight": 1}


async def test_configuration_is_checked_and_the_odds_are_disclosed(rt, casino):
    mug = await item(casino, 40, name="Mug", stock=5)
    bad = [
        [],
        [{"label": "x", "kind": "POINTS", "weight": 1}],
        [{"label": "x", "kind": "NOTHING", "weight": 0}],
        [points(1.234)],
    ]
    for prizes in bad:
        with pytest.raises(UserError) as invalid:
            await wheel.configure_wheel(casino, prizes=prizes)
        assert invalid.value.code == "INVALID"
    for reward_id in (999, "nope"):
        with pytest.raises(UserError) as missing:
            await wheel.configure_wheel(
                casino,
                prizes=[{"label": "?", "kind": "REWARD", "rewardId": reward_id, "weight": 1}],
            )
        assert missing.value.code == "NOT_FOUND"
    assert await wheel.get_wheel(casino) is None
    prizes = [
        points(10.5, 5),
        {"label": "Mug", "kind": "REWARD", "rewardId": str(mug.id), "weight": 1},
        {**NOTHING, "weight": 4},
    ]
    await wheel.configure_wheel(casino, prizes=prizes, spin_cost=25, free_spins_per_day=1)
    view = await wheel.get_wheel(casino)
    assert view.odds == [Decimal("0.5"), Decimal("0.1"), Decimal("0.4")]
    assert view.spec.prizes[0].points == Decimal("10.50") and view.rewards[mug.id].name == "Mug"
    await wheel.configure_wheel(casino, prizes=[NOTHING], name="Quiet")  # replaces it
    assert (await wheel.get_wheel(casino)).wheel.name == "Quiet"


async def test_free_spins_then_paid_spins_each_recorded_for_audit(rt, casino):
    await fund(rt, casino, "ann", 60)
    await wheel.configure_wheel(
        casino, prizes=[points(5, 3), NOTHING], spin_cost=25, free_spins_per_day=2
    )
    results = [await wheel.spin(rt, casino, "ann") for _ in range(4)]
    assert [r.spin.free for r in results] == [True, True, False, False]
    assert [r.spin.cost for r in results] == [0, 0, 25, 25]
    won = sum(r.spin.points_won for r in results)
    assert await balance("ann") == 60 - 50 + won
    for result in results:  # the recorded draw reproduces the prize
        row = result.spin
        assert rules.draw([rules.Prize.model_validate(p) for p in row.prizes], row.draw) == (
            row.prize_index
        )
        assert 0 <= row.draw < row.total_weight == 4
    kinds = Counter(t.kind for t in await PointTransaction.filter(player__external_id="ann"))
    assert kinds["REDEEM"] == 2 and kinds["BONUS"] == sum(1 for r in results if r.spin.points_won)
    before = await snapshot()
    if await balance("ann") < 25:
        with pytest.raises(UserError) as poor:
            await wheel.spin(rt, casino, "ann")
        assert poor.value.code == "INSUFFICIENT_POINTS"
        assert await snapshot() == before
    await assert_invariant()


async def test_free_only_wheel_stops_after_the_free_spins(rt, casino):
    await fund(rt, casino, "bo", 100)
    await wheel.configure_wheel(casino, prizes=[NOTHING], free_spins_per_day=1)
    await wheel.spin(rt, casino, "bo")
    before = await snapshot(), await Spin.all().count()
    with pytest.raises(UserError) as used:
        await wheel.spin(rt, casino, "bo")
    assert used.value.code == "LIMIT_REACHED"
    assert (await snapshot(), await Spin.all().count()) == before


async def test_the_daily_budget_stops_spins_before_it_could_be_overrun(rt, casino):
    await fund(rt, casino, "cy", 0)
    await wheel.configure_wheel(casino, prizes=[points(20)], free_spins_per_day=10, daily_budget=50)
    for _ in range(2):
        await wheel.spin(rt, casino, "cy")
    before = await snapshot(), await Spin.all().count()
    with pytest.raises(UserError) as spent:
        await wheel.spin(rt, casino, "cy")  # 40 paid out; 40 + 20 > 50
    assert spent.value.code == "LIMIT_REACHED" and "budget" in spent.value.message
    assert (await snapshot(), await Spin.all().count()) == before
    assert (await wheel.get_wheel(casino)).budget_left_today == 10
    assert (await WheelDay.get()).paid_out == 40


async def test_a_reward_prize_is_issued_as_a_fulfilled_redemption_of_cost_zero(rt, casino):
    await fund(rt, casino, "dee", 0)
    mug = await item(casino, 40, name="Mug", stock=1)
    await wheel.configure_wheel(
        casino,
        prizes=[{"label": "Mug", "kind": "REWARD", "rewardId": mug.id, "weight": 1}],
        free_spins_per_day=5,
    )
    won = await wheel.spin(rt, casino, "dee", idempotency_key="s1")
    redemption = await Redemption.get(id=won.spin.redemption_id)
    assert (redemption.status, redemption.points_spent, redemption.source) == (
        "FULFILLED",
        0,
        "wheel",
    )
    assert (await RewardItem.get(id=mug.id)).stock == 0
    again = await wheel.spin(rt, casino, "dee", idempotency_key="s1")
    assert again.duplicate and again.spin.id == won.spin.id
    await fund(rt, casino, "eve", 0)
    with pytest.raises(UserError) as other:
        await wheel.spin(rt, casino, "eve", idempotency_key="s1")
    assert other.value.code == "CONFLICT"
    before = await snapshot(), await Spin.all().count()
    with pytest.raises(UserError) as gone:
        await wheel.spin(rt, casino, "dee")
    assert gone.value.code == "OUT_OF_STOCK"
    await RewardItem.filter(id=mug.id).update(stock=5, active=False)
    with pytest.raises(UserError) as withdrawn:
        await wheel.spin(rt, casino, "dee")
    assert withdrawn.value.code == "NOT_FOUND"
    await RewardItem.filter(id=mug.id).update(stock=0)
    assert (await snapshot(), await Spin.all().count()) == before


async def test_no_wheel_or_no_player_is_a_clear_error(rt, casino):
    with pytest.raises(UserError) as none:
        await wheel.spin(rt, casino, "x")
    assert none.value.code == "NOT_FOUND"
    await wheel.configure_wheel(casino, prizes=[NOTHING], free_spins_per_day=1)
    with pytest.raises(UserError) as ghost:
        await wheel.spin(rt, casino, "ghost")
    assert ghost.value.code == "NOT_FOUND"


@pytest.mark.postgres
async def test_racing_spins_never_overrun_the_budget_or_the_free_spins(rt, casino):
    await wheel.configure_wheel(casino, prizes=[points(10)], free_spins_per_day=3, daily_budget=100)
    players = [f"r{n}" for n in range(8)]
    for pid in players:
        await fund(rt, casino, pid, 0)

    async def attempt(pid):
        try:
            return await wheel.spin(rt, casino, pid)
        except UserError as exc:
            return exc.code

    results = await asyncio.wait_for(
        asyncio.gather(*(attempt(pid) for pid in players for _ in range(5))), 60
    )
    ok = [r for r in results if not isinstance(r, str)]
    assert len(ok) == 10  # the budget: 100 / 10
    assert set(r for r in results if isinstance(r, str)) == {"LIMIT_REACHED"}
    per_player = Counter(r.spin.player_id for r in ok)
    assert max(per_player.values()) <= 3  # free spins per day
    assert (await WheelDay.get()).paid_out == 100
    await assert_invariant()
