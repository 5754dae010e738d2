"""Leaderboards ranked from the period score rows (the record).

Ranks are positions: points, then who reached them first, then player id, so the same
data always gives the same order. Periods follow the tenant's timezone.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.engine import periods
from app.engine.periods import local_day
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.services.board_cache import BoardCache
from app.services.common import zone
from app.singleflight import SingleFlight
from models import (
    BoardSnapshot,
    Period,
    PeriodScore,
    Player,
    PlayerKind,
    Team,
    Tenant,
)

MAX_PAGE = 100
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Scope:
    team_id: int | None = None
    segment: str | None = None
    kind: PlayerKind | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    player: Player
    points: Decimal
    previous_rank: int | None
    points_change: Decimal
    streak_days: int


@dataclass(frozen=True, slots=True)
class Board:
    period: Period
    period_key: str
    total_players: int
    entries: list[Entry]
    me: Entry | None
    snapshot_at: datetime | None = None  # set when read from a closed period's snapshot


def current_key(tenant: Tenant, period: Period, now: datetime | None = None) -> str:
    return periods.period_key(period.value, _today(tenant, now))


def _today(tenant: Tenant, now: datetime | None) -> date:
    return local_day(now or datetime.now(UTC), zone(tenant.timezone))


def _player_today(tenant: Tenant, player: Player, now: datetime | None) -> date:
    return local_day(now or datetime.now(UTC), zone(player.timezone or tenant.timezone))


def boards_to_rebuild(
    tenant: Tenant, period: str | None = None, key: str | None = None, now: datetime | None = None
) -> list[tuple[str, str]]:
    """The boards a rebuild restores: the current and previous periods (what reads use),
    or one named period and key."""
    wanted = [Period(period)] if period else list(Period)
    if key is not None:
        try:
            periods.first_day(wanted[0].value, key)
        except ValueError:
            raise UserError(
                ErrorCode.INVALID, f"{key!r} is not a {wanted[0].value} key", "key"
            ) from None
        return [(wanted[0].value, key)]
    day = _today(tenant, now)
    out: list[tuple[str, str]] = []
    for board_period in wanted:
        out.append((board_period.value, periods.period_key(board_period.value, day)))
        previous = periods.previous_key(board_period.value, day)
        if previous is not None:
            out.append((board_period.value, previous))
    return out


async def resolve_scope(
    tenant: Tenant, team_id: str | None, segment: str | None, kind: PlayerKind | None
) -> Scope:
    team_pk = None
    if team_id is not None:
        team = await Team.get_or_none(tenant_id=tenant.id, external_id=team_id)
        if team is None:
            raise UserError(ErrorCode.NOT_FOUND, f"no team {team_id!r}", "teamId")
        team_pk = team.id
    return Scope(team_pk, segment, kind)


@dataclass(frozen=True, slots=True)
class _Where:
    """A board's rows in plain SQL: `FROM period_score s JOIN player p … WHERE …` with
    `$n` marks, its values, and how to compare points (SQLite keeps decimals as text)."""

    sql: str
    values: list[Any]
    points: str

    def mark(self, offset: int = 0) -> str:
        return f"${len(self.values) + offset + 1}"


def _where(
    tenant: Tenant,
    period: Period,
    key: str,
    scope: Scope,
    public: bool = True,
    *,
    join: bool = False,
) -> _Where:
    """The board's rows. The whole tenant's public board leaves hidden players out with
    an anti-join on the (few) hidden ones, so that counts and pages run on the rank
    index alone; scopes, own rows and `join` read the player row."""
    postgres = Tortoise.get_connection("default").capabilities.dialect == "postgres"
    values: list[Any] = [tenant.id, period.value, key]
    conditions = ["s.tenant_id = $1", "s.period = $2", "s.period_key = $3"]
    join = join or scope != Scope()
    if public and not join:
        values.append(True)
        conditions.append(
            "s.player_id NOT IN (SELECT h.id FROM player h WHERE h.tenant_id = $1 "
            f"AND h.hidden_from_boards = ${len(values)})"
        )
    for column, value in (
        ("p.hidden_from_boards", False if public and join else None),
        ("p.team_id", scope.team_id),
        ("p.segment", scope.segment),
        ("p.kind", scope.kind.value if scope.kind else None),
    ):
        if value is not None:
            values.append(value)
            conditions.append(f"{column} = ${len(values)}")
    source = "period_score s JOIN player p ON p.id = s.player_id" if join else "period_score s"
    sql = f"FROM {source} WHERE " + " AND ".join(conditions)
    return _Where(sql, values, "s.points" if postgres else "CAST(s.points AS REAL)")


def _order(where: _Where) -> str:
    """The one order of every board: points, then who reached them first, then id."""
    return f"ORDER BY {where.points} DESC, s.reached_at ASC, s.player_id ASC"


def _ahead(where: _Where) -> str:
    """How many rows of the board `where` selects rank ahead of the values in the marks
    after its own (points, reached at, player id): more points, or as many reached
    earlier (then a lower id). Two counts, each one range of the rank index."""
    a, b, c = where.mark(), where.mark(1), where.mark(2)
    value = where.points.replace("s.points", a)
    return (
        f"(SELECT COUNT(*) {where.sql} AND {where.points} > {value}) + "
        f"(SELECT COUNT(*) {where.sql} AND {where.points} = {value} AND "
        f"(s.reached_at, s.player_id) < ({b}, {c}))"
    )


def _around_parts(where: _Where, first: int) -> str:
    """The statement of an `around` page (see _sql_around), its rows told apart by
    `part`: the board's size ('t'), the rows ahead of the player ('a'), and up to
    `first // 2` rows just ahead ('b1': as many points, 'b2': more) and `first` rows
    from the player on ('f1': as many points, the player included when on the board,
    'f2': fewer), each nearest first (`n`). The size counts the whole board; every other
    part is one range of the rank index read from the player's place, so none scans the
    rows between the top and the player, which an OFFSET did."""
    a, b, c = where.mark(), where.mark(1), where.mark(2)
    value = where.points.replace("s.points", a)
    mine = f"({b}, {c})"
    points = where.points.replace("s.points", "x.points")
    half = first // 2

    def part(name: str, condition: str, order: str, limit: int) -> str:
        inner = order.replace("x.", "s.")
        return (
            f"SELECT '{name}' AS part, x.player_id, x.points, "
            f"ROW_NUMBER() OVER (ORDER BY {order}) AS n FROM ("
            f"SELECT s.player_id, s.points, s.reached_at {where.sql} AND {condition} "
            f"ORDER BY {inner} LIMIT {limit}) AS x"
        )

    parts = [
        "SELECT 't' AS part, CAST(NULL AS INTEGER) AS player_id, "
        f"CAST(NULL AS NUMERIC) AS points, COUNT(*) AS n {where.sql}",
        f"SELECT 'a', CAST(NULL AS INTEGER), CAST(NULL AS NUMERIC), {_ahead(where)}",
        part(
            "b1",
            f"{where.points} = {value} AND (s.reached_at, s.player_id) < {mine}",
            "x.reached_at DESC, x.player_id DESC",
            half,
        ),
        part(
            "b2",
            f"{where.points} > {value}",
            f"{points} ASC, x.reached_at DESC, x.player_id DESC",
            half,
        ),
        part(
            "f1",
            f"{where.points} = {value} AND (s.reached_at, s.player_id) >= {mine}",
            "x.reached_at ASC, x.player_id ASC",
            first,
        ),
        part("f2", f"{where.points} < {value}", f"{points} DESC, x.reached_at, x.player_id", first),
    ]
    return " UNION ALL ".join(parts)


async def _sql_around(where: _Where, own: dict[str, Any], first: int) -> _Ranking:
    """The page of `first` rows centred on a player (`own`: their score row, found even
    when hidden from the board), in one statement: the board's size, the player's
    rank, up to `first // 2` rows just ahead of the player, then the player (when on
    the board) and the rows after. The same page as an OFFSET of rank - 1 - first // 2
    from the top, floored at 0 (tests/service/test_sql_ranking.py)."""
    conn, text = _sql(_around_parts(where, first))
    found = await conn.execute_query_dict(
        text, [*where.values, own["points"], own["reached_at"], own["player_id"]]
    )
    counts: dict[str, int] = {}
    rows: dict[str, list[tuple[int, Any, Any]]] = {"b1": [], "b2": [], "f1": [], "f2": []}
    for r in found:
        if r["player_id"] is None:
            counts[r["part"]] = int(r["n"])
        else:
            rows[r["part"]].append((int(r["n"]), r["player_id"], r["points"]))
    for part in rows.values():
        part.sort(key=lambda row: row[0])
    before = (rows["b1"] + rows["b2"])[: first // 2][::-1]
    after = (rows["f1"] + rows["f2"])[: first - len(before)]
    ahead = counts["a"]
    start = ahead - len(before)  # the page's first row's place (0-based)
    ranked = [
        (start + i + 1, pk, Decimal(str(points)), None)
        for i, (_, pk, points) in enumerate(before + after)
    ]
    me = (ahead + 1, own["player_id"], Decimal(str(own["points"])))
    return _Ranking(counts["t"], ranked, me, None)


async def _previous(
    tenant: Tenant, period: Period, day: date, scope: Scope, player_ids: list[int]
) -> dict[int, tuple[int, Decimal]]:
    """Rank and points of these players in the previous period of the same kind: the
    final ranks once it is snapshotted, else one window-function query."""
    key = periods.previous_key(period.value, day)
    if key is None or not player_ids:
        return {}
    marks = ", ".join(f"${n}" for n in range(4, len(player_ids) + 4))
    if scope == Scope() and await _snapshotted(tenant, period, key):
        # Closed and snapshotted: the final ranks, one indexed lookup.
        conn, text = _sql(
            "SELECT player_id, final_rank AS position, points FROM period_score "
            "WHERE tenant_id = $1 AND period = $2 AND period_key = $3 "
            f"AND final_rank IS NOT NULL AND player_id IN ({marks})"
        )
        rows = await conn.execute_query_dict(text, [tenant.id, period.value, key, *player_ids])
    else:
        where = _where(tenant, period, key, scope)
        wanted = ", ".join(where.mark(n) for n in range(len(player_ids)))
        conn, text = _sql(
            "SELECT player_id, points, position FROM ("
            f"  SELECT s.player_id, s.points, ROW_NUMBER() OVER ({_order(where)}) AS position"
            f"  {where.sql}"
            f") ranked WHERE player_id IN ({wanted})"
        )
        rows = await conn.execute_query_dict(text, [*where.values, *player_ids])
    return {r["player_id"]: (int(r["position"]), Decimal(str(r["points"]))) for r in rows}


SNAPSHOT_TOP = 100
# Whether a period was snapshotted, per process: a snapshot is never undone, so a yes is
# kept; a no is asked again after SNAPSHOT_RECHECK seconds.
SNAPSHOT_RECHECK = 30.0
_snapshots_seen: dict[tuple[int, str, str], float] = {}
_snapshot_checks: SingleFlight[bool] = SingleFlight()


async def _snapshotted(tenant: Tenant, period: Period, key: str) -> bool:
    board = (tenant.id, period.value, key)
    checked = _snapshots_seen.get(board)
    if checked == math.inf:
        return True
    if checked is not None and time.monotonic() - checked < SNAPSHOT_RECHECK:
        return False
    # Every request in flight when the answer is due for a new look shares one query.
    found = await _snapshot_checks.run(
        board,
        lambda: BoardSnapshot.exists(tenant_id=tenant.id, period=period, period_key=key),
    )
    if len(_snapshots_seen) > 100_000:
        _snapshots_seen.clear()
    _snapshots_seen[board] = math.inf if found else time.monotonic()
    return found


def _day_of_key(period: Period, key: str) -> date:
    try:
        day = periods.first_day(period.value, key)
    except ValueError:
        day = None
    if day is None or periods.period_key(period.value, day) != key:
        raise UserError(
            ErrorCode.INVALID,
            f"{key!r} is not a {period.value} period key (e.g. 2026-11-20, 2026-W47, 2026-11)",
            "periodKey",
        )
    return day


async def _snapshot_ranking(
    tenant: Tenant, snapshot: BoardSnapshot, first: int, offset: int, around: str | None
) -> _Ranking:
    """A closed period as snapshotted: the top entries, and `me` from the final ranks."""
    me = None
    if around is not None:
        row = (
            await PeriodScore.filter(
                tenant_id=tenant.id,
                period=snapshot.period,
                period_key=snapshot.period_key,
                player__external_id=around,
                final_rank__isnull=False,
            )
            .only("player_id", "final_rank", "points")
            .first()
        )
        if row is not None:
            me = (row.final_rank, row.player_id, row.points)
            offset = max(row.final_rank - 1 - first // 2, 0)
    top = snapshot.top[offset : offset + first]
    pks = dict(
        await Player.filter(
            tenant_id=tenant.id, external_id__in=[e["playerId"] for e in top]
        ).values_list("external_id", "id")
    )
    rows = [
        (e["rank"], pks[e["playerId"]], Decimal(e["points"]), None)
        for e in top
        if e["playerId"] in pks
    ]
    return _Ranking(snapshot.total_players, rows, me, None)


async def snapshot_closed(tenant: Tenant, now: datetime | None = None) -> list[tuple[str, str]]:
    """Snapshots every closed period not snapshotted yet: the top SNAPSHOT_TOP and each
    player's final rank. Safe to run twice (and concurrently: one snapshot per period)."""
    today = _today(tenant, now)
    have = set(await BoardSnapshot.filter(tenant_id=tenant.id).values_list("period", "period_key"))
    keys = (
        await PeriodScore.filter(tenant_id=tenant.id, period__not=Period.ALL_TIME)
        .distinct()
        .values_list("period", "period_key")
    )
    done = []
    for period, key in sorted(keys):
        end = periods.end_day(str(period), key)
        if (Period(period), key) in have or (end is not None and end > today):
            continue
        if await _snapshot(tenant, Period(period), key, now or datetime.now(UTC)):
            done.append((str(period), key))
    return done


