"""DataLoaders, built fresh per request (and per subscription event)."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from app.services import players as player_service
from models import Player, Team


class Loaders:
    def __init__(self, tenant_id: int | None) -> None:
        self.tenant_id = tenant_id
        self.team = DataLoader(self._teams)
        self.team_members = DataLoader(self._team_members)

    async def _teams(self, ids: Sequence[int]) -> list[Team | None]:
        found = await player_service.teams_by_ids(ids)
        return [found.get(i) for i in ids]

    async def _team_members(self, ids: Sequence[int]) -> list[list[Player]]:
        found = await player_service.team_members(ids)
        return [found.get(i, []) for i in ids]
