"""Events in: record, batch, normalise, preview; live points and level-ups out."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from decimal import Decimal

import strawberry

from app.auth import Access
from app.context import Info
from app.engine import levels
from app.errors import UserError as DomainUserError
from app.live import live
from app.services import ingest, sources
from app.services.players import player_channel
from app.services.rules import rules_for
from resolvers.common import viewer
from schema.common import UserError
from schema.ledger import (
    EventOutcome,
    LevelChanged,
    LevelUp,
    NormalizeEventInput,
    PlayerLevel,
    PointsChanged,
    PointTransaction,
    RecordEventInput,
    RecordEventPayload,
    RecordEventsPayload,
    Wallet,
    points,
)


def _event_input(data: RecordEventInput) -> ingest.EventInput:
    return ingest.EventInput(
        player_id=data.player_id,
        event_type=data.event_type,
        category=data.category,
        value=data.value,
        occurred_at=data.occurred_at,
        source=data.source,
        metadata=data.metadata,
        idempotency_key=data.idempotency_key,
    )


async def _record(info: Info, data: RecordEventInput, dry_run: bool) -> RecordEventPayload:
    who = viewer(info, Access.INTEGRATOR)
    try:
        outcome = await ingest.record_event(
            info.context.rt, who.tenant, _event_input(data), dry_run=dry_run
        )
    except DomainUserError as exc:
        return RecordEventPayload(errors=[UserError.from_domain(exc.at("input"))])
    return RecordEventPayload(outcome=EventOutcome.from_outcome(outcome))


@strawberry.type
class EventMutation:
    @strawberry.mutation
    async def record_event(self, info: Info, input: RecordEventInput) -> RecordEventPayload:
        return await _record(info, input, dry_run=False)

    @strawberry.mutation(description="Dry run: the same outcome, nothing written or published.")
    async def preview_event(self, info: Info, input: RecordEventInput) -> RecordEventPayload:
        return await _record(info, input, dry_run=True)

    @strawberry.mutation(
        description="Up to 1,000 events. A bad item is reported in errors (field[0] is its "
        "index) and does not sink the others; outcomes follow the order of the good items."
    )
    async def record_events(self, info: Info, input: list[RecordEventInput]) -> RecordEventsPayload:
        who = viewer(info, Access.INTEGRATOR)
        try:
            results = await ingest.record_events(
                info.context.rt, who.tenant, [_event_input(item) for item in input]
            )
        except DomainUserError as exc:
            return RecordEventsPayload(errors=[UserError.from_domain(exc)])
        payload = RecordEventsPayload()
        for index, result in enumerate(results):
            if isinstance(result, DomainUserError):
                payload.errors.append(UserError.from_domain(result.at(str(index))))
            else:
                payload.outcomes.append(EventOutcome.from_outcome(result))
        return payload

    @strawberry.mutation
    async def normalize_event(self, info: Info, input: NormalizeEventInput) -> RecordEventPayload:
        who = viewer(info, Access.INTEGRATOR)
        try:
            outcome = await sources.normalize_event(
                info.context.rt,
                who.tenant,
                source_id=input.source_id,
                source_type=input.source_type,
                record=input.event,
                idempotency_key=input.idempotency_key,
            )
        except DomainUserError as exc:
            return RecordEventPayload(errors=[UserError.from_domain(exc.at("input"))])
        return RecordEventPayload(outcome=EventOutcome.from_outcome(outcome))


def _points_changed(message: dict) -> PointsChanged:
    return PointsChanged(
        player_id=strawberry.ID(message["playerId"]),
        amount=points(message["amount"]),
        wallet=Wallet.from_json(message["wallet"]),
        transaction=PointTransaction.from_json(message["transaction"]),
    )


@strawberry.type
class EventSubscription:
    @strawberry.subscription(description="Every change to the player's points, after commit.")
    async def points_changed(
        self, info: Info, player_id: strawberry.ID
    ) -> AsyncGenerator[PointsChanged, None]:
        who = viewer(info)
        who.require_player(player_id)
        channel = player_channel(who.tenant.id, player_id, "points")
        async for change in live(info, channel, _points_changed):
            yield change

    @strawberry.subscription(description="The player reached a higher level, after commit.")
    async def level_up(
        self, info: Info, player_id: strawberry.ID
    ) -> AsyncGenerator[LevelChanged, None]:
        who = viewer(info)
        who.require_player(player_id)
        channel = player_channel(who.tenant.id, player_id, "level")
        tenant = who.tenant  # in the channel's name: the same for the whole group

        def build(message: dict) -> LevelChanged:
            level = levels.info(message["to"], rules_for(tenant))
            return LevelChanged(
                player_id=strawberry.ID(message["playerId"]),
                level_up=LevelUp(
                    from_=message["from"],
                    to=message["to"],
                    level=PlayerLevel.from_info(level, Decimal(message["lifetime"])),
                    bonus_points=points(message["bonus"]),
                ),
            )

        async for change in live(info, channel, build):
            yield change