async def _snapshot(tenant: Tenant, period: Period, key: str, now: datetime) -> bool:
    where = _where(tenant, period, key, Scope(), join=True)  # $1-$3 the board, $4 public
    hidden = where.mark()  # $5
    value = where.points.replace("s.points", "period_score.points")
    _, count = _sql(f"SELECT COUNT(*) AS n {where.sql}")
    _, final_ranks = _sql(
        "UPDATE period_score SET final_rank = ranked.position FROM ("
        f"  SELECT s.id, ROW_NUMBER() OVER ({_order(where)}) AS position {where.sql}"
        ") AS ranked WHERE period_score.id = ranked.id"
    )
    # Hidden players keep the rank they saw: their place among the public board.
    _, hidden_ranks = _sql(
        f"UPDATE period_score SET final_rank = 1 + (SELECT COUNT(*) {where.sql} AND "
        f"({where.points} > {value} OR ({where.points} = {value} AND "
        "(s.reached_at < period_score.reached_at OR (s.reached_at = period_score.reached_at "
        "AND s.player_id < period_score.player_id))))) WHERE tenant_id = $1 AND period = $2 "
        "AND period_key = $3 AND player_id IN (SELECT id FROM player WHERE tenant_id = $1 "
        f"AND hidden_from_boards = {hidden})"
    )
    _, top = _sql(
        f"SELECT p.external_id, s.points, s.final_rank {where.sql} "
        f"ORDER BY s.final_rank LIMIT {SNAPSHOT_TOP}"
    )
    try:
        async with in_transaction() as tx:
            total = int((await tx.execute_query_dict(count, where.values))[0]["n"])
            snapshot = await BoardSnapshot.create(
                tenant_id=tenant.id,
                period=period,
                period_key=key,
                taken_at=now,
                total_players=total,
                top=[],
                using_db=tx,
            )
            await tx.execute_query(final_ranks, where.values)
            await tx.execute_query(hidden_ranks, [*where.values, True])
            snapshot.top = [
                {"rank": r["final_rank"], "playerId": r["external_id"], "points": str(r["points"])}
                for r in await tx.execute_query_dict(top, where.values)
            ]
            await snapshot.save(using_db=tx, update_fields=["top"])
    except IntegrityError:  # snapshotted concurrently
        return False
    _snapshots_seen[(tenant.id, period.value, key)] = math.inf
    return True


