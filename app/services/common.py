"""Validation helpers shared by services."""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import ErrorCode, UserError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EXTERNAL_ID = re.compile(r"^[^\s][^\x00-\x1f]{0,127}$")


def holds_nul(value: Any) -> bool:
    """Whether JSON-like data holds a NUL character (U+0000) in any text or key: text
    PostgreSQL cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


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


EXTERNAL_ID_MAX = 128


def fits_external_id(value: str) -> bool:
    """Whether a player's or team's id could be stored (its column takes 128
    characters): a longer one names nothing and must not reach a lookup, where Tortoise
    validates a filter's value against the column and raises."""
    return len(value) <= EXTERNAL_ID_MAX


def check_external_id(value: str, field: str = "id") -> str:
    if not _EXTERNAL_ID.match(value):
        raise UserError(
            ErrorCode.INVALID, "an id is 1-128 characters without control characters", field
        )
    return value


def time_ordered_ids(now: datetime, count: int) -> list[uuid.UUID]:
    """`count` UUIDs version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random
    bits. New rows' keys then land together at the right edge of a btree index instead
    of on a random page of it (uuid4), which keeps the index's hot pages few. One read
    of the OS's random source for them all: a batch's events took one read each."""
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    head = ms << 80 | 0x7 << 76 | 0x2 << 62  # the millisecond, the version, the variant
    raw = os.urandom(10 * count)  # 80 bits each; 74 used
    ids = []
    for start in range(0, 10 * count, 10):
        rand = int.from_bytes(raw[start : start + 10], "big")
        ids.append(uuid.UUID(int=head | ((rand >> 62) & 0xFFF) << 64 | (rand & ((1 << 62) - 1))))
    return ids


# Serial ids: IntField columns are 32-bit on PostgreSQL, BigIntField ones 64-bit.
MAX_INT_ID = 2**31 - 1
MAX_BIGINT_ID = 2**63 - 1


def id_number(value: str | int, limit: int = MAX_BIGINT_ID) -> int | None:
    """The row id that a text (a GraphQL ID, a cursor, a stream field) names, or None
    when it names none: ASCII digits only, at most `limit` (the column's range; a larger
    number must not reach PostgreSQL, which refuses the parameter). `str.isdigit()` is
    not that test: it takes '²', which int() refuses, and int() reads other scripts'
    digits (ARABIC-INDIC DIGIT ONE is 1) and refuses more than 4,300 digits."""
    text = str(value)
    if not (text.isascii() and text.isdecimal()) or len(text) > len(str(limit)):
        return None
    number = int(text)
    return number if number <= limit else None
