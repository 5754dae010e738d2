"""Leaderboards ranked from the period score rows (the record).

Ranks are positions: points, then who reached them first, then player id, so the same
data always gives the same order. Periods follow the tenant's timezone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from tortoise import Tortoise
from tortoise.expressions import Q

from app.engine import periods
from app.engine.periods import local_day
from app.engine.streaks import StreakState
from app.errors import ErrorCode, UserError
from app.services.common import zone
from models import Period, PeriodScore, Player, PlayerKind, Team, Tenant, Wallet

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


def current_key(tenant: Tenant, period: Period, now: datetime | None = None) -> str:
    return periods.period_key(period.value, _today(tenant, now))


def _today(tenant: Tenant, now: datetime | None) -> date:
    return local_day(now or datetime.now(UTC), zone(tenant.timezone))


def _player_today(tenant: Tenant, player: Player, now: datetime | None) -> date:
    return local_day(now or datetime.now(UTC), zone(player.timezone or tenant.timezone))


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


def _scoped(tenant: Tenant, period: Period, key: str, scope: Scope, public: bool = True):
    """The board's rows; the public board leaves out players who hid themselves."""
    query = PeriodScore.filter(tenant_id=tenant.id, period=period, period_key=key)
    if public:
        query = query.filter(player__hidden_from_boards=False)
    if scope.team_id is not None:
        query = query.filter(player__team_id=scope.team_id)
    if scope.segment is not None:
        query = query.filter(player__segment=scope.segment)
    if scope.kind is not None:
        query = query.filter(player__kind=scope.kind)
    return query


ORDER = ("-points", "reached_at", "player_id")


async def _rank_of(tenant: Tenant, period: Period, key: str, scope: Scope, row: PeriodScore) -> int:
    ahead = _scoped(tenant, period, key, scope).filter(
        Q(points__gt=row.points)
        | Q(points=row.points, reached_at__lt=row.reached_at)
        | Q(points=row.points, reached_at=row.reached_at, player_id__lt=row.player_id)
    )
    return await ahead.count() + 1


async def _previous(
    tenant: Tenant, period: Period, day: date, scope: Scope, player_ids: list[int]
) -> dict[int, tuple[int, Decimal]]:
    """Rank and points of these players in the previous period of the same kind: one
    window-function query, whatever the page size."""
    key = periods.previous_key(period.value, day)
    if key is None or not player_ids:
        return {}
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    values: list[object] = [tenant.id, period.value, key, False]
    where = ["s.tenant_id = {}", "s.period = {}", "s.period_key = {}", "p.hidden_from_boards = {}"]
    for column, value in (
        ("p.team_id", scope.team_id),
        ("p.segment", scope.segment),
        ("p.kind", scope.kind.value if scope.kind else None),
    ):
        if value is not None:
            where.append(f"{column} = {{}}")
            values.append(value)
    marks = [f"${n}" if postgres else "?" for n in range(1, len(values) + len(player_ids) + 1)]
    conditions = " AND ".join(w.format(m) for w, m in zip(where, marks, strict=False))
    wanted = ", ".join(marks[len(values) :])
    rows = await conn.execute_query_dict(
        "SELECT player_id, points, position FROM ("
        "  SELECT s.player_id, s.points, ROW_NUMBER() OVER ("
        "    ORDER BY s.points DESC, s.reached_at ASC, s.player_id ASC) AS position"
        f"  FROM period_score s JOIN player p ON p.id = s.player_id WHERE {conditions}"
        f") ranked WHERE player_id IN ({wanted})",
        [*values, *player_ids],
    )
    return {r["player_id"]: (int(r["position"]), Decimal(str(r["points"]))) for r in rows}


async def _own_row(
    tenant: Tenant, period: Period, key: str, scope: Scope, player_id: str
) -> PeriodScore | None:
    """A player's own row, found even when hidden: players always see their rank."""
    query = _scoped(tenant, period, key, scope, public=False)
    return await query.filter(player__external_id=player_id).first()


async def board(
    tenant: Tenant,
    period: Period,
    *,
    first: int = 10,
    offset: int = 0,
    around: str | None = None,
    scope: Scope = Scope(),
    now: datetime | None = None,
) -> Board:
    if not 0 <= first <= MAX_PAGE:
        raise UserError(ErrorCode.INVALID, f"first must be between 0 and {MAX_PAGE}", "first")
    if offset < 0:
        raise UserError(ErrorCode.INVALID, "offset must not be negative", "offset")
    day = _today(tenant, now)
    key = periods.period_key(period.value, day)
    total = await _scoped(tenant, period, key, scope).count()
    me_row, my_rank = None, 0
    if around is not None:
        me_row = await _own_row(tenant, period, key, scope, around)
        if me_row is not None:  # centre the page on that player
            my_rank = await _rank_of(tenant, period, key, scope, me_row)
            offset = max(my_rank - 1 - first // 2, 0)
    rows = await _scoped(tenant, period, key, scope).order_by(*ORDER).offset(offset).limit(first)
    ids = [row.player_id for row in rows]
    if me_row is not None and me_row.player_id not in ids:
        ids.append(me_row.player_id)
    players = {p.id: p for p in await Player.filter(id__in=ids)}
    wallets = {w.player_id: w for w in await Wallet.filter(player_id__in=ids)}  # type: ignore[attr-defined]
    previous = await _previous(tenant, period, day, scope, ids)

    def entry(rank: int, row: PeriodScore) -> Entry:
        wallet = wallets.get(row.player_id)
        streak = (
            StreakState(wallet.streak_current, wallet.streak_best, wallet.last_active_day)
            if wallet
            else StreakState()
        )
        before = previous.get(row.player_id)
        return Entry(
            rank=rank,
            player=players[row.player_id],
            points=row.points,
            previous_rank=before[0] if before else None,
            points_change=row.points - (before[1] if before else ZERO),
            # Streaks live in the player's own day.
            streak_days=streak.as_of(_player_today(tenant, players[row.player_id], now)),
        )

    entries = [entry(offset + i + 1, row) for i, row in enumerate(rows)]
    me = None
    if me_row is not None:
        me = next((e for e in entries if e.player.id == me_row.player_id), None) or entry(
            my_rank, me_row
        )
    return Board(period, key, total, entries, me)


async def rank_of_player(
    tenant: Tenant, player: Player, period: Period, now: datetime | None = None
) -> Entry | None:
    result = await board(tenant, period, first=1, around=player.external_id, now=now)
    return result.me
