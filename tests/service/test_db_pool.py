"""Pooled PostgreSQL connections go back to the pool without asyncpg's reset statement,
and still never carry a transaction over to the next user."""

from __future__ import annotations

import contextlib

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
    """A transaction begun in generic_plans() has plan_cache_mode set from its BEGIN on;
    the next transaction on the connection, and every pooled connection (no longer
    reset), have the default again."""
    from tortoise.transactions import in_transaction

    from app.db import generic_plans

    pool = Tortoise.get_connection("default")._pool
    with generic_plans():
        async with in_transaction() as conn:
            during = await conn.execute_query_dict("SHOW plan_cache_mode")
    async with in_transaction() as conn:
        after = await conn.execute_query_dict("SHOW plan_cache_mode")
    assert during[0]["plan_cache_mode"] == "force_generic_plan"
    assert after[0]["plan_cache_mode"] == "auto"
    async with contextlib.AsyncExitStack() as stack:  # every connection, held at once
        held = [await stack.enter_async_context(pool.acquire()) for _ in range(pool.get_size())]
        assert [await raw.fetchval("SHOW plan_cache_mode") for raw in held] == ["auto"] * len(held)


async def test_a_batch_first_statement_is_never_planned_again(app):
    """The ingest transaction runs OPEN_BATCH_POSTGRES on its generic plan: PostgreSQL
    would otherwise make a custom plan at every execution (pg_prepared_statements)."""
    from app.services import ingest
    from app.services.tenants import create_tenant

    tenant = await create_tenant("zgeneric", preset="habits")
    for n in range(8):
        await ingest.record_event(app.rt, tenant, ingest.EventInput("a", "x", value=n + 1))
    pool = Tortoise.get_connection("default")._pool
    generic = custom = 0
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(pool.get_size()):
            raw = await stack.enter_async_context(pool.acquire())
            for row in await raw.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%locked AS MATERIALIZED%'"
            ):
                generic += row["generic_plans"]
                custom += row["custom_plans"]
    assert (generic >= 8, custom) == (True, 0)
