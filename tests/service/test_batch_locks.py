"""A PostgreSQL batch reads its players' wallets and day rows in the statement that
locks the wallets (IngestStore.open_batch). Rows read there with the statement's
snapshot can predate a batch it had to wait for: it must then read them again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from app.services import ingest
from app.services.ingest_store import IngestStore
from app.services.tenants import create_tenant

pytestmark = pytest.mark.postgres


async def _waiting_for_a_lock(pool) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while asyncio.get_running_loop().time() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no batch waited for the wallet lock")


async def test_a_batch_that_waited_for_a_wallet_reads_what_the_holder_committed(app):
    tenant = await create_tenant("zwait", preset="habits")
    first = await ingest.record_event(
        app.rt, tenant, ingest.EventInput("w", "x", "finance", value=1)
    )
    assert first.points > 0
    pool = Tortoise.get_connection("default")._pool
    pk = await pool.fetchval(
        "SELECT id FROM player WHERE tenant_id = $1 AND external_id = 'w'", tenant.id
    )
    today = datetime.now(UTC).date()  # the habits preset's players live in UTC
    async with pool.acquire() as holder:
        # Another writer of this player, as a batch writes: the wallet (locked first) and
        # the day row, committed while our batch waits for the lock.
        await holder.execute("BEGIN")
        await holder.execute("SELECT 1 FROM wallet WHERE player_id = $1 FOR UPDATE", pk)
        await holder.execute("UPDATE wallet SET updated_at = now() WHERE player_id = $1", pk)
        await holder.execute(
            "UPDATE player_day SET events = events + 5 WHERE player_id = $1 AND day = $2",
            pk,
            today,
        )
        waiting = asyncio.create_task(
            ingest.record_event(app.rt, tenant, ingest.EventInput("w", "x", "finance", value=1))
        )
        await _waiting_for_a_lock(pool)
        await holder.execute("COMMIT")
    second = await waiting
    assert second.points > 0
    events = await pool.fetchval(
        "SELECT events FROM player_day WHERE player_id = $1 AND day = $2", pk, today
    )
    assert events == 1 + 5 + 1  # a stale day row (1 event) would have written 2


async def test_open_batch_locks_and_reads_only_when_every_wallet_exists(app):
    tenant = await create_tenant("zopen", preset="habits")
    await ingest.record_event(app.rt, tenant, ingest.EventInput("a", "x", "finance", value=1))
    now = datetime.now(UTC)
    days = [now.date() - timedelta(days=1), now.date(), now.date() + timedelta(days=1)]
    async with in_transaction() as conn:
        store = IngestStore(conn, postgres=True)
        opened = await store.open_batch(tenant.id, ["nokey"], ["a"], days)
    assert (opened.hits, [p.external_id for p in opened.players]) == ([], ["a"])
    assert opened.locked and opened.fresh
    (wallet,) = opened.wallets.values()
    assert wallet.balance == (await ingest_wallet_balance(tenant.id, "a"))
    assert [(d.day, d.events) for d in opened.days.values()] == [(now.date(), 1)]
    async with in_transaction() as conn:  # a new player: nothing locked, nothing read
        store = IngestStore(conn, postgres=True)
        opened = await store.open_batch(tenant.id, [], ["a", "new"], days)
    assert [p.external_id for p in opened.players] == ["a"]
    assert not opened.locked and not opened.fresh and opened.wallets == {}


async def ingest_wallet_balance(tenant_id: int, external_id: str):
    pool = Tortoise.get_connection("default")._pool
    return await pool.fetchval(
        "SELECT w.balance FROM wallet w JOIN player p ON p.id = w.player_id "
        "WHERE p.tenant_id = $1 AND p.external_id = $2",
        tenant_id,
        external_id,
    )
