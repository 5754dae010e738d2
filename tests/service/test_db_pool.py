"""Pooled PostgreSQL connections go back to the pool without asyncpg's reset statement,
and still never carry a transaction over to the next user."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from tortoise import Tortoise

from app.db import PooledConnection

pytestmark = pytest.mark.postgres


async def test_the_pool_hands_out_connections_without_a_reset_statement(app):
    pool = Tortoise.get_connection("default")._pool
    async with pool.acquire() as conn:
        assert isinstance(conn._con, PooledConnection)
        assert conn.get_reset_query() == ""


async def test_a_transaction_left_open_is_rolled_back_on_release(app):
    pool = Tortoise.get_connection("default")._pool
    await pool.execute("CREATE TABLE IF NOT EXISTS pool_probe (n int)")
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        # The pool may hand out the same connection again: it is idle, the insert gone.
        for _ in range(pool.get_size()):
            async with pool.acquire() as conn:
                assert not conn.is_in_transaction()
                if await conn.fetchval("SELECT pg_backend_pid()") == backend:
                    break
        assert await pool.fetchval("SELECT count(*) FROM pool_probe") == 0
    finally:
        await pool.execute("DROP TABLE pool_probe")


async def test_the_batch_generic_plans_end_with_its_transaction(app):
    """open_batch sets plan_cache_mode for the rest of the batch's transaction only: the
    connection goes back to the pool (which no longer resets it) with the default."""
    from tortoise.transactions import in_transaction

    from app.services import ingest
    from app.services.ingest_store import IngestStore
    from app.services.tenants import create_tenant

    tenant = await create_tenant("zplans", preset="habits")
    await ingest.record_event(app.rt, tenant, ingest.EventInput("a", "x", value=1))
    async with in_transaction() as conn:
        store = IngestStore(conn, postgres=True)
        before = await conn.execute_query_dict("SHOW plan_cache_mode")
        hits, players, locked = await store.open_batch(tenant.id, [], ["a"], datetime.now(UTC))
        during = await conn.execute_query_dict("SHOW plan_cache_mode")
        assert (hits, [p.external_id for p in players], locked) == ([], ["a"], True)
    assert before[0]["plan_cache_mode"] == "auto"
    assert during[0]["plan_cache_mode"] == "force_generic_plan"
    pool = Tortoise.get_connection("default")._pool
    async with contextlib.AsyncExitStack() as stack:  # every connection, held at once
        held = [await stack.enter_async_context(pool.acquire()) for _ in range(pool.get_size())]
        assert [await raw.fetchval("SHOW plan_cache_mode") for raw in held] == ["auto"] * len(held)
