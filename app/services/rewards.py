"""The rewards shop: redemptions and their flow, offers issued at cost 0, expiry (the
items themselves: app.services.reward_items).

Every write that spends or returns points or stock runs in one transaction, in one
lock order: the redemption row, then the item row, then the wallet row. Stock is taken
with a conditional UPDATE (`stock >= q`); the wallet is locked (FOR UPDATE) and the
engine decides under the lock; CHECK constraints on both are the backstop. Subscribers
hear about spends and refunds only after commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from app.engine import rewards as rules
from app.errors import ErrorCode, Forbidden, UserError
from app.runtime import Runtime
from app.services.common import id_number
from app.services.ledger import (
    ZERO,
    WalletView,
    earned_on,
    publish_points,
    today_for,
    wallet_view,
)
from app.services.players import get_player, require_player
from app.services.reward_items import MAX_LIST, require_item, terms
from models import (
    Player,
    PointTransaction,
    Redemption,
    RedemptionStatus,
    RewardCode,
    RewardItem,
    Tenant,
    TransactionKind,
    Wallet,
)


def fail(problem: rules.Problem) -> UserError:
    return UserError(ErrorCode(problem.code), problem.message, problem.field)


@dataclass(frozen=True, slots=True)
class RedemptionResult:
    redemption: Redemption
    wallet: WalletView | None = None
    duplicate: bool = False


async def redemptions_by_ids(tenant_id: int, ids: Sequence[int]) -> dict[int, Redemption]:
    return {r.id: r for r in await Redemption.filter(tenant_id=tenant_id, id__in=list(ids))}


# ------------------------------------------------------------------ redeeming


async def _held(player_pk: int, item_id: int, conn: Any = None) -> int:
    """Quantity of the item the player redeemed so far (rejected and cancelled aside)."""
    query = Redemption.filter(
        player_id=player_pk, reward_id=item_id, status__in=sorted(rules.HOLDING)
    )
    if conn is not None:
        query = query.using_db(conn)
    total = await query.annotate(n=Sum("quantity")).first().values_list("n", flat=True)
    return int(total or 0)


async def locked_wallet(conn: Any, tenant: Tenant, player_pk: int) -> Wallet:
    """The player's wallet, locked until commit (created first if missing)."""
    wallet = await Wallet.filter(player_id=player_pk).select_for_update().using_db(conn).first()
    if wallet is None:
        await Wallet.bulk_create(
            [Wallet(player_id=player_pk, tenant_id=tenant.id)], ignore_conflicts=True, using_db=conn
        )
        wallet = await Wallet.filter(player_id=player_pk).select_for_update().using_db(conn).first()
    assert wallet is not None
    return wallet


async def _take_stock(conn: Any, item: RewardItem, quantity: int) -> None:
    """The conditional update: the stock never goes below zero, whoever races."""
    if item.stock is None and not item.uses_code_pool:
        return
    taken = (
        await RewardItem.filter(id=item.id, stock__gte=quantity)
        .using_db(conn)
        .update(stock=F("stock") - quantity)
    )
    if not taken:
        raise UserError(ErrorCode.OUT_OF_STOCK, f"{item.name} is out of stock", "rewardId")


async def _return_stock(conn: Any, item_id: int, quantity: int) -> None:
    await (
        RewardItem.filter(id=item_id, stock__isnull=False)
        .using_db(conn)
        .update(stock=F("stock") + quantity)
    )


async def _issue_code(conn: Any, item: RewardItem, redemption: Redemption | None) -> str:
    """A pool code claimed for this redemption, or a fresh unguessable one."""
    if item.uses_code_pool:
        assert redemption is not None
        row = (
            await RewardCode.filter(reward_id=item.id, redemption_id=None)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .using_db(conn)
            .first()
        )
        if row is None:
            raise UserError(ErrorCode.OUT_OF_STOCK, "the pool of codes is empty", "id")
        await RewardCode.filter(id=row.id).using_db(conn).update(redemption_id=redemption.id)
        return row.code
    return rules.format_code(item.code_prefix, secrets.token_bytes(rules.CODE_BYTES))


async def _fulfil(conn: Any, item: RewardItem, redemption: Redemption, now: datetime) -> None:
    code = await _issue_code(conn, item, redemption)
    expires = rules.code_expiry(now, item.expiry_days)
    await (
        Redemption.filter(id=redemption.id)
        .using_db(conn)
        .update(status=RedemptionStatus.FULFILLED, code=code, expires_at=expires, updated_at=now)
    )
    redemption.status, redemption.code, redemption.expires_at = (
        RedemptionStatus.FULFILLED,
        code,
        expires,
    )
    redemption.updated_at = now


