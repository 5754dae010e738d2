"""The rewards shop on both backends: redeem, the approval flow, offers, expiry, and
bad input that writes nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.errors import Forbidden, UserError
from app.services import reward_items, rewards
from app.services.players import player_channel
from app.services.tenants import create_tenant
from models import PointTransaction, Redemption, RewardCode, RewardItem
from tests.service.rewards_helpers import assert_invariant, balance, fund, item, snapshot

CODE = re.compile(r"^REWARD-[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


@pytest.fixture
async def shop(rt):
    return await create_tenant("shop", preset="callcenter")


async def test_an_instant_reward_spends_points_takes_stock_and_issues_a_code(rt, shop):
    await fund(rt, shop, "ann", 500)
    storage = await item(shop, 120, stock=3, expiry_days=30)
    now = datetime.now(UTC)
    result = await rewards.redeem(rt, shop, "ann", storage.id, 2, now=now)
    r = result.redemption
    assert r.status == "FULFILLED" and r.quantity == 2 and r.points_spent == Decimal("240.00")
    assert CODE.match(r.code), r.code
    assert r.expires_at == now + timedelta(days=30)
    assert result.wallet.balance == Decimal("260.00")
    assert (await RewardItem.get(id=storage.id)).stock == 1
    line = await PointTransaction.filter(kind="REDEEM").get()
    assert line.amount == Decimal("-240.00") and line.balance_after == Decimal("260.00")
    other = await rewards.redeem(rt, shop, "ann", storage.id)
    assert other.redemption.code != r.code
    await assert_invariant()


async def test_approval_flow_pending_approved_fulfilled_completed(rt, shop):
    await fund(rt, shop, "bo", 900)
    lunch = await item(shop, 400, category="EXPERIENCE", requires_approval=True, stock=5)
    pending = (await rewards.redeem(rt, shop, "bo", lunch.id)).redemption
    assert pending.status == "PENDING" and pending.code is None
    assert await balance("bo") == 500 and (await RewardItem.get(id=lunch.id)).stock == 4
    with pytest.raises(UserError) as early:
        await rewards.complete(rt, shop, pending.id)
    assert early.value.code == "INVALID_TRANSITION"
    approved = (await rewards.approve(rt, shop, pending.id)).redemption
    assert approved.status == "FULFILLED" and CODE.match(approved.code)
    for again in (rewards.approve(rt, shop, pending.id), rewards.reject(rt, shop, pending.id)):
        with pytest.raises(UserError) as twice:
            await again
        assert twice.value.code == "INVALID_TRANSITION"
    with pytest.raises(UserError) as cancel_late:
        await rewards.cancel(rt, shop, pending.id)
    assert cancel_late.value.code == "INVALID_TRANSITION"
    done = (await rewards.complete(rt, shop, pending.id, as_player="bo")).redemption
    assert done.status == "COMPLETED"
    stored = await Redemption.get(id=pending.id)
    assert stored.updated_at >= approved.updated_at > stored.created_at
    with pytest.raises(UserError) as after:
        await rewards.complete(rt, shop, pending.id)
    assert after.value.code == "INVALID_TRANSITION"
    assert await balance("bo") == 500  # no refund on any of those
    await assert_invariant()


async def test_reject_and_cancel_refund_points_and_return_stock(rt, shop):
    await fund(rt, shop, "cy", 300)
    swag = await item(shop, 100, category="PHYSICAL", requires_approval=True, stock=2)
    first = (await rewards.redeem(rt, shop, "cy", swag.id)).redemption
    second = (await rewards.redeem(rt, shop, "cy", swag.id)).redemption
    assert await balance("cy") == 100 and (await RewardItem.get(id=swag.id)).stock == 0
    rejected = await rewards.reject(rt, shop, first.id, "not in this region")
    assert rejected.redemption.status == "REJECTED" and rejected.redemption.reason
    assert rejected.wallet.balance == 200
    cancelled = await rewards.cancel(rt, shop, second.id, as_player="cy")
    assert cancelled.redemption.status == "CANCELLED" and cancelled.wallet.balance == 300
    assert (await RewardItem.get(id=swag.id)).stock == 2
    refunds = await PointTransaction.filter(kind="REFUND").order_by("id")
    assert [r.amount for r in refunds] == [Decimal("100.00"), Decimal("100.00")]
    await assert_invariant()


async def test_spends_and_refunds_are_published_after_commit(rt, shop):
    await fund(rt, shop, "dee", 200)
    tea = await item(shop, 150, requires_approval=True)
    channel = player_channel(shop.id, "dee", "points")
    async with rt.hub.subscribe(channel) as messages:
        redemption = (await rewards.redeem(rt, shop, "dee", tea.id)).redemption
        await rewards.reject(rt, shop, redemption.id)
        with pytest.raises(UserError):  # refused: nothing published
            await rewards.redeem(rt, shop, "dee", tea.id, 2)
        await rewards.redeem(rt, shop, "dee", tea.id)
        received = []
        async for message in messages:
            received.append(message)
            if len(received) == 3:
                break
    kinds = [(m["transaction"]["kind"], m["amount"], m["wallet"]["balance"]) for m in received]
    assert kinds == [
        ("REDEEM", "-150.00", "50.00"),
        ("REFUND", "150.00", "200.00"),
        ("REDEEM", "-150.00", "50.00"),
    ]


async def test_bad_input_is_refused_with_a_clear_code_and_writes_nothing(rt, shop):
    await fund(rt, shop, "eve", 250)
    await fund(rt, shop, "poor", 0)
    now = datetime.now(UTC)
    cheap = await item(shop, 50, per_player_limit=2)
    gone = await item(shop, 10, stock=0)
    later = await item(shop, 10, available_from=now + timedelta(days=1))
    over = await item(shop, 10, available_until=now - timedelta(seconds=1))
    elite = await item(shop, 10, min_level=5)
    await rewards.redeem(rt, shop, "eve", cheap.id)
    before = await snapshot()
    cases = [
        (("eve", 999999), {}, "NOT_FOUND"),
        (("eve", "not-a-number"), {}, "NOT_FOUND"),
        (("ghost", cheap.id), {}, "NOT_FOUND"),
        (("eve", cheap.id), {"quantity": 0}, "INVALID"),
        (("eve", cheap.id), {"quantity": -3}, "INVALID"),
        (("eve", cheap.id), {"quantity": 2}, "LIMIT_REACHED"),  # 1 held + 2 > 2
        (("eve", cheap.id), {"quantity": 101}, "LIMIT_REACHED"),
        (("poor", cheap.id), {}, "INSUFFICIENT_POINTS"),
        (("eve", gone.id), {}, "OUT_OF_STOCK"),
        (("eve", later.id), {}, "INVALID"),
        (("eve", over.id), {}, "INVALID"),
        (("eve", elite.id), {}, "INVALID"),
        (("eve", cheap.id), {"idempotency_key": ""}, "INVALID"),
    ]
    for (player, reward), options, code in cases:
        with pytest.raises(UserError) as refused:
            await rewards.redeem(rt, shop, player, reward, **options)
        assert refused.value.code == code, (player, reward, options, refused.value.message)
        assert refused.value.message
    other = await create_tenant("other", preset="habits")
    with pytest.raises(UserError) as foreign:
        await rewards.redeem(rt, other, "eve", cheap.id)  # another tenant's item
    assert foreign.value.code == "NOT_FOUND"
    assert await snapshot() == before
    await assert_invariant()


async def test_bad_transitions_and_foreign_players_write_nothing(rt, shop):
    await fund(rt, shop, "fay", 100)
    await fund(rt, shop, "gus", 100)
    gift = await item(shop, 30, requires_approval=True)
    mine = (await rewards.redeem(rt, shop, "fay", gift.id)).redemption
    before = await snapshot()
    with pytest.raises(Forbidden):
        await rewards.cancel(rt, shop, mine.id, as_player="gus")
    with pytest.raises(Forbidden):
        await rewards.complete(rt, shop, mine.id, as_player="gus")
    for call in (rewards.approve(rt, shop, 424242), rewards.reject(rt, shop, "x")):
        with pytest.raises(UserError) as missing:
            await call
        assert missing.value.code == "NOT_FOUND"
    with pytest.raises(UserError) as long_reason:
        await rewards.reject(rt, shop, mine.id, "x" * 201)
    assert long_reason.value.code == "INVALID"
    assert await snapshot() == before


async def test_the_same_idempotency_key_redeems_once(rt, shop):
    await fund(rt, shop, "hal", 300)
    pen = await item(shop, 100, stock=10)
    first = await rewards.redeem(rt, shop, "hal", pen.id, idempotency_key="order-1")
    again = await rewards.redeem(rt, shop, "hal", pen.id, idempotency_key="order-1")
    assert again.duplicate and again.redemption.id == first.redemption.id
    assert again.redemption.code == first.redemption.code
    with pytest.raises(UserError) as conflict:
        await rewards.redeem(rt, shop, "hal", pen.id, 2, idempotency_key="order-1")
    assert conflict.value.code == "CONFLICT"
    racing = await asyncio.gather(
        *(rewards.redeem(rt, shop, "hal", pen.id, idempotency_key="order-2") for _ in range(5))
    )
    assert len({r.redemption.id for r in racing}) == 1
    assert await balance("hal") == 100 and (await RewardItem.get(id=pen.id)).stock == 8
    await assert_invariant()


async def test_an_offer_is_a_fulfilled_redemption_of_cost_zero(rt, shop):
    await fund(rt, shop, "ida", 0)
    data = await item(shop, 500, category="OFFER", stock=1, per_player_limit=1, expiry_days=7)
    offer = await rewards.issue_offer(rt, shop, "ida", data.id, "comeback hero mission")
    r = offer.redemption
    assert (r.status, r.points_spent, r.source, r.reason) == (
        "FULFILLED",
        0,
        "offer",
        "comeback hero mission",
    )
    assert CODE.match(r.code) and r.expires_at is not None
    assert await PointTransaction.all().count() == 0 and offer.wallet.balance == 0
    for player, code in (("ida", "OUT_OF_STOCK"), ("nobody", "NOT_FOUND")):
        with pytest.raises(UserError) as refused:
            await rewards.issue_offer(rt, shop, player, data.id, "again")
        assert refused.value.code == code
    await RewardItem.filter(id=data.id).update(stock=5)
    with pytest.raises(UserError) as limited:
        await rewards.issue_offer(rt, shop, "ida", data.id, "again")
    assert limited.value.code == "LIMIT_REACHED"
    with pytest.raises(UserError) as no_reason:
        await rewards.issue_offer(rt, shop, "ida", data.id, " ")
    assert no_reason.value.code == "INVALID"


async def test_a_pool_of_codes_hands_each_code_out_once(rt, shop):
    await fund(rt, shop, "jo", 900)
    codes = ["GIFT-AAA", "GIFT-BBB"]
    card = await item(shop, 100, category="PHYSICAL", codes=codes)
    assert card.stock == 2 and card.uses_code_pool
    got = [(await rewards.redeem(rt, shop, "jo", card.id)).redemption.code for _ in range(2)]
    assert sorted(got) == codes
    with pytest.raises(UserError) as empty:
        await rewards.redeem(rt, shop, "jo", card.id)
    assert empty.value.code == "OUT_OF_STOCK"
    assert await RewardCode.filter(redemption_id=None).count() == 0
    for bad in ({"codes": []}, {"codes": ["A", "A"]}, {"codes": ["A"], "stock": 2}):
        with pytest.raises(UserError) as invalid:
            await item(shop, 1, **bad)
        assert invalid.value.code == "INVALID"


async def test_expired_codes_are_marked_and_cannot_be_completed(rt, shop):
    await fund(rt, shop, "kim", 100)
    voucher = await item(shop, 10, expiry_days=1)
    old = datetime.now(UTC) - timedelta(days=2)
    stale = (await rewards.redeem(rt, shop, "kim", voucher.id, now=old)).redemption
    fresh = (await rewards.redeem(rt, shop, "kim", voucher.id)).redemption
    with pytest.raises(UserError) as late:
        await rewards.complete(rt, shop, stale.id)
    assert late.value.code == "INVALID_TRANSITION" and "expired" in late.value.message
    assert await rewards.expire_codes(shop) == 1
    assert await rewards.expire_codes(shop) == 0  # safe to run twice
    statuses = dict(await Redemption.all().values_list("id", "status"))
    assert statuses == {stale.id: "EXPIRED", fresh.id: "FULFILLED"}
    assert await balance("kim") == 80  # an issued code is not refunded


async def test_creating_items_checks_every_field(rt, shop):
    now = datetime.now(UTC)
    bad = [
        {"name": " "},
        {"cost": -1},
        {"cost": 1.234},
        {"stock": -1},
        {"per_player_limit": 0},
        {"min_level": 0},
        {"expiry_days": 0},
        {"code_prefix": "bad prefix"},
        {"details": {"x": "y" * 20000}},
        {"available_from": now, "available_until": now},
    ]
    for options in bad:
        with pytest.raises(UserError) as refused:
            await item(shop, options.pop("cost", 10), **options)
        assert refused.value.code == "INVALID", options
    assert await RewardItem.all().count() == 0
    listed = await item(shop, 10, featured=True, category="DISCOUNT")
    await item(shop, 5, category="DIGITAL")
    assert [i.id for i in await reward_items.list_items(shop, featured_only=True)] == [listed.id]
    assert len(await reward_items.list_items(shop, category="DIGITAL")) == 1
