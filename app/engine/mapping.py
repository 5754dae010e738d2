"""Turns a raw integrator record into a normalised event using a DataSource's event mapping."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, DecimalException
from typing import Any

FIELDS = (
    "player_id",
    "event_type",
    "category",
    "value",
    "timestamp",
    "metadata",
    "idempotency_key",
)
METADATA_FIELDS = "metadata_fields"
SOURCES = ("path", "const", "template")
OPTIONS = ("default", "lookup", "lookup_default", "multiply", "divide", "unit", "to", "round")

# Raw keys read, in order, for a field the mapping does not name.
FALLBACKS: dict[str, tuple[str, ...]] = {
    "player_id": ("customer_id", "player_id", "user_id"),
    "event_type": ("event_type", "action"),
}

# Each unit's size in its family's smallest unit; conversion only within a family.
UNITS: dict[str, tuple[str, int]] = {
    "bytes": ("data", 1),
    "kb": ("data", 1024),
    "mb": ("data", 1024**2),
    "gb": ("data", 1024**3),
    "seconds": ("time", 1),
    "minutes": ("time", 60),
    "hours": ("time", 3600),
    "cents": ("money", 1),
    "units": ("money", 100),
}

_MISSING: Any = object()
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class MappingError(ValueError):
    """A mapping or a raw record that cannot produce an event; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        # Both in args so the exception pickles and reconstructs.
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    player_id: str
    event_type: str
    category: str | None
    value: Decimal
    timestamp: str | None
    metadata: dict[str, Any]
    idempotency_key: str | None


# --- validation -------------------------------------------------------------------------


def validate_mapping(mapping: Any) -> dict[str, Any]:
    """Checks a mapping's shape when a DataSource is created; raises MappingError naming
    the bad key. Returns the mapping."""
    if not isinstance(mapping, dict):
        raise MappingError(
            "mapping", f"an event mapping must be a JSON object, not {_kind(mapping)}"
        )
    for key, spec in mapping.items():
        if key == METADATA_FIELDS:
            _validate_metadata_fields(spec)
        elif key in FIELDS:
            _validate_spec(key, spec)
        else:
            known = ", ".join((*FIELDS, METADATA_FIELDS))
            raise MappingError(str(key), f"unknown mapping key {key!r}; expected one of {known}")
    return mapping


def _validate_metadata_fields(fields: Any) -> None:
    if not isinstance(fields, dict):
        raise MappingError(METADATA_FIELDS, f"must be a JSON object, not {_kind(fields)}")
    for name, spec in fields.items():
        if not isinstance(name, str) or not name:
            raise MappingError(METADATA_FIELDS, f"{name!r} is not a usable metadata name")
        _validate_spec(f"{METADATA_FIELDS}.{name}", spec)


def _validate_spec(field: str, spec: Any) -> None:
    if isinstance(spec, str):
        _require(field, bool(spec), "a path must not be empty")
        return
    _require(
        field, isinstance(spec, dict), f"a spec must be a path or an object, not {_kind(spec)}"
    )
    sources = [s for s in SOURCES if s in spec]
    _require(field, len(sources) == 1, "a spec object needs exactly one of path, const, template")
    unknown = sorted(set(spec) - set(SOURCES) - set(OPTIONS), key=str)
    _require(field, not unknown, f"unknown spec option(s) {', '.join(map(repr, unknown))}")
    if "path" in spec:
        _require(
            field, isinstance(spec["path"], str) and bool(spec["path"]), "path must be a string"
        )
    if "template" in spec:
        _template_paths(field, spec["template"])
    _validate_lookup(field, spec)
    _validate_arithmetic(field, spec)


def _validate_lookup(field: str, spec: dict[str, Any]) -> None:
    if "lookup" in spec:
        _require(field, isinstance(spec["lookup"], dict), "lookup must be a JSON object")
    # A lookup_default without a lookup would be silently ignored.
    _require(field, "lookup" in spec or "lookup_default" not in spec, "lookup_default needs lookup")


def _validate_arithmetic(field: str, spec: dict[str, Any]) -> None:
    _require(
        field, not ("multiply" in spec and "divide" in spec), "use multiply or divide, not both"
    )
    for op in ("multiply", "divide"):
        if op in spec:
            number = _number_or_none(spec[op])
            _require(field, number is not None, f"{op} must be a finite number")
            _require(field, op != "divide" or number != 0, "divide must not be zero")
    if "unit" in spec or "to" in spec:
        _unit_sizes(field, spec.get("unit"), spec.get("to"))
    if "round" in spec:
        places = spec["round"]
        ok = isinstance(places, int) and not isinstance(places, bool) and places >= 0
        _require(field, ok, "round must be a non-negative integer")


