"""Leaderboards served from Redis sorted sets: the same ranks as SQL, kept in step after
commit, found missing and rebuilt, dropped when stale, expiring after retention."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from app.engine import periods
from app.services import ingest, leaderboards, players
from app.services.board_cache import BoardCache, ScoreRow, pack_scores, record_rows
from app.services.common import zone
from app.services.tenants import create_tenant
from models import Period, Player
from tests.api.test_redis_restart import own_redis  # noqa: F401  (fixture)

pytestmark = pytest.mark.redis

PERIODS = list(Period)


def shown(board: leaderboards.Board) -> list[tuple]:
    rows = [
        (e.rank, e.player.external_id, e.points, e.previous_rank, e.points_change)
        for e in board.entries
    ]
    me = board.me
    return [board.total_players, rows, me and (me.rank, me.player.external_id, me.points)]


async def both(tenant, cache: BoardCache, period: Period, **kwargs) -> tuple[list, list]:
    """The same page from Redis and from SQL; asserts Redis did serve it."""
    reads = cache.stats["reads"]
    cached = await leaderboards.board(tenant, period, cache=cache, **kwargs)
    assert cache.stats["reads"] == reads + 1, "served from SQL, not Redis"
    return shown(cached), shown(await leaderboards.board(tenant, period, **kwargs))


async def ready(cache: BoardCache, tenant, period: Period = Period.ALL_TIME) -> None:
    """Reads once (a missing board starts its rebuild) and waits for the rebuild."""
    await leaderboards.board(tenant, period, cache=cache)
    await cache.wait_rebuilds()


async def seed_ties(rt, tenant, count: int = 40) -> list[str]:
    """Players in batches: many share points and the moment they reached them."""
    rng = random.Random(7)
    ids = [f"p{n:03d}" for n in range(count)]
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for start in range(0, count, 8):
        batch = [
            ingest.EventInput(pid, "x", value=rng.choice([5, 5, 10, 20]))
            for pid in ids[start : start + 8]
        ]
        batch += [  # a previous day, for previous ranks
            ingest.EventInput(pid, "x", value=rng.choice([1, 2, 2]), occurred_at=yesterday)
            for pid in ids[start : start + 8 : 2]
        ]
        await ingest.record_events(rt, tenant, batch)
    return ids


async def test_redis_ranks_equal_sql_ranks_ties_included(rt):
    tenant = await create_tenant("zsame", preset="habits")
    cache = rt.boards
    ids = await seed_ties(rt, tenant)
    for period in PERIODS:
        await ready(cache, tenant, period)
    # The previous day's board too, so previous ranks come from Redis as well.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    await cache.rebuild(tenant.id, tenant.timezone, "DAILY", yesterday)
    for period in PERIODS:
        for kwargs in (
            {"first": 100},
            {"first": 7, "offset": 5},
            {"first": 5, "around": ids[17]},
            {"first": 4, "around": ids[0]},
            {"first": 0, "around": ids[3]},
            {"first": 10, "offset": 1000},
        ):
            redis_page, sql_page = await both(tenant, cache, period, **kwargs)
            assert redis_page == sql_page, (period, kwargs)
    # Writes after the rebuild keep the copy exact without another rebuild.
    rebuilds = cache.stats["rebuilds"]
    await ingest.record_events(rt, tenant, [ingest.EventInput(ids[39], "x", value=15)])
    await ingest.record_event(rt, tenant, ingest.EventInput("newcomer", "x", value=5))
    for period in PERIODS:
        redis_page, sql_page = await both(tenant, cache, period, first=100)
        assert redis_page == sql_page
    assert cache.stats["rebuilds"] == rebuilds


async def test_a_missing_or_emptied_board_is_served_from_sql_and_rebuilt(rt):
    tenant = await create_tenant("zmiss", preset="habits")
    cache = rt.boards
    await seed_ties(rt, tenant, 12)
    await ready(cache, tenant)
    expected = shown(await leaderboards.board(tenant, Period.ALL_TIME, first=50))
    zset, _, state = cache.keys(tenant.id, "ALL_TIME", "all")
    # Lost with Redis (all keys gone): SQL answers, and the board is rebuilt.
    await cache.redis.delete(*cache.keys(tenant.id, "ALL_TIME", "all"))
    fallbacks = cache.stats["fallbacks"]
    page = await leaderboards.board(tenant, Period.ALL_TIME, first=50, cache=cache)
    assert shown(page) == expected and cache.stats["fallbacks"] == fallbacks + 1
    await cache.wait_rebuilds()
    assert await cache.redis.get(state) == b"ready"
    assert await cache.redis.zcard(zset) == 12
    redis_page, _ = await both(tenant, cache, Period.ALL_TIME, first=50)
    assert redis_page == expected
    # Only the set emptied (its state still says ready): found, and rebuilt.
    await cache.redis.delete(zset)
    page = await leaderboards.board(tenant, Period.ALL_TIME, first=50, cache=cache)
    assert shown(page) == expected
    await cache.wait_rebuilds()
    assert await cache.redis.zcard(zset) == 12


async def test_out_of_order_and_repeated_writes_keep_the_higher_score(rt):
    tenant = await create_tenant("zorder", preset="habits")
    cache = rt.boards
    await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=10))
    await ready(cache, tenant)
    player = await Player.get(external_id="a")
    zset, hash_, _ = cache.keys(tenant.id, "ALL_TIME", "all")
    row = (await anext(record_rows(tenant.id, "ALL_TIME", "all")))[0]
    older = ScoreRow(tenant.id, player.id, "ALL_TIME", "all", Decimal(4), row.reached_at)
    await cache.apply([older, row, older], tenant.timezone)  # a stale write arrives late
    assert await cache.redis.zrange(zset, 0, -1, withscores=True) == [
        (await cache.redis.hget(hash_, str(player.id)), -1000.0)
    ]


async def test_several_boards_and_their_announcement_go_in_one_call(rt):
    """A batch's boards are written by one script call that then publishes the given
    messages: a subscriber told of the change reads the new scores; a board not built
    yet is skipped (it rebuilds from the record)."""
    tenant = await create_tenant("zannounce", preset="habits")
    cache = rt.boards
    await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=10))
    await ready(cache, tenant)
    await ready(cache, tenant, Period.DAILY)
    player = await Player.get(tenant=tenant, external_id="a")
    now = datetime.now(UTC)
    keys = periods.period_keys(periods.local_day(now, zone(tenant.timezone)))
    rows = [
        ScoreRow(tenant.id, player.id, period, key, Decimal(25), now)
        for period, key in keys.items()
    ]
    pubsub = cache.redis.pubsub()
    await pubsub.subscribe("zannounce-news")
    try:
        ok = await cache.apply_packed(
            tenant.id,
            tenant.timezone,
            pack_scores(rows, hidden=()),
            announce=[("zannounce-news", b'{"changed":true}')],
        )
        assert ok
        message = None
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message["data"] == b'{"changed":true}'
        for period in ("ALL_TIME", "DAILY"):
            zset, hash_, _ = cache.keys(tenant.id, period, keys[period])
            member = await cache.redis.hget(hash_, str(player.id))
            assert await cache.redis.zscore(zset, member) == -2500.0
        # Never read, so never built: skipped, not half-written.
        assert await cache.redis.exists(*cache.keys(tenant.id, "WEEKLY", keys["WEEKLY"])) == 0
    finally:
        await pubsub.aclose()


async def test_rebuild_racing_writes_loses_nothing(rt):
    tenant = await create_tenant("zrace", preset="habits")
    cache = rt.boards
    await seed_ties(rt, tenant, 24)

    async def writes() -> None:
        for n in range(12):
            await ingest.record_event(rt, tenant, ingest.EventInput(f"p{n:03d}", "x", value=3))

    await asyncio.gather(
        cache.rebuild(tenant.id, tenant.timezone, "ALL_TIME", "all"),
        writes(),
        cache.rebuild(tenant.id, tenant.timezone, "ALL_TIME", "all"),
    )
    redis_page, sql_page = await both(tenant, cache, Period.ALL_TIME, first=100)
    assert redis_page == sql_page


async def test_hidden_players_leave_the_redis_board_and_still_see_their_rank(rt):
    tenant = await create_tenant("zhide", preset="habits")
    cache = rt.boards
    for pid, value in (("a", 30), ("b", 20), ("c", 10)):
        await ingest.record_event(rt, tenant, ingest.EventInput(pid, "x", value=value))
    await ready(cache, tenant)
    await players.upsert_player(rt, tenant, "b", {"hidden_from_boards": True})
    redis_page, sql_page = await both(tenant, cache, Period.ALL_TIME)
    assert redis_page == sql_page and [r[1] for r in redis_page[1]] == ["a", "c"]
    me = await leaderboards.board(tenant, Period.ALL_TIME, around="b", cache=cache)
    assert me.me is not None and me.me.rank == 2  # served from SQL: b is not in Redis
    await ingest.record_event(rt, tenant, ingest.EventInput("b", "x", value=50))
    redis_page, _ = await both(tenant, cache, Period.ALL_TIME)
    assert [r[1] for r in redis_page[1]] == ["a", "c"]  # a hidden player's points stay out
    await players.upsert_player(rt, tenant, "b", {"hidden_from_boards": False})
    redis_page, sql_page = await both(tenant, cache, Period.ALL_TIME)
    assert redis_page == sql_page and [r[1] for r in redis_page[1]] == ["b", "a", "c"]


async def test_closed_period_boards_expire_after_the_retention(rt):
    tenant = await create_tenant("zttl", preset="habits", timezone="Europe/Helsinki")
    cache = rt.boards
    await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=1))
    for period in PERIODS:
        await ready(cache, tenant, period)
    today = leaderboards.current_key(tenant, Period.DAILY)
    ttl = await cache.redis.ttl(cache.keys(tenant.id, "DAILY", today)[0])
    # Today closes within a day; the set goes 40 days (the default retention) after.
    assert 40 * 86400 - 60 < ttl <= 41 * 86400
    assert await cache.redis.ttl(cache.keys(tenant.id, "ALL_TIME", "all")[0]) == -1
    end = datetime.fromtimestamp(cache.expire_at("MONTHLY", "2026-02", "Europe/Helsinki"), UTC)
    # February closes at midnight on 1 March in Helsinki (22:00 UTC); 40 days later is
    # local midnight on 9 April, summer time by then (21:00 UTC).
    assert end == datetime(2026, 4, 9, 21, tzinfo=UTC)


async def test_writes_lost_while_redis_is_unreachable_rebuild_the_board(
    rt,
    own_redis,  # noqa: F811
):
    tenant = await create_tenant("zlost", preset="habits")
    redis = Redis.from_url(f"redis://127.0.0.1:{own_redis.port}/0", socket_timeout=1)
    cache = BoardCache(redis, "zlost")
    try:
        await ingest.record_event(rt, tenant, ingest.EventInput("a", "x", value=10))
        await ready(cache, tenant)
        zset, hash_, state = cache.keys(tenant.id, "ALL_TIME", "all")
        own_redis.stop()
        row = ScoreRow(tenant.id, 1, "ALL_TIME", "all", Decimal(99), datetime.now(UTC))
        await cache.apply([row], tenant.timezone)  # fails: counted, board marked stale
        assert cache.stats["lost_writes"] == 1
        page = await leaderboards.board(tenant, Period.ALL_TIME, cache=cache)
        assert [e.points for e in page.entries] == [10]  # SQL answered
        own_redis.start()
        await redis.connection_pool.disconnect()
        # Say the copy had survived (an outage without a restart): it missed a write, so
        # it is not served; it is dropped and rebuilt from the record.
        await cache.rebuild(tenant.id, tenant.timezone, "ALL_TIME", "all")
        fallbacks = cache.stats["fallbacks"]
        page = await leaderboards.board(tenant, Period.ALL_TIME, cache=cache)
        assert cache.stats["fallbacks"] == fallbacks + 1 and not cache._stale
        assert [e.points for e in page.entries] == [10]
        await cache.wait_rebuilds()
        assert await redis.get(state) == b"ready"
        assert await redis.zcard(zset) == 1 and await redis.hlen(hash_) == 1
    finally:
        await cache.close()
        await redis.aclose()


async def test_rebuild_command_restores_the_boards_from_the_record(rt, settings):
    from tests.service.test_cli import questline

    tenant = await create_tenant("zcli", preset="habits")
    await seed_ties(rt, tenant, 16)
    cache = rt.boards
    await cache.redis.delete(*cache.keys(tenant.id, "ALL_TIME", "all"))
    done = await questline(settings, "leaderboard", "rebuild", "--tenant", "zcli")
    assert done.returncode == 0, done.stderr
    assert "zcli ALL_TIME all: 16 players" in done.stderr
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert f"zcli DAILY {yesterday}: 8 players" in done.stderr  # the previous day too
    for period in PERIODS:
        redis_page, sql_page = await both(tenant, cache, period, first=100)
        assert redis_page == sql_page
    one = await questline(
        settings, "leaderboard", "rebuild", "--tenant", "zcli", "--period", "DAILY", "--key", "x"
    )
    assert one.returncode == 1 and "not a DAILY period key" in one.stderr
    unpadded = await questline(  # a day written another way: refused, not an empty board
        settings, "leaderboard", "rebuild", "--period", "WEEKLY", "--key", "2026-W7"
    )
    assert unpadded.returncode == 1 and "not a WEEKLY period key" in unpadded.stderr
    all_time = await questline(
        settings,
        "leaderboard",
        "rebuild",
        "--tenant",
        "zcli",
        "--period",
        "ALL_TIME",
        "--key",
        "all",
    )
    assert all_time.returncode == 0 and "zcli ALL_TIME all: 16 players" in all_time.stderr
    missing = await questline(settings, "leaderboard", "rebuild", "--tenant", "nope")
    assert missing.returncode == 1 and "no tenant" in missing.stderr


@pytest.mark.parametrize("lost", [0, 1])  # the sorted set, or the hash
async def test_a_board_that_lost_one_of_its_keys_is_rebuilt_not_served(rt, lost):
    """Keys expire and may be evicted one at a time: a ready board missing its set or
    its hash is neither served nor written to, but rebuilt from the record."""
    tenant = await create_tenant(f"zpart{lost}", preset="habits")
    cache = rt.boards
    ids = await seed_ties(rt, tenant, 12)
    await ready(cache, tenant)
    await cache.redis.delete(cache.keys(tenant.id, "ALL_TIME", "all")[lost])
    await ingest.record_event(rt, tenant, ingest.EventInput(ids[5], "x", value=1))
    expected = shown(await leaderboards.board(tenant, Period.ALL_TIME, first=50))
    page = await leaderboards.board(tenant, Period.ALL_TIME, first=50, cache=cache)
    assert shown(page) == expected and expected[0] == 12
    await cache.wait_rebuilds()
    for kwargs in ({"first": 50}, {"first": 3, "around": ids[5]}):
        redis_page, sql_page = await both(tenant, cache, Period.ALL_TIME, **kwargs)
        assert redis_page == sql_page


async def test_many_players_places_from_redis_equal_sql(rt):
    """rankChanged's shared reads: one script call gives every player's place as SQL
    does; a hidden player gets the rank they see (from SQL), one without a score none."""
    tenant = await create_tenant("zplaces", preset="habits")
    cache = rt.boards
    ids = await seed_ties(rt, tenant)
    await players.upsert_player(rt, tenant, "p003", {"hidden_from_boards": True})
    await players.upsert_player(rt, tenant, "nobody", {})
    pks = await leaderboards.player_pks(tenant, [*ids, "nobody"])
    assert len(pks) == len(ids) + 1
    for period in PERIODS:
        await ready(cache, tenant, period)
        reads = cache.stats["reads"]
        cached = await leaderboards.places_of(tenant, period, list(pks.values()), cache=cache)
        assert cache.stats["reads"] == reads + 1, "served from SQL, not Redis"
        assert cached == await leaderboards.places_of(tenant, period, list(pks.values()))
        assert pks["nobody"] not in cached and pks["p003"] in cached
        for pid in ("p000", "p003", "p017"):
            me = (await leaderboards.board(tenant, period, first=1, around=pid)).me
            assert me is not None and cached[pks[pid]] == (me.rank, me.points)


async def test_redis_keeps_past_boards_until_they_expire_and_never_future_ones(rt):
    """A past period is read from Redis while its keys are kept (retention after it
    closes); past that, and for a future period, SQL answers and nothing is rebuilt:
    a set rebuilt then would expire at once, or never, and every read would scan again."""
    tenant = await create_tenant("zkept", preset="habits")
    cache = rt.boards
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=cache.retention_days + 10), now - timedelta(days=2)
    await ingest.record_events(
        rt,
        tenant,
        [
            ingest.EventInput(pid, "x", value=value, occurred_at=at)
            for at in (old, recent)
            for pid, value in (("a", 5), ("b", 10))
        ],
    )
    tz = zone(tenant.timezone)
    old_key, recent_key = (periods.day_key(periods.local_day(at, tz)) for at in (old, recent))
    future_key = periods.day_key(periods.local_day(now + timedelta(days=3), tz))

    for _ in range(3):
        reads, rebuilds = cache.stats["reads"], cache.stats["rebuilds"]
        for key in (old_key, future_key):
            page = await leaderboards.board(tenant, Period.DAILY, period_key=key, cache=cache)
            assert shown(page) == shown(
                await leaderboards.board(tenant, Period.DAILY, period_key=key)
            )
        await cache.wait_rebuilds()
        assert (cache.stats["reads"], cache.stats["rebuilds"]) == (reads, rebuilds)
    assert shown(page)[0] == 0  # the future board is empty
    for key in (old_key, future_key):
        assert not await cache.redis.exists(*cache.keys(tenant.id, "DAILY", key))

    await leaderboards.board(tenant, Period.DAILY, period_key=recent_key, cache=cache)
    await cache.wait_rebuilds()
    redis_page, sql_page = await both(tenant, cache, Period.DAILY, period_key=recent_key)
    assert redis_page == sql_page and redis_page[0] == 2
