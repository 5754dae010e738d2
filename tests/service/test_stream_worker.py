"""`questline worker`: events XADDed to a Redis stream, applied exactly once by the
workers of a consumer group.

Real Redis: REDIS_URL, else the machine's at 127.0.0.1:6379 (the worker needs Redis but
not PostgreSQL, so the SQLite run tests it too); skipped only when no Redis answers.
Each test has its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from app.services.stream_worker import (
    GROUP,
    WorkerOptions,
    consumer_client_name,
    rejected_key,
    run_worker,
    stream_key,
)
from app.services.tenants import create_tenant
from models import DataSource, Event, Player, PointTransaction, Tenant, Wallet
from tests.api.test_live import POINTS, wait_for_subscribers
from tests.conftest import gql
from tests.service.stream_helpers import (
    NORMALIZE,
    RECORD,
    SUMMARY,
    balance,
    consume,
    drained,
    event,
    events_by_player,
    group_info,
    needs_redis,
    redis_fixture,
    rule_points,
    settings_fixture,
    start_cli_worker,
    stop_cli_worker,
    stopped,
    wait_until_reading,
    worker_log,
    xadd,
)
from tests.wsclient import GraphQLWebSocket

pytestmark = needs_redis
FIXTURES = (settings_fixture, redis_fixture)  # `settings` and `redis`, for the tests below


# ------------------------------------------------------------------ applying entries


async def test_entries_in_both_formats_get_what_the_api_gives_and_are_acknowledged(
    client, make_tenant, settings, redis
):
    key = await make_tenant("telco", slug="tel")
    tenant = await Tenant.get(slug="tel")
    cdr_source = await DataSource.get(tenant_id=tenant.id, source_type="cdr")
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recharge = {"eventType": "RECHARGE", "value": 25, "occurredAt": when}
    call = {"call_type": "outgoing", "duration": 240, "call_time": when}
    # The same events through the API, for other players.
    api = await gql(client, RECORD, {"input": {"playerId": "api-1", **recharge}}, token=key)
    normalized = await gql(
        client,
        NORMALIZE,
        {"input": {"sourceType": "cdr", "event": {**call, "customer_id": "api-2"}}},
        token=key,
    )

    stream = stream_key(settings.redis_prefix, "tel")
    assert stream == f"{settings.redis_prefix}:events:tel"
    ids = await xadd(
        redis,
        stream,
        event(playerId="s1", **recharge),
        {"source": "cdr", "record": json.dumps({**call, "customer_id": "s2", "call_id": "c-9"})},
        {"source": str(cdr_source.id), "record": json.dumps({**call, "customer_id": "s3"})},
    )
    stats = await consume(settings, redis, "tel")

    expected_recharge = rule_points(tenant, "RECHARGE", 25)
    expected_call = rule_points(tenant, "CALL", 4)  # 240 s are 4 minutes
    assert expected_recharge > 0 and expected_call > 0
    api_outcome = api.data["recordEvent"]["outcome"]
    normalized_outcome = normalized.data["normalizeEvent"]["outcome"]
    assert Decimal(str(api_outcome["pointsAwarded"])) == expected_recharge
    assert Decimal(str(normalized_outcome["pointsAwarded"])) == expected_call

    events = await events_by_player(tenant)
    assert events["s1"].points_awarded == expected_recharge
    assert events["s1"].source == "api" and events["s1"].idempotency_key == f"stream:{ids[0]}"
    assert events["s2"].points_awarded == events["s3"].points_awarded == expected_call
    assert events["s2"].source == "cdr"
    assert events["s2"].idempotency_key == f"source-{cdr_source.id}:cdr-c-9"  # the CDR's own id
    assert events["s3"].idempotency_key == f"stream:{ids[2]}"  # a CDR without one
    assert await balance(tenant, "s1") == await balance(tenant, "api-1") == expected_recharge
    assert await balance(tenant, "s2") == await balance(tenant, "api-2") == expected_call
    assert (stats.read, stats.applied, stats.duplicates, stats.rejected) == (3, 3, 0, 0)
    assert stats.points == expected_recharge + 2 * expected_call
    assert (await group_info(redis, stream))["pending"] == 0


async def test_a_bad_entry_is_dead_lettered_with_its_code_and_the_rest_applies(
    app, settings, redis
):
    tenant = await create_tenant("dead", preset="telco")
    stream = stream_key(settings.redis_prefix, "dead")
    good = {"eventType": "RECHARGE", "idempotencyKey": "k1"}
    entries = [
        event(playerId="a", value=5, **good),
        event(player_id="b", eventType="RECHARGE"),  # a misspelt field
        {"event": "not json"},
        event(playerId="c", eventType="RECHARGE", value=-1),
        event(playerId="a", value=6, **good),  # k1 again, another payload
        {"source": "no-such-source", "record": "{}"},
        event(playerId="d", eventType="RECHARGE", value=7),
        {"something": "else"},
        {"event": '{"playerId": "e", "eventType": "RECHARGE", "value": NaN}'},
    ]
    ids = await xadd(redis, stream, *entries)
    stats = await consume(settings, redis, "dead")

    assert (stats.read, stats.applied, stats.rejected) == (9, 2, 7)
    assert await balance(tenant, "a") == rule_points(tenant, "RECHARGE", 5)
    assert await balance(tenant, "d") == rule_points(tenant, "RECHARGE", 7)
    assert not await Player.filter(tenant_id=tenant.id, external_id__in=["b", "c", "e"]).exists()
    letters = await redis.xrange(rejected_key(settings.redis_prefix, "dead"))
    assert rejected_key(settings.redis_prefix, "dead") == f"{stream}:rejected"
    got = [(f[b"entry"].decode(), f[b"code"].decode(), f[b"field"].decode()) for _, f in letters]
    assert got == [
        (ids[1], "INVALID", "event.player_id"),
        (ids[2], "INVALID", "event"),
        (ids[3], "INVALID", "event.value"),
        (ids[4], "CONFLICT", "event.idempotencyKey"),
        (ids[5], "NOT_FOUND", "source"),
        (ids[7], "INVALID", "event"),
        (ids[8], "INVALID", "event"),
    ]
    for (_, fields), index in zip(letters, [1, 2, 3, 4, 5, 7, 8], strict=True):
        original = {k.encode(): v.encode() for k, v in entries[index].items()}
        assert {k: v for k, v in fields.items() if k in original} == original
        assert fields[b"message"]
    assert (await group_info(redis, stream))["pending"] == 0


async def test_a_source_written_in_other_digits_is_an_unknown_source_and_the_rest_applies(
    app, settings, redis
):
    """'²' passes str.isdigit() and int() refuses it; int() reads ARABIC-INDIC DIGIT ONE
    as 1, the id of a source this tenant has. Each is an unknown source, not an id, and
    the stream goes on."""
    tenant = await create_tenant("digits", preset="telco")
    cdr = await DataSource.get(tenant_id=tenant.id, source_type="cdr")
    assert cdr.id == 1
    stream = stream_key(settings.redis_prefix, "digits")
    call = json.dumps({"customer_id": "x", "call_type": "outgoing", "duration": 60})
    ids = await xadd(
        redis,
        stream,
        {"source": "²", "record": call},
        {"source": "\u0661", "record": call},
        event(playerId="after", eventType="RECHARGE", value=3),
    )
    stats = await consume(settings, redis, "digits")

    assert (stats.read, stats.applied, stats.rejected) == (3, 1, 2)
    assert await balance(tenant, "after") == rule_points(tenant, "RECHARGE", 3)
    assert not await Player.filter(tenant_id=tenant.id, external_id="x").exists()
    letters = await redis.xrange(rejected_key(settings.redis_prefix, "digits"))
    got = [(f[b"entry"].decode(), f[b"code"], f[b"field"]) for _, f in letters]
    assert got == [(ids[0], b"NOT_FOUND", b"source"), (ids[1], b"NOT_FOUND", b"source")]


async def test_a_payload_that_is_not_utf8_is_rejected_as_such(app, settings, redis):
    """Not "Expecting value": json.loads, given bytes, guesses UTF-16 from b'\\xff\\xfe'."""
    tenant = await create_tenant("bytes", preset="telco")
    stream = stream_key(settings.redis_prefix, "bytes")
    good = json.dumps({"playerId": "p", "eventType": "RECHARGE", "value": 2}).encode()
    record = json.dumps({"customer_id": "x", "call_type": "outgoing", "duration": 60})
    latin1 = good[:-1] + b', "category": "caf\xe9"}'  # Latin-1, not UTF-8
    cut = record.encode()[:-1] + b', "x": "\xc3"}'  # a character cut short
    ids = await xadd(
        redis,
        stream,
        {"event": b"\xff\xfe" + good},
        {"event": latin1},
        {"source": "cdr", "record": cut},
        {"event": b"\xef\xbb\xbf" + good},  # a UTF-8 byte order mark: still UTF-8
    )
    stats = await consume(settings, redis, "bytes")

    assert (stats.read, stats.applied, stats.rejected) == (4, 1, 3)
    assert await balance(tenant, "p") == rule_points(tenant, "RECHARGE", 2)
    letters = await redis.xrange(rejected_key(settings.redis_prefix, "bytes"))
    got = [(f[b"entry"].decode(), f[b"code"], f[b"field"]) for _, f in letters]
    assert got == [
        (ids[0], b"INVALID", b"event"),
        (ids[1], b"INVALID", b"event"),
        (ids[2], b"INVALID", b"record"),
    ]
    messages = [f[b"message"].decode() for _, f in letters]
    assert messages == [
        "event is not valid UTF-8: byte 0xff at position 0",
        f"event is not valid UTF-8: byte 0xe9 at position {latin1.index(0xE9)}",
        f"record is not valid UTF-8: byte 0xc3 at position {cut.index(0xC3)}",
    ]


async def test_an_entry_applied_but_not_acknowledged_comes_back_as_a_duplicate(
    app, settings, redis
):
    tenant = await create_tenant("again", preset="telco")
    stream = stream_key(settings.redis_prefix, "again")
    ids = await xadd(
        redis,
        stream,
        event(playerId="p", eventType="RECHARGE", value=10),
        event(playerId="q", eventType="RECHARGE", value=20),
    )
    first = await consume(settings, redis, "again")
    assert (first.applied, first.duplicates) == (2, 0)
    lines = await PointTransaction.filter(tenant_id=tenant.id).count()
    balances = [await balance(tenant, "p"), await balance(tenant, "q")]

    # As if workers had been killed between commit and XACK: both entries pending again,
    # one on a consumer gone for two minutes, one on this worker's own name (a restart).
    await redis.xclaim(stream, GROUP, "dead", 0, [ids[0]], idle=120_000, force=True)
    await redis.xclaim(stream, GROUP, "w1", 0, [ids[1]], force=True)
    assert (await group_info(redis, stream))["pending"] == 2
    again = await consume(settings, redis, "again")

    assert (again.read, again.applied, again.duplicates, again.rejected) == (2, 0, 2, 0)
    assert again.points == 0
    assert await PointTransaction.filter(tenant_id=tenant.id).count() == lines == 2
    assert [await balance(tenant, "p"), await balance(tenant, "q")] == balances


async def test_entries_a_dead_consumer_left_pending_are_claimed_once_idle_long_enough(
    app, settings, redis
):
    tenant = await create_tenant("claim", preset="telco")
    stream = stream_key(settings.redis_prefix, "claim")
    values = [3, 4, 5, 6, 7]
    await xadd(
        redis, stream, *(event(playerId=f"p{v}", eventType="RECHARGE", value=v) for v in values)
    )
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    (delivered,) = await redis.xreadgroup(GROUP, "crashed", {stream: ">"}, count=10)
    assert len(delivered[1]) == 5  # read by a consumer that then died: never applied

    # A worker that waits a minute before taking over leaves them alone for now.
    stop = asyncio.Event()
    patient = WorkerOptions("w1", block_ms=100, claim_idle_seconds=60)
    task = asyncio.create_task(run_worker(settings, ["claim"], patient, stop))
    await asyncio.sleep(1.0)
    stop.set()
    assert (await asyncio.wait_for(task, 20)).read == 0
    assert (await redis.xpending(stream, GROUP))["pending"] == 5
    assert not await Event.filter(tenant_id=tenant.id).exists()

    stats = await consume(settings, redis, "claim", claim_idle_seconds=0.5)
    assert (stats.read, stats.applied) == (5, 5)
    assert stats.points == sum(rule_points(tenant, "RECHARGE", v) for v in values)
    assert await Event.filter(tenant_id=tenant.id).count() == 5
    assert (await redis.xpending(stream, GROUP))["pending"] == 0


async def test_acknowledged_entries_are_trimmed_and_pending_ones_kept(app, settings, redis):
    tenant = await create_tenant("trim", preset="telco")
    stream = stream_key(settings.redis_prefix, "trim")
    await xadd(
        redis, stream, *(event(playerId=f"p{n}", eventType="RECHARGE", value=1) for n in range(5))
    )
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xreadgroup(GROUP, "crashed", {stream: ">"}, count=2)
    stop = asyncio.Event()
    options = WorkerOptions("w1", block_ms=100, claim_idle_seconds=4)  # a round every 2 s
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(run_worker(settings, ["trim"], options, stop))
    try:
        for _ in range(200):
            if await Event.filter(tenant_id=tenant.id).count() == 3:
                break
            await asyncio.sleep(0.02)
        # After the round at 2 s, which found the crashed consumer's two still pending.
        await asyncio.sleep(max(0.0, started + 2.8 - asyncio.get_running_loop().time()))
        assert await Event.filter(tenant_id=tenant.id).count() == 3
        assert await redis.xlen(stream) == 5  # kept: two pending, and those after them
        await drained(redis, stream, task)  # claimed once idle for 4 s
        for _ in range(100):
            if await redis.xlen(stream) == 0:
                break
            await asyncio.sleep(0.05)
        assert await redis.xlen(stream) == 0
    finally:
        stop.set()
    assert (await asyncio.wait_for(task, 20)).applied == 5


async def test_one_worker_serves_every_tenant_with_all_tenants(app, settings, redis):
    for slug in ("one", "two"):
        await create_tenant(slug, preset="telco")
        key = stream_key(settings.redis_prefix, slug)
        await xadd(redis, key, event(playerId="p", eventType="RECHARGE", value=2))
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, None, WorkerOptions("w", block_ms=100), stop))
    try:
        for slug in ("one", "two"):
            await drained(redis, stream_key(settings.redis_prefix, slug), task)
    finally:
        stop.set()
    stats = await asyncio.wait_for(task, 20)
    assert stats.applied == 2
    for slug in ("one", "two"):
        tenant = await Tenant.get(slug=slug)
        assert await balance(tenant, "p") == rule_points(tenant, "RECHARGE", 2)


async def test_the_worker_waits_for_redis_and_loses_nothing(app, settings):
    """Started while Redis is down, it retries with backoff instead of exiting, and
    applies the entries once Redis is there."""
    from tests.api.test_redis_restart import OwnRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is needed to start a Redis of this test's own")
    tenant = await create_tenant("later", preset="telco")
    own = OwnRedis()
    late = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{own.port}/0"})
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(late, ["later"], WorkerOptions("w", block_ms=100), stop))
    try:
        await asyncio.sleep(2.0)
        assert not task.done()  # still trying
        own.start()
        redis = Redis.from_url(late.redis_url)
        try:
            stream = stream_key(settings.redis_prefix, "later")
            await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=9))
            await drained(redis, stream, task)
        finally:
            await redis.aclose()
    finally:
        stats = await stopped(task, stop, own)
    assert stats.applied == 1
    assert await balance(tenant, "p") == rule_points(tenant, "RECHARGE", 9)


# ------------------------------------------------------------------ Redis losing its data, stopping


async def test_a_stream_redis_lost_with_its_group_is_made_again_at_once(app, settings):
    """Redis restarted without its data: the worker's next read gets NOGROUP. It makes
    the stream and its group again there and then, not after a backoff."""
    from tests.api.test_redis_restart import OwnRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is needed to start a Redis of this test's own")
    tenant = await create_tenant("lost", preset="telco")
    own = OwnRedis()
    own.start()
    mine = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{own.port}/0"})
    stream = stream_key(settings.redis_prefix, "lost")
    stop = asyncio.Event()
    with worker_log() as log:
        task = asyncio.create_task(
            run_worker(mine, ["lost"], WorkerOptions("w", block_ms=100), stop)
        )
        try:
            async with Redis.from_url(mine.redis_url) as redis:
                await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=1))
                await drained(redis, stream, task)
            own.stop()
            own.start()  # empty: neither the stream nor its group
            async with Redis.from_url(mine.redis_url) as redis:
                await xadd(redis, stream, event(playerId="q", eventType="RECHARGE", value=2))
                await drained(redis, stream, task)
        finally:
            stats = await stopped(task, stop, own)
    assert stats.applied == 2
    assert await balance(tenant, "q") == rule_points(tenant, "RECHARGE", 2)
    assert any("creating them again" in line for line in log.lines), log.lines
    assert not [line for line in log.lines if "NOGROUP" in line and "retrying" in line]


async def blocked_in_read(redis: Redis, consumer: str, task: Any) -> None:
    """Until the worker's stream client waits in XREADGROUP (CLIENT LIST: flag b)."""
    name = consumer_client_name(consumer)
    for _ in range(600):
        if task.done():
            task.result()
            raise AssertionError("the worker stopped by itself")
        for client in await redis.client_list():
            if client["name"] == name and client["cmd"] == "xreadgroup" and "b" in client["flags"]:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never blocked in XREADGROUP")