def _unit_sizes(field: str, unit: Any, to: Any) -> tuple[int, int]:
    """The sizes of both units in their family's smallest unit (names are case-insensitive)."""
    source = UNITS.get(unit.lower()) if isinstance(unit, str) else None
    target = UNITS.get(to.lower()) if isinstance(to, str) else None
    if source is None or target is None or source[0] != target[0]:
        raise MappingError(field, f"cannot convert unit {unit!r} to {to!r}")
    return source[1], target[1]


def _template_paths(field: str, template: Any) -> list[str]:
    _require(field, isinstance(template, str), "template must be a string")
    paths = [m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None]
    leftover = _TOKEN.sub("", template)
    ok = "{" not in leftover and "}" not in leftover and all(p.strip() for p in paths)
    _require(field, ok, f"template {template!r} has an unmatched brace or an empty {{}}")
    return paths


def _require(field: str, condition: bool, message: str) -> None:
    if not condition:
        raise MappingError(field, message)


# --- normalisation ----------------------------------------------------------------------


def normalize(record: Any, mapping: dict[str, Any]) -> NormalizedEvent:
    """Applies the mapping; raises MappingError(field, message) for a missing required field
    or a bad value."""
    if not isinstance(record, dict):
        raise MappingError("event", "a raw record must be a JSON object")
    # Stored mappings may predate a rule; re-checking turns a bad spec into a MappingError.
    validate_mapping(mapping)
    return NormalizedEvent(
        player_id=_required_text("player_id", record, mapping),
        event_type=_required_text("event_type", record, mapping),
        category=_text("category", _field(record, mapping, "category")),
        value=_value(record, mapping),
        timestamp=_text("timestamp", _field(record, mapping, "timestamp")),
        metadata=_metadata(record, mapping),
        idempotency_key=_text("idempotency_key", _field(record, mapping, "idempotency_key")),
    )


def _field(record: dict[str, Any], mapping: dict[str, Any], field: str) -> Any:
    """The field's value, or _MISSING; an unnamed field reads its fallback raw keys."""
    if field in mapping:
        return _apply(field, mapping[field], record)
    for key in FALLBACKS.get(field, (field,)):
        value = _resolve(record, key)
        # In a fallback chain a blank customer_id must not hide a usable player_id.
        blank = field in FALLBACKS and isinstance(value, str) and not value.strip()
        if not _absent(value) and not blank:
            return value
    return _MISSING


def _required_text(field: str, record: dict[str, Any], mapping: dict[str, Any]) -> str:
    text = _text(field, _field(record, mapping, field))
    if text is None:
        raise MappingError(
            field, f"the mapping found no {field} (looked at {_looked_at(field, mapping)})"
        )
    return text


def _looked_at(field: str, mapping: dict[str, Any]) -> str:
    spec = mapping.get(field, _MISSING)
    if spec is _MISSING:
        return "raw " + ", ".join(repr(k) for k in FALLBACKS.get(field, (field,)))
    if isinstance(spec, str):
        return f"raw {spec!r}"
    if "path" in spec:
        return f"raw {spec['path']!r}"
    return "a blank constant" if "const" in spec else f"template {spec['template']!r}"


def _value(record: dict[str, Any], mapping: dict[str, Any]) -> Decimal:
    value = _field(record, mapping, "value")
    if _absent(value):
        # A mapped value that is absent is a broken record, not a count of one.
        if "value" in mapping:
            raise MappingError(
                "value", f"the mapping found no value (looked at {_looked_at('value', mapping)})"
            )
        return Decimal("1")
    return _decimal("value", value)


def _metadata(record: dict[str, Any], mapping: dict[str, Any]) -> dict[str, Any]:
    base = _field(record, mapping, "metadata")
    if _absent(base):
        base = {}
    if not isinstance(base, dict):
        raise MappingError("metadata", f"metadata must be a JSON object, not {_kind(base)}")
    # A deep copy so the event never aliases (and so never mutates) the raw record.
    metadata = copy.deepcopy(base)
    for name, spec in mapping.get(METADATA_FIELDS, {}).items():
        value = _apply(f"metadata.{name}", spec, record)
        if not _absent(value):
            metadata[name] = _jsonable(value)
    return metadata


# --- specs ------------------------------------------------------------------------------


