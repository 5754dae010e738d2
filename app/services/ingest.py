"""Events in, points out: one code path for one event, a batch, a preview and a
normalised record.

A batch is checked item by item (a bad item is reported and skipped), then in one
transaction on one connection the players' wallets are locked in id order, the engine
computes every outcome in memory, and the writes (events, ledger lines, wallets, days,
leaderboard period scores) go out together. On PostgreSQL that is two statements when
every player and wallet exists: stored keys, players, wallet locks, wallets and days
(read again if a lock waited for a batch that changed them); the writes, where a large
batch's period scores are parked in one row and added right after commit, outside the
wallet locks (app.services.board_points), and a small one's are added in place.
Subscribers hear about it only after commit. Nothing is written or published for a
preview.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise.exceptions import IntegrityError

from app.db import generic_transaction
from app.engine import periods
from app.engine.outcome import EventFacts, OverLimit, PlayerFacts, PlayerState, apply_event
from app.engine.periods import local_day
from app.engine.rules import PointRules
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services import board_points
from app.services.board_cache import pack_scores
from app.services.common import time_ordered_ids, zone
from app.services.event_input import (
    CheckedEvent,
    EventInput,
    EventRecord,
    LevelUpView,
    Outcome,
    TransactionRecord,
    check_event,
    outcome_json,
    sort_duplicates,
)
from app.services.ingest_rows import DayRow, WalletRow, Written
from app.services.ingest_store import IngestStore
from app.services.ledger import level_up_json, points_json, wallet_view
from app.services.players import boards_channel, player_channel
from app.services.rules import rules_for
from models import PointTransaction, Tenant

log = logging.getLogger("questline.ingest")

MAX_BATCH = 1000
# A batch's players' wallets, and their day rows by (player, day).
_State = tuple[dict[int, WalletRow], dict[tuple[int, date], DayRow]]
STREAK_HISTORY_DAYS = 400
ZERO = Decimal(0)


def _store(conn: Any) -> IngestStore:
    return IngestStore(conn, postgres=conn.capabilities.dialect == "postgres")


# ------------------------------------------------------------------ players and state


async def _players(
    store: IngestStore, tenant: Tenant, ids: set[str], create: bool
) -> tuple[dict[str, Any], set[str]]:
    """The players by external id, and the ids of those this call created."""
    wanted = sorted(ids)
    found = {p.external_id: p for p in await store.players(tenant.id, wanted)}
    missing = [pid for pid in wanted if pid not in found]
    created: set[str] = set()
    if missing and create:  # the first event of an unknown player creates it
        created = await store.create_players(tenant.id, missing)
        for player in await store.players(tenant.id, missing):
            found[player.external_id] = player
    return found, created


async def _load_state(
    store: IngestStore,
    tenant: Tenant,
    player_ids: list[int],
    days: list[date],
    lock: Lock,
    now: datetime,
) -> _State:
    """The players' wallets (locked for a write on PostgreSQL) and their `days`."""
    if lock is not Lock.NONE and store.postgres:
        if lock is Lock.TAKE:
            await store.lock_wallets(tenant.id, player_ids, now)
        return await store.read_state(player_ids, days)
    wallets = await store.wallets(player_ids)
    missing = [pid for pid in player_ids if pid not in wallets]
    if missing and lock is not Lock.NONE:
        await store.create_wallets(tenant.id, missing, now)
        wallets = await store.wallets(player_ids)
    for pid in missing:  # a preview of a player without a wallet yet
        wallets.setdefault(pid, WalletRow(pid, ZERO, ZERO, 1, 0, 0, None, None))
    return wallets, await store.days(player_ids, days)


def _candidate_days(items: Sequence[CheckedEvent], now: datetime) -> list[date]:
    """Every local day the batch's events and `now` can fall on, whatever the players'
    timezones (UTC-12 to UTC+14): the UTC day, the day before and the day after."""
    utc_days = {i.occurred_at.astimezone(UTC).date() for i in items}
    utc_days.add(now.astimezone(UTC).date())
    return sorted({day + timedelta(days=shift) for day in utc_days for shift in (-1, 0, 1)})


