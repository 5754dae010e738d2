"""A hypothesis state machine over earn / redeem / approve / reject / cancel / complete:
after every step the ledger sums to each balance, no balance or stock is negative,
and stock plus what is held equals what the shop started with.

Hypothesis drives the machine from a worker thread; each step runs on the test's event
loop (where the app and the ORM live) and the thread waits for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from app.errors import UserError
from app.services import ingest, rewards
from app.services.tenants import create_tenant
from models import Redemption, RewardItem
from tests.service.rewards_helpers import assert_invariant, balance, fund, item

PLAYERS = ["p1", "p2", "p3"]
STOCK = {"mug": 4, "voucher": None, "ticket": 2}


def make_machine(rt: Any, loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    class Shop(RuleBasedStateMachine):
        redemptions = Bundle("redemptions")

        @initialize()
        def open_shop(self) -> None:
            async def setup() -> tuple[Any, dict[str, int]]:
                tenant = await create_tenant(f"st-{uuid.uuid4().hex[:8]}", preset="habits")
                for pid in PLAYERS:
                    await fund(rt, tenant, pid, 100)
                items = {
                    "mug": await item(tenant, 30, stock=4, requires_approval=True),
                    "voucher": await item(tenant, 12.5),
                    "ticket": await item(tenant, 45, stock=2, per_player_limit=1, expiry_days=3),
                }
                return tenant, {name: row.id for name, row in items.items()}

            self.tenant, self.items = run(setup())
            self.status: dict[int, str] = {}

        @rule(player=st.sampled_from(PLAYERS), value=st.integers(min_value=1, max_value=100))
        def earn(self, player: str, value: int) -> None:
            event = ingest.EventInput(player, "x", category="finance", value=value)
            run(ingest.record_event(rt, self.tenant, event))

        @rule(
            target=redemptions,
            player=st.sampled_from(PLAYERS),
            name=st.sampled_from(sorted(STOCK)),
            quantity=st.integers(min_value=0, max_value=3),
        )
        def redeem(self, player: str, name: str, quantity: int) -> Any:
            before = run(balance(player, self.tenant))
            try:
                result = run(rewards.redeem(rt, self.tenant, player, self.items[name], quantity))
            except UserError as exc:
                assert exc.code in (
                    "INVALID",
                    "INSUFFICIENT_POINTS",
                    "OUT_OF_STOCK",
                    "LIMIT_REACHED",
                ), exc.message
                assert run(balance(player, self.tenant)) == before  # a refusal spends nothing
                return multiple()
            r = result.redemption
            assert result.wallet.balance == before - r.points_spent >= 0
            self.status[r.id] = str(r.status)
            return r.id

        def _step(self, rid: int, call: Any, allowed_from: set[str], to: str) -> None:
            try:
                result = run(call(rt, self.tenant, rid))
            except UserError as exc:
                assert exc.code == "INVALID_TRANSITION"
                assert self.status[rid] not in allowed_from
                return
            assert self.status[rid] in allowed_from
            self.status[rid] = to
            assert str(result.redemption.status) == to

        @rule(rid=redemptions)
        def approve(self, rid: int) -> None:
            self._step(rid, rewards.approve, {"PENDING"}, "FULFILLED")

        @rule(rid=redemptions)
        def reject(self, rid: int) -> None:
            self._step(rid, rewards.reject, {"PENDING", "APPROVED"}, "REJECTED")

        @rule(rid=redemptions)
        def refund_by_cancelling(self, rid: int) -> None:
            self._step(rid, rewards.cancel, {"PENDING"}, "CANCELLED")

        @rule(rid=redemptions)
        def complete(self, rid: int) -> None:
            self._step(rid, rewards.complete, {"FULFILLED"}, "COMPLETED")

        @invariant()
        def ledger_and_stock_agree(self) -> None:
            if not hasattr(self, "tenant"):
                return

            async def check() -> None:
                await assert_invariant()
                for name, initial in STOCK.items():
                    row = await RewardItem.get(id=self.items[name])
                    held = sum(
                        r.quantity
                        for r in await Redemption.filter(reward_id=row.id)
                        if r.status not in ("REJECTED", "CANCELLED")
                    )
                    if initial is None:
                        assert row.stock is None
                    else:
                        assert row.stock == initial - held >= 0, (name, row.stock, held)
                stored = dict(
                    await Redemption.filter(tenant_id=self.tenant.id).values_list("id", "status")
                )
                assert stored == self.status

            run(check())

    return Shop


async def test_the_ledger_invariant_holds_after_every_step(rt):
    machine = make_machine(rt, asyncio.get_running_loop())
    config = settings(
        max_examples=20,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