async def test_a_stop_ends_a_blocking_read_at_once(app, settings, redis):
    await create_tenant("block", preset="telco")
    stream = stream_key(settings.redis_prefix, "block")
    stop = asyncio.Event()
    options = WorkerOptions("w1", block_ms=60_000)
    task = asyncio.create_task(run_worker(settings, ["block"], options, stop))
    try:
        await blocked_in_read(redis, "w1", task)
    finally:
        stop.set()
    stats = await asyncio.wait_for(task, 20)  # not the minute the read would wait
    assert stats.read == 0
    # Nothing was left delivered and unhandled, and its connection is gone.
    assert (await group_info(redis, stream))["pending"] == 0
    assert consumer_client_name("w1") not in [c["name"] for c in await redis.client_list()]


async def test_a_clean_stop_leaves_the_group_unless_the_consumer_holds_entries(
    app, settings, redis
):
    tenant = await create_tenant("leave", preset="telco")
    stream = stream_key(settings.redis_prefix, "leave")
    await xadd(redis, stream, event(playerId="p", eventType="RECHARGE", value=1))
    stats = await consume(settings, redis, "leave", consumer="w1")
    assert stats.applied == 1
    assert await redis.xinfo_consumers(stream, GROUP) == []  # w1 read, then left

    # Entries delivered to w2 and never applied (it died): a w2 that stops before it
    # gets to them stays, for a restart under its name or another worker's claim.
    await xadd(redis, stream, event(playerId="q", eventType="RECHARGE", value=2))
    await redis.xreadgroup(GROUP, "w2", {stream: ">"}, count=10)
    stop = asyncio.Event()
    with worker_log(on=("reading", stop.set)):  # stopped as its loop begins
        again = await asyncio.wait_for(
            run_worker(settings, ["leave"], WorkerOptions("w2", block_ms=100), stop), 20
        )
    assert again.read == 0
    consumers = await redis.xinfo_consumers(stream, GROUP)
    assert [(c["name"], c["pending"]) for c in consumers] == [(b"w2", 1)]
    assert not await Player.filter(tenant_id=tenant.id, external_id="q").exists()


