"""Spin & win: the tenant's wheel, its disclosed odds, and spins.

The draw is `secrets.randbelow(total weight)` mapped to a prize by the engine; every
spin is stored with that number, the prizes and weights at the time and what it won,
for audit. A spin's writes run in one transaction in the shop's lock order: the day's
budget row, then the prize item (if any), then the wallet. The day is the tenant's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.engine import periods
from app.engine import rewards as rules
from app.engine.outcome import PlayerState, apply_award
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.common import MAX_INT_ID, id_number, zone
from app.services.ledger import (
    ZERO,
    WalletView,
    _add_board_points,  # awards outside the rule pipeline count on the boards
    publish_board_scores,
    publish_level_up,
    publish_points,
)
from app.services.players import get_player, require_player
from app.services.reward_items import items_by_ids
from app.services.rewards import (
    fail,
    issue_locked,
    locked_wallet,
    player_wallet_view,
)
from app.services.rules import rules_for
from models import (
    Player,
    PointTransaction,
    RewardItem,
    Spin,
    Tenant,
    TransactionKind,
    Wallet,
    Wheel,
    WheelDay,
)

MAX_SPINS_LISTED = 200


@dataclass(frozen=True, slots=True)
class WheelView:
    wheel: Wheel
    spec: rules.WheelSpec
    odds: list[Decimal]
    rewards: dict[int, RewardItem]
    paid_out_today: Decimal

    @property
    def budget_left_today(self) -> Decimal | None:
        budget = self.spec.daily_budget
        return None if budget is None else max(budget - self.paid_out_today, ZERO)


@dataclass(frozen=True, slots=True)
class SpinResult:
    spin: Spin
    prize: rules.Prize
    wallet: WalletView | None
    duplicate: bool = False


def _spec(wheel: Wheel) -> rules.WheelSpec:
    parsed = rules.parse_wheel(
        {
            "prizes": wheel.prizes,
            "spin_cost": wheel.spin_cost,
            "free_spins_per_day": wheel.free_spins_per_day,
            "daily_budget": wheel.daily_budget,
        }
    )
    if isinstance(parsed, rules.Problem):  # stored wheels were checked when configured
        raise fail(parsed)
    return parsed


def _prize_json(prize: rules.Prize) -> dict[str, Any]:
    return {
        "label": prize.label,
        "kind": prize.kind,
        "points": None if prize.points is None else str(prize.points),
        "rewardId": prize.reward_id,
        "weight": prize.weight,
    }


def tenant_day(tenant: Tenant, now: datetime) -> date:
    return periods.local_day(now, zone(tenant.timezone))


async def configure_wheel(
    tenant: Tenant,
    *,
    prizes: list[dict[str, Any]],
    name: str = "Spin & Win",
    spin_cost: float | Decimal = 0,
    free_spins_per_day: int = 0,
    daily_budget: float | Decimal | None = None,
    active: bool = True,
) -> Wheel:
    """Create or replace the tenant's wheel (admin)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise UserError(ErrorCode.INVALID, "a wheel needs a name of 1-200 characters", "name")
    prizes = list(prizes)
    for index, prize in enumerate(prizes):
        reward_id = prize.get("rewardId")
        if isinstance(reward_id, str):
            number = id_number(reward_id, MAX_INT_ID)
            if number is None:
                raise UserError(
                    ErrorCode.NOT_FOUND, f"no reward {reward_id!r}", ["prizes", str(index)]
                )
            prizes[index] = prize = {**prize, "rewardId": number}
        if isinstance(prize.get("points"), float):  # exact cents, not binary fractions
            prizes[index] = {**prize, "points": Decimal(str(prize["points"]))}
    parsed = rules.parse_wheel(
        {
            "prizes": prizes,
            "spin_cost": Decimal(str(spin_cost)),
            "free_spins_per_day": free_spins_per_day,
            "daily_budget": None if daily_budget is None else Decimal(str(daily_budget)),
        }
    )
    if isinstance(parsed, rules.Problem):
        raise fail(parsed)
    wanted = {p.reward_id for p in parsed.prizes if p.reward_id is not None}
    found = await items_by_ids(tenant.id, sorted(wanted))
    for index, prize in enumerate(parsed.prizes):
        if prize.reward_id is not None and (
            prize.reward_id not in found or not found[prize.reward_id].active
        ):
            raise UserError(
                ErrorCode.NOT_FOUND, f"no reward {prize.reward_id}", ["prizes", str(index)]
            )
    values = {
        "name": name,
        "prizes": [_prize_json(p) for p in parsed.prizes],
        "spin_cost": parsed.spin_cost,
        "free_spins_per_day": parsed.free_spins_per_day,
        "daily_budget": parsed.daily_budget,
        "active": active,
    }
    wheel = await Wheel.get_or_none(tenant_id=tenant.id)
    if wheel is None:
        try:
            async with in_transaction():
                return await Wheel.create(tenant_id=tenant.id, **values)
        except IntegrityError:  # configured concurrently
            wheel = await Wheel.get(tenant_id=tenant.id)
    await Wheel.filter(id=wheel.id).update(**values)
    await wheel.refresh_from_db()
    return wheel


