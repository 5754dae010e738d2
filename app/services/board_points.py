"""Board points parked by a batch on PostgreSQL, settled after its commit.

A batch's ledger, wallets and events commit under the wallet locks, together with one
`board_pending` row holding the batch's period score increments. Right after commit the
batch settles that row (`settle`): one statement adds the points to the period score
rows and deletes it, so the upserts run outside the wallet locks while the next batch
works. Whatever a crash or a failed settlement leaves behind, `settle_left` adds later:
the server runs it every SETTLE_EVERY seconds, and `leaderboard rebuild` and `snapshot`
run it first. Either way each pending row counts exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tortoise import Tortoise

from app.services.board_cache import Packed
from app.services.ingest_store import IngestStore
from app.services.players import boards_channel

if TYPE_CHECKING:
    from app.realtime import Hub
    from app.services.board_cache import BoardCache

log = logging.getLogger("questline.boards")

# A pending row this old was left behind by its batch (which settles within moments).
LEFT_AFTER = timedelta(seconds=30)
SETTLE_EVERY = 30.0


def _store() -> IngestStore | None:
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        return None  # SQLite adds board points in the batch's own transaction
    return IngestStore(conn, postgres=True)


async def settle(pending_id: int) -> list[Packed]:
    """Adds a batch's parked points to the period scores; the rows as they now stand,
    packed per board for Redis. A failure leaves the row for `settle_left` and never
    fails the batch (committed)."""
    store = _store()
    assert store is not None
    try:
        return (await store.settle_board_points(pending_id))[1]
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
    for pending_id in await store.pending_board_points(cutoff):
        tenant_id, packed = await store.settle_board_points(pending_id)
        if tenant_id is None:
            continue  # settled meanwhile by its batch or another process
        settled += 1
        if boards is not None:
            if tenant_id not in timezones:
                timezones[tenant_id] = (await Tenant.get(id=tenant_id)).timezone
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


__all__ = ["LEFT_AFTER", "settle", "settle_forever", "settle_left"]
