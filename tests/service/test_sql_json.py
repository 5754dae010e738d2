"""PostgreSQL reads the JSON parameters of the ingest statements (app.codec.sql_json) back
as the values they were: its casts take orjson's RFC 3339 datetimes and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from tortoise import Tortoise

from app.codec import sql_json

pytestmark = pytest.mark.postgres


async def test_datetimes_dates_and_decimals_come_back_exactly(app):
    helsinki = timezone(timedelta(hours=2))
    values = [
        datetime(2026, 12, 5, 11, 26, 19, 583334, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 0, 0, 1, tzinfo=helsinki),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    rows = [[at, at.date(), Decimal("1234567.89") / 10**i] for i, at in enumerate(values)]
    conn = Tortoise.get_connection("default")
    _, got = await conn.execute_query(
        "SELECT (r->>0)::timestamptz, (r->>1)::date, (r->>2)::numeric "
        "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(r, n) ORDER BY n",
        [sql_json(rows)],
    )
    assert [tuple(r) for r in got] == [tuple(r) for r in rows]
    assert isinstance(got[0][1], date)
