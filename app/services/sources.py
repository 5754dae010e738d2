"""Data sources: configured mappings that turn raw integrator records into events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.engine.mapping import MappingError, normalize, validate_mapping
from app.errors import ErrorCode, UserError
from app.runtime import Runtime
from app.services.common import MAX_INT_ID, id_number
from app.services.ingest import EventInput, Outcome, record_event
from models import DataSource, Tenant

SOURCE_TYPES = ("cdr", "billing", "crm", "app", "network", "custom")
SYNC_FREQUENCIES = ("realtime", "hourly", "daily", "weekly")
EPOCH_MILLIS_FROM = Decimal(10) ** 11


async def create_source(
    tenant: Tenant,
    *,
    source_type: str,
    name: str,
    event_mapping: Any,
    sync_frequency: str = "realtime",
    connection_config: Any = None,
    active: bool = True,
) -> DataSource:
    if source_type not in SOURCE_TYPES:
        raise UserError(
            ErrorCode.INVALID, f"sourceType is one of {', '.join(SOURCE_TYPES)}", "sourceType"
        )
    if not name.strip() or len(name) > 200:
        raise UserError(ErrorCode.INVALID, "name is 1-200 characters", "name")
    if sync_frequency not in SYNC_FREQUENCIES:
        raise UserError(
            ErrorCode.INVALID,
            f"syncFrequency is one of {', '.join(SYNC_FREQUENCIES)}",
            "syncFrequency",
        )
    if connection_config is not None and not isinstance(connection_config, dict):
        raise UserError(
            ErrorCode.INVALID, "connectionConfig must be a JSON object", "connectionConfig"
        )
    try:
        mapping = validate_mapping(event_mapping)
    except MappingError as exc:
        raise UserError(
            ErrorCode.INVALID, f"eventMapping: {exc.message}", ["eventMapping", exc.field]
        ) from None
    return await DataSource.create(
        tenant=tenant,
        source_type=source_type,
        name=name.strip(),
        event_mapping=mapping,
        sync_frequency=sync_frequency,
        connection_config=connection_config or {},
        active=active,
    )


async def create_preset_sources(tenant: Tenant) -> list[DataSource]:
    """The sources a preset names (e.g. telco's CDR, billing, CRM, app, network)."""
    return [
        await create_source(
            tenant,
            source_type=spec["source_type"],
            name=spec["name"],
            event_mapping=spec["event_mapping"],
            sync_frequency=spec.get("sync_frequency", "realtime"),
        )
        for spec in tenant.config.get("data_sources", [])
    ]


async def list_sources(tenant: Tenant) -> list[DataSource]:
    return await DataSource.filter(tenant_id=tenant.id).order_by("id")


async def find_source(tenant: Tenant, source_id: str | None, source_type: str | None) -> DataSource:
    if source_id is not None:
        # Ids are 32-bit on PostgreSQL: a larger one names no source (and must not reach
        # the database, which would refuse the parameter).
        number = id_number(source_id, MAX_INT_ID)
        if number is None:
            raise UserError(ErrorCode.NOT_FOUND, f"no data source {source_id!r}", "sourceId")
        source = await DataSource.get_or_none(tenant_id=tenant.id, id=number)
        if source is None:
            raise UserError(ErrorCode.NOT_FOUND, f"no data source {source_id!r}", "sourceId")
    elif source_type is not None:
        # Only the known types can have a source (and a longer text must not reach the
        # database column, whose validation would refuse it).
        source = (
            await DataSource.filter(tenant_id=tenant.id, source_type=source_type, active=True)
            .order_by("id")
            .first()
            if source_type in SOURCE_TYPES
            else None
        )
        if source is None:
            raise UserError(
                ErrorCode.NOT_FOUND, f"no active {source_type!r} data source", "sourceType"
            )
    else:
        raise UserError(ErrorCode.INVALID, "give sourceId or sourceType", "sourceId")
    if not source.active:
        raise UserError(ErrorCode.INVALID, f"data source {source.name!r} is inactive", "sourceId")
    return source


def _timestamp(raw: str | None) -> datetime | None:
    """ISO-8601, or a Unix epoch in seconds or, from EPOCH_MILLIS_FROM on (which in seconds
    would be the year 5138), in milliseconds."""
    if raw is None:
        return None
    try:
        seconds = Decimal(raw)
        if abs(seconds) >= EPOCH_MILLIS_FROM:
            seconds /= 1000
        return datetime.fromtimestamp(float(seconds), UTC)
    except (InvalidOperation, ValueError, OverflowError, OSError):
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            ErrorCode.INVALID,
            f"timestamp {raw!r} is neither ISO-8601 nor epoch",
            ["event", "timestamp"],
        ) from None


def to_event_input(source: DataSource, record: Any, idempotency_key: str | None) -> EventInput:
    try:
        event = normalize(record, source.event_mapping)
    except MappingError as exc:
        raise UserError(ErrorCode.INVALID, exc.message, ["event", exc.field]) from None
    key = idempotency_key
    if key is None and event.idempotency_key is not None:
        # The record's own id is unique within its source, not across sources.
        key = f"source-{source.id}:{event.idempotency_key}"
    return EventInput(
        player_id=event.player_id,
        event_type=event.event_type,
        category=event.category,
        value=event.value,
        occurred_at=_timestamp(event.timestamp),
        source=source.source_type,
        metadata=event.metadata,
        idempotency_key=key,
    )


async def normalize_event(
    rt: Runtime,
    tenant: Tenant,
    *,
    source_id: str | None,
    source_type: str | None,
    record: Any,
    idempotency_key: str | None,
) -> Outcome:
    source = await find_source(tenant, source_id, source_type)
    return await record_event(rt, tenant, to_event_input(source, record, idempotency_key))