def _sql(text: str) -> tuple[Any, str]:
    """The connection, and the text with its `$n` marks made `?n` on SQLite."""
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        text = re.sub(r"\$(\d+)", r"?\1", text)
    return conn, text


# A player's primary key per (tenant, external id), per process: players are never deleted
# nor renamed, so a found key stays right (a missing player is asked again: it may be
# created). It saves a query on every Redis-served `around` read.
_player_pks: dict[tuple[int, str], int] = {}


async def _player_pk(tenant: Tenant, external_id: str) -> int | None:
    known = _player_pks.get((tenant.id, external_id))
    if known is not None:
        return known
    conn, text = _sql("SELECT id FROM player WHERE tenant_id = $1 AND external_id = $2")
    rows = await conn.execute_query_dict(text, [tenant.id, external_id])
    if not rows:
        return None
    if len(_player_pks) > 100_000:
        _player_pks.clear()
    pk = _player_pks[(tenant.id, external_id)] = rows[0]["id"]
    return pk


async def _players_with_streaks(
    ids: list[int],
) -> tuple[dict[int, Player], dict[int, StreakState]]:
    """The entries' players and streaks in one plain query (the ORM's query building
    cost more than the query on a page read)."""
    if not ids:
        return {}, {}
    marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
    conn, text = _sql(
        "SELECT p.*, w.streak_current AS w_current, w.streak_best AS w_best, "
        "w.last_active_day AS w_day FROM player p LEFT JOIN wallet w ON w.player_id = p.id "
        f"WHERE p.id IN ({marks})"
    )
    players: dict[int, Player] = {}
    streaks: dict[int, StreakState] = {}
    for row in await conn.execute_query_dict(text, ids):
        current, best, day = row.pop("w_current"), row.pop("w_best"), row.pop("w_day")
        player = Player._init_from_db(**row)
        players[player.id] = player
        if current is not None:
            if isinstance(day, str):
                day = date.fromisoformat(day)
            streaks[player.id] = StreakState(current, best, day)
    return players, streaks