# ------------------------------------------------------------------ the command


@pytest.mark.postgres
async def test_two_workers_split_a_stream_and_apply_every_event_exactly_once(app, settings, redis):
    tenant = await create_tenant("duo", preset="telco")
    stream = stream_key(settings.redis_prefix, "duo")
    workers = [
        await start_cli_worker(
            settings, "--tenant", "duo", "--consumer", name, "--batch-size", "20"
        )
        for name in ("w1", "w2")
    ]
    try:
        for process in workers:
            await wait_until_reading(process)
        values = [1 + i % 37 for i in range(300)]
        ids: list[str] = []
        for start in range(0, 300, 20):  # as producers send them, a few at a time
            ids += await xadd(
                redis,
                stream,
                *(
                    event(playerId=f"p{i % 20}", eventType="RECHARGE", value=values[i])
                    for i in range(start, start + 20)
                ),
            )
            await asyncio.sleep(0.01)
        await drained(redis, stream, within=60)
    finally:
        results = [await stop_cli_worker(process) for process in workers]
    summaries = []
    for code, err in results:
        assert code == 0, err
        summaries.append(SUMMARY.search(err))
    assert all(summaries), [err for _, err in results]
    applied = [int(s.group(2)) for s in summaries]
    assert sum(applied) == 300 and min(applied) > 0, applied  # both took a share
    assert [int(s.group(3)) + int(s.group(4)) for s in summaries] == [0, 0]

    events = await Event.filter(tenant_id=tenant.id).values_list("idempotency_key", flat=True)
    assert sorted(events) == sorted(f"stream:{i}" for i in ids)
    earn = PointTransaction.filter(tenant_id=tenant.id, kind="EARN")
    assert await earn.count() == 300
    total = sum(Decimal(s.group(5)) for s in summaries)
    assert total == sum(rule_points(tenant, "RECHARGE", v) for v in values)
    for wallet in await Wallet.filter(tenant_id=tenant.id):
        lines = await PointTransaction.filter(player_id=wallet.player_id).values_list(
            "amount", flat=True
        )
        assert sum(lines) == wallet.balance


