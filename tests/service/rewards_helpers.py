"""Factories shared by the rewards tests: funded players, items, ledger checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.services import ledger, players, reward_items
from models import PointTransaction, Redemption, RewardItem, Tenant, Wallet
from tests.service.test_ledger import assert_invariant

__all__ = ["assert_invariant", "balance", "fund", "item", "snapshot"]


async def fund(rt: Any, tenant: Tenant, player_id: str, amount: float | int) -> None:
    """The player exists and holds `amount` points (an admin award)."""
    await players.upsert_player(rt, tenant, player_id, {})
    if amount:
        await ledger.adjust_points(rt, tenant, player_id, amount, "test funds")


async def item(tenant: Tenant, cost: float | int = 100, **options: Any) -> RewardItem:
    options.setdefault("category", "DIGITAL")
    return await reward_items.create_item(
        tenant, name=options.pop("name", "Extra storage"), points_cost=cost, **options
    )


async def balance(player_id: str, tenant: Tenant | None = None) -> Decimal:
    query = Wallet.filter(player__external_id=player_id)
    if tenant is not None:
        query = query.filter(tenant_id=tenant.id)
    wallet = await query.get_or_none()
    return wallet.balance if wallet else Decimal(0)


async def snapshot() -> tuple[int, int, list[Any], list[Any]]:
    """What a refused call must leave untouched."""
    return (
        await Redemption.all().count(),
        await PointTransaction.all().count(),
        await Wallet.all().order_by("player_id").values_list("player_id", "balance"),
        await RewardItem.all().order_by("id").values_list("id", "stock"),
    )