def _state(wallet: WalletRow) -> PlayerState:
    return PlayerState(
        balance=wallet.balance,
        lifetime=wallet.lifetime_earned,
        level=wallet.level,
        streak=StreakState(wallet.streak_current, wallet.streak_best, wallet.last_active_day),
    )


def _facts(player: Any) -> PlayerFacts:
    return PlayerFacts(
        attributes=player.attributes or {}, segment=player.segment, kind=str(player.kind)
    )


# ------------------------------------------------------------------ the pipeline


async def record_events(
    rt: Runtime,
    tenant: Tenant,
    inputs: Sequence[EventInput],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    alone: bool = False,
) -> list[Outcome | UserError]:
    """One result per input, in order: an Outcome, or the UserError that refused it.

    The items are checked here, by the caller. Then, unless this is a preview, a replay
    at a given `now` or `alone`, the batch joins whatever other batches and single
    events of the tenant are waiting, and they are applied together in one transaction
    (app.services.coalesce): each caller gets its own results, exactly those of applying
    the batches one after another in arrival order; a caller that goes away meanwhile
    does not stop it. `alone`: in a transaction of its own, in the caller's task, so
    that cancelling the caller rolls it back (the stream worker gives up on a stalled
    database that way, and sends the batch again later)."""
    if len(inputs) > MAX_BATCH:
        raise UserError(ErrorCode.LIMIT_REACHED, f"at most {MAX_BATCH} events per batch", "input")
    checked_at = now or datetime.now(UTC)
    checked = check_events(tenant, inputs, checked_at)
    if all(isinstance(c, UserError) for c in checked):
        return [c for c in checked if isinstance(c, UserError)]
    if dry_run or now is not None or alone:
        return await apply_checked(rt, tenant, checked, checked_at, dry_run=dry_run)
    return await rt.coalescer.submit(rt, tenant, checked)


def check_events(
    tenant: Tenant, inputs: Sequence[EventInput], now: datetime
) -> list[CheckedEvent | UserError]:
    """Each input checked against the tenant's rules; item `index` is its position."""
    rules = rules_for(tenant)
    checked: list[CheckedEvent | UserError] = []
    for index, raw in enumerate(inputs):
        try:
            checked.append(check_event(index, raw, rules, now))
        except UserError as exc:
            checked.append(exc)
    return checked


async def apply_checked(
    rt: Runtime,
    tenant: Tenant,
    checked: list[CheckedEvent | UserError],
    now: datetime,
    *,
    dry_run: bool = False,
) -> list[Outcome | UserError]:
    """Checked items (an item's `index` is its position) applied in one transaction,
    then published; one result per item, in order."""
    applied = await commit_checked(tenant, checked, now, dry_run=dry_run)
    return await applied.finish(rt, tenant)


async def commit_checked(
    tenant: Tenant,
    checked: list[CheckedEvent | UserError],
    now: datetime,
    *,
    dry_run: bool = False,
) -> _Applied:
    """The transaction of `apply_checked`, committed (nothing is written for a
    preview); its `finish` publishes and gives the results."""
    rules = rules_for(tenant)
    try:
        done = await _apply(tenant, rules, checked, now, dry_run)
    except IntegrityError:
        # A batch in flight committed the same idempotency key first: run again, and the
        # repeat is found and replayed like any duplicate.
        done = await _apply(tenant, rules, checked, now, dry_run)
    done.dry_run = dry_run
    return done


class Lock(Enum):
    """The wallets of a batch: read only (a preview), to lock, or locked already."""

    NONE = "none"
    TAKE = "take"
    HELD = "held"


