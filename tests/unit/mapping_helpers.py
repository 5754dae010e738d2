"""Shared helpers for the mapping tests."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine.mapping import MappingError, NormalizedEvent, normalize, validate_mapping

BASE = {"customer_id": "p1", "event_type": "CALL"}
LOOKUP = {"outgoing": "CALL", "data": "DATA_USAGE"}


def norm(mapping: dict[str, Any], **raw: Any) -> NormalizedEvent:
    return normalize({**BASE, **raw}, mapping)


def fails(
    mapping: dict[str, Any], record: Any, field: str, match: str | None = None
) -> MappingError:
    with pytest.raises(MappingError, match=match) as caught:
        normalize(record, mapping)
    assert caught.value.field == field
    return caught.value


def rejected(mapping: Any, field: str, match: str | None = None) -> None:
    with pytest.raises(MappingError, match=match) as caught:
        validate_mapping(mapping)
    assert caught.value.field == field