@dataclass(frozen=True, slots=True)
class _Ranking:
    """A page of ranked rows, from SQL or from the Redis copy."""

    total: int
    rows: list[tuple[int, int, Decimal, datetime | None]]  # rank, player pk, points, reached
    me: tuple[int, int, Decimal] | None  # rank, player pk, points
    previous: dict[int, tuple[int, Decimal]] | None  # None: not known yet


async def _sql_ranking(
    tenant: Tenant, period: Period, key: str, scope: Scope, first: int, offset: int, around
) -> _Ranking:
    where = _where(tenant, period, key, scope)
    if around is not None:
        # The player's own row, found even when hidden: players always see their rank.
        own = _where(tenant, period, key, scope, public=False, join=True)
        # The player by its unique (tenant, external id) key: without the tenant the
        # external id alone matches no index, and PostgreSQL scanned every player of
        # every tenant (120 ms at a million players, most of an SQL-served read).
        conn, text = _sql(
            f"SELECT s.player_id, s.points, s.reached_at {own.sql} "
            f"AND p.tenant_id = $1 AND p.external_id = {own.mark()}"
        )
        found = await conn.execute_query_dict(text, [*own.values, around])
        if found:  # centre the page on that player
            return await _sql_around(where, found[0], first)
    conn, text = _sql(f"SELECT COUNT(*) AS n {where.sql}")
    total = int((await conn.execute_query_dict(text, where.values))[0]["n"])
    conn, text = _sql(
        f"SELECT s.player_id, s.points {where.sql} {_order(where)} "
        f"LIMIT {int(first)} OFFSET {int(offset)}"
    )
    rows = await conn.execute_query_dict(text, where.values)
    ranked = [
        (offset + i + 1, r["player_id"], Decimal(str(r["points"])), None)
        for i, r in enumerate(rows)
    ]
    return _Ranking(total, ranked, None, None)


