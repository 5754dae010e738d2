"""The ledger: admin adjustments, decay, and the invariant under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tortoise.functions import Sum

from app.errors import UserError
from app.services import ingest, ledger
from app.services.tenants import create_tenant
from models import Player, PointTransaction, Wallet


async def assert_invariant() -> None:
    """Every player's transactions sum to the wallet balance; no balance is negative."""
    for wallet in await Wallet.all():
        total = (
            await PointTransaction.filter(player_id=wallet.player_id)
            .annotate(s=Sum("amount"))
            .first()
            .values_list("s", flat=True)
        )
        assert Decimal(str(total or 0)) == wallet.balance, wallet.player_id
        assert wallet.balance >= 0
        last = await PointTransaction.filter(player_id=wallet.player_id).order_by("-id").first()
        if last is not None:
            assert last.balance_after == wallet.balance


async def test_adjust_points_awards_revokes_and_is_idempotent(rt):
    tenant = await create_tenant("adj", preset="habits")
    await ingest.record_event(rt, tenant, ingest.EventInput("p", "x", value=10))
    award = await ledger.adjust_points(rt, tenant, "p", 5.5, "goodwill", "adj-1")
    assert award.wallet.balance == Decimal("15.50") and award.wallet.lifetime_earned == 15.5
    again = await ledger.adjust_points(rt, tenant, "p", 5.5, "goodwill", "adj-1")
    assert again.duplicate and again.transaction.id == award.transaction.id
    with pytest.raises(UserError) as conflict:
        await ledger.adjust_points(rt, tenant, "p", 6, "goodwill", "adj-1")
    assert conflict.value.code == "CONFLICT"
    revoke = await ledger.adjust_points(rt, tenant, "p", -15.5, "fraud")
    assert revoke.wallet.balance == 0 and revoke.wallet.lifetime_earned == Decimal("15.50")
    with pytest.raises(UserError) as short:
        await ledger.adjust_points(rt, tenant, "p", -0.01, "fraud")
    assert short.value.code == "INSUFFICIENT_POINTS"
    for bad in (0, 1.234, float("nan")):
        with pytest.raises(UserError) as invalid:
            await ledger.adjust_points(rt, tenant, "p", bad, "x")
        assert invalid.value.code == "INVALID"
    with pytest.raises(UserError) as missing:
        await ledger.adjust_points(rt, tenant, "nobody", 1, "x")
    assert missing.value.code == "NOT_FOUND"
    await assert_invariant()


async def test_decay_after_30_inactive_days_once_per_period(rt):
    tenant = await create_tenant("decay", preset="callcenter")
    start = datetime.now(UTC) - timedelta(days=40)
    await ingest.record_event(
        rt, tenant, ingest.EventInput("d", "lead_converted", occurred_at=start)
    )
    await ingest.record_event(rt, tenant, ingest.EventInput("fresh", "lead_converted"))
    now = datetime.now(UTC)
    first = await ledger.run_decay(rt, tenant, now=now)
    assert (first.players, first.points) == (1, Decimal("2.50"))  # 5 % of 50
    second = await ledger.run_decay(rt, tenant, now=now + timedelta(hours=1))
    assert second.players == 0  # safe to run twice
    later = await ledger.run_decay(rt, tenant, now=now + timedelta(days=31))
    assert later.players == 2  # both idle for another whole period now
    wallet = await Wallet.get(player__external_id="d")
    assert wallet.balance == Decimal("45.12")  # 47.50 − 2.38
    rows = await PointTransaction.filter(player_id=wallet.player_id, kind="DECAY")
    assert [r.amount for r in rows] == [Decimal("-2.50"), Decimal("-2.38")]
    await assert_invariant()


async def test_the_wallet_refuses_a_negative_balance_at_the_database(rt):
    from tortoise.exceptions import IntegrityError, OperationalError

    tenant = await create_tenant("chk", preset="habits")
    await ingest.record_event(rt, tenant, ingest.EventInput("n", "x", value=1))
    player = await Player.get(external_id="n", tenant=tenant)
    with pytest.raises((IntegrityError, OperationalError)):
        await Wallet.filter(player_id=player.id).update(balance=Decimal("-1"))


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("earn"),
            st.sampled_from(["p1", "p2", "p3"]),
            st.decimals(min_value=0, max_value=500, places=2),
        ),
        st.tuples(
            st.just("adjust"),
            st.sampled_from(["p1", "p2", "p3"]),
            st.decimals(min_value=-300, max_value=300, places=2).filter(lambda d: d != 0),
        ),
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.postgres
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
async def test_ledger_invariant_holds_under_concurrent_writes(rt, ops):
    """Earns and adjustments fired concurrently (PostgreSQL: real row locks)."""
    from models import Tenant

    tenant = await Tenant.get_or_none(slug="inv") or await create_tenant("inv", preset="habits")

    async def run(op):
        kind, player, amount = op
        try:
            if kind == "earn":
                await ingest.record_event(
                    rt, tenant, ingest.EventInput(player, "x", category="finance", value=amount)
                )
            else:
                await ledger.adjust_points(rt, tenant, player, amount, "property test")
        except UserError as exc:
            assert exc.code in ("INSUFFICIENT_POINTS", "NOT_FOUND")

    await asyncio.gather(*(run(op) for op in ops))
    await assert_invariant()