async def test_sigterm_finishes_the_batch_in_flight_acknowledges_it_and_exits_0(
    app, settings, redis
):
    tenant = await create_tenant("term", preset="telco")
    stream = stream_key(settings.redis_prefix, "term")
    values = [1 + i % 9 for i in range(600)]
    ids = await xadd(
        redis,
        stream,
        *(
            event(playerId=f"p{i % 30}", eventType="RECHARGE", value=v)
            for i, v in enumerate(values)
        ),
    )
    process = await start_cli_worker(
        settings, "--tenant", "term", "--batch-size", "100", "--block-ms", "200"
    )
    try:
        await wait_until_reading(process)
        for _ in range(600):  # until a first batch has committed
            if await Event.filter(tenant_id=tenant.id).exists():
                break
            await asyncio.sleep(0.02)
    finally:
        code, err = await stop_cli_worker(process)
    assert code == 0, err
    summary = SUMMARY.search(err)
    assert summary, err
    read, applied = int(summary.group(1)), int(summary.group(2))

    # Whatever was delivered before the signal was applied and acknowledged.
    info = await group_info(redis, stream)
    assert info["pending"] == 0
    delivered = ids.index(info["last-delivered-id"].decode()) + 1
    assert read == applied == delivered == await Event.filter(tenant_id=tenant.id).count()
    expected = sum(rule_points(tenant, "RECHARGE", v) for v in values[:delivered])
    assert Decimal(summary.group(5)) == expected


