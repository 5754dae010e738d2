"""Leaderboards ranked from the period score rows (the record).

Ranks are positions: points, then who reached them first, then player id, so the same
data always gives the same order. Periods follow the tenant's timezone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.engine import periods
from app.engine.periods import local_day
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.services.board_cache import BoardCache
from app.services.board_sql import (
    Ranking,
    Scope,
    order_by,
    own_places,
    sql,
    sql_ranking,
    where_of,
)
from app.services.common import fits_external_id, zone
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


def seconds_until_period_ends(
    tenant: Tenant, period: Period, now: datetime | None = None
) -> float | None:
    """How long until the tenant's current `period` closes (at midnight in its timezone,
    when the next one starts empty); None for ALL_TIME, which never closes."""
    now = now or datetime.now(UTC)
    tz = zone(tenant.timezone)
    end = periods.end_day(period.value, periods.period_key(period.value, local_day(now, tz)))
    if end is None:
        return None
    midnight = datetime.combine(end, datetime.min.time(), tzinfo=tz)
    return max((midnight - now).total_seconds(), 0.0)


def _player_today(tenant: Tenant, player: Player, now: datetime | None) -> date:
    return local_day(now or datetime.now(UTC), zone(player.timezone or tenant.timezone))


def boards_to_rebuild(
    tenant: Tenant, period: str | None = None, key: str | None = None, now: datetime | None = None
) -> list[tuple[str, str]]:
    """The boards a rebuild restores: the current and previous periods (what reads use),
    or one named period and key."""
    wanted = [Period(period)] if period else list(Period)
    if key is not None:
        if wanted[0] is not Period.ALL_TIME or key != periods.ALL_TIME_KEY:
            _day_of_key(wanted[0], key)  # the key the API would take, written the same way
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
        team = None
        if fits_external_id(team_id):
            team = await Team.get_or_none(tenant_id=tenant.id, external_id=team_id)
        if team is None:
            raise UserError(ErrorCode.NOT_FOUND, f"no team {team_id!r}", "teamId")
        team_pk = team.id
    return Scope(team_pk, segment, kind)


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
        conn, text = sql(
            "SELECT player_id, final_rank AS position, COALESCE(final_points, points) AS points "
            "FROM period_score "
            "WHERE tenant_id = $1 AND period = $2 AND period_key = $3 "
            f"AND final_rank IS NOT NULL AND player_id IN ({marks})"
        )
        rows = await conn.execute_query_dict(text, [tenant.id, period.value, key, *player_ids])
        return _places(rows)
    return await _ranked_places(tenant, period, key, scope, player_ids)


async def _ranked_places(
    tenant: Tenant, period: Period, key: str, scope: Scope, player_ids: list[int]
) -> dict[int, tuple[int, Decimal]]:
    """Rank and points of these players on a board in one window-function query over
    its rows; a hidden player (not among the ranked rows) gets the rank they see."""
    if not player_ids:
        return {}
    where = where_of(tenant, period, key, scope)
    wanted = ", ".join(where.mark(n) for n in range(len(player_ids)))
    conn, text = sql(
        "SELECT player_id, points, position FROM ("
        f"  SELECT s.player_id, s.points, ROW_NUMBER() OVER ({order_by(where)}) AS position"
        f"  {where.sql}"
        f") ranked WHERE player_id IN ({wanted})"
    )
    found = _places(await conn.execute_query_dict(text, [*where.values, *player_ids]))
    # A player hidden from the board (the `me` of an around page) is not among its
    # ranked rows: the rank they saw, as their current rank and the final ranks give it.
    missing = [pk for pk in player_ids if pk not in found]
    return found | await own_places(tenant, period, key, scope, missing)


# Up to this many players' places are read from their own rows (two index range counts
# each); more, with one window-function query over the board's rows.
FEW_PLACES = 8
# Players per SQL statement of `places_of` (within SQLite's variable limit).
PLACES_CHUNK = 500


async def places_of(
    tenant: Tenant,
    period: Period,
    player_ids: list[int],
    *,
    cache: BoardCache | None = None,
    now: datetime | None = None,
) -> dict[int, tuple[int, Decimal]]:
    """Each player's rank and points on the tenant-wide board of the current `period`,
    as `board(around=...)` gives them in `me` (a hidden player: the rank they see), read
    for all of them at once: from Redis when the board is ready there (one script call
    per 1,000 players), else from SQL. Players without a score in the period are left
    out."""
    key = current_key(tenant, period, now)
    found: dict[int, tuple[int, Decimal]] = {}
    todo = list(player_ids)
    if cache is not None and todo:
        cached = await cache.places(tenant.id, tenant.timezone, period.value, key, todo)
        if cached is not None:
            found = {pk: (r.rank, r.points) for pk, r in cached.items()}
            # Not on the public board: hidden (their own rank), or no score.
            todo = [pk for pk in todo if pk not in found]
            return found | await own_places(tenant, period, key, Scope(), todo)
    for start in range(0, len(todo), PLACES_CHUNK):
        chunk = todo[start : start + PLACES_CHUNK]
        if len(chunk) <= FEW_PLACES:
            found |= await own_places(tenant, period, key, Scope(), chunk)
        else:
            found |= await _ranked_places(tenant, period, key, Scope(), chunk)
    return found


def _places(rows: list[dict[str, Any]]) -> dict[int, tuple[int, Decimal]]:
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
    # Years 1970-9998: events are no older, and every key has a previous and a next.
    if day is None or not 1970 <= day.year <= 9998 or periods.period_key(period.value, day) != key:
        raise UserError(
            ErrorCode.INVALID,
            f"{key!r} is not a {period.value} period key (e.g. 2026-11-20, 2026-W47, 2026-11)",
            "periodKey",
        )
    return day


async def _snapshot_ranking(
    tenant: Tenant, snapshot: BoardSnapshot, first: int, offset: int, around: str | None
) -> Ranking:
    """A closed period as snapshotted: the top entries, and `me` from the final ranks."""
    me = None
    if around is not None and fits_external_id(around):
        row = (
            await PeriodScore.filter(
                tenant_id=tenant.id,
                period=snapshot.period,
                period_key=snapshot.period_key,
                player__external_id=around,
                final_rank__isnull=False,
            )
            .only("player_id", "final_rank", "final_points", "points")
            .first()
        )
        if row is not None:  # the final rank with its own points (a late event adds later)
            final = row.final_points if row.final_points is not None else row.points
            me = (row.final_rank, row.player_id, final)
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
    return Ranking(snapshot.total_players, rows, me, None)


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
    where = where_of(tenant, period, key, Scope(), join=True)  # $1-$3 the board, $4 public
    hidden = where.mark()  # $5
    value = where.points.replace("s.points", "period_score.points")
    _, count = sql(f"SELECT COUNT(*) AS n {where.sql}")
    _, final_ranks = sql(
        "UPDATE period_score SET final_rank = ranked.position, final_points = "
        "period_score.points FROM ("
        f"  SELECT s.player_id, ROW_NUMBER() OVER ({order_by(where)}) AS position {where.sql}"
        ") AS ranked WHERE period_score.player_id = ranked.player_id "
        "AND period_score.tenant_id = $1 AND period_score.period = $2 "
        "AND period_score.period_key = $3"  # the rows' key (migration 0014), not their id
    )
    # Hidden players keep the rank they saw: their place among the public board.
    _, hidden_ranks = sql(
        "UPDATE period_score SET final_points = points, "
        f"final_rank = 1 + (SELECT COUNT(*) {where.sql} AND "
        f"({where.points} > {value} OR ({where.points} = {value} AND "
        "(s.reached_at < period_score.reached_at OR (s.reached_at = period_score.reached_at "
        "AND s.player_id < period_score.player_id))))) WHERE tenant_id = $1 AND period = $2 "
        "AND period_key = $3 AND player_id IN (SELECT id FROM player WHERE tenant_id = $1 "
        f"AND hidden_from_boards = {hidden})"
    )
    _, top = sql(
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


# A player's primary key per (tenant, external id), per process: players are never deleted
# nor renamed, so a found key stays right (a missing player is asked again: it may be
# created). It saves a query on every Redis-served `around` read.
_player_pks: dict[tuple[int, str], int] = {}


async def _player_pk(tenant: Tenant, external_id: str) -> int | None:
    return (await player_pks(tenant, [external_id])).get(external_id)


async def player_pks(tenant: Tenant, external_ids: list[str]) -> dict[str, int]:
    """The primary keys of the players that exist among `external_ids`, in one query
    for those not known yet (PLACES_CHUNK per statement)."""
    out: dict[str, int] = {}
    unknown: list[str] = []
    for external_id in external_ids:
        known = _player_pks.get((tenant.id, external_id))
        if known is None:
            unknown.append(external_id)
        else:
            out[external_id] = known
    for start in range(0, len(unknown), PLACES_CHUNK):
        chunk = unknown[start : start + PLACES_CHUNK]
        marks = ", ".join(f"${n}" for n in range(2, len(chunk) + 2))
        conn, text = sql(
            f"SELECT id, external_id FROM player WHERE tenant_id = $1 AND external_id IN ({marks})"
        )
        rows = await conn.execute_query_dict(text, [tenant.id, *chunk])
        if len(_player_pks) + len(rows) > 100_000:
            _player_pks.clear()
        for row in rows:
            out[row["external_id"]] = _player_pks[(tenant.id, row["external_id"])] = row["id"]
    return out


async def _players_with_streaks(
    ids: list[int],
) -> tuple[dict[int, Player], dict[int, StreakState]]:
    """The entries' players and streaks in one plain query (the ORM's query building
    cost more than the query on a page read)."""
    if not ids:
        return {}, {}
    marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
    conn, text = sql(
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


def _kept(
    cache: BoardCache, tenant: Tenant, period: Period, day: date, today: date, now: datetime | None
) -> bool:
    """Whether Redis keeps the board of `day`'s period: the current one, and a past one
    until its keys expire (`BoardCache.expire_at`). A future period, or one past its
    retention, is read from SQL: a set rebuilt for it would expire at once (or, for the
    future, outlive everything), and every read would scan its rows again."""
    key = periods.period_key(period.value, day)
    if key == periods.period_key(period.value, today):
        return True
    if day > today:
        return False
    expires = cache.expire_at(period.value, key, tenant.timezone)
    return expires == 0 or expires > (now or datetime.now(UTC)).timestamp()


async def _cached_ranking(
    cache: BoardCache, tenant: Tenant, period: Period, day: date, first: int, offset: int, around
) -> Ranking | None:
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
    return Ranking(page.total, rows, me, page.previous)


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
    today = day = _today(tenant, now)
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
    elif cache is not None and scope == Scope() and _kept(cache, tenant, period, day, today, now):
        ranking = await _cached_ranking(cache, tenant, period, day, first, offset, around)
    if ranking is None:
        ranking = await sql_ranking(tenant, period, key, scope, first, offset, around)
    ids = [pk for _, pk, _, _ in ranking.rows]
    if ranking.me is not None and ranking.me[1] not in ids:
        ids.append(ranking.me[1])
    players, streaks = await _players_with_streaks(ids)
    previous = ranking.previous
    if previous is None:
        previous = await _previous(tenant, period, day, scope, ids)

    def entry(rank: int, pk: int, points: Decimal) -> Entry:
        return _entry(tenant, players[pk], rank, points, streaks, previous, now)

    entries = [entry(rank, pk, points) for rank, pk, points, _ in ranking.rows if pk in players]
    me = None
    if ranking.me is not None:
        rank, pk, points = ranking.me
        me = next((e for e in entries if e.player.id == pk), None) or entry(rank, pk, points)
    return Board(period, key, ranking.total, entries, me, snapshot.taken_at if snapshot else None)


def _entry(
    tenant: Tenant,
    player: Player,
    rank: int,
    points: Decimal,
    streaks: dict[int, StreakState],
    previous: dict[int, tuple[int, Decimal]],
    now: datetime | None,
) -> Entry:
    streak = streaks.get(player.id) or StreakState()
    before = previous.get(player.id)
    return Entry(
        rank=rank,
        player=player,
        points=points,
        previous_rank=before[0] if before else None,
        points_change=points - (before[1] if before else ZERO),
        # Streaks live in the player's own day.
        streak_days=streak.as_of(_player_today(tenant, player, now)),
    )


async def entries_of(
    tenant: Tenant,
    period: Period,
    player_ids: list[int],
    *,
    now: datetime | None = None,
    cache: BoardCache | None = None,
) -> dict[int, Entry]:
    """Each player's entry on the tenant-wide board of the current `period`, as
    `board(around=...)` gives it in `me`, for many players in a constant number of reads
    (their places, their players and streaks, their previous ranks): `Player.rank` in a
    list. Players without a score in the period are left out."""
    now = now or datetime.now(UTC)
    places = await places_of(tenant, period, player_ids, cache=cache, now=now)
    if not places:
        return {}
    ids = list(places)
    players, streaks = await _players_with_streaks(ids)
    previous = await _previous(tenant, period, _today(tenant, now), Scope(), ids)
    return {
        pk: _entry(tenant, players[pk], rank, points, streaks, previous, now)
        for pk, (rank, points) in places.items()
        if pk in players
    }
