"""Events in, points out: one code path for one event, a batch, a preview and a
normalised record.

A batch is checked item by item (a bad item is reported and skipped), then in one
transaction the players' wallets are locked in id order, the engine computes every
outcome in memory, and the writes go out in a few bulk statements. Subscribers hear
about it only after commit. Nothing is written or published for a preview.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.transactions import in_transaction

from app.engine import levels
from app.engine.outcome import EventFacts, PlayerFacts, PlayerState, apply_event
from app.engine.periods import local_day
from app.engine.points import PointsLine
from app.engine.rules import PointRules
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.common import check_external_id, zone
from app.services.ledger import WalletView, publish_points, transaction_json, wallet_view
from app.services.players import player_channel
from app.services.rules import rules_for
from models import Event, Player, PlayerDay, PointTransaction, Tenant, TransactionKind, Wallet

MAX_BATCH = 1000
MAX_METADATA_BYTES = 16 * 1024
STREAK_HISTORY_DAYS = 400
ZERO = Decimal(0)


@dataclass(slots=True)
class EventInput:
    player_id: str
    event_type: str
    category: str | None = None
    value: float | Decimal | None = 1
    occurred_at: datetime | None = None
    source: str | None = "api"
    metadata: Any = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class LevelUpView:
    from_level: int
    to_level: int
    level: levels.LevelInfo
    lifetime: Decimal
    bonus: Decimal


@dataclass(slots=True)
class Outcome:
    event: Event | None
    duplicate: bool
    points: Decimal
    lines: list[PointsLine]
    wallet: WalletView | None
    level_up: LevelUpView | None
    transactions: list[PointTransaction] = field(default_factory=list)


@dataclass(slots=True)
class _Item:
    index: int
    input: EventInput
    value: Decimal
    occurred_at: datetime
    metadata: dict[str, Any]
    source: str
    payload_hash: str
    key: str | None
    duplicate_of: int | None = None  # an earlier item of the batch with the same key


# ------------------------------------------------------------------ checking input


def _value(raw: float | Decimal | None) -> Decimal:
    if raw is None:
        return Decimal(1)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise UserError(ErrorCode.INVALID, "value must be a finite number", "value")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise UserError(ErrorCode.INVALID, "value must be a number", "value") from None
    if not value.is_finite():
        raise UserError(ErrorCode.INVALID, "value must be a finite number", "value")
    if value < 0:
        raise UserError(ErrorCode.INVALID, "value must not be negative", "value")
    if value >= Decimal("1e13"):
        raise UserError(ErrorCode.INVALID, "value is too large", "value")
    return value.quantize(Decimal("0.000001")) if value.as_tuple().exponent < -6 else value


def _metadata(raw: Any) -> tuple[dict[str, Any], str]:
    metadata = {} if raw is None else raw
    if not isinstance(metadata, dict):
        raise UserError(ErrorCode.INVALID, "metadata must be a JSON object", "metadata")
    encoded = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise UserError(ErrorCode.INVALID, "metadata exceeds 16 KB", "metadata")
    return metadata, encoded


def _check(index: int, item: EventInput, rules: PointRules, now: datetime) -> _Item:
    check_external_id(item.player_id, "playerId")
    if not item.event_type or len(item.event_type) > 64:
        raise UserError(ErrorCode.INVALID, "eventType is 1-64 characters", "eventType")
    if rules.rule_for(item.event_type) is None:
        raise UserError(
            ErrorCode.INVALID,
            f"unknown event type {item.event_type!r}: no rule for it and no wildcard rule",
            "eventType",
        )
    if item.category is not None and not 0 < len(item.category) <= 64:
        raise UserError(ErrorCode.INVALID, "category is 1-64 characters", "category")
    source = item.source or "api"
    if len(source) > 32:
        raise UserError(ErrorCode.INVALID, "source is at most 32 characters", "source")
    if item.idempotency_key is not None and not 0 < len(item.idempotency_key) <= 200:
        raise UserError(ErrorCode.INVALID, "idempotencyKey is 1-200 characters", "idempotencyKey")
    value = _value(item.value)
    metadata, encoded = _metadata(item.metadata)
    occurred = item.occurred_at
    if occurred is not None:
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        if occurred - now > timedelta(seconds=rules.max_future_skew_seconds):
            raise UserError(ErrorCode.INVALID, "occurredAt is in the future", "occurredAt")
    payload = "|".join(
        [
            item.player_id,
            item.event_type,
            item.category or "",
            str(value),
            occurred.isoformat() if occurred else "",
            source,
            encoded,
        ]
    )
    return _Item(
        index=index,
        input=item,
        value=value,
        occurred_at=occurred or now,
        metadata=metadata,
        source=source,
        payload_hash=hashlib.sha256(payload.encode()).hexdigest(),
        key=item.idempotency_key,
    )


# ------------------------------------------------------------------ replaying duplicates


def _outcome_json(
    points: Decimal, lines: list[PointsLine], wallet: WalletView, level_up: LevelUpView | None
) -> dict[str, Any]:
    return {
        "points": str(points),
        "lines": [[line.rule, line.description, str(line.amount)] for line in lines],
        "wallet": wallet.as_json(),
        "levelUp": None
        if level_up is None
        else {
            "from": level_up.from_level,
            "to": level_up.to_level,
            "lifetime": str(level_up.lifetime),
            "bonus": str(level_up.bonus),
        },
    }


def _replay(event: Event, rules: PointRules) -> Outcome:
    data = event.outcome or {}
    level_up = None
    if data.get("levelUp"):
        lu = data["levelUp"]
        level_up = LevelUpView(
            lu["from"],
            lu["to"],
            levels.info(lu["to"], rules),
            Decimal(lu["lifetime"]),
            Decimal(lu["bonus"]),
        )
    return Outcome(
        event=event,
        duplicate=True,
        points=Decimal(data.get("points", "0")),
        lines=[PointsLine(r, d, Decimal(a)) for r, d, a in data.get("lines", [])],
        wallet=WalletView.from_json(data["wallet"]) if data.get("wallet") else None,
        level_up=level_up,
    )


async def _sort_duplicates(
    tenant: Tenant,
    items: list[_Item],
    results: list[Outcome | UserError | None],
    rules: PointRules,
) -> list[_Item]:
    """Repeats of a stored key replay its outcome (or conflict); repeats within the
    batch follow the first. Returns the items still to process."""
    keys = {item.key for item in items if item.key}
    stored = (
        {
            e.idempotency_key: e
            for e in await Event.filter(tenant_id=tenant.id, idempotency_key__in=keys)
        }
        if keys
        else {}
    )
    first_with_key: dict[str, _Item] = {}
    fresh: list[_Item] = []
    for item in items:
        if item.key in stored:
            event = stored[item.key]
            results[item.index] = (
                _replay(event, rules) if event.payload_hash == item.payload_hash else _conflict()
            )
        elif item.key and item.key in first_with_key:
            first = first_with_key[item.key]
            if first.payload_hash == item.payload_hash:
                item.duplicate_of = first.index
                fresh.append(item)
            else:
                results[item.index] = _conflict()
        else:
            if item.key:
                first_with_key[item.key] = item
            fresh.append(item)
    return fresh


def _conflict() -> UserError:
    return UserError(
        ErrorCode.CONFLICT,
        "this idempotency key was used for a different event",
        "idempotencyKey",
    )


# ------------------------------------------------------------------ players and state


async def _players(tenant: Tenant, ids: set[str], create: bool) -> dict[str, Player]:
    found = {
        p.external_id: p for p in await Player.filter(tenant_id=tenant.id, external_id__in=ids)
    }
    missing = ids - found.keys()
    if missing and create:
        await Player.bulk_create(
            [Player(tenant_id=tenant.id, external_id=pid) for pid in sorted(missing)],
            ignore_conflicts=True,
        )
        for player in await Player.filter(tenant_id=tenant.id, external_id__in=missing):
            found[player.external_id] = player
    return found


async def _lock_wallets(
    tenant: Tenant, player_ids: list[int], conn: Any, lock: bool
) -> dict[int, Wallet]:
    def query() -> Any:
        q = Wallet.filter(player_id__in=player_ids).order_by("player_id").using_db(conn)
        return q.select_for_update() if lock else q

    wallets = {w.player_id: w for w in await query()}  # type: ignore[attr-defined]
    missing = [pid for pid in player_ids if pid not in wallets]
    if missing:
        new = [Wallet(player_id=pid, tenant_id=tenant.id) for pid in missing]
        if lock:
            await Wallet.bulk_create(new, ignore_conflicts=True, using_db=conn)
            wallets = {w.player_id: w for w in await query()}  # type: ignore[attr-defined]
        else:
            for wallet in new:
                wallet.balance = wallet.lifetime_earned = ZERO
                wallets[wallet.player_id] = wallet  # type: ignore[attr-defined]
    return wallets


def _state(wallet: Wallet) -> PlayerState:
    return PlayerState(
        balance=Decimal(wallet.balance),
        lifetime=Decimal(wallet.lifetime_earned),
        level=wallet.level,
        streak=StreakState(wallet.streak_current, wallet.streak_best, wallet.last_active_day),
    )


def _facts(player: Player) -> PlayerFacts:
    return PlayerFacts(
        attributes=player.attributes or {},
        segment=player.segment,
        kind=str(player.kind.value if hasattr(player.kind, "value") else player.kind),
    )


# ------------------------------------------------------------------ the pipeline


async def record_events(
    rt: Runtime,
    tenant: Tenant,
    inputs: Sequence[EventInput],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Outcome | UserError]:
    """One result per input, in order: an Outcome, or the UserError that refused it."""
    if len(inputs) > MAX_BATCH:
        raise UserError(ErrorCode.LIMIT_REACHED, f"at most {MAX_BATCH} events per batch", "input")
    now = now or datetime.now(UTC)
    rules = rules_for(tenant)
    results: list[Outcome | UserError | None] = [None] * len(inputs)
    items: list[_Item] = []
    for index, raw in enumerate(inputs):
        try:
            items.append(_check(index, raw, rules, now))
        except UserError as exc:
            results[index] = exc
    items = await _sort_duplicates(tenant, items, results, rules)
    todo = [item for item in items if item.duplicate_of is None]
    if todo:
        players = await _players(tenant, {i.input.player_id for i in todo}, create=not dry_run)
        await _process(rt, tenant, rules, todo, players, results, now, dry_run)
    for item in items:
        if item.duplicate_of is not None:
            first = results[item.duplicate_of]
            if isinstance(first, Outcome):
                results[item.index] = Outcome(
                    first.event, True, first.points, first.lines, first.wallet, first.level_up
                )
            else:
                results[item.index] = first
    return [r if r is not None else UserError(ErrorCode.INVALID, "not processed") for r in results]


async def _process(
    rt: Runtime,
    tenant: Tenant,
    rules: PointRules,
    items: list[_Item],
    players: dict[str, Player],
    results: list[Outcome | UserError | None],
    now: datetime,
    dry_run: bool,
) -> None:
    by_pk = {p.id: p for p in players.values()}
    known = [i for i in items if i.input.player_id in players]
    unknown = [i for i in items if i.input.player_id not in players]  # preview of a new player
    tz_of = {p.id: zone(p.timezone or tenant.timezone) for p in players.values()}

    async with in_transaction() as conn:
        pids = sorted({players[i.input.player_id].id for i in known})
        wallets = await _lock_wallets(tenant, pids, conn, lock=not dry_run) if pids else {}
        day_of = {
            i.index: local_day(i.occurred_at, tz_of[players[i.input.player_id].id]) for i in known
        }
        today = {pid: local_day(now, tz_of[pid]) for pid in pids}
        wanted = {(players[i.input.player_id].id, day_of[i.index]) for i in known}
        wanted |= set(today.items())
        days: dict[tuple[int, date], PlayerDay] = (
            {
                (d.player_id, d.day): d  # type: ignore[attr-defined]
                for d in await PlayerDay.filter(
                    player_id__in=pids, day__in={d for _, d in wanted}
                ).using_db(conn)
            }
            if pids
            else {}
        )
        states = {pid: _state(wallets[pid]) for pid in pids}
        histories = await _histories(known, players, day_of, states, conn)

        events: list[Event] = []
        transactions: list[PointTransaction] = []
        touched_days: dict[tuple[int, date], PlayerDay] = {}
        outcomes: dict[int, Outcome] = {}
        for item in known:
            pid = players[item.input.player_id].id
            day = day_of[item.index]
            row = days.get((pid, day)) or PlayerDay(player_id=pid, day=day, events=0, earned=ZERO)
            history = histories.get(pid)
            result = apply_event(
                rules,
                states[pid],
                _event_facts(item, day),
                _facts(by_pk[pid]),
                earned_on_day=Decimal(row.earned),
                history=history,
            )
            states[pid] = result.state
            row.events += 1
            row.earned = result.earned_on_day
            days[(pid, day)] = touched_days[(pid, day)] = row
            if history is not None:
                history.add(day)
            _touch_wallet(wallets[pid], result.state, item.occurred_at)
            level_up = _level_up_view(result)
            earned_today = (
                Decimal(days[(pid, today[pid])].earned) if (pid, today[pid]) in days else ZERO
            )
            view = wallet_view(tenant, wallets[pid], earned_today)
            event = Event(
                id=uuid.uuid4(),
                tenant_id=tenant.id,
                player_id=pid,
                event_type=item.input.event_type,
                category=result.category,
                value=item.value,
                occurred_at=item.occurred_at,
                recorded_at=now,
                source=item.source,
                metadata=item.metadata,
                points_awarded=result.points,
                idempotency_key=item.key,
                payload_hash=item.payload_hash,
                outcome=_outcome_json(result.points, result.lines, view, level_up),
            )
            rows = [
                PointTransaction(
                    tenant_id=tenant.id,
                    player_id=pid,
                    kind=TransactionKind(entry.kind),
                    amount=entry.amount,
                    balance_after=entry.balance_after,
                    reason=entry.reason,
                    event_id=event.id,
                    created_at=now,
                )
                for entry in result.entries
            ]
            events.append(event)
            transactions.extend(rows)
            outcomes[item.index] = Outcome(
                event, False, result.points, result.lines, view, level_up, rows
            )
        for item in unknown:
            outcomes[item.index] = _preview_new_player(tenant, rules, item, tz_of, now)

        if not dry_run and events:
            await Event.bulk_create(events, using_db=conn)
            if transactions:
                await PointTransaction.bulk_create(transactions, using_db=conn)
                await _read_back_ids(transactions, conn)
            await Wallet.bulk_update(
                [wallets[pid] for pid in pids],
                fields=[
                    "balance",
                    "lifetime_earned",
                    "level",
                    "streak_current",
                    "streak_best",
                    "last_active_day",
                    "last_event_at",
                ],
                using_db=conn,
            )
            await PlayerDay.bulk_create(
                list(touched_days.values()),
                on_conflict=["player_id", "day"],
                update_fields=["events", "earned"],
                using_db=conn,
            )
    for index, outcome in outcomes.items():
        results[index] = outcome
    if not dry_run:
        await _publish(rt, tenant, [outcomes[i.index] for i in known], by_pk)


async def _read_back_ids(rows: list[PointTransaction], conn: Any) -> None:
    """bulk_create sets no ids; subscribers and clients need them. Each event's lines
    were inserted in order, so ids sorted per event match the rows in order."""
    by_event: dict[Any, list[PointTransaction]] = defaultdict(list)
    for row in rows:
        by_event[row.event_id].append(row)  # type: ignore[attr-defined]
    found = (
        await PointTransaction.filter(event_id__in=list(by_event))
        .using_db(conn)
        .order_by("id")
        .values_list("event_id", "id")
    )
    ids: dict[Any, list[int]] = defaultdict(list)
    for event_id, row_id in found:
        ids[event_id].append(row_id)
    for event_id, event_rows in by_event.items():
        for row, row_id in zip(event_rows, ids[event_id], strict=True):
            row.id = row_id


def _event_facts(item: _Item, day: date) -> EventFacts:
    return EventFacts(
        event_type=item.input.event_type,
        value=item.value,
        day=day,
        category=item.input.category,
        metadata=item.metadata,
        source=item.source,
    )


def _touch_wallet(wallet: Wallet, state: PlayerState, occurred_at: datetime) -> None:
    wallet.balance = state.balance
    wallet.lifetime_earned = state.lifetime
    wallet.level = state.level
    wallet.streak_current = state.streak.current
    wallet.streak_best = state.streak.best
    wallet.last_active_day = state.streak.last_active_day
    if wallet.last_event_at is None or occurred_at > wallet.last_event_at:
        wallet.last_event_at = occurred_at


def _level_up_view(result: Any) -> LevelUpView | None:
    change = result.level_change
    if change is None:
        return None
    return LevelUpView(
        change.from_level, change.to_level, change.level, result.state.lifetime, change.bonus
    )


async def _histories(
    items: list[_Item],
    players: dict[str, Player],
    day_of: dict[int, date],
    states: dict[int, PlayerState],
    conn: Any,
) -> dict[int, set[date]]:
    """Active days of the players with a late event in the batch (streaks of late days)."""
    late: dict[int, date] = {}
    # Late against the stored state or against an earlier item of this batch.
    last_day = {pid: state.streak.last_active_day for pid, state in states.items()}
    for item in items:
        pid = players[item.input.player_id].id
        day, last = day_of[item.index], last_day[pid]
        if last is not None and day < last:
            late[pid] = min(late.get(pid, day), day)
        last_day[pid] = day if last is None else max(last, day)
    if not late:
        return {}
    since = min(late.values()) - timedelta(days=STREAK_HISTORY_DAYS)
    rows = (
        await PlayerDay.filter(player_id__in=list(late), day__gte=since)
        .using_db(conn)
        .values_list("player_id", "day")
    )
    histories: dict[int, set[date]] = defaultdict(set)
    for pid, day in rows:
        histories[pid].add(day)
    return {pid: histories[pid] for pid in late}


def _preview_new_player(
    tenant: Tenant, rules: PointRules, item: _Item, tz_of: dict[int, Any], now: datetime
) -> Outcome:
    """A preview for a player who does not exist yet: a fresh state."""
    tz = zone(tenant.timezone)
    result = apply_event(
        rules,
        PlayerState(),
        _event_facts(item, local_day(item.occurred_at, tz)),
        PlayerFacts(),
        earned_on_day=ZERO,
    )
    wallet = Wallet(
        balance=result.state.balance,
        lifetime_earned=result.state.lifetime,
        level=result.state.level,
    )
    earned_today = result.points if local_day(item.occurred_at, tz) == local_day(now, tz) else ZERO
    return Outcome(
        None,
        False,
        result.points,
        result.lines,
        wallet_view(tenant, wallet, earned_today),
        _level_up_view(result),
    )


async def _publish(
    rt: Runtime, tenant: Tenant, outcomes: list[Outcome], by_pk: dict[int, Player]
) -> None:
    messages: list[tuple[str, dict[str, Any]]] = []
    for outcome in outcomes:
        assert outcome.event is not None and outcome.wallet is not None
        player_id = by_pk[outcome.event.player_id].external_id  # type: ignore[attr-defined]
        wallet = outcome.wallet.as_json()
        channel = player_channel(tenant.id, player_id, "points")
        for row in outcome.transactions:
            messages.append(
                (
                    channel,
                    {
                        "playerId": player_id,
                        "amount": str(row.amount),
                        "wallet": wallet,
                        "transaction": transaction_json(row),
                    },
                )
            )
        if outcome.level_up is not None:
            lu = outcome.level_up
            messages.append(
                (
                    player_channel(tenant.id, player_id, "level"),
                    {
                        "playerId": player_id,
                        "from": lu.from_level,
                        "to": lu.to_level,
                        "lifetime": str(lu.lifetime),
                        "bonus": str(lu.bonus),
                    },
                )
            )
    await rt.hub.publish_many(messages)


async def record_event(
    rt: Runtime,
    tenant: Tenant,
    item: EventInput,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Outcome:
    (result,) = await record_events(rt, tenant, [item], dry_run=dry_run, now=now)
    if isinstance(result, UserError):
        raise result
    return result


__all__ = [
    "MAX_BATCH",
    "EventInput",
    "LevelUpView",
    "Outcome",
    "publish_points",
    "record_event",
    "record_events",
]