def _apply(field: str, spec: str | dict[str, Any], record: dict[str, Any]) -> Any:
    """Source value, then default, lookup, arithmetic; _MISSING when nothing is found."""
    if isinstance(spec, str):
        return _resolve(record, spec)
    raw = _source(field, spec, record)
    if _absent(raw):
        # The default is already a normalised value: it skips lookup and arithmetic.
        return copy.deepcopy(spec["default"]) if "default" in spec else _MISSING
    if "lookup" in spec:
        raw = _lookup(field, spec, raw)
        if _absent(raw):
            return _MISSING
    if any(op in spec for op in ("multiply", "divide", "unit", "round")):
        raw = _arithmetic(field, spec, raw)
    return raw


def _source(field: str, spec: dict[str, Any], record: dict[str, Any]) -> Any:
    if "const" in spec:
        return copy.deepcopy(spec["const"])
    if "path" in spec:
        return _resolve(record, spec["path"])
    text, missing = _render(field, spec["template"], record)
    if missing is not None and "default" not in spec:
        raise MappingError(
            field, f"template {spec['template']!r} needs raw {missing!r}, which is missing"
        )
    return _MISSING if missing is not None else text


def _render(field: str, template: str, record: dict[str, Any]) -> tuple[str, str | None]:
    """The filled-in template and the first missing path (None when all were found)."""
    missing: list[str] = []

    def piece(match: re.Match[str]) -> str:
        path = match.group(1)
        if path is None:  # an escaped {{ or }}
            return match.group(0)[0]
        value = _resolve(record, path)
        if _absent(value):
            missing.append(path)
            return ""
        return _scalar_text(field, value, f"raw {path!r}")

    text = _TOKEN.sub(piece, template)
    return text, (missing[0] if missing else None)


def _lookup(field: str, spec: dict[str, Any], raw: Any) -> Any:
    key = _scalar_text(field, raw, "a lookup key")
    table = spec["lookup"]
    if key in table:
        return copy.deepcopy(table[key])
    if "lookup_default" in spec:
        return copy.deepcopy(spec["lookup_default"])
    raise MappingError(field, f"no lookup entry for {key!r}")


def _arithmetic(field: str, spec: dict[str, Any], raw: Any) -> Decimal:
    number = _decimal(field, raw)
    try:
        if "multiply" in spec:
            number *= _decimal(field, spec["multiply"])
        if "divide" in spec:
            number /= _decimal(field, spec["divide"])
        if "unit" in spec:
            # Multiply before dividing so 120 seconds is exactly 2 minutes, not 1.99…
            source, target = _unit_sizes(field, spec["unit"], spec["to"])
            number = number * source / target
        if "round" in spec:
            number = number.quantize(Decimal(1).scaleb(-spec["round"]), rounding=ROUND_HALF_UP)
    except DecimalException as exc:
        # Overflow, or too many digits for `round`: a bad value, not a crash.
        raise MappingError(field, f"{field} is out of range for this conversion") from exc
    return number


def _resolve(record: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING; a key equal to the whole path wins."""
    if path in record:
        return record[path]
    node: Any = record
    for segment in path.split("."):
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isascii() and segment.isdigit():
            index = int(segment)
            if index >= len(node):
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


# --- values -----------------------------------------------------------------------------


def _absent(value: Any) -> bool:
    return value is _MISSING or value is None


def _number_or_none(value: Any) -> Decimal | None:
    """A finite Decimal from an int, float, Decimal or numeric string; None otherwise."""
    if isinstance(value, bool):  # bool is an int subclass, but True is not 1 unit of anything
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))  # str() keeps the float's shortest decimal spelling
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        return None
    return number if number.is_finite() else None


def _decimal(field: str, value: Any) -> Decimal:
    number = _number_or_none(value)
    if number is None:
        raise MappingError(field, f"{field} must be a finite number, not {_describe(value)}")
    return number


def _scalar_text(field: str, value: Any, where: str) -> str:
    """A scalar as text, with JSON spelling for booleans; objects and lists are refused."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    number = _number_or_none(value)
    if number is None:
        raise MappingError(field, f"{where} must be a string or a number, not {_describe(value)}")
    return str(value) if isinstance(value, int | float) else format(number, "f")


def _text(field: str, value: Any) -> str | None:
    """A normalised string field; blank means absent, booleans are refused."""
    if _absent(value):
        return None
    if isinstance(value, bool):
        raise MappingError(field, f"{field} must be a string or a number, not a boolean")
    text = _scalar_text(field, value, field)
    return text if text.strip() else None


def _jsonable(value: Any) -> Any:
    # Arithmetic yields Decimal, which JSON cannot hold.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "a number" if isinstance(value, int | float | Decimal) else type(value).__name__


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return str(value) if isinstance(value, float | Decimal) else _kind(value)
