"""The rank index covers the ALL_TIME boards only (migration 0011): their SQL pages read
it even under a generic plan, which asyncpg's prepared statements may get after five
runs and which cannot use a partial index unless the query names its condition."""

from __future__ import annotations

import pytest
from tortoise import Tortoise

from app.services import ingest
from app.services.leaderboards import Scope, _order, _where
from app.services.tenants import create_tenant
from models import Period

pytestmark = pytest.mark.postgres


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _generic_plan(sql: str, values: list) -> str:
    """EXPLAIN EXECUTE of the statement prepared as asyncpg would, planned generically."""
    conn = Tortoise.get_connection("default")
    async with conn.acquire_connection() as raw, raw.transaction():
        await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await raw.execute("SET LOCAL enable_seqscan = off")  # tiny tables: index if usable
        await raw.execute(f"PREPARE board_page AS {sql}")
        try:
            rows = await raw.fetch(
                f"EXPLAIN EXECUTE board_page({', '.join(_literal(v) for v in values)})"
            )
        finally:
            await raw.execute("DEALLOCATE board_page")
    return "\n".join(row[0] for row in rows)


async def test_the_all_time_page_reads_the_rank_index_in_a_generic_plan(rt):
    tenant = await create_tenant("ranked", preset="telco")
    await ingest.record_events(rt, tenant, [ingest.EventInput("ann", "APP_LOGIN", value=1)])
    where = _where(tenant, Period.ALL_TIME, "all", Scope())
    plan = await _generic_plan(
        f"SELECT s.player_id {where.sql} {_order(where)} LIMIT 10", where.values
    )
    assert "idx_period_score_rank" in plan and "Sort" not in plan, plan
