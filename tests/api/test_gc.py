"""A request leaves no reference cycles: its objects are freed by reference counting.

graphql-core 3.3's executor refers to itself through `async_helpers`; without
schema.build.ExecutionContext every request's executor, context, loaders, request and
response would wait for the cyclic garbage collector (see app/asgi.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request

from app.context import Context
from schema.build import ExecutionContext
from tests.conftest import gql

RECORD = """
mutation ($input: RecordEventInput!) {
  recordEvent(input: $input) {
    outcome { pointsAwarded wallet { balance } }
    errors { code message }
  }
}
"""
LEADERBOARD = """
query { leaderboard(period: ALL_TIME, first: 5) { totalPlayers entries { rank points } } }
"""
WRONG = "query { player(id: 1) { id nosuchfield } }"


@contextmanager
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def test_a_request_leaves_nothing_for_the_cyclic_collector(client) -> None:
    await gql(client, LEADERBOARD)  # warm: first requests fill per-process caches
    with no_collector():
        before = {kind: alive(kind) for kind in (ExecutionContext, Context, Request)}
        for n in range(3):
            variables = {
                "input": {
                    "playerId": f"gc-{n}",
                    "eventType": "APP_LOGIN",
                    "value": 1,
                    "idempotencyKey": f"gc-{n}",
                }
            }
            result = await gql(client, RECORD, variables)
            assert result.data["recordEvent"]["errors"] == []
            await gql(client, LEADERBOARD)
            await gql(client, WRONG, expect_errors=True)
        after = {kind: alive(kind) for kind in before}
    assert after == before


def test_the_schema_runs_on_the_cycle_free_execution_context(app) -> None:
    from schema import build_schema

    assert build_schema().execution_context_class is ExecutionContext


async def test_the_server_collects_less_often(client) -> None:
    from app.asgi import GC_GEN0_THRESHOLD

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
