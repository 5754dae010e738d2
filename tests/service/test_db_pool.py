"""Pooled PostgreSQL connections go back to the pool without asyncpg's reset statement,
and still never carry a transaction over to the next user."""

from __future__ import annotations

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