@dataclass(slots=True)
class _Applied:
    """One attempt's results, and what to publish once it has committed."""

    results: list[Outcome | UserError | None]
    items: list[CheckedEvent]
    published: list[Outcome] = field(default_factory=list)
    by_pk: dict[int, Any] = field(default_factory=dict)
    written: Written = field(default_factory=lambda: Written([]))  # the batch's writes
    dry_run: bool = False

    async def finish(self, rt: Runtime, tenant: Tenant) -> list[Outcome | UserError]:
        """After commit: the live updates sent, then one result per item, in order."""
        results = self.results
        if not self.dry_run and self.published:
            # Committed: the outcomes stand whatever happens to their live updates, and
            # a caller told of a failure here would send the events again.
            try:
                await _publish(rt, tenant, self)
            except Exception:
                log.exception("publishing %d committed outcomes failed", len(self.published))
        for item in self.items:
            if item.duplicate_of is not None:
                first = results[item.duplicate_of]
                if isinstance(first, Outcome):
                    results[item.index] = Outcome(
                        first.event, True, first.points, first.lines, first.wallet, first.level_up
                    )
                else:
                    results[item.index] = first
        if self.dry_run:  # nothing written: no event to show (its id would name none)
            results = [
                replace(r, event=None) if isinstance(r, Outcome) and not r.duplicate else r
                for r in results
            ]
        return [
            r if r is not None else UserError(ErrorCode.INVALID, "not processed") for r in results
        ]


async def _apply(
    tenant: Tenant,
    rules: PointRules,
    checked: list[CheckedEvent | UserError],
    now: datetime,
    dry_run: bool,
) -> _Applied:
    """One attempt, in one transaction on one connection."""
    results: list[Outcome | UserError | None] = [
        c if isinstance(c, UserError) else None for c in checked
    ]
    items = [replace(c, duplicate_of=None) for c in checked if not isinstance(c, UserError)]
    done = _Applied(results, items)
    async with generic_transaction() as conn:
        store = _store(conn)
        lock = Lock.NONE if dry_run else Lock.TAKE
        found: list[Any] = []
        hits: list[str] | None = None
        state: _State | None = None
        if items and lock is Lock.TAKE:
            # One statement (SQLite: one hand-over to its thread): stored keys, players
            # and (all of them and their wallets found) the locks, the wallets and the
            # day rows.
            keys = sorted({item.key for item in items if item.key})
            opened = await store.open_batch(
                tenant.id, keys, [i.input.player_id for i in items], _candidate_days(items, now)
            )
            hits, found = opened.hits, opened.players
            lock = Lock.HELD if opened.locked else Lock.TAKE
            if opened.fresh:
                state = (opened.wallets, opened.days)

        async def known_keys(keys: list[str]) -> list[str]:
            return hits if hits is not None else await store.idempotency_hits(tenant.id, keys)

        done.items = await sort_duplicates(tenant, items, results, rules, known_keys)
        todo = [item for item in done.items if item.duplicate_of is None]
        if todo:
            created: set[str] = set()
            if lock is Lock.HELD:
                players = {p.external_id: p for p in found}
            else:
                players, created = await _players(
                    store, tenant, {i.input.player_id for i in todo}, create=not dry_run
                )
            done.by_pk = {p.id: p for p in players.values()}
            done.published, done.written = await _process(
                store, tenant, rules, todo, players, results, now, lock, state
            )
            # A new player whose every event was refused (LIMIT_REACHED) is not kept.
            kept = {outcome.event.player_id for outcome in done.published}
            refused = sorted(players[x].id for x in created if players[x].id not in kept)
            if refused:
                await store.remove_players(refused)
    return done


