"""The points ledger: wallet reads, history pages, stats, admin adjustments, decay."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from app.engine import decay as decay_rules
from app.engine import levels, periods
from app.engine.outcome import (
    MAX_POINTS,
    LedgerEntry,
    LevelChange,
    OverLimit,
    PlayerState,
    apply_award,
)
from app.engine.points import cents
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.common import id_number, zone
from app.services.ingest_rows import ScoreTotal
from app.services.ingest_store import IngestStore
from app.services.players import boards_channel, player_channel, require_player
from app.services.rules import rules_for
from models import Event, Player, PlayerDay, PointTransaction, Tenant, TransactionKind, Wallet

ZERO = Decimal(0)
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class WalletView:
    balance: Decimal
    lifetime_earned: Decimal
    earned_today: Decimal
    daily_cap: Decimal | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "balance": str(self.balance),
            "lifetimeEarned": str(self.lifetime_earned),
            "earnedToday": str(self.earned_today),
            "dailyCap": None if self.daily_cap is None else str(self.daily_cap),
        }

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> WalletView:
        cap = data.get("dailyCap")
        return cls(
            Decimal(str(data["balance"])),
            Decimal(str(data["lifetimeEarned"])),
            Decimal(str(data["earnedToday"])),
            None if cap is None else Decimal(cap),
        )


def player_zone(tenant: Tenant, player: Player):
    return zone(player.timezone or tenant.timezone)


def today_for(tenant: Tenant, player: Player, now: datetime | None = None) -> date:
    return periods.local_day(now or datetime.now(UTC), player_zone(tenant, player))


def wallet_view(tenant: Tenant, wallet: Wallet | None, earned_today: Decimal) -> WalletView:
    rules = rules_for(tenant)
    level = levels.info(wallet.level if wallet else 1, rules)
    return WalletView(
        balance=wallet.balance if wallet else ZERO,
        lifetime_earned=wallet.lifetime_earned if wallet else ZERO,
        earned_today=earned_today,
        daily_cap=levels.daily_cap(rules, level),
    )


def streak_of(wallet: Wallet | None) -> StreakState:
    if wallet is None:
        return StreakState()
    return StreakState(wallet.streak_current, wallet.streak_best, wallet.last_active_day)


async def wallets_for(player_ids: Sequence[int]) -> dict[int, Wallet]:
    return {w.player_id: w for w in await Wallet.filter(player_id__in=list(player_ids))}  # type: ignore[attr-defined]


async def earned_on(pairs: Iterable[tuple[int, date]]) -> dict[tuple[int, date], Decimal]:
    """Rule points earned by each (player, day)."""
    pairs = list(pairs)
    if not pairs:
        return {}
    rows = await PlayerDay.filter(
        player_id__in={p for p, _ in pairs}, day__in={d for _, d in pairs}
    ).values_list("player_id", "day", "earned")
    return {(pid, day): earned for pid, day, earned in rows}


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


def decode_cursor(cursor: str, count: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        parts = []
    if len(parts) != count:
        raise UserError(ErrorCode.INVALID, "invalid cursor", "after")
    return parts


def _check_first(first: int) -> None:
    if first < 0 or first > MAX_PAGE:
        raise UserError(ErrorCode.INVALID, f"first must be between 0 and {MAX_PAGE}", "first")


async def transactions_page(
    player: Player, first: int, after: str | None
) -> tuple[list[PointTransaction], bool]:
    """Newest first; the cursor is the transaction id."""
    _check_first(first)
    query = PointTransaction.filter(player_id=player.id)
    if after:
        (last_id,) = decode_cursor(after, 1)
        number = id_number(last_id)
        if number is None:
            raise UserError(ErrorCode.INVALID, "invalid cursor", "after")
        query = query.filter(id__lt=number)
    rows = await query.order_by("-id").limit(first + 1)
    return rows[:first], len(rows) > first


async def events_page(player: Player, first: int, after: str | None) -> tuple[list[Event], bool]:
    """Newest occurrence first; the cursor is (occurred_at, id)."""
    _check_first(first)
    query = Event.filter(player_id=player.id)
    if after:
        when, event_id = decode_cursor(after, 2)
        try:
            at, eid = datetime.fromisoformat(when), uuid.UUID(event_id)
        except ValueError:
            raise UserError(ErrorCode.INVALID, "invalid cursor", "after") from None
        from tortoise.expressions import Q

        query = query.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=eid))
    rows = await query.order_by("-occurred_at", "-id").limit(first + 1)
    return rows[:first], len(rows) > first


@dataclass(frozen=True, slots=True)
class Stats:
    total_events: int
    events_by_category: dict[str, int]
    points_by_category: dict[str, float]


async def stats_for(player_ids: Sequence[int]) -> dict[int, Stats]:
    rows = (
        await Event.filter(player_id__in=list(player_ids))
        .annotate(n=Count("id"), points=Sum("points_awarded"))
        .group_by("player_id", "category")
        .values("player_id", "category", "n", "points")
    )
    out: dict[int, Stats] = {pid: Stats(0, {}, {}) for pid in player_ids}
    for row in rows:
        stats = out[row["player_id"]]
        category = row["category"] or "uncategorised"
        stats.events_by_category[category] = row["n"]
        stats.points_by_category[category] = float(Decimal(str(row["points"] or 0)))
        out[row["player_id"]] = Stats(
            stats.total_events + row["n"], stats.events_by_category, stats.points_by_category
        )
    return out


def parse_amount(value: float | Decimal, field: str = "amount") -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise UserError(ErrorCode.INVALID, "not a number", field) from None
    if not amount.is_finite():
        raise UserError(ErrorCode.INVALID, "must be a finite number", field)
    if abs(amount) >= MAX_POINTS:
        raise UserError(ErrorCode.INVALID, f"must be below {MAX_POINTS:,.0f}", field)
    if amount != cents(amount):
        raise UserError(ErrorCode.INVALID, "points have at most 2 decimal places", field)
    return amount


@dataclass(frozen=True, slots=True)
class Adjustment:
    transaction: PointTransaction
    wallet: WalletView
    duplicate: bool


async def adjust_points(
    rt: Runtime,
    tenant: Tenant,
    player_id: str,
    amount: float,
    reason: str,
    idempotency_key: str | None = None,
) -> Adjustment:
    """An admin award (+) or revocation (-). Awards count toward lifetime points; the
    balance never goes below zero."""
    value = parse_amount(amount)
    if value == 0:
        raise UserError(ErrorCode.INVALID, "an adjustment is not zero", "amount")
    if not reason.strip() or len(reason) > 200:
        raise UserError(ErrorCode.INVALID, "give a reason of 1-200 characters", "reason")
    player = await require_player(tenant, player_id)
    if idempotency_key:
        previous = await PointTransaction.get_or_none(
            tenant=tenant, idempotency_key=idempotency_key
        )
        if previous is not None:
            return await _replay_adjustment(tenant, player, previous, value, reason)
    rules = rules_for(tenant)
    try:
        async with in_transaction() as conn:
            wallet = await _locked_wallet(tenant, player, conn)
            state = PlayerState(wallet.balance, wallet.lifetime_earned, wallet.level)
            if wallet.balance + value < 0:
                raise UserError(
                    ErrorCode.INSUFFICIENT_POINTS,
                    f"the balance is {wallet.balance}; cannot take {-value}",
                    "amount",
                )
            try:
                award = apply_award(rules, state, value, kind="ADJUST", reason=reason.strip())
            except OverLimit as exc:
                raise UserError(ErrorCode.LIMIT_REACHED, str(exc), "amount") from None
            wallet.balance = award.state.balance
            wallet.lifetime_earned = award.state.lifetime
            wallet.level = award.state.level
            await wallet.save(using_db=conn, update_fields=["balance", "lifetime_earned", "level"])
            rows = [
                PointTransaction(
                    tenant=tenant,
                    player=player,
                    kind=TransactionKind(entry.kind),
                    amount=entry.amount,
                    balance_after=entry.balance_after,
                    reason=entry.reason,
                    idempotency_key=idempotency_key if i == 0 else None,
                )
                for i, entry in enumerate(award.entries)
            ]
            for tx in rows:  # a handful at most: the adjustment and any level-up bonuses
                await tx.save(using_db=conn)
            row = rows[0]
            scores = await _add_board_points(conn, tenant, player, award.entries)
    except IntegrityError:
        if not idempotency_key:
            raise
        previous = await PointTransaction.get(tenant=tenant, idempotency_key=idempotency_key)
        return await _replay_adjustment(tenant, player, previous, value, reason)
    today = today_for(tenant, player)
    earned = (await earned_on([(player.id, today)])).get((player.id, today), ZERO)
    view = wallet_view(tenant, wallet, earned)
    await publish_points(rt, tenant, player.external_id, rows, view)
    if scores:
        await publish_board_scores(rt, tenant, player, scores)
    if award.level_change is not None:
        await publish_level_up(
            rt, tenant, player.external_id, award.level_change, award.state.lifetime
        )
    return Adjustment(row, view, duplicate=False)


async def _replay_adjustment(
    tenant: Tenant, player: Player, previous: PointTransaction, value: Decimal, reason: str
) -> Adjustment:
    if (
        previous.player_id != player.id
        or previous.amount != value
        or previous.reason != reason.strip()
    ):  # type: ignore[attr-defined]
        raise UserError(
            ErrorCode.CONFLICT,
            "this idempotency key was used for another adjustment",
            "idempotencyKey",
        )
    wallet = await Wallet.get_or_none(player_id=player.id)
    today = today_for(tenant, player)
    earned = (await earned_on([(player.id, today)])).get((player.id, today), ZERO)
    return Adjustment(previous, wallet_view(tenant, wallet, earned), duplicate=True)


async def _locked_wallet(tenant: Tenant, player: Player, conn) -> Wallet:
    wallet = await Wallet.filter(player_id=player.id).select_for_update().using_db(conn).first()
    if wallet is None:
        await Wallet.bulk_create(
            [Wallet(player_id=player.id, tenant_id=tenant.id)],
            ignore_conflicts=True,
            using_db=conn,
        )
        wallet = await Wallet.filter(player_id=player.id).select_for_update().using_db(conn).first()
    assert wallet is not None
    return wallet


def transaction_json(row: PointTransaction) -> dict[str, object]:
    return {
        "id": str(row.id),
        "kind": row.kind.value if isinstance(row.kind, TransactionKind) else str(row.kind),
        "amount": str(row.amount),
        "balanceAfter": str(row.balance_after),
        "reason": row.reason,
        "eventId": str(row.event_id) if row.event_id else None,  # type: ignore[attr-defined]
        "createdAt": (row.created_at or datetime.now(UTC)).isoformat(),
    }


async def publish_points(
    rt: Runtime,
    tenant: Tenant,
    player_id: str,
    rows: Sequence[PointTransaction],
    wallet: WalletView,
) -> None:
    channel = player_channel(tenant.id, player_id, "points")
    encoded = wallet.as_json()
    await rt.hub.publish_many([(channel, points_json(player_id, row, encoded)) for row in rows])


async def _add_board_points(
    conn: Any, tenant: Tenant, player: Player, entries: Sequence[LedgerEntry]
) -> list[ScoreTotal]:
    """Awards outside the rule pipeline count on the leaderboards of today's periods;
    returns the period score rows as they now stand."""
    if not rules_for(tenant).leaderboards:
        return []
    now = datetime.now(UTC)
    scores = periods.board_increments(
        [(player.id, now, [(e.kind, e.amount) for e in entries])], zone(tenant.timezone)
    )
    if not scores:
        return []
    store = IngestStore(conn, postgres=conn.capabilities.dialect == "postgres")
    rows = [[tenant.id, *key, points] for key, points in scores.items()]
    return await store.add_scores(rows, now)


async def publish_board_scores(
    rt: Runtime, tenant: Tenant, player: Player, scores: Sequence[ScoreTotal]
) -> None:
    """After commit: the Redis boards take the new scores, then live boards look again."""
    if rt.boards is not None:
        hidden = {player.id} if player.hidden_from_boards else set()
        await rt.boards.apply_scores(tenant.id, tenant.timezone, scores, hidden)
    await rt.hub.publish(boards_channel(tenant.id), {"changed": True})


def level_up_json(
    player_id: str, from_level: int, to_level: int, lifetime: Decimal, bonus: Decimal
) -> dict[str, object]:
    """The levelUp message, the same from every path that levels a player up."""
    return {
        "playerId": player_id,
        "from": from_level,
        "to": to_level,
        "lifetime": str(lifetime),
        "bonus": str(bonus),
    }


def points_json(player_id: str, row: Any, wallet: dict[str, Any]) -> dict[str, object]:
    """The pointsChanged message for one ledger line (wallet encoded once per batch)."""
    return {
        "playerId": player_id,
        "amount": str(row.amount),
        "wallet": wallet,
        "transaction": transaction_json(row),
    }


async def publish_level_up(
    rt: Runtime, tenant: Tenant, player_id: str, change: LevelChange, lifetime: Decimal
) -> None:
    await rt.hub.publish(
        player_channel(tenant.id, player_id, "level"),
        level_up_json(player_id, change.from_level, change.to_level, lifetime, change.bonus),
    )


@dataclass(frozen=True, slots=True)
class DecayRun:
    players: int
    points: Decimal


async def run_decay(rt: Runtime, tenant: Tenant, now: datetime | None = None) -> DecayRun:
    """Decays every inactive balance that is due; running it twice decays nothing more."""
    rules = rules_for(tenant)
    if rules.decay is None:
        return DecayRun(0, ZERO)
    now = now or datetime.now(UTC)
    candidates = await Wallet.filter(tenant_id=tenant.id, balance__gt=0).values_list(
        "player_id", "last_event_at", "decayed_at"
    )
    due = [
        pid
        for pid, last, decayed in candidates
        if decay_rules.is_due(rules.decay, last, decayed, now)
    ]
    total, count = ZERO, 0
    for pid in due:
        async with in_transaction() as conn:
            wallet = await Wallet.filter(player_id=pid).select_for_update().using_db(conn).first()
            if wallet is None or not decay_rules.is_due(
                rules.decay, wallet.last_event_at, wallet.decayed_at, now
            ):
                continue
            amount = decay_rules.amount(rules.decay, wallet.balance)
            wallet.decayed_at = now
            if amount:
                wallet.balance -= amount
            await wallet.save(using_db=conn, update_fields=["balance", "decayed_at"])
            if not amount:
                continue
            row = await PointTransaction.create(
                tenant_id=tenant.id,
                player_id=pid,
                kind=TransactionKind.DECAY,
                amount=-amount,
                balance_after=wallet.balance,
                reason=f"{rules.decay.percent} % decay after "
                f"{rules.decay.after_days} inactive days",
                using_db=conn,
            )
        player = await Player.get(id=pid)
        await publish_points(
            rt, tenant, player.external_id, [row], wallet_view(tenant, wallet, ZERO)
        )
        total += amount
        count += 1
    return DecayRun(count, total)
