"""Board points settled after the batch's commit (PostgreSQL): exactly once, in the
record and in Redis's copy, whatever order concurrent batches settle in, and a crashed
batch's points picked up later."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from tortoise import Tortoise

from app.engine import periods
from app.services import board_points, ingest, leaderboards
from app.services.board_cache import pack_scores
from app.services.event_input import check_event
from app.services.ingest_store import INLINE_SCORES_MAX, IngestStore
from app.services.players import boards_channel
from app.services.rules import rules_for
from app.services.tenants import create_tenant
from models import Period, PeriodScore, Player, PointTransaction
from tests.conftest import IS_POSTGRES


def triples(text: str) -> list[tuple[str, ...]]:
    """A packed board's (pk, score, member) triples, sorted."""
    flat = json.loads(text)
    return sorted(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))


async def pending_rows() -> int:
    conn = Tortoise.get_connection("default")
    return (await conn.execute_query_dict("SELECT COUNT(*) AS n FROM board_pending"))[0]["n"]


async def ledger_board_points(tenant) -> dict[int, Decimal]:
    """Per player, the ledger lines that count on the boards (all on one day here)."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for line in await PointTransaction.filter(tenant=tenant):
        if periods.counts_for_boards(str(line.kind), line.amount):
            totals[line.player_id] += line.amount
    return totals


@pytest.mark.postgres
async def test_concurrent_batches_settle_every_point_once(rt):
    """Batches sharing players commit one after another on the wallet locks, then settle
    their board points concurrently, while small batches add theirs before commit: every
    period's scores equal the ledger, nothing stays pending, no deadlock, and Redis's
    boards hold the record's values."""
    tenant = await create_tenant("settling", preset="telco")
    rng = random.Random(5)
    names = [f"p{n}" for n in range(150)]

    def batch(size: int):
        return [
            ingest.EventInput(rng.choice(names), "APP_LOGIN", value=1, idempotency_key=None)
            for _ in range(size)
        ]

    # Large batches park their points for after commit; small ones (at most
    # INLINE_SCORES_MAX events) add theirs in place, under the wallet locks. Both at once.
    sizes = [300, INLINE_SCORES_MAX, 300, 1, 300, 7]
    for _ in range(2):
        results = await asyncio.gather(
            *(ingest.record_events(rt, tenant, batch(size)) for size in sizes)
        )
        assert all(isinstance(o, ingest.Outcome) for one in results for o in one)
    assert await pending_rows() == 0
    expected = await ledger_board_points(tenant)
    assert expected, "the telco preset gives APP_LOGIN points"
    for period in Period:
        rows = await PeriodScore.filter(tenant=tenant, period=period)
        assert {r.player_id: r.points for r in rows} == expected, period
    if rt.boards is not None:  # the Redis copy: the same top ten as the record
        for period in Period:
            cached = await leaderboards.board(tenant, period, cache=rt.boards)
            record = await leaderboards.board(tenant, period)
            assert [(e.player.id, e.points) for e in cached.entries] == [
                (e.player.id, e.points) for e in record.entries
            ]


async def park(
    tenant, player: Player, points: str, when: datetime, earned: datetime | None = None
) -> None:
    """A pending row as a batch that crashed after its commit leaves it: parked `when`,
    its points earned in the periods of `earned` (default: `when`)."""
    day = periods.local_day(earned or when, UTC)
    keys = periods.period_keys(day)
    conn = Tortoise.get_connection("default")
    await conn.execute_query(
        "INSERT INTO board_pending (tenant_id, created_at, player_ids, periods, period_keys, "
        "points) VALUES ($1, $2, $3, $4, $5, $6)",
        [
            tenant.id,
            when,
            [player.id] * len(keys),
            list(keys),
            list(keys.values()),
            [Decimal(points)] * len(keys),
        ],
    )


@pytest.mark.postgres
async def test_without_redis_a_large_batch_settles_before_it_answers(rt):
    """PostgreSQL serving its boards from SQL: the batch's parked points are added before
    record_events returns (not left to the sweep), and live boards are told after."""
    from app.runtime import Runtime

    sql_only = Runtime(rt.settings.model_copy(update={"redis_url": ""}))
    assert sql_only.boards is None and not sql_only.hub.via_redis
    await sql_only.hub.connect()
    try:
        tenant = await create_tenant("sqlboards", preset="telco")
        size = INLINE_SCORES_MAX + 36
        async with sql_only.hub.subscribe(boards_channel(tenant.id), signal=True) as changes:
            outcomes = await ingest.record_events(
                sql_only,
                tenant,
                [ingest.EventInput(f"s{n % 40}", "APP_LOGIN", value=1) for n in range(size)],
            )
            assert await pending_rows() == 0
            await asyncio.wait_for(anext(changes), 2)
        assert all(isinstance(o, ingest.Outcome) for o in outcomes)
        expected = await ledger_board_points(tenant)
        for period in Period:
            scores = await PeriodScore.filter(tenant=tenant, period=period)
            assert {s.player_id: s.points for s in scores} == expected, period
    finally:
        await sql_only.hub.disconnect()