async def _process(
    store: IngestStore,
    tenant: Tenant,
    rules: PointRules,
    items: list[CheckedEvent],
    players: dict[str, Any],
    results: list[Outcome | UserError | None],
    now: datetime,
    lock: Lock,
    state: _State | None = None,
) -> tuple[list[Outcome], Written]:
    """Applies the events in order; returns the outcomes to publish after commit and
    what the writes returned (nothing written for a preview). `state`: the players'
    wallets and day rows, already read under their locks (by `open_batch`)."""
    by_pk = {p.id: p for p in players.values()}
    known = [i for i in items if i.input.player_id in players]
    unknown = [i for i in items if i.input.player_id not in players]  # preview of a new player
    tz_of = {p.id: zone(p.timezone or tenant.timezone) for p in players.values()}
    pids = sorted({players[i.input.player_id].id for i in known})
    day_of = {
        i.index: local_day(i.occurred_at, tz_of[players[i.input.player_id].id]) for i in known
    }
    today = {pid: local_day(now, tz_of[pid]) for pid in pids}
    outcomes: dict[int, Outcome] = {}

    wanted_days = sorted({day_of[i.index] for i in known} | set(today.values()))
    if state is not None:
        wallets, days = state
    elif pids:
        wallets, days = await _load_state(store, tenant, pids, wanted_days, lock, now)
    else:
        wallets, days = {}, {}
    states = {pid: _state(wallets[pid]) for pid in pids}
    histories = await _histories(store, known, players, day_of, states)

    event_rows: list[list[Any]] = []
    tx_rows: list[list[Any]] = []
    transactions: list[PointTransaction] = []
    touched: dict[tuple[int, date], DayRow] = {}
    event_ids = iter(time_ordered_ids(now, len(known)))
    applied: list[CheckedEvent] = []  # `known` but those refused by the engine's limits
    facts = {pid: _facts(by_pk[pid]) for pid in pids}
    for item in known:
        pid = players[item.input.player_id].id
        day = day_of[item.index]
        row = days.get((pid, day)) or DayRow(pid, day, 0, ZERO)
        history = histories.get(pid)
        try:
            result = apply_event(
                rules,
                states[pid],
                _event_facts(item, day),
                facts[pid],
                earned_on_day=row.earned,
                history=history,
            )
        except OverLimit as exc:  # refused alone: the player's state stays as it was
            results[item.index] = UserError(ErrorCode.LIMIT_REACHED, str(exc), "value")
            continue
        applied.append(item)
        states[pid] = result.state
        row.events += 1
        row.earned = result.earned_on_day
        days[(pid, day)] = touched[(pid, day)] = row
        if history is not None:
            history.add(day)
        _touch_wallet(wallets[pid], result.state, item.occurred_at)
        level_up = _level_up_view(result)
        earned_today = days[(pid, today[pid])].earned if (pid, today[pid]) in days else ZERO
        view = wallet_view(tenant, wallets[pid], earned_today)
        event_id = next(event_ids)
        event_key = str(event_id)
        outcome_data = outcome_json(result.points, result.lines, view, level_up)
        event = EventRecord(
            id=event_id,
            player_id=pid,
            event_type=item.input.event_type,
            category=result.category,
            value=item.value,
            occurred_at=item.occurred_at,
            source=item.source,
            metadata=item.metadata,
            points_awarded=result.points,
        )
        event_rows.append(
            [
                event_key,
                tenant.id,
                pid,
                item.input.event_type,
                result.category,
                item.value,
                item.occurred_at,
                now,
                item.source,
                item.metadata_json,
                result.points,
                item.key,
                item.payload_hash,
                outcome_data,  # JSON-encoded with the batch's rows (ingest_store)
            ]
        )
        rows = []
        for entry in result.entries:
            rows.append(
                TransactionRecord(
                    pid, entry.kind, entry.amount, entry.balance_after, entry.reason, event_id, now
                )
            )
            tx_rows.append(
                [
                    tenant.id,
                    pid,
                    entry.kind,
                    entry.amount,
                    entry.balance_after,
                    entry.reason,
                    event_key,
                    None,
                    now,
                ]
            )
        transactions.extend(rows)
        outcomes[item.index] = Outcome(
            event, False, result.points, result.lines, view, level_up, rows
        )
    for item in unknown:
        try:
            outcomes[item.index] = _preview_new_player(tenant, rules, item, now)
        except OverLimit as exc:
            results[item.index] = UserError(ErrorCode.LIMIT_REACHED, str(exc), "value")

    written = Written([])
    if lock is not Lock.NONE and event_rows:
        # Leaderboard points per (player, period, key), in the tenant's timezone.
        scores = (
            periods.board_increments(
                _board_events(outcomes[i.index] for i in applied), zone(tenant.timezone)
            )
            if rules.leaderboards
            else {}
        )
        score_rows = [[tenant.id, *key, points] for key, points in scores.items()]
        written = await store.write_batch(
            event_rows,
            tx_rows,
            [wallets[pid] for pid in pids],
            touched.values(),
            score_rows,
            now,
        )
        for row, row_id in zip(transactions, written.ids, strict=True):
            row.id = row_id
    for index, outcome in outcomes.items():
        results[index] = outcome
    return [outcomes[i.index] for i in applied], written