async def get_wheel(tenant: Tenant, now: datetime | None = None) -> WheelView | None:
    """The wheel as players see it: prizes, their odds, today's budget left."""
    wheel = await Wheel.get_or_none(tenant_id=tenant.id)
    if wheel is None:
        return None
    spec = _spec(wheel)
    day = tenant_day(tenant, now or datetime.now(UTC))
    row = await WheelDay.get_or_none(wheel_id=wheel.id, day=day)
    ids = sorted({p.reward_id for p in spec.prizes if p.reward_id is not None})
    return WheelView(
        wheel,
        spec,
        rules.odds(spec.prizes),
        await items_by_ids(tenant.id, ids),
        row.paid_out if row else ZERO,
    )


async def _day_row(conn: Any, wheel: Wheel, day: date) -> WheelDay:
    """The day's budget row, locked until commit: spins of one wheel queue here."""
    await WheelDay.bulk_create(
        [WheelDay(wheel_id=wheel.id, day=day)], ignore_conflicts=True, using_db=conn
    )
    row = (
        await WheelDay.filter(wheel_id=wheel.id, day=day).select_for_update().using_db(conn).first()
    )
    assert row is not None
    return row


async def spin(
    rt: Runtime,
    tenant: Tenant,
    player_id: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> SpinResult:
    now = now or datetime.now(UTC)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise UserError(ErrorCode.INVALID, "idempotencyKey is 1-200 characters", "idempotencyKey")
    wheel = await Wheel.get_or_none(tenant_id=tenant.id, active=True)
    if wheel is None:
        raise UserError(ErrorCode.NOT_FOUND, "this tenant has no active wheel", "playerId")
    player = await require_player(tenant, player_id)
    if idempotency_key is not None:
        previous = await Spin.get_or_none(tenant_id=tenant.id, idempotency_key=idempotency_key)
        if previous is not None:
            return await _replay(tenant, player, previous)
    spec = _spec(wheel)
    items = await items_by_ids(
        tenant.id, sorted({p.reward_id for p in spec.prizes if p.reward_id is not None})
    )
    costs = {i: item.points_cost for i, item in items.items()}
    biggest = max(rules.prize_value(p, costs) for p in spec.prizes)
    day = tenant_day(tenant, now)
    # A first look without locks: a clear refusal, and no lock taken for hopeless calls.
    wallet = await Wallet.get_or_none(player_id=player.id)
    spins_today = await Spin.filter(wheel_id=wheel.id, player_id=player.id, day=day).count()
    price = rules.spin_price(spec, spins_today, wallet.balance if wallet else ZERO)
    if isinstance(price, rules.Problem):
        raise fail(price)

    total = rules.total_weight(spec.prizes)
    number = secrets.randbelow(total)  # the server's cryptographic draw
    index = rules.draw(spec.prizes, number)
    prize = spec.prizes[index]
    value = rules.prize_value(prize, costs)
    point_rules = rules_for(tenant)
    try:
        async with in_transaction() as conn:
            day_row = await _day_row(conn, wheel, day)
            if not rules.budget_allows(spec.daily_budget, day_row.paid_out, biggest):
                raise UserError(
                    ErrorCode.LIMIT_REACHED, "today's prize budget is spent", "playerId"
                )
            redemption = None
            if prize.kind == "REWARD":
                item = items[prize.reward_id or 0]
                redemption, wallet = await issue_locked(
                    conn, tenant, player, item, f"wheel: {prize.label}", "wheel", now
                )
            else:
                wallet = await locked_wallet(conn, tenant, player.id)
            spins_today = await (
                Spin.filter(wheel_id=wheel.id, player_id=player.id, day=day).using_db(conn).count()
            )
            price = rules.spin_price(spec, spins_today, wallet.balance)
            if isinstance(price, rules.Problem):
                raise fail(price)
            award = None
            entries: list[tuple[str, Decimal, Decimal, str]] = []
            balance = wallet.balance
            if price.cost:
                balance -= price.cost
                entries.append(("REDEEM", -price.cost, balance, f"spin of {wheel.name}"))
            if prize.kind == "POINTS" and prize.points:
                state = PlayerState(balance, wallet.lifetime_earned, wallet.level)
                award = apply_award(
                    point_rules, state, prize.points, kind="BONUS", reason=f"won {prize.label}"
                )
                entries.extend((e.kind, e.amount, e.balance_after, e.reason) for e in award.entries)
                balance = award.state.balance
                wallet.lifetime_earned = award.state.lifetime
                wallet.level = award.state.level
            lines = [
                await PointTransaction.create(
                    tenant_id=tenant.id,
                    player_id=player.id,
                    kind=TransactionKind(kind),
                    amount=amount,
                    balance_after=after,
                    reason=reason[:200],
                    using_db=conn,
                )
                for kind, amount, after, reason in entries
            ]
            if lines:
                wallet.balance = balance
                await (
                    Wallet.filter(player_id=player.id)
                    .using_db(conn)
                    .update(
                        balance=wallet.balance,
                        lifetime_earned=wallet.lifetime_earned,
                        level=wallet.level,
                    )
                )
            scores = []
            if award is not None:
                scores = await _add_board_points(conn, tenant, player, award.entries)
            await (
                WheelDay.filter(id=day_row.id)
                .using_db(conn)
                .update(paid_out=day_row.paid_out + value, spins=day_row.spins + 1)
            )
            row = await Spin.create(
                tenant_id=tenant.id,
                wheel_id=wheel.id,
                player_id=player.id,
                day=day,
                cost=price.cost,
                free=price.free,
                draw=number,
                total_weight=total,
                prizes=[_prize_json(p) for p in spec.prizes],
                prize_index=index,
                points_won=prize.points if prize.kind == "POINTS" else ZERO,
                redemption_id=redemption.id if redemption else None,
                idempotency_key=idempotency_key,
                using_db=conn,
            )
    except IntegrityError:
        if idempotency_key is None:
            raise
        previous = await Spin.get(tenant_id=tenant.id, idempotency_key=idempotency_key)
        return await _replay(tenant, player, previous)
    view = await player_wallet_view(tenant, player, wallet)
    if lines:
        await publish_points(rt, tenant, player.external_id, lines, view)
    if award is not None:
        if scores:
            await publish_board_scores(rt, tenant, player, scores)
        if award.level_change is not None:
            await publish_level_up(
                rt, tenant, player.external_id, award.level_change, award.state.lifetime
            )
    return SpinResult(row, prize, view)


def prize_of(row: Spin) -> rules.Prize:
    return rules.Prize.model_validate(row.prizes[row.prize_index])


async def _replay(tenant: Tenant, player: Player, previous: Spin) -> SpinResult:
    if previous.player_id != player.id:  # type: ignore[attr-defined]
        raise UserError(
            ErrorCode.CONFLICT, "this idempotency key was used for another spin", "idempotencyKey"
        )
    wallet = await Wallet.get_or_none(player_id=player.id)
    view = await player_wallet_view(tenant, player, wallet)
    return SpinResult(previous, prize_of(previous), view, duplicate=True)


async def list_spins(tenant: Tenant, player_id: str | None = None, first: int = 50) -> list[Spin]:
    """The audit trail, newest first."""
    if not 0 <= first <= MAX_SPINS_LISTED:
        raise UserError(ErrorCode.INVALID, f"first is between 0 and {MAX_SPINS_LISTED}", "first")
    query = Spin.filter(tenant_id=tenant.id)
    if player_id is not None:
        player = await get_player(tenant, player_id)
        if player is None:
            return []
        query = query.filter(player_id=player.id)
    return await query.order_by("-id").limit(first)
