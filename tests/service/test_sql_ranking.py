"""Leaderboard pages served from SQL (no Redis) against a plain sort of the same rows:
ties on points and on the time they were reached, hidden players, `around` any player
(hidden ones included: they see their own rank), every page size, and a segment scope.
Runs on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services import leaderboards
from app.services.leaderboards import Scope
from app.services.tenants import create_tenant
from models import Period, PeriodScore, Player

EPOCH = datetime(2026, 11, 1, tzinfo=UTC)

players = st.lists(
    st.tuples(
        st.sampled_from([Decimal("0.50"), Decimal("5.00"), Decimal("9.00"), Decimal("40.00")]),
        st.integers(min_value=0, max_value=3),  # minutes after EPOCH: ties on reached_at too
        st.booleans(),  # hidden from public boards
        st.sampled_from(["gold", "silver"]),  # segment
    ),
    min_size=1,
    max_size=14,
)


async def _all_time_score(player: Player, points: Decimal, minutes: int) -> datetime:
    """The player's ALL_TIME score row, reached `minutes` after EPOCH; returns when."""
    reached = EPOCH + timedelta(minutes=minutes)
    await PeriodScore.create(
        tenant_id=player.tenant_id,  # type: ignore[attr-defined]
        player=player,
        period=Period.ALL_TIME,
        period_key="all",
        points=points,
        reached_at=reached,
    )
    return reached


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=players,
    first=st.integers(min_value=0, max_value=6),
    who=st.integers(min_value=0, max_value=13),
    scoped=st.booleans(),
)
async def test_sql_pages_around_a_player_equal_a_plain_sort(rt, rows, first, who, scoped):
    tenant = await create_tenant(f"rank-{uuid.uuid4().hex[:8]}", preset="habits")
    stored = []
    for n, (points, minutes, hidden, segment) in enumerate(rows):
        player = await Player.create(
            tenant=tenant, external_id=f"p{n}", hidden_from_boards=hidden, segment=segment
        )
        stored.append((player, points, await _all_time_score(player, points, minutes)))
    scope = Scope(segment="gold") if scoped else Scope()
    on_board = [s for s in stored if not scoped or s[0].segment == "gold"]
    order = sorted(on_board, key=lambda s: (-s[1], s[2], s[0].id))
    public = [s for s in order if not s[0].hidden_from_boards]
    me = on_board[who % len(on_board)] if on_board else stored[0]
    around = me[0].external_id

    board = await leaderboards.board(
        tenant, Period.ALL_TIME, first=first, around=around, scope=scope, cache=None
    )

    assert board.total_players == len(public)
    if me not in on_board:  # not on this scope's board: no `me`, the top of the board
        assert board.me is None
        expected_start = 0
    else:
        ahead = sum(1 for s in public if (-s[1], s[2], s[0].id) < (-me[1], me[2], me[0].id))
        assert (board.me.rank, board.me.player.id, board.me.points) == (
            ahead + 1,
            me[0].id,
            me[1],
        )
        expected_start = max(ahead - first // 2, 0)
    page = public[expected_start : expected_start + first]
    assert [(e.rank, e.player.id, e.points) for e in board.entries] == [
        (expected_start + i + 1, s[0].id, s[1]) for i, s in enumerate(page)
    ]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=players, extra=st.integers(min_value=0, max_value=12))
async def test_many_players_places_equal_their_around_pages(rt, rows, extra):
    """`places_of` (rankChanged's shared reads) gives each player the rank and points of
    their own `around` page's `me`, hidden players included, in one read for all of
    them: the few from their own rows, the many from one window query."""
    tenant = await create_tenant(f"place-{uuid.uuid4().hex[:8]}", preset="habits")
    pks = []
    # `extra` players more, with points tied to the listed ones': past FEW_PLACES.
    for n, (points, minutes, hidden, _) in enumerate(rows + rows[:extra]):
        player = await Player.create(
            tenant=tenant, external_id=f"p{n}", hidden_from_boards=hidden and n < len(rows)
        )
        await _all_time_score(player, points, minutes)
        pks.append(player.id)
    scoreless = await Player.create(tenant=tenant, external_id="none")
    expected = {}
    for n, pk in enumerate(pks):
        me = (await leaderboards.board(tenant, Period.ALL_TIME, first=1, around=f"p{n}")).me
        assert me is not None
        expected[pk] = (me.rank, me.points)
    places = await leaderboards.places_of(tenant, Period.ALL_TIME, [*pks, scoreless.id])
    assert places == expected  # the player without a score is left out
    assert await leaderboards.places_of(tenant, Period.ALL_TIME, pks[:3]) == {
        pk: expected[pk] for pk in pks[:3]
    }
    found = await leaderboards.player_pks(tenant, [f"p{n}" for n in range(len(pks))] + ["nobody"])
    assert found == {f"p{n}": pk for n, pk in enumerate(pks)}