def _board_events(outcomes: Iterable[Outcome]) -> Iterator[periods.BoardEvent]:
    """Recorded events as the boards see them (periods.board_increments)."""
    for o in outcomes:
        assert o.event is not None
        yield o.event.player_id, o.event.occurred_at, [(t.kind, t.amount) for t in o.transactions]


def _event_facts(item: CheckedEvent, day: date) -> EventFacts:
    return EventFacts(
        event_type=item.input.event_type,
        value=item.value,
        day=day,
        category=item.input.category,
        metadata=item.metadata,
        source=item.source,
    )


def _touch_wallet(wallet: WalletRow, state: PlayerState, occurred_at: datetime) -> None:
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
    store: IngestStore,
    items: list[CheckedEvent],
    players: dict[str, Any],
    day_of: dict[int, date],
    states: dict[int, PlayerState],
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
    found = await store.active_days(sorted(late), since)
    return {pid: set(found.get(pid, ())) for pid in late}


def _preview_new_player(
    tenant: Tenant, rules: PointRules, item: CheckedEvent, now: datetime
) -> Outcome:
    """A preview for a player who does not exist yet: a fresh state."""
    tz = zone(tenant.timezone)
    day = local_day(item.occurred_at, tz)
    result = apply_event(
        rules, PlayerState(), _event_facts(item, day), PlayerFacts(), earned_on_day=ZERO
    )
    wallet = WalletRow(
        0, result.state.balance, result.state.lifetime, result.state.level, 0, 0, None, None
    )
    earned_today = result.points if day == local_day(now, tz) else ZERO
    return Outcome(
        None,
        False,
        result.points,
        result.lines,
        wallet_view(tenant, wallet, earned_today),
        _level_up_view(result),
    )


async def _publish(rt: Runtime, tenant: Tenant, done: _Applied) -> None:
    """After commit: the wallets' messages, the board points (a large PostgreSQL batch's
    settled first, then copied to Redis) and one message per batch that tells live
    boards to look again (they coalesce). A small batch sends its messages after its
    boards, in the same Redis call when there is Redis; a large one publishes its
    wallets' messages while its board points settle."""
    points = _points_messages(tenant, done)
    changed = [(boards_channel(tenant.id), {"changed": True})]
    if done.written.pending is None:
        await _boards_then(rt, tenant, done, points + changed)
    else:
        await asyncio.gather(rt.hub.publish_many(points), _boards_then(rt, tenant, done, changed))


async def _boards_then(
    rt: Runtime, tenant: Tenant, done: _Applied, messages: list[tuple[str, dict[str, Any]]]
) -> None:
    """The batch's boards brought up to date, then `messages` published: live boards
    read the boards when told to."""
    written = done.written
    if written.pending is not None:
        written.boards = await board_points.settle(written.pending)
    if rt.boards is None or not rt.hub.via_redis:
        await rt.hub.publish_many(messages)
        return
    hidden = {pk for pk, player in done.by_pk.items() if player.hidden_from_boards}
    boards = written.boards or pack_scores(written.totals, hidden)
    announce = rt.hub.encoded(messages)
    ok = await rt.boards.apply_packed(tenant.id, tenant.timezone, boards, announce)
    rt.hub.sent(len(announce), ok)


def _points_messages(tenant: Tenant, done: _Applied) -> list[tuple[str, dict[str, Any]]]:
    by_pk = done.by_pk
    messages: list[tuple[str, dict[str, Any]]] = []
    for outcome in done.published:
        assert outcome.event is not None and outcome.wallet is not None
        player_id = by_pk[outcome.event.player_id].external_id  # type: ignore[attr-defined]
        wallet = outcome.wallet.as_json()
        channel = player_channel(tenant.id, player_id, "points")
        messages.extend(
            (channel, points_json(player_id, row, wallet)) for row in outcome.transactions
        )
        if outcome.level_up is not None:
            lu = outcome.level_up
            messages.append(
                (
                    player_channel(tenant.id, player_id, "level"),
                    level_up_json(player_id, lu.from_level, lu.to_level, lu.lifetime, lu.bonus),
                )
            )
    return messages


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
    "apply_checked",
    "check_events",
    "commit_checked",
    "record_event",
    "record_events",
]