async def _cached_ranking(
    cache: BoardCache, tenant: Tenant, period: Period, day: date, first: int, offset: int, around
) -> _Ranking | None:
    """The tenant-wide public board from Redis; None when SQL must answer."""
    around_pk = None
    if around is not None:
        around_pk = await _player_pk(tenant, around)
        if around_pk is None:
            return None  # not a player: SQL answers with an empty `me`
    previous_key = periods.previous_key(period.value, day)
    if previous_key is not None and await _snapshotted(tenant, period, previous_key):
        previous_key = None  # previous ranks are then the final ones (see _previous)
    page = await cache.page(
        tenant.id,
        tenant.timezone,
        period.value,
        periods.period_key(period.value, day),
        previous_key,
        offset=offset,
        count=first,
        around=around_pk,
    )
    if page is None:
        return None
    me = (page.me.rank, page.me.player_id, page.me.points) if page.me else None
    rows = [(e.rank, e.player_id, e.points, None) for e in page.entries]
    return _Ranking(page.total, rows, me, page.previous)


async def board(
    tenant: Tenant,
    period: Period,
    *,
    first: int = 10,
    offset: int = 0,
    around: str | None = None,
    scope: Scope = Scope(),
    now: datetime | None = None,
    cache: BoardCache | None = None,
    period_key: str | None = None,
) -> Board:
    """A page of the board. With a Redis `cache`, the tenant-wide board is read from its
    sorted set when that is ready; scoped boards, and any board while its set is missing
    or rebuilding, come from SQL: the same ranks either way. A `period_key` other than
    the current one reads that period: from its snapshot once closed and snapshotted
    (the top SNAPSHOT_TOP and each player's final rank), else from its score rows."""
    if not 0 <= first <= MAX_PAGE:
        raise UserError(ErrorCode.INVALID, f"first must be between 0 and {MAX_PAGE}", "first")
    if offset < 0:
        raise UserError(ErrorCode.INVALID, "offset must not be negative", "offset")
    day = _today(tenant, now)
    key = periods.period_key(period.value, day)
    snapshot = None
    if period_key is not None and period_key != key:
        day = _day_of_key(period, period_key)
        key = period_key
        if scope == Scope():
            snapshot = await BoardSnapshot.get_or_none(
                tenant_id=tenant.id, period=period, period_key=key
            )
    ranking = None
    if snapshot is not None:
        ranking = await _snapshot_ranking(tenant, snapshot, first, offset, around)
    elif cache is not None and scope == Scope() and key == periods.period_key(period.value, day):
        ranking = await _cached_ranking(cache, tenant, period, day, first, offset, around)
    if ranking is None:
        ranking = await _sql_ranking(tenant, period, key, scope, first, offset, around)
    ids = [pk for _, pk, _, _ in ranking.rows]
    if ranking.me is not None and ranking.me[1] not in ids:
        ids.append(ranking.me[1])
    players, streaks = await _players_with_streaks(ids)
    previous = ranking.previous
    if previous is None:
        previous = await _previous(tenant, period, day, scope, ids)

    def entry(rank: int, pk: int, points: Decimal) -> Entry:
        streak = streaks.get(pk) or StreakState()
        before = previous.get(pk)
        return Entry(
            rank=rank,
            player=players[pk],
            points=points,
            previous_rank=before[0] if before else None,
            points_change=points - (before[1] if before else ZERO),
            # Streaks live in the player's own day.
            streak_days=streak.as_of(_player_today(tenant, players[pk], now)),
        )

    entries = [entry(rank, pk, points) for rank, pk, points, _ in ranking.rows if pk in players]
    me = None
    if ranking.me is not None:
        rank, pk, points = ranking.me
        me = next((e for e in entries if e.player.id == pk), None) or entry(rank, pk, points)
    return Board(period, key, ranking.total, entries, me, snapshot.taken_at if snapshot else None)


async def rank_of_player(
    tenant: Tenant,
    player: Player,
    period: Period,
    now: datetime | None = None,
    cache: BoardCache | None = None,
) -> Entry | None:
    result = await board(tenant, period, first=1, around=player.external_id, now=now, cache=cache)
    return result.me
