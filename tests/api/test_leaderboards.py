"""Leaderboards from the period score rows: order, ties, periods, scopes, around-me."""

from __future__ import annotations

import pytest

from app.services import access
from tests.api.test_presets import days_ago, record
from tests.conftest import gql, logged_queries

BOARD = """
query($period: LeaderboardPeriod!, $first: Int, $offset: Int, $around: ID, $teamId: ID, $segment: String) {
  leaderboard(period: $period, first: $first, offset: $offset, around: $around, teamId: $teamId, segment: $segment) {
    period periodKey totalPlayers
    entries { rank points previousRank pointsChange streakDays badgesCount player { id } }
    me { rank points player { id } }
  }
}"""
UPSERT = "mutation($id: ID!, $team: ID, $segment: String) { upsertPlayer(input: {id: $id, teamId: $team, segment: $segment}) { errors { code } } }"


async def board(client, key, period="ALL_TIME", **variables):
    result = await gql(client, BOARD, {"period": period, **variables}, token=key)
    return result.data["leaderboard"]


def ids(b):
    return [e["player"]["id"] for e in b["entries"]]


async def test_ranked_by_points_then_who_reached_them_first(client, make_tenant):
    key = await make_tenant("callcenter")
    await record(client, key, playerId="late-tie", eventType="call_completed")
    await record(client, key, playerId="top", eventType="lead_converted")
    await record(
        client,
        key,
        playerId="early-tie",
        eventType="call_completed",
        occurredAt=days_ago(0, hour=0),
    )
    await record(client, key, playerId="late-tie", eventType="quality_review")
    await record(client, key, playerId="early-tie", eventType="quality_review")
    b = await board(client, key)
    # late-tie reached 15 before early-tie did: it ranks first of the two.
    assert ids(b) == ["top", "late-tie", "early-tie"]
    assert [e["rank"] for e in b["entries"]] == [1, 2, 3]
    assert [e["points"] for e in b["entries"]] == [50.0, 15.0, 15.0]
    assert b["totalPlayers"] == 3 and b["periodKey"] == "all"
    again = await board(client, key)
    assert ids(again) == ids(b)  # never two orders for the same data


async def test_periods_count_points_of_their_own_period_and_late_events_count_in_theirs(
    client, make_tenant
):
    key = await make_tenant("habits")
    await record(client, key, playerId="a", eventType="x", value=10)
    await record(client, key, playerId="b", eventType="x", value=30, occurredAt=days_ago(1))
    daily = await board(client, key, "DAILY")
    assert ids(daily) == ["a"] and daily["periodKey"] == days_ago(0)[:10]
    all_time = await board(client, key, "ALL_TIME")
    assert ids(all_time) == ["b", "a"]
    weekly = await board(client, key, "WEEKLY")
    assert weekly["periodKey"].count("-W") == 1


async def test_previous_rank_and_points_change_compare_with_the_previous_period(
    client, make_tenant
):
    key = await make_tenant("habits")
    await record(client, key, playerId="a", eventType="x", value=50, occurredAt=days_ago(1))
    await record(client, key, playerId="b", eventType="x", value=10, occurredAt=days_ago(1))
    await record(client, key, playerId="b", eventType="x", value=40)
    await record(client, key, playerId="a", eventType="x", value=5)
    today = await board(client, key, "DAILY")
    entries = {e["player"]["id"]: e for e in today["entries"]}
    assert entries["b"]["rank"] == 1 and entries["b"]["previousRank"] == 2
    assert entries["b"]["pointsChange"] == 30.0  # 40 today vs 10 yesterday
    assert entries["a"]["previousRank"] == 1 and entries["a"]["pointsChange"] == -45.0
    assert entries["a"]["streakDays"] == 2


async def test_around_centres_on_the_player_and_fills_me(client, make_tenant):
    key = await make_tenant("habits")
    for n in range(9):
        await record(client, key, playerId=f"p{n}", eventType="x", value=100 - n)
    b = await board(client, key, first=3, around="p6")
    assert ids(b) == ["p5", "p6", "p7"]
    assert b["me"] == {"rank": 7, "points": 94.0, "player": {"id": "p6"}}
    paged = await board(client, key, first=2, offset=4)
    assert [e["rank"] for e in paged["entries"]] == [5, 6]
    absent = await board(client, key, around="nobody")
    assert absent["me"] is None and len(absent["entries"]) == 9


