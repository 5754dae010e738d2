"""Wallets, levels, streaks, stats, transactions, events and their outcomes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.context import Info
from app.engine.levels import LevelInfo
from app.services.ingest import LevelUpView, Outcome
from app.services.ledger import Stats, WalletView, encode_cursor
from models import Event as EventModel
from models import PointTransaction as TransactionModel
from models import TransactionKind as DomainTransactionKind
from schema.common import PageInfo, UserError, flat_input

if TYPE_CHECKING:
    from schema.players import Player

TransactionKind = strawberry.enum(DomainTransactionKind, name="TransactionKind")


CENT = Decimal("0.01")


def points(value: Decimal | str | None) -> float:
    """Points leave the exact ledger as Floats with 2 places."""
    if not isinstance(value, Decimal):
        value = Decimal(str(value or 0))
    return float(value.quantize(CENT))


def page_info(edges: list, has_next: bool) -> PageInfo:
    return PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None)


@strawberry.type
class Wallet:
    balance: float
    lifetime_earned: float
    earned_today: float
    daily_cap: float | None

    @classmethod
    def from_view(cls, view: WalletView) -> Wallet:
        return cls(
            balance=points(view.balance),
            lifetime_earned=points(view.lifetime_earned),
            earned_today=points(view.earned_today),
            daily_cap=None if view.daily_cap is None else points(view.daily_cap),
        )

    @classmethod
    def from_json(cls, data: dict) -> Wallet:
        return cls.from_view(WalletView.from_json(data))


@strawberry.type
class PlayerLevel:
    number: int
    name: str
    lifetime_points_required: float
    next_level_at: float | None
    progress: float

    @classmethod
    def from_info(cls, info: LevelInfo, lifetime: Decimal | None = None) -> PlayerLevel:
        return cls(
            number=info.number,
            name=info.name,
            lifetime_points_required=points(info.lifetime_points_required),
            next_level_at=None if info.next_level_at is None else points(info.next_level_at),
            progress=float(
                info.progress(lifetime if lifetime is not None else info.lifetime_points_required)
            ),
        )


@strawberry.type
class LevelUp:
    from_: int = strawberry.field(name="from")
    to: int
    level: PlayerLevel
    bonus_points: float

    @classmethod
    def from_view(cls, view: LevelUpView) -> LevelUp:
        return cls(
            from_=view.from_level,
            to=view.to_level,
            level=PlayerLevel.from_info(view.level, view.lifetime),
            bonus_points=points(view.bonus),
        )


@strawberry.type
class Streak:
    current: int
    best: int
    last_active_day: str | None


@strawberry.type
class PlayerStats:
    total_events: int
    events_by_category: JSON
    points_by_category: JSON
    best_streak: int
    current_streak: int
    badges_count: int
    missions_completed: int

    @classmethod
    def build(cls, stats: Stats, streak: Streak) -> PlayerStats:
        return cls(
            total_events=stats.total_events,
            events_by_category=stats.events_by_category,
            points_by_category=stats.points_by_category,
            best_streak=streak.best,
            current_streak=streak.current,
            badges_count=0,
            missions_completed=0,
        )


@strawberry.type
class PointTransaction:
    id: strawberry.ID
    kind: TransactionKind
    amount: float
    balance_after: float
    reason: str
    event_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: TransactionModel) -> PointTransaction:
        event_id = row.event_id  # type: ignore[attr-defined]
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=TransactionKind(row.kind),
            amount=points(row.amount),
            balance_after=points(row.balance_after),
            reason=row.reason,
            event_id=strawberry.ID(str(event_id)) if event_id else None,
            created_at=row.created_at,
        )

    @classmethod
    def from_json(cls, data: dict) -> PointTransaction:
        return cls(
            id=strawberry.ID(data["id"]),
            kind=TransactionKind(data["kind"]),
            amount=points(data["amount"]),
            balance_after=points(data["balanceAfter"]),
            reason=data["reason"],
            event_id=strawberry.ID(data["eventId"]) if data.get("eventId") else None,
            created_at=datetime.fromisoformat(data["createdAt"]),
        )


@strawberry.type
class PointTransactionEdge:
    cursor: str
    node: PointTransaction


@strawberry.type
class PointTransactionConnection:
    edges: list[PointTransactionEdge]
    page_info: PageInfo

    @classmethod
    def build(cls, rows: list[TransactionModel], has_next: bool) -> PointTransactionConnection:
        edges = [
            PointTransactionEdge(cursor=encode_cursor(r.id), node=PointTransaction.from_model(r))
            for r in rows
        ]
        return cls(edges=edges, page_info=page_info(edges, has_next))


@strawberry.type
class PointsLine:
    rule: str
    description: str
    amount: float


@strawberry.type
class Event:
    _model: strawberry.Private[EventModel]
    id: strawberry.ID
    event_type: str
    category: str | None
    value: float
    occurred_at: datetime
    source: str
    metadata: JSON
    points_awarded: float

    @classmethod
    def from_model(cls, row: EventModel) -> Event:
        return cls(
            _model=row,
            id=strawberry.ID(str(row.id)),
            event_type=row.event_type,
            category=row.category,
            value=float(row.value),
            occurred_at=row.occurred_at,
            source=row.source,
            metadata=row.metadata,
            points_awarded=points(row.points_awarded),
        )

    @strawberry.field
    async def player(self, info: Info) -> Annotated[Player, strawberry.lazy("schema.players")]:
        from schema.players import Player

        row = await info.context.loaders.player_by_pk.load(self._model.player_id)  # type: ignore[attr-defined]
        return Player.from_model(row)


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo

    @classmethod
    def build(cls, rows: list[EventModel], has_next: bool) -> EventConnection:
        edges = [
            EventEdge(
                cursor=encode_cursor(r.occurred_at.isoformat(), r.id), node=Event.from_model(r)
            )
            for r in rows
        ]
        return cls(edges=edges, page_info=page_info(edges, has_next))


@strawberry.type
class EventOutcome:
    """An event's outcome; each field is built only when the query selects it (a batch
    of 1,000 outcomes usually asks for a field or two)."""

    outcome: strawberry.Private[Outcome]

    @strawberry.field
    def event(self) -> Event | None:
        return Event.from_model(self.outcome.event) if self.outcome.event else None

    @strawberry.field
    def duplicate(self) -> bool:
        return self.outcome.duplicate

    @strawberry.field
    def points_awarded(self) -> float:
        return points(self.outcome.points)

    @strawberry.field
    def breakdown(self) -> list[PointsLine]:
        return [
            PointsLine(rule=line.rule, description=line.description, amount=points(line.amount))
            for line in self.outcome.lines
        ]

    @strawberry.field
    def wallet(self) -> Wallet | None:
        return Wallet.from_view(self.outcome.wallet) if self.outcome.wallet else None

    @strawberry.field
    def level_up(self) -> LevelUp | None:
        level_up = self.outcome.level_up
        return LevelUp.from_view(level_up) if level_up else None

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> EventOutcome:
        return cls(outcome=outcome)


@flat_input
@strawberry.input
class RecordEventInput:
    player_id: strawberry.ID
    event_type: str
    category: str | None = None
    value: float | None = 1
    occurred_at: datetime | None = None
    source: str | None = "api"
    metadata: JSON | None = None
    idempotency_key: str | None = None


@strawberry.input
class NormalizeEventInput:
    source_id: strawberry.ID | None = None
    source_type: str | None = None
    event: JSON
    idempotency_key: str | None = None


@strawberry.type
class RecordEventPayload:
    outcome: EventOutcome | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RecordEventsPayload:
    outcomes: list[EventOutcome] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AdjustPointsInput:
    player_id: strawberry.ID
    amount: float
    reason: str
    idempotency_key: str | None = None


@strawberry.type
class AdjustPointsPayload:
    transaction: PointTransaction | None = None
    wallet: Wallet | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PointsChanged:
    player_id: strawberry.ID
    amount: float
    wallet: Wallet
    transaction: PointTransaction


@strawberry.type
class LevelChanged:
    player_id: strawberry.ID
    level_up: LevelUp
