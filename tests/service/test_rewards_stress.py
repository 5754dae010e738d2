"""Redemptions under concurrency, on PostgreSQL (real row locks; SQLite serialises every
transaction, so a race there proves nothing).

Reusable: each scenario is a function of its sizes, bounded in time (STRESS_TIMEOUT) and
repeated REWARDS_STRESS_ROUNDS times (default 2; raise it to hunt rarer interleavings).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

import pytest

from app.errors import UserError
from app.services import rewards
from app.services.tenants import create_tenant
from models import PointTransaction, Redemption, RewardItem
from tests.service.rewards_helpers import assert_invariant, balance, fund, item

ROUNDS = int(os.environ.get("REWARDS_STRESS_ROUNDS", "2"))
STRESS_TIMEOUT = 60.0

pytestmark = pytest.mark.postgres


async def at_once(calls: list[Awaitable[Any]]) -> list[Any]:
    """All calls started together; each result or the UserError it raised."""
    gate = asyncio.Event()

    async def one(call: Awaitable[Any]) -> Any:
        await gate.wait()
        try:
            return await call
        except UserError as exc:
            return exc

    tasks = [asyncio.create_task(one(c)) for c in calls]
    await asyncio.sleep(0)  # every task is parked at the gate
    gate.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), STRESS_TIMEOUT)


def codes(results: list[Any]) -> Counter[str]:
    return Counter(r.code if isinstance(r, UserError) else "OK" for r in results)


async def stock_race(rt: Any, players: int, stock: int) -> None:
    tenant = await create_tenant(f"stock-{uuid.uuid4().hex[:6]}", preset="callcenter")
    ids = [f"s{n}" for n in range(players)]
    for pid in ids:
        await fund(rt, tenant, pid, 300)
    prize = await item(tenant, 250, stock=stock)
    results = await at_once([rewards.redeem(rt, tenant, pid, prize.id) for pid in ids])
    assert codes(results) == {"OK": stock, "OUT_OF_STOCK": players - stock}
    assert (await RewardItem.get(id=prize.id)).stock == 0
    assert await Redemption.filter(reward_id=prize.id).count() == stock
    for pid, result in zip(ids, results, strict=True):
        assert await balance(pid) == (50 if not isinstance(result, UserError) else 300)
    await assert_invariant()


async def double_spend(rt: Any, attempts: int) -> None:
    tenant = await create_tenant(f"spend-{uuid.uuid4().hex[:6]}", preset="callcenter")
    await fund(rt, tenant, "solo", 199.99)
    prize = await item(tenant, 199.99)
    results = await at_once([rewards.redeem(rt, tenant, "solo", prize.id) for _ in range(attempts)])
    assert codes(results) == {"OK": 1, "INSUFFICIENT_POINTS": attempts - 1}
    assert await balance("solo") == 0
    assert await PointTransaction.filter(kind="REDEEM", tenant=tenant).count() == 1
    await assert_invariant()


async def approve_reject_race(rt: Any, redemptions: int) -> None:
    tenant = await create_tenant(f"flow-{uuid.uuid4().hex[:6]}", preset="callcenter")
    await fund(rt, tenant, "racer", 10 * redemptions)
    prize = await item(tenant, 10, requires_approval=True, stock=redemptions)
    pending = [
        (await rewards.redeem(rt, tenant, "racer", prize.id)).redemption.id
        for _ in range(redemptions)
    ]
    calls: list[Awaitable[Any]] = []
    for rid in pending:
        pair = [rewards.approve(rt, tenant, rid), rewards.reject(rt, tenant, rid, "race")]
        if rid % 3 == 0:
            pair.append(rewards.cancel(rt, tenant, rid))
        calls.extend(pair)
    results = await at_once(calls)
    # Exactly one step wins on each redemption; the others see INVALID_TRANSITION.
    assert codes(results) == {
        "OK": redemptions,
        "INVALID_TRANSITION": len(calls) - redemptions,
    }
    rows = await Redemption.filter(id__in=pending)
    refunded = [r for r in rows if r.status in ("REJECTED", "CANCELLED")]
    fulfilled = [r for r in rows if r.status == "FULFILLED"]
    assert len(refunded) + len(fulfilled) == redemptions
    assert all(r.code is not None for r in fulfilled) and all(r.code is None for r in refunded)
    assert await PointTransaction.filter(kind="REFUND", tenant=tenant).count() == len(refunded)
    assert await balance("racer") == 10 * len(refunded)
    assert (await RewardItem.get(id=prize.id)).stock == len(refunded)
    await assert_invariant()


async def mixed_traffic(rt: Any, players: int, calls: int, seed: int) -> None:
    """Redeems, rejects and cancels over a few items and players at once: no deadlock,
    no drift between stock, redemptions and the ledger."""
    rng = random.Random(seed)
    tenant = await create_tenant(f"mix-{uuid.uuid4().hex[:6]}", preset="callcenter")
    ids = [f"m{n}" for n in range(players)]
    for pid in ids:
        await fund(rt, tenant, pid, 500)
    items = [
        await item(tenant, 40, stock=15, requires_approval=True),
        await item(tenant, 25.5, stock=8),
        await item(tenant, 60, per_player_limit=2, requires_approval=True),
    ]
    seeded = [(await rewards.redeem(rt, tenant, pid, items[0].id)).redemption.id for pid in ids[:6]]
    work: list[Awaitable[Any]] = []
    for _ in range(calls):
        roll = rng.random()
        if roll < 0.6:
            work.append(
                rewards.redeem(
                    rt, tenant, rng.choice(ids), rng.choice(items).id, rng.choice([1, 1, 2])
                )
            )
        elif roll < 0.8:
            work.append(rewards.reject(rt, tenant, rng.choice(seeded)))
        else:
            work.append(rewards.approve(rt, tenant, rng.choice(seeded)))
    results = await at_once(work)
    assert set(codes(results)) <= {
        "OK",
        "OUT_OF_STOCK",
        "INSUFFICIENT_POINTS",
        "LIMIT_REACHED",
        "INVALID_TRANSITION",
    }
    for prize, initial in zip(items, (15, 8, None), strict=True):
        held = sum(
            r.quantity
            for r in await Redemption.filter(reward_id=prize.id)
            if r.status not in ("REJECTED", "CANCELLED")
        )
        stock = (await RewardItem.get(id=prize.id)).stock
        assert stock is None if initial is None else stock == initial - held >= 0
    spent = sum(
        (r.points_spent for r in await Redemption.filter(tenant=tenant)),
        Decimal(0),
    )
    refunded = sum(
        (t.amount for t in await PointTransaction.filter(tenant=tenant, kind="REFUND")),
        Decimal(0),
    )
    balances = sum([await balance(pid) for pid in ids], Decimal(0))
    assert balances == 500 * players - spent + refunded
    await assert_invariant()


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_50_players_race_for_10_in_stock(rt, round_):
    await stock_race(rt, players=50, stock=10)


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_20_concurrent_redemptions_by_one_player_spend_once(rt, round_):
    await double_spend(rt, attempts=20)


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_approve_racing_reject_exactly_one_wins(rt, round_):
    await approve_reject_race(rt, redemptions=12)


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_mixed_traffic_neither_deadlocks_nor_drifts(rt, round_):
    await mixed_traffic(rt, players=10, calls=80, seed=round_)