async def _new_redemption(
    conn: Any,
    tenant: Tenant,
    player: Player,
    item: RewardItem,
    *,
    quantity: int,
    cost: Decimal,
    fulfilled: bool,
    source: str,
    key: str | None,
    now: datetime,
    reason: str | None = None,
) -> Redemption:
    """PENDING, or FULFILLED with its code (a generated one goes in with the insert)."""
    generated = fulfilled and not item.uses_code_pool
    redemption = await Redemption.create(
        tenant_id=tenant.id,
        player_id=player.id,
        reward_id=item.id,
        quantity=quantity,
        points_spent=cost,
        status=RedemptionStatus.FULFILLED if generated else RedemptionStatus.PENDING,
        code=await _issue_code(conn, item, None) if generated else None,
        expires_at=rules.code_expiry(now, item.expiry_days) if generated else None,
        source=source,
        reason=reason,
        idempotency_key=key,
        using_db=conn,
    )
    if fulfilled and item.uses_code_pool:  # the pool's code points at the redemption
        await _fulfil(conn, item, redemption, now)
    return redemption


async def _move_points(
    conn: Any,
    tenant: Tenant,
    wallet: Wallet,
    amount: Decimal,
    kind: TransactionKind,
    reason: str,
) -> PointTransaction | None:
    """One ledger line and the wallet's new balance, under the wallet's lock."""
    if not amount:
        return None
    wallet.balance += amount
    await Wallet.filter(player_id=wallet.player_id).using_db(conn).update(balance=wallet.balance)  # type: ignore[attr-defined]
    return await PointTransaction.create(
        tenant_id=tenant.id,
        player_id=wallet.player_id,  # type: ignore[attr-defined]
        kind=kind,
        amount=amount,
        balance_after=wallet.balance,
        reason=reason[:200],
        using_db=conn,
    )


async def player_wallet_view(tenant: Tenant, player: Player, wallet: Wallet | None) -> WalletView:
    today = today_for(tenant, player)
    earned = (await earned_on([(player.id, today)])).get((player.id, today), ZERO)
    return wallet_view(tenant, wallet, earned)


def _check_key(key: str | None) -> str | None:
    if key is not None and not 1 <= len(key) <= 200:
        raise UserError(ErrorCode.INVALID, "idempotencyKey is 1-200 characters", "idempotencyKey")
    return key


