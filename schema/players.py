"""Players and teams."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.context import Info
from models import Player as PlayerModel
from models import PlayerKind as DomainPlayerKind
from models import Team as TeamModel
from schema.common import UserError

PlayerKind = strawberry.enum(DomainPlayerKind, name="PlayerKind")


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
    segment: str | None
    attributes: JSON
    created_at: datetime

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
        )

    @strawberry.field
    def timezone(self, info: Info) -> str:
        return self._model.timezone or info.context.viewer.tenant.timezone

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