async def test_team_and_segment_scopes(client, make_tenant):
    key = await make_tenant("habits")
    for pid, team, segment in [("t1", "red", "vip"), ("t2", "red", "std"), ("t3", "blue", "vip")]:
        await gql(client, UPSERT, {"id": pid, "team": team, "segment": segment}, token=key)
        await record(client, key, playerId=pid, eventType="x", value=int(pid[1]) * 10)
    red = await board(client, key, teamId="red")
    assert ids(red) == ["t2", "t1"] and red["totalPlayers"] == 2
    vip = await board(client, key, segment="vip")
    assert ids(vip) == ["t3", "t1"]


async def test_agents_and_customers_have_boards_of_their_own(client, make_tenant):
    key = await make_tenant("habits")
    upsert = "mutation($id: ID!, $kind: PlayerKind) { upsertPlayer(input: {id: $id, kind: $kind}) { errors { code } } }"
    for pid, kind, value in [("a1", "AGENT", 10), ("c1", "CUSTOMER", 30), ("a2", "AGENT", 20)]:
        await gql(client, upsert, {"id": pid, "kind": kind}, token=key)
        await record(client, key, playerId=pid, eventType="x", value=value)
    query = "query($kind: PlayerKind) { leaderboard(period: ALL_TIME, kind: $kind) { totalPlayers entries { player { id } } } }"
    for kind, expected in (("AGENT", ["a2", "a1"]), ("CUSTOMER", ["c1"])):
        got = (await gql(client, query, {"kind": kind}, token=key)).data["leaderboard"]
        assert [e["player"]["id"] for e in got["entries"]] == expected
        assert got["totalPlayers"] == len(expected)


async def test_around_a_player_without_points_gives_an_empty_me(client, make_tenant):
    key = await make_tenant("habits")
    await record(client, key, playerId="scorer", eventType="x", value=10)
    await gql(client, UPSERT, {"id": "idle"}, token=key)
    page = await board(client, key, around="idle")
    assert page["me"] is None and ids(page) == ["scorer"]


async def test_spending_does_not_lower_a_rank(client, make_tenant):
    key = await make_tenant("habits")
    await record(client, key, playerId="s", eventType="x", value=20)
    revoke = 'mutation { adjustPoints(input: {playerId: "s", amount: -15, reason: "spent"}) { errors { code } } }'
    await gql(client, revoke, token=key)
    assert (await board(client, key))["entries"][0]["points"] == 20.0
    rank = await gql(
        client, '{ player(id: "s") { rank(period: DAILY) { rank points } } }', token=key
    )
    assert rank.data["player"]["rank"] == {"rank": 1, "points": 20.0}


async def test_bad_arguments_are_clear_errors(client, make_tenant):
    key = await make_tenant("habits")
    for variables, message in [
        ({"first": 101}, "first must be between 0 and 100"),
        ({"first": -1}, "first must be between 0 and 100"),
        ({"offset": -1}, "offset must not be negative"),
        ({"teamId": "ghosts"}, "no team 'ghosts'"),
    ]:
        result = await gql(
            client, BOARD, {"period": "ALL_TIME", **variables}, token=key, expect_errors=True
        )
        assert message in result.errors[0]["message"]
    for period, period_key in (
        ("DAILY", "0001-01-01"),
        ("DAILY", "20261121"),
        ("WEEKLY", "2026-W7"),
    ):
        result = await gql(
            client,
            "query($p: LeaderboardPeriod!, $k: String) "
            "{ leaderboard(period: $p, periodKey: $k) { totalPlayers } }",
            {"p": period, "k": period_key},
            token=key,
            expect_errors=True,
        )
        assert f"is not a {period} period key" in result.errors[0]["message"]


async def test_a_hidden_player_is_off_public_boards_but_sees_their_own_rank(
    client, make_tenant, settings
):
    from app.services import access
    from models import Tenant

    key = await make_tenant("habits", slug="private")
    for pid, value in [("shy", 50), ("b", 30), ("c", 10)]:
        await record(client, key, playerId=pid, eventType="x", value=value)
    hide = 'mutation { upsertPlayer(input: {id: "shy", hideFromLeaderboards: true}) { player { hideFromLeaderboards } } }'
    assert (await gql(client, hide, token=key)).data["upsertPlayer"]["player"] == {
        "hideFromLeaderboards": True
    }
    public = await board(client, key)
    assert ids(public) == ["b", "c"] and public["totalPlayers"] == 2
    token = await access.mint_player_token(settings, await Tenant.get(slug="private"), "shy")
    own = await gql(client, '{ player(id: "shy") { rank { rank points } } }', token=token)
    assert own.data["player"]["rank"] == {"rank": 1, "points": 50.0}
    around = await board(client, key, around="shy")
    assert around["me"]["rank"] == 1 and "shy" not in ids(around)


