"""Data sources (their connection secrets are write-only)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from models import DataSource as DataSourceModel
from schema.common import UserError


@strawberry.type
class DataSource:
    id: strawberry.ID
    source_type: str
    name: str
    event_mapping: JSON
    sync_frequency: str
    active: bool

    @classmethod
    def from_model(cls, row: DataSourceModel) -> DataSource:
        return cls(
            id=strawberry.ID(str(row.id)),
            source_type=row.source_type,
            name=row.name,
            event_mapping=row.event_mapping,
            sync_frequency=row.sync_frequency,
            active=row.active,
        )


@strawberry.input
class DataSourceInput:
    source_type: str
    name: str
    event_mapping: JSON
    sync_frequency: str | None = "realtime"
    connection_config: JSON | None = None
    active: bool | None = True


@strawberry.type
class DataSourcePayload:
    data_source: DataSource | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