async def redeem(
    rt: Runtime,
    tenant: Tenant,
    player_id: str,
    reward_id: str | int,
    quantity: int = 1,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> RedemptionResult:
    """Spend points on a reward: PENDING when it needs approval, else FULFILLED with a
    code. The same key with the same request returns the first result."""
    now = now or datetime.now(UTC)
    key = _check_key(idempotency_key)
    item = await require_item(tenant, reward_id)
    player = await require_player(tenant, player_id)
    if key is not None:
        previous = await Redemption.get_or_none(tenant_id=tenant.id, idempotency_key=key)
        if previous is not None:
            return await _replay(tenant, player, item, quantity, previous)
    # What needs no player state is refused before any lock; the rest is decided under
    # the locks (stock by its conditional UPDATE, then the wallet's row lock).
    problem = rules.quantity_problem(terms(item), quantity) or rules.window_problem(
        terms(item), now
    )
    if problem:
        raise fail(problem)
    cost = rules.total_cost(terms(item), quantity)
    try:
        async with in_transaction() as conn:
            await _take_stock(conn, item, quantity)
            wallet = await locked_wallet(conn, tenant, player.id)
            held = await _held(player.id, item.id, conn) if item.per_player_limit else 0
            standing = rules.Standing(wallet.balance, wallet.level, held)
            # The same rules again, under the lock: this decides (stock was taken above).
            problem = rules.redeem_problem(terms(item, with_stock=False), standing, quantity, now)
            if problem:
                raise fail(problem)
            redemption = await _new_redemption(
                conn,
                tenant,
                player,
                item,
                quantity=quantity,
                cost=cost,
                fulfilled=not item.requires_approval,
                source="shop",
                key=key,
                now=now,
            )
            line = await _move_points(
                conn,
                tenant,
                wallet,
                -cost,
                TransactionKind.REDEEM,
                f"redeemed {quantity} × {item.name} (#{redemption.id})",
            )
    except IntegrityError:
        if key is None:
            raise
        # A call with the same key committed first: replay it.
        previous = await Redemption.get(tenant_id=tenant.id, idempotency_key=key)
        return await _replay(tenant, player, item, quantity, previous)
    view = await player_wallet_view(tenant, player, wallet)
    if line is not None:
        await publish_points(rt, tenant, player.external_id, [line], view)
    return RedemptionResult(redemption, view)


async def _replay(
    tenant: Tenant, player: Player, item: RewardItem, quantity: int, previous: Redemption
) -> RedemptionResult:
    same = (
        previous.player_id == player.id  # type: ignore[attr-defined]
        and previous.reward_id == item.id  # type: ignore[attr-defined]
        and previous.quantity == quantity
    )
    if not same:
        raise UserError(
            ErrorCode.CONFLICT,
            "this idempotency key was used for another redemption",
            "idempotencyKey",
        )
    wallet = await Wallet.get_or_none(player_id=player.id)
    return RedemptionResult(
        previous, await player_wallet_view(tenant, player, wallet), duplicate=True
    )


async def issue_offer(
    rt: Runtime,
    tenant: Tenant,
    player_id: str,
    reward_id: str | int,
    reason: str,
    *,
    idempotency_key: str | None = None,
    source: str = "offer",
    now: datetime | None = None,
) -> RedemptionResult:
    """A reward given, not bought (a mission's or campaign's offer): a FULFILLED
    redemption of cost 0 with its code. The stock and the per-player limit still hold;
    the price, approval, level and window do not (the caller decided eligibility)."""
    now = now or datetime.now(UTC)
    key = _check_key(idempotency_key)
    reason = reason.strip()
    if not 1 <= len(reason) <= 200:
        raise UserError(ErrorCode.INVALID, "give a reason of 1-200 characters", "reason")
    item = await require_item(tenant, reward_id)
    player = await require_player(tenant, player_id)
    if key is not None:
        previous = await Redemption.get_or_none(tenant_id=tenant.id, idempotency_key=key)
        if previous is not None:
            return await _replay(tenant, player, item, 1, previous)
    try:
        async with in_transaction() as conn:
            redemption, wallet = await issue_locked(
                conn, tenant, player, item, reason, source, now, key
            )
    except IntegrityError:
        if key is None:
            raise
        previous = await Redemption.get(tenant_id=tenant.id, idempotency_key=key)
        return await _replay(tenant, player, item, 1, previous)
    return RedemptionResult(redemption, await player_wallet_view(tenant, player, wallet))


async def issue_locked(
    conn: Any,
    tenant: Tenant,
    player: Player,
    item: RewardItem,
    reason: str,
    source: str,
    now: datetime,
    key: str | None = None,
    wallet: Wallet | None = None,
) -> tuple[Redemption, Wallet]:
    """Inside the caller's transaction (item, then wallet, locked in that order)."""
    if not item.active:
        raise UserError(ErrorCode.NOT_FOUND, "this reward is no longer offered", "rewardId")
    await _take_stock(conn, item, 1)
    if wallet is None:
        wallet = await locked_wallet(conn, tenant, player.id)
    held = await _held(player.id, item.id, conn) if item.per_player_limit else 0
    problem = rules.limit_problem(terms(item), held, 1)
    if problem:
        raise fail(problem)
    redemption = await _new_redemption(
        conn,
        tenant,
        player,
        item,
        quantity=1,
        cost=ZERO,
        fulfilled=True,
        source=source,
        key=key,
        now=now,
        reason=reason[:200],
    )
    return redemption, wallet


# ------------------------------------------------------------------ the flow


async def require_redemption(tenant: Tenant, redemption_id: str | int) -> Redemption:
    row = None
    number = id_number(redemption_id)
    if number is not None:
        row = await Redemption.get_or_none(id=number, tenant_id=tenant.id)
    if row is None:
        raise UserError(ErrorCode.NOT_FOUND, f"no redemption {redemption_id!r}", "id")
    return row


async def _owned(tenant: Tenant, redemption_id: str | int, as_player: str | None) -> Redemption:
    """The redemption; a player token may act only on its own (a top-level error)."""
    row = await require_redemption(tenant, redemption_id)
    if as_player is not None:
        owner = await Player.get(id=row.player_id)  # type: ignore[attr-defined]
        if owner.external_id != as_player:
            raise Forbidden("a player token acts only on its own redemptions")
    return row


async def _moved(conn: Any, row: Redemption, target: str, **changes: Any) -> bool:
    """The status changes only if nobody changed it first (a conditional UPDATE)."""
    stamp = datetime.now(UTC)
    done = (
        await Redemption.filter(id=row.id, status__in=sorted(rules.sources_of(target)))
        .using_db(conn)
        .update(status=RedemptionStatus(target), updated_at=stamp, **changes)
    )
    if done:
        row.updated_at = stamp
    return bool(done)


async def _current_problem(row: Redemption, target: str) -> UserError:
    await row.refresh_from_db(fields=["status"])
    return fail(
        rules.transition_problem(str(row.status), target)
        or rules.Problem("INVALID_TRANSITION", f"the redemption is {row.status} now", "id")
    )


async def approve(
    rt: Runtime, tenant: Tenant, redemption_id: str | int, now: datetime | None = None
) -> RedemptionResult:
    """PENDING -> APPROVED -> FULFILLED: the code is issued in the same transaction."""
    now = now or datetime.now(UTC)
    row = await require_redemption(tenant, redemption_id)
    problem = rules.transition_problem(str(row.status), rules.APPROVED, rules.FULFILLED)
    if problem:
        raise fail(problem)
    item = await RewardItem.get(id=row.reward_id)  # type: ignore[attr-defined]
    async with in_transaction() as conn:
        if not await _moved(conn, row, rules.APPROVED):
            raise await _current_problem(row, rules.APPROVED)
        await _fulfil(conn, item, row, now)
    return RedemptionResult(row)


async def reject(
    rt: Runtime, tenant: Tenant, redemption_id: str | int, reason: str | None = None
) -> RedemptionResult:
    """The points come back (a REFUND line) and so does the stock."""
    if reason is not None and len(reason) > 200:
        raise UserError(ErrorCode.INVALID, "a reason is at most 200 characters", "reason")
    row = await require_redemption(tenant, redemption_id)
    return await _refund(rt, tenant, row, rules.REJECTED, reason or None)


async def cancel(
    rt: Runtime, tenant: Tenant, redemption_id: str | int, as_player: str | None = None
) -> RedemptionResult:
    """The player takes it back before approval: points and stock come back."""
    row = await _owned(tenant, redemption_id, as_player)
    return await _refund(rt, tenant, row, rules.CANCELLED, None)


async def _refund(
    rt: Runtime, tenant: Tenant, row: Redemption, target: str, reason: str | None
) -> RedemptionResult:
    problem = rules.transition_problem(str(row.status), target)
    if problem:
        raise fail(problem)
    player = await Player.get(id=row.player_id)  # type: ignore[attr-defined]
    item = await RewardItem.get(id=row.reward_id)  # type: ignore[attr-defined]
    changes: dict[str, Any] = {"reason": reason} if reason is not None else {}
    async with in_transaction() as conn:
        if not await _moved(conn, row, target, **changes):
            raise await _current_problem(row, target)
        await _return_stock(conn, item.id, row.quantity)
        wallet = await locked_wallet(conn, tenant, player.id)
        verb = "rejected" if target == rules.REJECTED else "cancelled"
        line = await _move_points(
            conn,
            tenant,
            wallet,
            row.points_spent,
            TransactionKind.REFUND,
            f"{verb}: {row.quantity} × {item.name} (#{row.id})",
        )
    row.status = RedemptionStatus(target)
    if reason is not None:
        row.reason = reason
    view = await player_wallet_view(tenant, player, wallet)
    if line is not None:
        await publish_points(rt, tenant, player.external_id, [line], view)
    return RedemptionResult(row, view)


async def complete(
    rt: Runtime,
    tenant: Tenant,
    redemption_id: str | int,
    as_player: str | None = None,
    now: datetime | None = None,
) -> RedemptionResult:
    """The player marks the fulfilled code used (not once it has expired)."""
    now = now or datetime.now(UTC)
    row = await _owned(tenant, redemption_id, as_player)
    problem = rules.completion_problem(str(row.status), row.expires_at, now)
    if problem:
        raise fail(problem)
    done = (
        await Redemption.filter(id=row.id, status=RedemptionStatus.FULFILLED)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .update(status=RedemptionStatus.COMPLETED, updated_at=now)
    )
    if not done:
        await row.refresh_from_db(fields=["status", "expires_at"])
        raise fail(
            rules.completion_problem(str(row.status), row.expires_at, now)
            or rules.Problem("INVALID_TRANSITION", f"the redemption is {row.status} now", "id")
        )
    row.status, row.updated_at = RedemptionStatus.COMPLETED, now
    return RedemptionResult(row)


async def expire_codes(tenant: Tenant | None = None, now: datetime | None = None) -> int:
    """FULFILLED redemptions whose code has expired become EXPIRED; running it twice
    changes nothing more. No refund: the code was issued."""
    now = now or datetime.now(UTC)
    query = Redemption.filter(status=RedemptionStatus.FULFILLED, expires_at__lte=now)
    if tenant is not None:
        query = query.filter(tenant_id=tenant.id)
    return await query.update(status=RedemptionStatus.EXPIRED, updated_at=now)


async def list_redemptions(
    tenant: Tenant,
    player_id: str | None = None,
    status: RedemptionStatus | None = None,
    first: int = 100,
) -> list[Redemption]:
    """Newest first."""
    if not 0 <= first <= MAX_LIST:
        raise UserError(ErrorCode.INVALID, f"first is between 0 and {MAX_LIST}", "first")
    query = Redemption.filter(tenant_id=tenant.id)
    if player_id is not None:
        player = await get_player(tenant, player_id)
        if player is None:
            return []
        query = query.filter(player_id=player.id)
    if status is not None:
        query = query.filter(status=status)
    return await query.order_by("-id").limit(first)