HISTORY = """
query($period: LeaderboardPeriod!, $key: String, $first: Int, $offset: Int, $around: ID) {
  leaderboard(period: $period, periodKey: $key, first: $first, offset: $offset, around: $around) {
    periodKey totalPlayers snapshotAt
    entries { rank points previousRank player { id } }
    me { rank points player { id } }
  }
}"""


async def test_closed_periods_are_snapshotted_with_final_ranks_for_history(
    client, make_tenant, settings, rt
):
    from models import Tenant
    from tests.service.test_cli import questline

    key = await make_tenant("habits", slug="hist")
    rt_tenant = await Tenant.get(slug="hist")
    yesterday = days_ago(1)[:10]
    for pid, value in (("a", 10), ("b", 30), ("c", 20), ("shy", 25)):
        await record(client, key, playerId=pid, eventType="x", value=value, occurredAt=days_ago(1))
    hide = 'mutation { upsertPlayer(input: {id: "shy", hideFromLeaderboards: true}) { errors { code } } }'
    await gql(client, hide, token=key)
    await record(client, key, playerId="a", eventType="x", value=50)  # today, still open

    async def history(**variables):
        result = await gql(client, HISTORY, {"period": "DAILY", **variables}, token=key)
        return result

    live = (await history(key=yesterday)).data["leaderboard"]  # not snapshotted yet: live
    assert live["snapshotAt"] is None and ids(live) == ["b", "c", "a"]
    done = await questline(settings, "leaderboard", "snapshot", "--tenant", "hist")
    assert done.returncode == 0, done.stderr
    assert f"DAILY {yesterday}" in done.stderr and "WEEKLY" not in done.stderr.split("\n")[0]
    again = await questline(settings, "leaderboard", "snapshot", "--tenant", "hist")
    assert "hist: 0 closed periods snapshotted" in again.stderr  # safe to run twice

    # A late event for yesterday changes the record, not the history.
    await record(client, key, playerId="a", eventType="x", value=100, occurredAt=days_ago(1))
    closed = (await history(key=yesterday)).data["leaderboard"]
    assert closed["snapshotAt"] is not None and closed["totalPlayers"] == 3
    assert [(e["rank"], e["player"]["id"], e["points"]) for e in closed["entries"]] == [
        (1, "b", 30.0),
        (2, "c", 20.0),
        (3, "a", 10.0),
    ]
    mine = (await history(key=yesterday, around="shy", first=1)).data["leaderboard"]
    assert mine["me"]["rank"] == 2  # hidden: the rank the player saw (25 is behind 30)
    late = (await history(key=yesterday, around="a", first=1)).data["leaderboard"]["me"]
    assert (late["rank"], late["points"]) == (3, 10.0)  # the final rank, with its points
    assert (await history(key=yesterday, offset=2, first=5)).data["leaderboard"]["entries"][0][
        "player"
    ]["id"] == "a"
    # Today's previous ranks come from yesterday's final ranks, with their points.
    today = (await history()).data["leaderboard"]
    assert [(e["player"]["id"], e["previousRank"]) for e in today["entries"]] == [("a", 3)]
    change = await gql(
        client, "{ leaderboard(period: DAILY) { entries { pointsChange } } }", token=key
    )
    assert change.data["leaderboard"]["entries"] == [{"pointsChange": 40.0}]  # 50 - 10
    if rt.boards is not None:  # from Redis too, once its sets are ready
        await rt.boards.rebuild(rt_tenant.id, "UTC", "DAILY", yesterday)
        await rt.boards.rebuild(rt_tenant.id, "UTC", "DAILY", days_ago(0)[:10])
        reads = rt.boards.stats["reads"]
        today = (await history()).data["leaderboard"]
        assert rt.boards.stats["reads"] == reads + 1
        assert [(e["player"]["id"], e["previousRank"]) for e in today["entries"]] == [("a", 3)]
    bad = await gql(
        client,
        HISTORY,
        {"period": "WEEKLY", "key": "2026-11-20"},
        token=key,
        expect_errors=True,
    )
    assert bad.errors and "not a WEEKLY period key" in bad.errors[0]["message"]


