"""Board points of a large batch on PostgreSQL, added after its commit.

A batch's ledger, wallets and events commit under the wallet locks, together with one
`board_pending` row holding the ids of the batch's ledger lines. Right after commit the
batch works out its period score increments from its lines (`score_rows`, the one rule
every batch uses) and settles the row (`settle`): one statement adds the points to the
period score rows and deletes it, so that work and the upserts run outside the wallet
locks while the next batch works. Whatever a crash or a failed settlement leaves behind,
`settle_left` adds later, from the lines as stored: the server runs it every
SETTLE_EVERY seconds, and `leaderboard rebuild` and `snapshot` run it first. Either way
each pending row counts exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise

from app.engine import periods
from app.services.board_cache import Packed
from app.services.common import zone
from app.services.ingest_store import IngestStore
from app.services.players import boards_channel

if TYPE_CHECKING:
    from app.realtime import Hub
    from app.services.board_cache import BoardCache

log = logging.getLogger("questline.boards")

# A pending row this old was left behind by its batch (which settles within moments).
LEFT_AFTER = timedelta(seconds=30)
SETTLE_EVERY = 30.0
# An event's ledger lines as the boards see them: the player's key, when the event
# occurred, and each line's kind and amount.
EventLines = tuple[int, datetime, Iterable[tuple[str, Decimal]]]


def score_rows(tenant_id: int, tz: tzinfo, events: Iterable[EventLines]) -> list[list[Any]]:
    """The period score increments of some events, as `IngestStore.write_batch` and
    `settle_board_points` take them: what counts on the boards, added to every period
    of the day the event occurred on in the tenant's timezone (late events count in
    their own periods)."""
    scores: dict[tuple[int, str, str], Decimal] = defaultdict(Decimal)
    keys: dict[date, dict[str, str]] = {}
    for player_id, occurred_at, lines in events:
        counted = sum(
            (amount for kind, amount in lines if periods.counts_for_boards(kind, amount)),
            Decimal(0),
        )
        if not counted:
            continue
        day = periods.local_day(occurred_at, tz)
        if day not in keys:
            keys[day] = periods.period_keys(day)
        for period, key in keys[day].items():
            scores[(player_id, period, key)] += counted
    return [[tenant_id, pid, period, key, points] for (pid, period, key), points in scores.items()]


def _store() -> IngestStore | None:
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        return None  # SQLite adds board points in the batch's own transaction
    return IngestStore(conn, postgres=True)


async def settle(pending_id: int, scores: list[list[Any]]) -> list[Packed]:
    """Adds a batch's points (`score_rows` of its lines) to the period scores and deletes
    its pending row; the rows as they now stand, packed per board for Redis. A failure
    leaves the row for `settle_left` and never fails the batch (committed)."""
    store = _store()
    assert store is not None
    try:
        return (await store.settle_board_points(pending_id, scores))[1]
    except Exception as exc:  # the ledger committed; the points wait in board_pending
        log.warning("board points %s not settled yet (%s): settled later", pending_id, exc)
        return []


async def settle_left(
    boards: BoardCache | None = None,
    hub: Hub | None = None,
    older_than: timedelta = LEFT_AFTER,
    now: datetime | None = None,
) -> int:
    """Settles the pending rows parked more than `older_than` ago; the Redis `boards`
    take the new scores and live boards on `hub` look again. Returns the rows settled
    here (a row settled meanwhile by its batch or another process counts there)."""
    store = _store()
    if store is None:
        return 0
    from models import Tenant

    cutoff = (now or datetime.now(UTC)) - older_than
    settled = 0
    timezones: dict[int, str] = {}
    for pending_id, tenant_id in await store.pending_board_points(cutoff):
        if tenant_id not in timezones:
            timezones[tenant_id] = (await Tenant.get(id=tenant_id)).timezone
        scores = score_rows(
            tenant_id, zone(timezones[tenant_id]), await store.pending_lines(pending_id)
        )
        claimed, packed = await store.settle_board_points(pending_id, scores)
        if claimed is None:
            continue  # settled meanwhile by its batch or another process
        settled += 1
        if boards is not None:
            await boards.apply_packed(tenant_id, timezones[tenant_id], packed)
        if hub is not None:
            await hub.publish(boards_channel(tenant_id), {"changed": True})
    if settled:
        log.warning("settled %d batches of board points left pending", settled)
    return settled


async def settle_forever(boards: BoardCache | None, hub: Hub, every: float = SETTLE_EVERY) -> None:
    """The server's sweep: settles left-behind board points every `every` seconds."""
    while True:
        try:
            await settle_left(boards, hub)
        except Exception as exc:  # the database is down: try again next round
            log.warning("settling left board points failed (%s)", exc)
        await asyncio.sleep(every)


__all__ = ["LEFT_AFTER", "score_rows", "settle", "settle_forever", "settle_left"]
