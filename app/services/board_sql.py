"""Boards ranked in SQL from the period score rows: the board's rows as a WHERE clause,
its one order, and the pages read from it (top pages by OFFSET, `around` pages from the
player's place). Both dialects: `$n` marks become `?n` on SQLite, whose decimals are
text and compare as numbers through a cast."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise import Tortoise

from models import Period, PlayerKind, Tenant


@dataclass(frozen=True, slots=True)
class Scope:
    team_id: int | None = None
    segment: str | None = None
    kind: PlayerKind | None = None


@dataclass(frozen=True, slots=True)
class Ranking:
    """A page of ranked rows, from SQL or from the Redis copy."""

    total: int
    rows: list[tuple[int, int, Decimal, datetime | None]]  # rank, player pk, points, reached
    me: tuple[int, int, Decimal] | None  # rank, player pk, points
    previous: dict[int, tuple[int, Decimal]] | None  # None: not known yet


async def sql_ranking(
    tenant: Tenant, period: Period, key: str, scope: Scope, first: int, offset: int, around
) -> Ranking:
    where = where_of(tenant, period, key, scope)
    if around is not None:
        # The player's own row, found even when hidden: players always see their rank.
        own = where_of(tenant, period, key, scope, public=False, join=True)
        # The player by its unique (tenant, external id) key: without the tenant the
        # external id alone matches no index, and PostgreSQL scanned every player of
        # every tenant (120 ms at a million players, most of an SQL-served read).
        conn, text = sql(
            f"SELECT s.player_id, s.points, s.reached_at {own.sql} "
            f"AND p.tenant_id = $1 AND p.external_id = {own.mark()}"
        )
        found = await conn.execute_query_dict(text, [*own.values, around])
        if found:  # centre the page on that player
            return await _sql_around(where, found[0], first)
    conn, text = sql(f"SELECT COUNT(*) AS n {where.sql}")
    total = int((await conn.execute_query_dict(text, where.values))[0]["n"])
    conn, text = sql(
        f"SELECT s.player_id, s.points {where.sql} {order_by(where)} "
        f"LIMIT {int(first)} OFFSET {int(offset)}"
    )
    rows = await conn.execute_query_dict(text, where.values)
    ranked = [
        (offset + i + 1, r["player_id"], Decimal(str(r["points"])), None)
        for i, r in enumerate(rows)
    ]
    return Ranking(total, ranked, None, None)


def sql(text: str) -> tuple[Any, str]:
    """The connection, and the text with its `$n` marks made `?n` on SQLite."""
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        text = re.sub(r"\$(\d+)", r"?\1", text)
    return conn, text


@dataclass(frozen=True, slots=True)
class Where:
    """A board's rows in plain SQL: `FROM period_score s JOIN player p … WHERE …` with
    `$n` marks, its values, and how to compare points (SQLite keeps decimals as text)."""

    sql: str
    values: list[Any]
    points: str

    def mark(self, offset: int = 0) -> str:
        return f"${len(self.values) + offset + 1}"


def where_of(
    tenant: Tenant,
    period: Period,
    key: str,
    scope: Scope,
    public: bool = True,
    *,
    join: bool = False,
) -> Where:
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
    return Where(sql, values, "s.points" if postgres else "CAST(s.points AS REAL)")


def order_by(where: Where) -> str:
    """The one order of every board: points, then who reached them first, then id."""
    return f"ORDER BY {where.points} DESC, s.reached_at ASC, s.player_id ASC"


def _ahead(where: Where) -> str:
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


async def own_places(
    tenant: Tenant, period: Period, key: str, scope: Scope, player_ids: list[int]
) -> dict[int, tuple[int, Decimal]]:
    """The rank and points of these players' own rows on a board even where they are
    hidden from it: 1 + the public rows ahead of each (the rank such a player sees).
    Players without a row on the board are left out."""
    if not player_ids:
        return {}
    where = where_of(tenant, period, key, scope)
    own = where_of(tenant, period, key, scope, public=False, join=True)
    marks = ", ".join(own.mark(n) for n in range(len(player_ids)))
    conn, text = sql(
        f"SELECT s.player_id, s.points, s.reached_at {own.sql} AND s.player_id IN ({marks})"
    )
    out: dict[int, tuple[int, Decimal]] = {}
    for row in await conn.execute_query_dict(text, [*own.values, *player_ids]):
        conn, text = sql(f"SELECT {_ahead(where)} AS n")
        values = [*where.values, row["points"], row["reached_at"], row["player_id"]]
        ahead = int((await conn.execute_query_dict(text, values))[0]["n"])
        out[row["player_id"]] = (ahead + 1, Decimal(str(row["points"])))
    return out


def _around_parts(where: Where, first: int) -> str:
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


async def _sql_around(where: Where, own: dict[str, Any], first: int) -> Ranking:
    """The page of `first` rows centred on a player (`own`: their score row, found even
    when hidden from the board), in one statement: the board's size, the player's
    rank, up to `first // 2` rows just ahead of the player, then the player (when on
    the board) and the rows after. The same page as an OFFSET of rank - 1 - first // 2
    from the top, floored at 0 (tests/service/test_sql_ranking.py)."""
    conn, text = sql(_around_parts(where, first))
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
    return Ranking(counts["t"], ranked, me, None)
