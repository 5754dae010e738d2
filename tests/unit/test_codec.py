"""app.codec: orjson on the hot paths, read back as the standard library's output was."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from orjson import Fragment

from app.codec import dumps, dumps_bytes, sql_json


class Kind(StrEnum):
    EARN = "EARN"


@dataclass
class Point:
    x: int


def _stdlib(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def test_the_values_the_hot_paths_send_decode_as_the_standard_library_wrote_them():
    value = {
        "amount": Decimal("12.50"),
        "day": date(2026, 11, 21),
        "at": datetime(2026, 11, 21, 5, 30, 1, 250000, tzinfo=UTC),
        "kind": Kind.EARN,
        "point": Point(3),
        3: "integer key",
        "text": "Zürich ✓",
        "nested": [None, True, 1.5, {"a": [1, 2]}],
    }
    assert json.loads(dumps(value)) == _stdlib(value)
    assert json.loads(dumps_bytes(value)) == _stdlib(value)


def test_an_integer_beyond_64_bits_falls_back_to_the_standard_library_and_stays_exact():
    value = {"big": 2**70, "amount": Decimal("1.00")}
    assert json.loads(dumps(value)) == {"big": 2**70, "amount": "1.00"}


def test_the_output_is_compact():
    assert dumps({"a": [1, 2], "b": "c"}) == '{"a":[1,2],"b":"c"}'


def test_sql_parameters_carry_datetimes_in_rfc_3339_and_decimals_as_text():
    aware = datetime(2026, 12, 5, 11, 26, 19, 583334, tzinfo=UTC)
    row = [aware, date(2026, 12, 5), Decimal("12.50"), Fragment(b'{"a":1}'), None, 7]
    assert sql_json([row]) == (
        '[["2026-12-05T11:26:19.583334+00:00","2026-12-05","12.50",{"a":1},null,7]]'
    )
    assert sql_json([2**70, aware]) == f'[{2**70},"{aware}"]'  # the standard library's