async def test_a_tenant_without_leaderboards_writes_no_period_scores(client, make_tenant, rt):
    from app.services import ledger
    from models import PeriodScore, Tenant

    key = await make_tenant("habits", slug="noboards")
    tenant = await Tenant.get(slug="noboards")
    tenant.config = {**tenant.config, "leaderboards": False}
    tenant.config_version += 1
    await tenant.save()
    await record(client, key, playerId="a", eventType="x", value=10)
    await ledger.adjust_points(rt, tenant, "a", 5, "goodwill")
    assert await PeriodScore.filter(tenant_id=tenant.id).count() == 0
    assert (await board(client, key))["entries"] == []


async def test_points_rank_as_numbers_not_text(client, make_tenant):
    """SQLite keeps decimals as text: "9.00" sorts after "40.00" as text, not as points."""
    key = await make_tenant("habits")
    for pid, value in (("nine", 9), ("hundred", 100), ("forty", 40), ("ten", 10)):
        await record(client, key, playerId=pid, eventType="x", value=value, occurredAt=days_ago(1))
        await record(client, key, playerId=pid, eventType="x", value=value)
    for period in ("ALL_TIME", "DAILY"):
        b = await board(client, key, period)
        assert ids(b) == ["hundred", "forty", "ten", "nine"], period
    daily = await board(client, key, "DAILY", around="nine", first=1)
    assert daily["me"]["rank"] == 4
    assert [e["previousRank"] for e in (await board(client, key, "DAILY"))["entries"]] == [
        1,
        2,
        3,
        4,
    ]


async def test_reads_that_miss_the_snapshot_flag_together_share_one_query(client, make_tenant):
    """Every read in flight when a board's "snapshotted?" answer is due asks it once."""
    import asyncio

    from app.services import leaderboards
    from models import Period, Tenant

    await make_tenant("habits", slug="snapflag")
    tenant = await Tenant.get(slug="snapflag")
    leaderboards._snapshots_seen.clear()
    with logged_queries() as counter:
        answers = await asyncio.gather(
            *(leaderboards._snapshotted(tenant, Period.DAILY, "2026-11-01") for _ in range(10))
        )
    assert answers == [False] * 10
    assert counter.count == 1


@pytest.mark.postgres
async def test_an_sql_around_read_finds_its_player_by_tenant_and_external_id(client, make_tenant):
    """The own-row lookup of an SQL-served `around` read goes through the player's
    unique (tenant, external id) index: by the external id alone PostgreSQL scanned
    every player of every tenant (120 ms at a million players)."""
    import json

    from tortoise import Tortoise

    from app.services import leaderboards
    from models import Period, Tenant

    key = await make_tenant("habits", slug="ownrow")
    await record(client, key, playerId="me", eventType="x", category="finance", value=5)
    tenant = await Tenant.get(slug="ownrow")
    with logged_queries() as log:
        board = await leaderboards.board(tenant, Period.DAILY, around="me", cache=None)
    assert board.me is not None and board.me.rank == 1
    (sql, values), *_ = [(q, v) for q, v in log.statements if "p.external_id" in q]
    pool = Tortoise.get_connection("default")._pool
    async with pool.acquire() as raw, raw.transaction():
        await raw.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask for indexes
        (plan,) = json.loads(await raw.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *values))

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    players = [n for n in nodes(plan["Plan"]) if n.get("Alias") == "p"]
    assert players and all("tenant_id" in n.get("Index Cond", "") for n in players), plan


