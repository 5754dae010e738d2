"""`questline ingest` with its database away: a TCP proxy in front of the test's
PostgreSQL closes and opens again (the machine's server is never touched)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from models import Event, Tenant
from tests.service.test_cli import questline, start_questline
from tests.service.test_file_ingest import (
    assert_ledger_matches_wallets,
    balances,
    beside,
    preset_points,
    state_text,
    write,
)


def cdr_jsonl(tmp_path: Path, count: int) -> Path:
    """`count` CDRs with ids of their own, a 60 s outgoing call each, over 20 players."""
    return write(
        tmp_path,
        "calls.jsonl",
        [
            json.dumps(
                {
                    "customer_id": f"away-{n % 20}",
                    "call_id": f"call-{n}",
                    "call_type": "outgoing",
                    "duration": 60,
                    "call_time": "2026-01-22T10:00:00Z",
                }
            )
            for n in range(count)
        ],
    )


async def first_checkpoint(path: Path, process: Any, within: float = 60) -> None:
    """Until the run has committed a batch (its checkpoint exists)."""
    state = f"{path}.ingest-state.json"
    deadline = time.monotonic() + within
    while not os.path.exists(state):  # noqa: ASYNC240 (a stat, polled)
        assert process.returncode is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within the time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def proxied_ingest(settings: Any, path: Path, *args: str) -> AsyncIterator[Any]:
    """`questline ingest` of CDRs in batches of 2 through a proxy in front of the test's
    database, once it has committed a batch: (the proxy, the process)."""
    from tests.service.stream_helpers import DatabaseProxy

    proxy = DatabaseProxy(settings.database_url)
    await proxy.up()
    try:
        process = await start_questline(
            settings, "ingest", str(path), "--source", "cdr", "--batch-size", "2", *args,
            DATABASE_URL=proxy.url,
        )  # fmt: skip
        await first_checkpoint(path, process)
        yield proxy, process
    finally:
        proxy.down()


async def applied_once(tenant: Tenant, count: int) -> None:
    """Every record of `cdr_jsonl` applied exactly once."""
    keys = await Event.filter(tenant_id=tenant.id, player__external_id__startswith="away-")
    assert len(keys) == count
    assert len({e.idempotency_key for e in keys}) == count
    per_call = preset_points("outgoing", "60")
    assert await balances(tenant) == {f"away-{n}": per_call * (count // 20) for n in range(20)}
    await assert_ledger_matches_wallets(tenant)


@pytest.mark.postgres
async def test_the_database_away_mid_run_is_waited_for_and_nothing_is_a_reject(
    app, default_tenant, settings, tmp_path
):
    """The database goes away after some batches (a proxy in front of it closes): the
    run logs a line per retry, carries on once it is back, and applies every record
    exactly once; none is written to the rejects file as a bad record."""
    from tests.service.stream_helpers import read_until

    count = 400
    path = cdr_jsonl(tmp_path, count)
    async with proxied_ingest(settings, path) as (proxy, process):
        proxy.down()
        lines: list[str] = []
        line = await read_until(process, "the database is unavailable", lines)
        assert "retry 1 of 8" in line and "Traceback" not in "".join(lines)
        await proxy.up()
        _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, "".join(lines) + err.decode()
    assert f"read {count:,} records" in err.decode()
    assert beside(path, ".rejected.jsonl") == []
    await applied_once(default_tenant, count)


@pytest.mark.postgres
async def test_the_database_away_through_every_retry_exits_3_and_a_rerun_resumes(
    app, default_tenant, settings, tmp_path
):
    count = 400
    path = cdr_jsonl(tmp_path, count)
    async with proxied_ingest(settings, path, "--retries", "1") as (proxy, process):
        proxy.down()
        _, err = await asyncio.wait_for(process.communicate(), 120)
    said = err.decode()
    assert process.returncode == 3, said
    assert "did not answer through 1 retries" in said and "run the same command again" in said
    state = json.loads(state_text(path))
    assert 0 < state["counts"]["read"] < count and not state["complete"]

    again = await questline(settings, "ingest", str(path), "--source", "cdr")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    await applied_once(default_tenant, count)
