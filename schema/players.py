"""Players and teams."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.scalars import JSON

from app.context import Info
from app.engine import levels
from app.services import ledger as ledger_service
from app.services.rules import rules_for
from models import Period
from models import Player as PlayerModel
from models import PlayerKind as DomainPlayerKind
from models import Team as TeamModel
from schema.common import UserError
from schema.leaderboards import LeaderboardEntry, LeaderboardPeriod
from schema.ledger import (
    EventConnection,
    PlayerLevel,
    PlayerStats,
    PointTransactionConnection,
    Streak,
    Wallet,
)

PlayerKind = strawberry.enum(DomainPlayerKind, name="PlayerKind")


class OwnPlayerOnly(BasePermission):
    """A player's private fields: any credential of the tenant reads them, a player token
    only its own player's. A token reaches other players through teams and boards, where
    it sees only their public fields (id, kind, displayName, level, team)."""

    message = "a player token reads only its own player"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.viewer.require_player(str(source.id))  # raises Forbidden
        return True


@strawberry.type
class Team:
    _model: strawberry.Private[TeamModel]
    id: strawberry.ID
    name: str

    @classmethod
    def from_model(cls, model: TeamModel) -> Team:
        return cls(_model=model, id=strawberry.ID(model.external_id), name=model.name)

    @strawberry.field
    async def members(self, info: Info) -> list[Player]:
        rows = await info.context.loaders.team_members.load(self._model.id)
        return [Player.from_model(p) for p in rows]


@strawberry.type
class Player:
    _model: strawberry.Private[PlayerModel]
    id: strawberry.ID
    kind: PlayerKind
    display_name: str | None
    segment: str | None = strawberry.field(permission_classes=[OwnPlayerOnly])
    attributes: JSON = strawberry.field(permission_classes=[OwnPlayerOnly])
    created_at: datetime = strawberry.field(permission_classes=[OwnPlayerOnly])
    hide_from_leaderboards: bool = strawberry.field(
        description="Left out of public leaderboard pages; the player still sees their rank.",
        permission_classes=[OwnPlayerOnly],
    )

    @classmethod
    def from_model(cls, model: PlayerModel) -> Player:
        return cls(
            _model=model,
            id=strawberry.ID(model.external_id),
            kind=PlayerKind(model.kind),
            display_name=model.display_name,
            segment=model.segment,
            attributes=model.attributes,
            created_at=model.created_at,
            hide_from_leaderboards=model.hidden_from_boards,
        )

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    def timezone(self, info: Info) -> str:
        return self._model.timezone or info.context.viewer.tenant.timezone

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def wallet(self, info: Info) -> Wallet:
        tenant = info.context.viewer.tenant
        today = ledger_service.today_for(tenant, self._model)
        view = await info.context.loaders.wallet_view.load((self._model.id, today))
        return Wallet.from_view(view)

    @strawberry.field
    async def level(self, info: Info) -> PlayerLevel:
        wallet = await info.context.loaders.wallet.load(self._model.id)
        rules = rules_for(info.context.viewer.tenant)
        lifetime = wallet.lifetime_earned if wallet else ledger_service.ZERO
        return PlayerLevel.from_info(levels.info(wallet.level if wallet else 1, rules), lifetime)

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def streak(self, info: Info) -> Streak:
        wallet = await info.context.loaders.wallet.load(self._model.id)
        state = ledger_service.streak_of(wallet)
        today = ledger_service.today_for(info.context.viewer.tenant, self._model)
        day = state.last_active_day
        return Streak(
            current=state.as_of(today),
            best=state.best,
            last_active_day=day.isoformat() if day else None,
        )

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def stats(self, info: Info) -> PlayerStats:
        stats = await info.context.loaders.stats.load(self._model.id)
        return PlayerStats.build(stats, await self.streak(info))

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def transactions(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> PointTransactionConnection:
        rows, more = await ledger_service.transactions_page(
            self._model, 20 if first is None else first, after
        )
        return PointTransactionConnection.build(rows, more)

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def events(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> EventConnection:
        rows, more = await ledger_service.events_page(
            self._model, 20 if first is None else first, after
        )
        return EventConnection.build(rows, more)

    @strawberry.field(permission_classes=[OwnPlayerOnly])
    async def rank(
        self, info: Info, period: LeaderboardPeriod = Period.ALL_TIME
    ) -> LeaderboardEntry | None:
        entry = await info.context.loaders.rank.load((Period(period), self._model.id))
        return LeaderboardEntry.from_entry(entry) if entry else None

    @strawberry.field
    async def team(self, info: Info) -> Team | None:
        team_id = self._model.team_id  # type: ignore[attr-defined]
        if team_id is None:
            return None
        team = await info.context.loaders.team.load(team_id)
        return Team.from_model(team) if team else None


@strawberry.input
class PlayerInput:
    id: strawberry.ID
    kind: PlayerKind | None = DomainPlayerKind.CUSTOMER
    display_name: str | None = strawberry.UNSET
    segment: str | None = strawberry.UNSET
    team_id: strawberry.ID | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET
    hide_from_leaderboards: bool | None = strawberry.UNSET


@strawberry.type
class PlayerPayload:
    player: Player | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class TeamInput:
    id: strawberry.ID
    name: str


@strawberry.type
class TeamPayload:
    team: Team | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