@pytest.mark.postgres
async def test_points_a_crashed_batch_left_are_settled_once(rt):
    tenant = await create_tenant("crashed", preset="telco")
    (outcome,) = await ingest.record_events(
        rt, tenant, [ingest.EventInput("ann", "APP_LOGIN", value=1)]
    )
    assert isinstance(outcome, ingest.Outcome) and outcome.points > 0
    ann = await Player.get(tenant=tenant, external_id="ann")
    now = datetime.now(UTC)
    # Parked five minutes ago, for today's periods (the day may have begun since).
    await park(tenant, ann, "7.50", now - timedelta(minutes=5), earned=now)
    await park(tenant, ann, "1.25", now)  # its batch may still be settling it

    # The sweep leaves recent rows to their batch.
    assert await board_points.settle_left(rt.boards, rt.hub, now=now) == 1
    assert await pending_rows() == 1
    expected = outcome.points + Decimal("7.50")
    for period in Period:
        row = await PeriodScore.get(tenant=tenant, player=ann, period=period)
        assert row.points == expected, period
        board = await leaderboards.board(tenant, period, cache=rt.boards, around="ann")
        assert board.me is not None and board.me.points == expected

    # Run again, and with no age limit: the old row is gone, the recent one counts once.
    assert await board_points.settle_left(rt.boards, rt.hub, older_than=timedelta(0)) == 1
    assert await board_points.settle_left(rt.boards, rt.hub, older_than=timedelta(0)) == 0
    assert await pending_rows() == 0
    row = await PeriodScore.get(tenant=tenant, player=ann, period=Period.ALL_TIME)
    assert row.points == expected + Decimal("1.25")


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite's path")
async def test_sqlite_adds_board_points_in_the_batch(rt):
    """SQLite has one writer at a time: the points land in the batch's transaction and
    there is nothing to settle."""
    tenant = await create_tenant("inline", preset="telco")
    (outcome,) = await ingest.record_events(
        rt, tenant, [ingest.EventInput("bo", "APP_LOGIN", value=1)]
    )
    assert isinstance(outcome, ingest.Outcome)
    row = await PeriodScore.get(tenant=tenant, player__external_id="bo", period=Period.DAILY)
    assert row.points == outcome.points
    assert await board_points.settle_left(older_than=timedelta(0)) == 0


@pytest.mark.postgres
async def test_settlement_packs_rows_as_the_python_packer_does(rt):
    """PostgreSQL packs a settlement's rows for Redis itself: the same scores and
    members as board_cache.pack_scores, hidden players with an empty member."""
    tenant = await create_tenant("packing", preset="telco")
    await ingest.record_events(
        rt, tenant, [ingest.EventInput(name, "APP_LOGIN", value=1) for name in ("ann", "bob")]
    )
    ann = await Player.get(tenant=tenant, external_id="ann")
    bob = await Player.get(tenant=tenant, external_id="bob")
    bob.hidden_from_boards = True
    await bob.save(update_fields=["hidden_from_boards"])
    when = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=UTC)
    await park(tenant, ann, "2.35", when)
    await park(tenant, bob, "0.05", when)
    store = IngestStore(Tortoise.get_connection("default"), postgres=True)

    settled: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    for pending_id in await store.pending_board_points(datetime.now(UTC) + timedelta(days=1)):
        tenant_id, boards = await store.settle_board_points(pending_id)
        assert tenant_id == tenant.id
        for board in boards:  # one player per pending row here
            assert board.count == len(triples(board.packed)) == 1
            settled[(board.period, board.period_key)] += triples(board.packed)
    assert set(settled) == set(periods.period_keys(when.date()).items())
    for (period, key), got in settled.items():
        rows = await PeriodScore.filter(tenant=tenant, period=period, period_key=key)
        (expected,) = pack_scores(rows, {bob.id})
        assert sorted(got) == triples(expected.packed)
        assert [member for pk, _, member in got if pk == str(bob.id)] == [""]  # hidden


@pytest.mark.postgres
async def test_a_small_batch_adds_its_points_in_place_packed_as_the_python_packer_does(rt):
    """A batch of at most INLINE_SCORES_MAX events leaves nothing pending: its write
    statement upserts the period scores and packs them like board_cache.pack_scores."""
    tenant = await create_tenant("in-place", preset="telco")
    await ingest.record_events(rt, tenant, [ingest.EventInput("cy", "APP_LOGIN", value=1)])
    cy = await Player.get(tenant=tenant, external_id="cy")
    cy.hidden_from_boards = True
    await cy.save(update_fields=["hidden_from_boards"])
    events = [ingest.EventInput(name, "APP_LOGIN", value=1) for name in ("ann", "bob", "cy", "ann")]
    done = await ingest._apply(
        tenant,
        rules_for(tenant),
        [check_event(i, e, rules_for(tenant), datetime.now(UTC)) for i, e in enumerate(events)],
        datetime.now(UTC),
        dry_run=False,
    )
    assert done.written.pending is None and await pending_rows() == 0
    assert {(b.period, b.period_key) for b in done.written.boards} == {
        (str(p), k) for p, k in periods.period_keys(datetime.now(UTC).date()).items()
    }
    for board in done.written.boards:
        rows = await PeriodScore.filter(
            tenant=tenant, period=board.period, period_key=board.period_key
        )
        (expected,) = pack_scores(rows, {cy.id})
        assert board.count == expected.count == 3
        assert triples(board.packed) == triples(expected.packed)