async def test_concurrent_single_events_are_coalesced_and_all_applied_in_order(rt):
    """50 callers at once for one player: every event applied once, the ledger exact."""
    tenant = await create_tenant("burst", preset="callcenter")
    calls = [
        ingest.EventInput("burst", "call_completed", idempotency_key=f"k{n}") for n in range(50)
    ]
    calls.append(ingest.EventInput("burst", "call_completed", idempotency_key="k7"))  # a repeat
    outcomes = await asyncio.gather(*(ingest.record_event(rt, tenant, c) for c in calls))
    assert sum(o.points for o in outcomes if not o.duplicate) == 500  # 50 × 10
    assert [o.duplicate for o in outcomes].count(True) == 1
    balances = sorted(o.wallet.balance for o in outcomes if not o.duplicate)
    assert balances == [Decimal(10 * n) for n in range(1, 51)]  # one after another
    await assert_invariant()


async def test_one_callers_failure_does_not_fail_the_events_coalesced_with_it(rt, monkeypatch):
    """An event that breaks the shared transaction in an unforeseen way (simulated here:
    its check raises something other than a UserError) fails alone: the callers
    coalesced with it get their outcomes, and nothing of its own is written."""
    tenant = await create_tenant("isolate", preset="callcenter")
    checked = ingest.check_event

    def check(index, item, rules, now):
        if item.player_id == "boom":
            raise RuntimeError("unforeseen")
        return checked(index, item, rules, now)

    monkeypatch.setattr(ingest, "check_event", check)
    calls = [ingest.EventInput(f"ok{n}", "call_completed") for n in range(20)]
    calls.insert(7, ingest.EventInput("boom", "call_completed"))
    results = await asyncio.gather(
        *(ingest.record_event(rt, tenant, c) for c in calls), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(results[7], RuntimeError)
    assert all(r.points == 10 for r in results if not isinstance(r, BaseException))
    assert await Player.filter(tenant_id=tenant.id).count() == 20  # no "boom" player
    await assert_invariant()


async def test_concurrent_batches_share_one_transaction_each_with_its_own_results(rt, monkeypatch):
    """Batches that arrive together are applied in one transaction, in arrival order;
    each caller gets its own outcomes and errors at its own positions."""
    tenant = await create_tenant("merge", preset="callcenter")
    attempts: list[int] = []
    apply = ingest._apply

    async def counted(tenant, rules, checked, now, dry_run):
        attempts.append(len(checked))
        return await apply(tenant, rules, checked, now, dry_run)

    monkeypatch.setattr(ingest, "_apply", counted)
    calls = [
        [ingest.EventInput("m", "call_completed"), ingest.EventInput("m", "nope")],
        [ingest.EventInput("x", "nope"), ingest.EventInput("m", "lead_converted")],
        [ingest.EventInput("m", "call_completed", idempotency_key="k")],
        [
            ingest.EventInput("m", "call_completed", idempotency_key="k"),  # the same payload
            ingest.EventInput("m", "lead_converted", idempotency_key="k"),  # another one
        ],
    ]
    first, second, third, fourth = await asyncio.gather(
        *(ingest.record_events(rt, tenant, call) for call in calls)
    )
    assert attempts == [7]  # one transaction for the four calls
    assert isinstance(first[1], UserError) and isinstance(second[0], UserError)
    # One after another in arrival order: 10, then 50, then 10.
    assert [first[0].wallet.balance, second[1].wallet.balance, third[0].wallet.balance] == [
        Decimal(10),
        Decimal(60),
        Decimal(70),
    ]
    assert fourth[0].duplicate and fourth[0].event.id == third[0].event.id
    assert isinstance(fourth[1], UserError) and fourth[1].code.value == "CONFLICT"
    assert await PointTransaction.filter(player__external_id="m").count() == 3
    await assert_invariant()


async def test_calls_for_other_players_do_not_wait_for_the_transaction_in_flight(rt, monkeypatch):
    """While a transaction holds a player, a call for other players gets a transaction
    of its own at once; a call for the held player waits for it and comes after."""
    tenant = await create_tenant("lanes", preset="callcenter")
    entered, gate = asyncio.Event(), asyncio.Event()
    seen: list[list[str]] = []
    apply = ingest._apply

    async def gated(tenant, rules, checked, now, *rest):
        players = sorted({c.input.player_id for c in checked if not isinstance(c, UserError)})
        seen.append(players)
        if players == ["a"] and not gate.is_set():
            entered.set()
            await gate.wait()
        return await apply(tenant, rules, checked, now, *rest)

    monkeypatch.setattr(ingest, "_apply", gated)
    first = asyncio.create_task(
        ingest.record_events(rt, tenant, [ingest.EventInput("a", "call_completed")])
    )
    await entered.wait()  # the transaction for "a" is in flight
    later = asyncio.create_task(
        ingest.record_events(rt, tenant, [ingest.EventInput("a", "lead_converted")])
    )
    await asyncio.sleep(0)
    (other,) = await asyncio.wait_for(
        ingest.record_events(rt, tenant, [ingest.EventInput("b", "call_completed")]), 10
    )
    assert other.points == 10 and not first.done() and not later.done()
    gate.set()
    ((a1,), (a2,)) = await first, await later
    assert [a1.wallet.balance, a2.wallet.balance] == [Decimal(10), Decimal(60)]
    assert seen == [["a"], ["b"], ["a"]]
    await assert_invariant()


async def test_a_call_that_breaks_the_shared_transaction_fails_alone(rt, monkeypatch):
    """Something unforeseen fails the transaction of merged calls: each call is applied
    again alone, and only the one that breaks it fails; nothing of it is written."""
    tenant = await create_tenant("merge-fail", preset="callcenter")
    apply = ingest._apply

    attempts: list[int] = []

    async def breaks(tenant, rules, checked, now, dry_run):
        attempts.append(len(checked))
        if any(c.input.player_id == "boom" for c in checked if not isinstance(c, UserError)):
            raise RuntimeError("unforeseen")
        return await apply(tenant, rules, checked, now, dry_run)

    monkeypatch.setattr(ingest, "_apply", breaks)
    calls = [
        [ingest.EventInput(f"ok{n}", "call_completed"), ingest.EventInput("same", "call_completed")]
        for n in range(5)
    ]
    calls.insert(
        2,
        [ingest.EventInput("same", "call_completed"), ingest.EventInput("boom", "call_completed")],
    )
    results = await asyncio.gather(
        *(ingest.record_events(rt, tenant, call) for call in calls), return_exceptions=True
    )
    assert attempts == [12, 2, 2, 2, 2, 2, 2]  # all six together, then each alone
    assert isinstance(results[2], RuntimeError)
    good = [r for n, r in enumerate(results) if n != 2]
    assert all(o.points == 10 for r in good for o in r)
    assert sorted(r[1].wallet.balance for r in good) == [Decimal(10 * n) for n in range(1, 6)]
    assert not await Player.filter(tenant_id=tenant.id, external_id="boom").exists()
    await assert_invariant()


@pytest.mark.postgres
async def test_batches_racing_with_one_idempotency_key_apply_it_once(rt):
    tenant = await create_tenant("race", preset="habits")

    def batch(n):
        return [
            ingest.EventInput("r", "x", value=5, idempotency_key="same"),
            ingest.EventInput(f"other{n}", "x", value=1),
        ]

    first, second = await asyncio.gather(
        *(ingest.record_events(rt, tenant, batch(n)) for n in range(2))
    )
    flags = sorted([first[0].duplicate, second[0].duplicate])
    assert flags == [False, True]
    assert await PointTransaction.filter(player__external_id="r").count() == 1
    await assert_invariant()


@pytest.mark.postgres
async def test_concurrent_batches_over_the_same_players_neither_deadlock_nor_drift(rt):
    import random

    tenant = await create_tenant("overlap", preset="habits")
    rng = random.Random(7)

    def batch():
        players = [f"p{rng.randrange(20)}" for _ in range(60)]
        return [ingest.EventInput(p, "x", value=1) for p in players]

    results = await asyncio.gather(*(ingest.record_events(rt, tenant, batch()) for _ in range(6)))
    assert all(isinstance(o, ingest.Outcome) for batch_results in results for o in batch_results)
    assert await PointTransaction.filter(tenant=tenant).count() == 360
    await assert_invariant()


@pytest.mark.postgres
async def test_concurrent_batches_creating_and_locking_wallets_do_not_deadlock(rt):
    """Players without a wallet yet, and batches over them racing: each batch creates
    some wallets while others lock theirs. Wallets are created and locked in one
    statement, in player order, so no two batches wait on each other in a cycle."""
    import random

    from models import Player

    tenant = await create_tenant("newcomers", preset="habits")
    rng = random.Random(11)
    for round_ in range(3):
        names = [f"r{round_}-p{n}" for n in range(2000)]
        await Player.bulk_create([Player(tenant=tenant, external_id=n) for n in names])

        def batch(names=names):
            return [ingest.EventInput(rng.choice(names), "x", value=1) for _ in range(500)]

        results = await asyncio.gather(
            *(ingest.record_events(rt, tenant, batch()) for _ in range(6))
        )
        assert all(isinstance(o, ingest.Outcome) for batch_ in results for o in batch_)
    assert await PointTransaction.filter(tenant=tenant).count() == 3 * 6 * 500
    await assert_invariant()
