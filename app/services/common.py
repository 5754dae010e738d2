"""Validation helpers shared by services."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import ErrorCode, UserError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EXTERNAL_ID = re.compile(r"^[^\s][^\x00-\x1f]{0,127}$")


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_timezone(name: str, field: str = "timezone") -> str:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            ErrorCode.INVALID,
            f"unknown timezone {name!r} (use an IANA name like Europe/Helsinki)",
            field,
        ) from None
    return name


def check_slug(slug: str, field: str = "slug") -> str:
    if not _SLUG.match(slug):
        raise UserError(
            ErrorCode.INVALID,
            "a slug is 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            field,
        )
    return slug


def check_external_id(value: str, field: str = "id") -> str:
    if not _EXTERNAL_ID.match(value):
        raise UserError(
            ErrorCode.INVALID, "an id is 1-128 characters without control characters", field
        )
    return value
