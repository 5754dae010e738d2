"""Levels, admin point adjustments, data sources."""

from __future__ import annotations

import strawberry

from app.auth import Access
from app.context import Info
from app.engine import levels
from app.errors import UserError as DomainUserError
from app.services import ledger, sources
from app.services.rules import rules_for
from resolvers.common import viewer
from schema.common import UserError
from schema.ledger import (
    AdjustPointsInput,
    AdjustPointsPayload,
    PlayerLevel,
    PointTransaction,
    Wallet,
)
from schema.sources import DataSource, DataSourceInput, DataSourcePayload


@strawberry.type
class LedgerQuery:
    @strawberry.field(description="The level table (the first 10 levels of a formula scheme).")
    def levels(self, info: Info) -> list[PlayerLevel]:
        who = viewer(info)
        return [PlayerLevel.from_info(level) for level in levels.all_levels(rules_for(who.tenant))]

    @strawberry.field
    async def data_sources(self, info: Info) -> list[DataSource]:
        who = viewer(info, Access.VIEWER)
        return [DataSource.from_model(row) for row in await sources.list_sources(who.tenant)]


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(description="Admin award (+) or revocation (-); idempotent by key.")
    async def adjust_points(self, info: Info, input: AdjustPointsInput) -> AdjustPointsPayload:
        who = viewer(info, Access.ADMIN)
        try:
            result = await ledger.adjust_points(
                info.context.rt,
                who.tenant,
                input.player_id,
                input.amount,
                input.reason,
                input.idempotency_key,
            )
        except DomainUserError as exc:
            return AdjustPointsPayload(errors=[UserError.from_domain(exc.at("input"))])
        return AdjustPointsPayload(
            transaction=PointTransaction.from_model(result.transaction),
            wallet=Wallet.from_view(result.wallet),
        )

    @strawberry.mutation
    async def create_data_source(self, info: Info, input: DataSourceInput) -> DataSourcePayload:
        who = viewer(info, Access.ADMIN)
        try:
            row = await sources.create_source(
                who.tenant,
                source_type=input.source_type,
                name=input.name,
                event_mapping=input.event_mapping,
                sync_frequency=input.sync_frequency or "realtime",
                connection_config=input.connection_config,
                active=True if input.active is None else input.active,
            )
        except DomainUserError as exc:
            return DataSourcePayload(errors=[UserError.from_domain(exc.at("input"))])
        return DataSourcePayload(data_source=DataSource.from_model(row))
