"""A stream entry's fields as an EventInput, and a refused entry's dead letter.

An entry has either `event`, a JSON object with recordEvent's input names, or `source`
(a data source id, or the type of the tenant's active source of that type) and
`record`, a raw JSON record that the source's mapping turns into an event, with an
optional `idempotencyKey` (as normalizeEvent). An event without an idempotency key of
its own (given, or the record's id through its mapping) gets `stream:{entry id}`.
Every field is UTF-8 text; the JSON ones may start with a byte order mark.
"""

from __future__ import annotations

from typing import Any

from app.errors import ErrorCode, UserError
from app.services import event_json
from app.services.event_input import EventInput
from app.services.sources import find_source, to_event_input
from models import DataSource, Tenant

# Entries, as redis-py returns them: id and fields ({} for one deleted meanwhile).
Fields = dict[bytes, bytes]
Entry = tuple[bytes, Fields]


class SourceLookup:
    """The data sources a batch names, each looked up once."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._found: dict[str, DataSource | UserError] = {}

    async def get(self, name: str) -> DataSource:
        if name not in self._found:
            # ASCII digits: an id (find_source checks its range); anything else, '²'
            # included, a type.
            by_id = name.isascii() and name.isdecimal()
            try:
                self._found[name] = await find_source(
                    self.tenant, name if by_id else None, None if by_id else name
                )
            except UserError as exc:
                self._found[name] = UserError(exc.code, exc.message, "source")
        found = self._found[name]
        if isinstance(found, UserError):
            raise found
        return found


async def entry_input(
    entry_id: str, fields: Fields, sources: SourceLookup
) -> tuple[str, EventInput]:
    """The entry as an EventInput, and the field its errors are reported under."""
    event, source, record = (fields.get(n) for n in (b"event", b"source", b"record"))
    key = fields.get(b"idempotencyKey")
    if event is not None:
        if source is not None or record is not None or key is not None:
            raise UserError(
                ErrorCode.INVALID,
                "an entry has an event field, or source and record fields, not both "
                "(an event's idempotencyKey goes inside it)",
                "event",
            )
        data = event_json.parse_json(_json_text(event, "event"), "event")
        try:
            item = event_json.event_input(data)
        except UserError as exc:
            raise exc.at("event") from None
        at = "event"
    elif source is not None and record is not None:
        raw = event_json.parse_json(_json_text(record, "record"), "record")
        found = await sources.get(_text(source, "source"))
        try:
            item = to_event_input(found, raw, _text(key, "idempotencyKey") if key else None)
        except UserError as exc:  # its fields name normalizeEvent's `event`: ours is `record`
            raise UserError(exc.code, exc.message, ["record", *(exc.field or [])[1:]]) from None
        at = "record"
    else:
        raise UserError(
            ErrorCode.INVALID, "an entry needs an event field, or source and record", "event"
        )
    if item.idempotency_key is None:  # redelivered, it is a duplicate: applied once
        item.idempotency_key = f"stream:{entry_id}"
    return at, item


def _utf8(raw: bytes, field: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise UserError(
            ErrorCode.INVALID,
            f"{field} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start}",
            field,
        ) from None


def _json_text(raw: bytes, field: str) -> str:
    """A JSON field's text: UTF-8, as JSON exchanged between systems is (RFC 8259), a
    byte order mark ignored. Not json.loads(bytes): it guesses UTF-16 or -32 from the
    first bytes and then reports "Expecting value" for what is in fact bad UTF-8."""
    return _utf8(raw, field).removeprefix("\ufeff")


def _text(raw: bytes, field: str) -> str:
    text = _utf8(raw, field)
    if "\x00" in text:
        raise UserError(ErrorCode.INVALID, f"{field} contains a NUL character", field)
    return text


def dead_letter(entry_id: bytes, fields: Fields, error: UserError) -> dict[Any, Any]:
    """The reason, then the entry's own fields (one named like a reason's is kept as
    `original:NAME`)."""
    reason: dict[Any, Any] = {
        b"entry": entry_id,
        b"code": str(error.code),
        b"message": error.message,
        b"field": ".".join(error.field or []),
    }
    for name, value in fields.items():
        reason[b"original:" + name if name in reason else name] = value
    return reason


__all__ = ["Entry", "Fields", "SourceLookup", "dead_letter", "entry_input"]