async def test_without_redis_url_or_with_an_unknown_tenant_the_worker_says_so(settings):
    process = await start_cli_worker(settings, REDIS_URL="")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "REDIS_URL is not set" in err.decode()
    process = await start_cli_worker(settings, "--tenant", "nosuch")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "no tenant 'nosuch'" in err.decode()


async def test_a_subscriber_of_a_running_server_hears_the_workers_events(
    live_server_factory, make_tenant, settings, redis
):
    key = await make_tenant("telco", slug="heard")
    tenant = await Tenant.get(slug="heard")
    server = live_server_factory()  # on the same Redis and prefix as the worker
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    try:
        await ws.subscribe(POINTS, {"id": "fan"})
        await wait_for_subscribers(server, 1)
        stream = stream_key(settings.redis_prefix, "heard")
        await xadd(redis, stream, event(playerId="fan", eventType="RECHARGE", value=12))
        stats = await consume(settings, redis, "heard")
        change = (await ws.receive())["payload"]["data"]["pointsChanged"]
    finally:
        await ws.close()
    assert stats.applied == 1
    assert Decimal(str(change["amount"])) == rule_points(tenant, "RECHARGE", 12) == stats.points
    (row,) = await Event.filter(tenant_id=tenant.id)
    assert change["transaction"]["kind"] == "EARN"
    assert change["transaction"]["eventId"] == str(row.id)


async def test_an_entry_the_database_refuses_is_dead_lettered_alone(app, settings, redis):
    from tests.service.test_isolate import ledger_matches, poison_refused

    tenant = await create_tenant("poison", preset="telco")
    stream = stream_key(settings.redis_prefix, "poison")
    ids = await xadd(
        redis,
        stream,
        event(playerId="a", eventType="APP_LOGIN"),
        event(playerId="b", eventType="POISON"),
        event(playerId="c", eventType="APP_LOGIN"),
    )
    async with poison_refused():
        stats = await consume(settings, redis, "poison")
    assert (stats.applied, stats.rejected) == (2, 1)
    (letter,) = await redis.xrange(rejected_key(settings.redis_prefix, "poison"))
    assert letter[1][b"entry"].decode() == ids[1] and letter[1][b"code"] == b"INVALID"
    await ledger_matches(tenant.id)
