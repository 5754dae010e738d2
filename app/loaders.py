"""DataLoaders, built fresh per request (and per subscription event)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property

from strawberry.dataloader import DataLoader

from app.services import leaderboards, ledger, reward_items
from app.services import players as player_service
from app.services import rewards as reward_service
from app.services.board_cache import BoardCache
from models import Period, Player, Redemption, RewardItem, Team, Tenant, Wallet


class Loaders:
    """Each loader is made on first use: most requests need none of them."""

    def __init__(self, tenant: Tenant | None, boards: BoardCache | None = None) -> None:
        self.tenant = tenant
        self.boards = boards

    @cached_property
    def team(self) -> DataLoader[int, Team | None]:
        return DataLoader(self._teams)

    @cached_property
    def team_members(self) -> DataLoader[int, list[Player]]:
        return DataLoader(self._team_members)

    @cached_property
    def player_by_pk(self) -> DataLoader[int, Player | None]:
        return DataLoader(self._players)

    @cached_property
    def wallet(self) -> DataLoader[int, Wallet | None]:
        return DataLoader(self._wallets)

    @cached_property
    def wallet_view(self) -> DataLoader[tuple[int, date], ledger.WalletView]:
        return DataLoader(self._wallet_views)

    @cached_property
    def stats(self) -> DataLoader[int, ledger.Stats]:
        return DataLoader(self._stats)

    @cached_property
    def rank(self) -> DataLoader[tuple[Period, int], leaderboards.Entry | None]:
        """(period, player pk) -> the player's entry on the tenant-wide board."""
        return DataLoader(self._ranks)

    @cached_property
    def reward(self) -> DataLoader[int, RewardItem | None]:
        return DataLoader(self._rewards)

    @cached_property
    def redemption(self) -> DataLoader[int, Redemption | None]:
        return DataLoader(self._redemptions)

    async def _redemptions(self, ids: Sequence[int]) -> list[Redemption | None]:
        assert self.tenant is not None
        found = await reward_service.redemptions_by_ids(self.tenant.id, ids)
        return [found.get(i) for i in ids]

    async def _rewards(self, ids: Sequence[int]) -> list[RewardItem | None]:
        assert self.tenant is not None
        found = await reward_items.items_by_ids(self.tenant.id, ids)
        return [found.get(i) for i in ids]

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

    async def _ranks(self, keys: Sequence[tuple[Period, int]]) -> list[leaderboards.Entry | None]:
        assert self.tenant is not None
        found: dict[tuple[Period, int], leaderboards.Entry] = {}
        for period in dict.fromkeys(p for p, _ in keys):
            pks = [pk for p, pk in keys if p == period]
            entries = await leaderboards.entries_of(self.tenant, period, pks, cache=self.boards)
            found |= {(period, pk): e for pk, e in entries.items()}
        return [found.get(key) for key in keys]

    async def _stats(self, ids: Sequence[int]) -> list[ledger.Stats]:
        found = await ledger.stats_for(ids)
        return [found[i] for i in ids]
