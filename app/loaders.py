"""DataLoaders, built fresh per request (and per subscription event)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from strawberry.dataloader import DataLoader

from app.services import ledger
from app.services import players as player_service
from models import Player, Team, Tenant, Wallet


class Loaders:
    def __init__(self, tenant: Tenant | None) -> None:
        self.tenant = tenant
        self.team = DataLoader(self._teams)
        self.team_members = DataLoader(self._team_members)
        self.player_by_pk = DataLoader(self._players)
        self.wallet = DataLoader(self._wallets)
        self.wallet_view = DataLoader(self._wallet_views)
        self.stats = DataLoader(self._stats)

    async def _teams(self, ids: Sequence[int]) -> list[Team | None]:
        found = await player_service.teams_by_ids(ids)
        return [found.get(i) for i in ids]

    async def _team_members(self, ids: Sequence[int]) -> list[list[Player]]:
        found = await player_service.team_members(ids)
        return [found.get(i, []) for i in ids]

    async def _players(self, ids: Sequence[int]) -> list[Player | None]:
        assert self.tenant is not None
        found = await player_service.players_by_ids(self.tenant.id, ids)
        return [found.get(i) for i in ids]

    async def _wallets(self, ids: Sequence[int]) -> list[Wallet | None]:
        found = await ledger.wallets_for(ids)
        return [found.get(i) for i in ids]

    async def _wallet_views(self, keys: Sequence[tuple[int, date]]) -> list[ledger.WalletView]:
        assert self.tenant is not None
        wallets = await self.wallet.load_many([pid for pid, _ in keys])
        earned = await ledger.earned_on(keys)
        return [
            ledger.wallet_view(self.tenant, wallet, earned.get(key, ledger.ZERO))
            for key, wallet in zip(keys, wallets, strict=True)
        ]

    async def _stats(self, ids: Sequence[int]) -> list[ledger.Stats]:
        found = await ledger.stats_for(ids)
        return [found[i] for i in ids]