async def test_a_hidden_players_previous_rank_is_the_one_they_saw_before_and_after_snapshot(
    client, make_tenant, settings
):
    from tests.service.test_cli import questline

    key = await make_tenant("habits", slug="shyprev")
    for pid, value in (("a", 50), ("shy", 30), ("b", 10)):
        await record(client, key, playerId=pid, eventType="x", value=value, occurredAt=days_ago(1))
    hide = 'mutation { upsertPlayer(input: {id: "shy", hideFromLeaderboards: true}) { errors { code } } }'
    await gql(client, hide, token=key)
    await record(client, key, playerId="shy", eventType="x", value=5)
    query = (
        '{ leaderboard(period: DAILY, around: "shy") { me { rank previousRank pointsChange } } }'
    )
    before = (await gql(client, query, token=key)).data["leaderboard"]["me"]
    assert before == {"rank": 1, "previousRank": 2, "pointsChange": -25.0}
    done = await questline(settings, "leaderboard", "snapshot", "--tenant", "shyprev")
    assert done.returncode == 0, done.stderr
    after = (await gql(client, query, token=key)).data["leaderboard"]["me"]
    assert after == before


async def test_a_player_token_reads_boards_with_other_players_public_fields(
    client, make_tenant, settings
):
    from app.services import access
    from models import Tenant

    key = await make_tenant("habits", slug="widget")
    for pid, value in (("me", 5), ("top", 9)):
        await record(client, key, playerId=pid, eventType="x", value=value)
    token = await access.mint_player_token(settings, await Tenant.get(slug="widget"), "me")
    page = await board(client, token, around="me")
    assert ids(page) == ["top", "me"] and page["me"]["rank"] == 2
    other = await gql(
        client, BOARD, {"period": "ALL_TIME", "around": "top"}, token=token, expect_errors=True
    )
    assert other.errors[0]["extensions"]["code"] == "FORBIDDEN"
    wallets = await gql(
        client,
        "{ leaderboard { entries { player { id wallet { balance } } } } }",
        token=token,
        expect_errors=True,
    )
    assert [e["extensions"]["code"] for e in wallets.errors] == ["FORBIDDEN"]  # top's only


RANK_FIELDS = "rank points previousRank pointsChange streakDays player { id }"
PLAYER_RANKS = f"""{{ players(first: 100) {{ id
  daily: rank(period: DAILY) {{ {RANK_FIELDS} }} allTime: rank {{ {RANK_FIELDS} }} }} }}"""


async def test_player_rank_in_a_list_is_each_players_own_entry_in_constant_queries(
    client, make_tenant, monkeypatch
):
    """`Player.rank` across a list is read for all the players at once (their places,
    players and previous ranks), and equals each one's `me` on an `around` read: ties,
    a hidden player (their own rank), a player without a score today (none)."""
    # The key's verification stays cached throughout: on a slow machine its 5 s ran out
    # between the two counts, and one count had the key's read in it.
    monkeypatch.setattr(access, "KEY_CACHE_SECONDS", 3600.0)
    key = await make_tenant("habits")
    for n in range(12):  # past the few players read row by row
        await record(
            client, key, playerId=f"r{n}", eventType="x", value=10 + n % 4, occurredAt=days_ago(1)
        )
        if n != 5:  # r5: no score today
            await record(client, key, playerId=f"r{n}", eventType="x", value=20 + n % 3)
    hide = 'mutation { upsertPlayer(input: {id: "r7", hideFromLeaderboards: true}) { errors { code } } }'
    await gql(client, hide, token=key)

    listed = (await gql(client, PLAYER_RANKS, token=key)).data["players"]
    with logged_queries() as log:  # once warm (the key's last use, the snapshot flags)
        assert (await gql(client, PLAYER_RANKS, token=key)).data["players"] == listed
    queries = log.count
    me = f"""query($period: LeaderboardPeriod!, $around: ID) {{
      leaderboard(period: $period, first: 1, around: $around) {{ me {{ {RANK_FIELDS} }} }} }}"""
    for player in listed:
        for field, period in (("daily", "DAILY"), ("allTime", "ALL_TIME")):
            one = await gql(client, me, {"period": period, "around": player["id"]}, token=key)
            assert player[field] == one.data["leaderboard"]["me"], (player["id"], period)
    by_id = {p["id"]: p for p in listed}
    assert by_id["r5"]["daily"] is None and by_id["r5"]["allTime"] is not None
    assert by_id["r7"]["daily"]["rank"] >= 1 and by_id["r0"]["daily"]["previousRank"] >= 1

    for n in range(12, 30):
        await record(client, key, playerId=f"r{n}", eventType="x", value=n)
    with logged_queries() as log:
        assert len((await gql(client, PLAYER_RANKS, token=key)).data["players"]) == 30
    assert log.count == queries, (queries, log.count)
