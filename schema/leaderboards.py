"""Leaderboards and their entries."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.services.leaderboards import Board, Entry
from models import Period as DomainPeriod
from schema.ledger import points

if TYPE_CHECKING:
    from schema.players import Player

LeaderboardPeriod = strawberry.enum(DomainPeriod, name="LeaderboardPeriod")


@strawberry.type
class LeaderboardEntry:
    rank: int
    points: float
    previous_rank: int | None
    points_change: float
    badges_count: int
    streak_days: int
    # A plain attribute, not a resolver: a page of entries resolves no function per entry
    # (Strawberry's resolver wrapping was ~10% of a Redis-served page read).
    player: Annotated[Player, strawberry.lazy("schema.players")]

    @classmethod
    def from_entry(cls, entry: Entry) -> LeaderboardEntry:
        from schema.players import Player

        return cls(
            rank=entry.rank,
            points=points(entry.points),
            previous_rank=entry.previous_rank,
            points_change=points(entry.points_change),
            badges_count=0,  # nothing awards badges yet: no player has one
            streak_days=entry.streak_days,
            player=Player.from_model(entry.player),
        )


@strawberry.type
class Leaderboard:
    period: LeaderboardPeriod
    period_key: str
    total_players: int
    entries: list[LeaderboardEntry]
    me: LeaderboardEntry | None
    snapshot_at: datetime | None = strawberry.field(
        default=None,
        description="When this closed period was snapshotted (its final ranks); null for a "
        "live board.",
    )

    @classmethod
    def from_board(cls, board: Board) -> Leaderboard:
        return cls(
            period=LeaderboardPeriod(board.period),
            period_key=board.period_key,
            total_players=board.total_players,
            entries=[LeaderboardEntry.from_entry(e) for e in board.entries],
            me=LeaderboardEntry.from_entry(board.me) if board.me else None,
            snapshot_at=board.snapshot_at,
        )


@strawberry.type
class RankChanged:
    player_id: strawberry.ID
    period: LeaderboardPeriod
    rank: int
    previous_rank: int | None
    points: float
