"""The event mapping turns raw records into normalised events or names the field at fault."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine.mapping import FIELDS, MappingError, NormalizedEvent, normalize
from tests.unit.mapping_helpers import BASE, LOOKUP, fails, norm

# --- the seed 001 example and plain paths -------------------------------------------


def test_the_seed_001_example_works_as_written():
    mapping = {"event_type": "call_type", "value": "duration", "timestamp": "call_time"}
    record = {
        "customer_id": "uuid-here",
        "call_type": "outgoing",
        "duration": 120,
        "call_time": "2026-01-22T10:00:00Z",
    }
    assert normalize(record, mapping) == NormalizedEvent(
        player_id="uuid-here",
        event_type="outgoing",
        category=None,
        value=Decimal("120"),
        timestamp="2026-01-22T10:00:00Z",
        metadata={},
        idempotency_key=None,
    )


def test_a_dotted_path_reaches_nested_objects():
    event = norm({"value": "call.duration"}, call={"duration": 95})
    assert event.value == Decimal("95")


def test_integer_segments_index_lists():
    event = norm({"value": "items.1.amount"}, items=[{"amount": 3}, {"amount": 7}])
    assert event.value == Decimal("7")


def test_a_key_with_a_dot_wins_over_the_nested_path():
    event = norm({"value": "call.duration"}, **{"call.duration": 5, "call": {"duration": 9}})
    assert event.value == Decimal("5")


@pytest.mark.parametrize(
    "path",
    ["items.5.amount", "items.x.amount", "items.-1.amount", "call.duration.seconds", "nope.deep"],
)
def test_a_path_that_leads_nowhere_is_missing(path):
    record = {**BASE, "items": [{"amount": 3}], "call": {"duration": 9}}
    assert normalize(record, {"category": path}).category is None


def test_a_nested_object_key_made_of_digits_is_a_key_not_an_index():
    assert norm({"category": "codes.0"}, codes={"0": "zero"}).category == "zero"


def test_mapped_fields_do_not_fall_back_to_the_raw_field_of_the_same_name():
    fails({"event_type": "kind"}, {**BASE}, "event_type", r"looked at raw 'kind'")


# --- fallbacks for fields the mapping does not name ---------------------------------


def test_player_id_falls_back_customer_id_then_player_id_then_user_id():
    full = {"customer_id": "c", "player_id": "p", "user_id": "u", "event_type": "E"}
    assert normalize(full, {}).player_id == "c"
    assert normalize({**full, "customer_id": None}, {}).player_id == "p"
    assert normalize({"player_id": "p", "user_id": "u", "event_type": "E"}, {}).player_id == "p"
    assert normalize({"user_id": "u", "event_type": "E"}, {}).player_id == "u"


def test_an_empty_player_id_is_skipped_by_the_fallback():
    assert normalize({"customer_id": "", "user_id": "u", "event_type": "E"}, {}).player_id == "u"


def test_event_type_falls_back_to_action():
    assert normalize({"customer_id": "c", "action": "LOGIN"}, {}).event_type == "LOGIN"
    both = {"customer_id": "c", "event_type": "A", "action": "B"}
    assert normalize(both, {}).event_type == "A"


def test_unnamed_optional_fields_are_read_by_their_own_names():
    event = norm(
        {},
        category="voice",
        value="2.5",
        timestamp=1737540000,
        metadata={"cell": "A1"},
        idempotency_key="k-1",
    )
    assert event.category == "voice"
    assert event.value == Decimal("2.5")
    assert event.timestamp == "1737540000"
    assert event.metadata == {"cell": "A1"}
    assert event.idempotency_key == "k-1"


def test_the_value_defaults_to_one_when_neither_mapped_nor_present():
    assert norm({}).value == Decimal("1")
    assert norm({}, value=None).value == Decimal("1")


def test_absent_optional_fields_are_none_and_metadata_is_empty():
    event = norm({})
    assert (event.category, event.timestamp, event.idempotency_key) == (None, None, None)
    assert event.metadata == {}


# --- required fields ----------------------------------------------------------------


def test_a_missing_player_names_the_field_and_the_raw_keys_it_tried():
    error = fails({}, {"event_type": "E"}, "player_id")
    assert error.message == (
        "the mapping found no player_id (looked at raw 'customer_id', 'player_id', 'user_id')"
    )


def test_a_missing_event_type_names_the_field_and_the_raw_keys_it_tried():
    error = fails({}, {"customer_id": "c"}, "event_type")
    assert error.message == "the mapping found no event_type (looked at raw 'event_type', 'action')"


def test_a_mapped_required_field_names_its_path_when_missing():
    fails({"player_id": "msisdn"}, {"event_type": "E"}, "player_id", r"looked at raw 'msisdn'")
    fails({"player_id": {"path": "a.b"}}, {"event_type": "E"}, "player_id", r"raw 'a\.b'")
    fails({"player_id": {"const": None}}, {"event_type": "E"}, "player_id", "blank constant")


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_a_blank_player_id_counts_as_missing(blank):
    fails({}, {"customer_id": blank, "event_type": "E"}, "player_id", "found no player_id")


def test_numeric_player_ids_become_strings():
    assert normalize({"customer_id": 42, "event_type": "E"}, {}).player_id == "42"
    assert norm({"event_type": "code"}, code=7).event_type == "7"


@pytest.mark.parametrize("bad", [True, {"id": 1}, [1], float("nan")])
def test_a_player_id_must_be_a_string_or_a_finite_number(bad):
    fails({}, {"customer_id": bad, "event_type": "E"}, "player_id", "must be a string or a number")


def test_a_record_must_be_a_json_object():
    for record in (None, [BASE], "customer_id=p1", 3):
        fails({}, record, "event", "a raw record must be a JSON object")


# --- value --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3, "3"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (Decimal("1.25"), "1.25"),
        ("12", "12"),
        (" 4.50 ", "4.50"),
        ("1e3", "1000"),
        (10**30, "1000000000000000000000000000000"),
    ],
)
def test_numeric_values_become_decimals(raw, expected):
    value = norm({}, value=raw).value
    assert isinstance(value, Decimal) and value == Decimal(expected)


def test_a_float_converts_through_its_shortest_spelling():
    assert norm({}, value=1.1).value.as_tuple() == Decimal("1.1").as_tuple()


@pytest.mark.parametrize("bad", [True, False, "abc", "", "1_000", "0x10", [1], {"n": 1}])
def test_non_numeric_values_are_rejected(bad):
    fails({}, {**BASE, "value": bad}, "value", "must be a finite number")


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("Infinity"), "NaN", "inf"],
)
def test_nan_and_infinity_are_rejected(bad):
    fails({}, {**BASE, "value": bad}, "value", "must be a finite number")


def test_a_mapped_value_that_is_missing_is_an_error_not_a_count_of_one():
    fails({"value": "duration"}, {**BASE}, "value", r"found no value \(looked at raw 'duration'\)")


def test_a_default_fills_a_missing_or_null_path():
    mapping = {"value": {"path": "duration", "default": 0}}
    assert norm(mapping).value == Decimal("0")
    assert norm(mapping, duration=None).value == Decimal("0")
    assert norm(mapping, duration=30).value == Decimal("30")


def test_a_default_is_already_normalised_so_it_skips_lookup_and_arithmetic():
    mapping = {"event_type": {"path": "t", "lookup": {"a": "A"}, "default": "OTHER"}}
    assert norm(mapping).event_type == "OTHER"
    assert norm({"value": {"path": "b", "divide": 1000, "default": 7}}).value == Decimal("7")


# --- constants, lookups, templates --------------------------------------------------


def test_constants():
    mapping = {"event_type": {"const": "RECHARGE"}, "value": {"const": 1}}
    event = normalize({"customer_id": "c"}, mapping)
    assert (event.event_type, event.value) == ("RECHARGE", Decimal("1"))


def test_a_constant_metadata_object_is_copied_not_shared():
    mapping = {"metadata": {"const": {"source": "billing"}}}
    event = norm(mapping)
    event.metadata["source"] = "changed"
    assert mapping["metadata"]["const"] == {"source": "billing"}


def test_a_lookup_translates_raw_values():
    mapping = {"event_type": {"path": "call_type", "lookup": LOOKUP}}
    assert norm(mapping, call_type="outgoing").event_type == "CALL"
    assert norm(mapping, call_type="data").event_type == "DATA_USAGE"


def test_a_lookup_compares_raw_values_as_strings():
    mapping = {"event_type": {"path": "code", "lookup": {"1": "CALL", "true": "ROAM"}}}
    assert norm(mapping, code=1).event_type == "CALL"
    assert norm(mapping, code="1").event_type == "CALL"
    assert norm(mapping, code=True).event_type == "ROAM"


def test_a_lookup_miss_uses_lookup_default():
    mapping = {"event_type": {"path": "call_type", "lookup": LOOKUP, "lookup_default": "OTHER"}}
    assert norm(mapping, call_type="sms").event_type == "OTHER"


def test_a_lookup_miss_without_a_default_is_an_error():
    error = fails(
        {"event_type": {"path": "call_type", "lookup": LOOKUP}},
        {**BASE, "call_type": "xyz"},
        "event_type",
    )
    assert error.message == "no lookup entry for 'xyz'"


def test_a_lookup_can_feed_a_numeric_value():
    mapping = {"value": {"path": "tier", "lookup": {"gold": 3, "silver": "2"}}}
    assert norm(mapping, tier="gold").value == Decimal("3")
    assert norm(mapping, tier="silver").value == Decimal("2")


def test_a_lookup_of_an_object_is_an_error():
    mapping = {"event_type": {"path": "t", "lookup": LOOKUP}}
    fails(mapping, {**BASE, "t": {"x": 1}}, "event_type", "must be a string or a number")


def test_a_template_builds_an_idempotency_key():
    mapping = {"idempotency_key": {"template": "cdr-{call_id}"}}
    assert norm(mapping, call_id=981).idempotency_key == "cdr-981"


def test_a_template_reads_dotted_paths_and_keeps_escaped_braces():
    mapping = {"idempotency_key": {"template": "{{x}}-{call.id}-{items.0}"}}
    assert norm(mapping, call={"id": "A"}, items=["B"]).idempotency_key == "{x}-A-B"


def test_a_template_with_a_missing_path_is_an_error():
    error = fails({"idempotency_key": {"template": "cdr-{call_id}"}}, {**BASE}, "idempotency_key")
    assert "call_id" in error.message


def test_a_template_with_a_missing_path_uses_a_default_when_given():
    mapping = {"idempotency_key": {"template": "cdr-{call_id}", "default": None}}
    assert norm(mapping).idempotency_key is None


def test_a_template_cannot_insert_an_object():
    mapping = {"idempotency_key": {"template": "k-{call}"}}
    fails(mapping, {**BASE, "call": {"id": 1}}, "idempotency_key", "must be a string or a number")


# --- arithmetic and units -----------------------------------------------------------


def test_bytes_to_megabytes():
    mapping = {"value": {"path": "bytes", "unit": "bytes", "to": "MB"}}
    assert norm(mapping, bytes=5242880).value == Decimal("5")


@pytest.mark.parametrize(
    ("unit", "to", "raw", "expected"),
    [
        ("bytes", "KB", 2048, "2"),
        ("KB", "bytes", 3, "3072"),
        ("bytes", "GB", 1024**3 * 2, "2"),
        ("GB", "MB", "1.5", "1536"),
        ("mb", "kb", 1, "1024"),
        ("minutes", "seconds", 2, "120"),
        ("hours", "minutes", "0.5", "30"),
        ("seconds", "hours", 5400, "1.5"),
        ("cents", "units", 1999, "19.99"),
        ("units", "cents", "4.5", "450"),
        ("seconds", "seconds", 7, "7"),
    ],
)
def test_named_unit_conversions(unit, to, raw, expected):
    mapping = {"value": {"path": "v", "unit": unit, "to": to}}
    assert norm(mapping, v=raw).value == Decimal(expected)


def test_seconds_to_minutes_is_exact():
    mapping = {"value": {"path": "duration", "unit": "seconds", "to": "minutes"}}
    assert norm(mapping, duration=120).value.as_tuple() == Decimal("2").as_tuple()


def test_seconds_to_minutes_with_round_half_up():
    mapping = {"value": {"path": "duration", "unit": "seconds", "to": "minutes", "round": 2}}
    assert norm(mapping, duration=100).value == Decimal("1.67")
    assert str(norm(mapping, duration=90).value) == "1.50"
    half = {"value": {"path": "d", "unit": "seconds", "to": "minutes", "round": 0}}
    assert norm(half, d=90).value == Decimal("2")  # 1.5 rounds up, not to even


def test_round_alone_rounds_the_raw_number():
    assert norm({"value": {"path": "v", "round": 1}}, v="2.25").value == Decimal("2.3")


def test_multiply_and_divide():
    assert norm({"value": {"path": "v", "multiply": 1.5}}, v=4).value == Decimal("6")
    assert norm({"value": {"path": "v", "divide": 1000}}, v=2500).value == Decimal("2.5")
    assert norm({"value": {"path": "v", "multiply": "0.1"}}, v=3).value == Decimal("0.3")


def test_arithmetic_on_a_non_number_is_an_error():
    mapping = {"value": {"path": "v", "divide": 10}}
    fails(mapping, {**BASE, "v": "lots"}, "value", "must be a finite number")


def test_arithmetic_that_overflows_is_a_mapping_error():
    mapping = {"value": {"path": "v", "multiply": "1e999999"}}
    fails(mapping, {**BASE, "v": "1e999999"}, "value", "out of range")


def test_arithmetic_on_a_timestamp_gives_a_plain_number_string():
    mapping = {"timestamp": {"path": "ms", "divide": 1000}}
    assert norm(mapping, ms=1737540000000).timestamp == "1737540000"


# --- optional text fields -----------------------------------------------------------


def test_category_and_idempotency_key_become_strings():
    event = norm({"category": "cat", "idempotency_key": "id"}, cat=5, id=12345)
    assert (event.category, event.idempotency_key) == ("5", "12345")


def test_blank_optional_text_is_none():
    event = norm({}, category="", idempotency_key="  ", timestamp="")
    assert (event.category, event.idempotency_key, event.timestamp) == (None, None, None)


def test_timestamps_pass_through_as_given():
    assert norm({}, timestamp="2026-01-22T10:00:00+02:00").timestamp == "2026-01-22T10:00:00+02:00"
    assert norm({}, timestamp=1737540000.5).timestamp == "1737540000.5"


@pytest.mark.parametrize("field", ["category", "idempotency_key", "timestamp"])
@pytest.mark.parametrize("bad", [True, {"a": 1}, ["a"]])
def test_optional_text_fields_refuse_booleans_objects_and_lists(field, bad):
    fails({}, {**BASE, field: bad}, field, "must be a string or a number")


# --- metadata -----------------------------------------------------------------------


def test_metadata_fields_copy_extra_raw_fields():
    mapping = {
        "metadata_fields": {
            "cell": "network.cell_id",
            "roaming": {"path": "roam", "default": False},
            "source": {"const": "cdr"},
            "absent": "nope",
        }
    }
    event = norm(mapping, network={"cell_id": "A1"})
    assert event.metadata == {"cell": "A1", "roaming": False, "source": "cdr"}


def test_metadata_fields_merge_over_raw_metadata():
    mapping = {"metadata_fields": {"cell": "cell", "n": {"path": "n", "divide": 4}}}
    event = norm(mapping, metadata={"cell": "old", "keep": 1}, cell="new", n=10)
    assert event.metadata == {"cell": "new", "keep": 1, "n": 2.5}


def test_converted_metadata_numbers_are_json_numbers():
    mapping = {"metadata_fields": {"mb": {"path": "b", "unit": "bytes", "to": "MB"}}}
    metadata = norm(mapping, b=1048576 * 3).metadata
    assert metadata == {"mb": 3} and type(metadata["mb"]) is int


def test_a_mapped_metadata_spec_must_resolve_to_an_object():
    assert norm({"metadata": "extra"}, extra={"a": 1}).metadata == {"a": 1}
    fails({"metadata": "extra"}, {**BASE, "extra": "text"}, "metadata", "must be a JSON object")
    fails({}, {**BASE, "metadata": [1, 2]}, "metadata", "must be a JSON object")


def test_metadata_is_a_copy_of_the_raw_record():
    record = {**BASE, "metadata": {"nested": {"a": 1}}}
    event = normalize(record, {})
    event.metadata["nested"]["a"] = 2
    assert record["metadata"] == {"nested": {"a": 1}}


def test_a_metadata_field_error_names_the_metadata_key():
    mapping = {"metadata_fields": {"k": {"path": "t", "lookup": {}}}}
    fails(mapping, {**BASE, "t": "x"}, "metadata.k", "no lookup entry for 'x'")


# --- properties ---------------------------------------------------------------------

RESERVED = {
    "customer_id",
    "player_id",
    "user_id",
    "event_type",
    "action",
    "category",
    "value",
    "timestamp",
    "metadata",
    "idempotency_key",
}
NUMBERS = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
)
TEXT = st.text(min_size=1).filter(str.strip)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def _as_decimal(number: int | float | Decimal) -> Decimal:
    return Decimal(str(number)) if isinstance(number, float) else Decimal(number)


@given(
    customer_id=TEXT,
    event_type=TEXT,
    value=NUMBERS,
    extra=st.dictionaries(st.text().filter(lambda k: k not in RESERVED), JSON, max_size=5),
)
def test_an_empty_mapping_returns_the_raw_values(customer_id, event_type, value, extra):
    record = {**extra, "customer_id": customer_id, "event_type": event_type, "value": value}
    event = normalize(record, {})
    assert event.player_id == customer_id
    assert event.event_type == event_type
    assert event.value == _as_decimal(value)
    assert event.metadata == {}


@given(seconds=st.integers(min_value=0, max_value=10**9), places=st.integers(0, 6))
def test_seconds_to_minutes_matches_plain_division(seconds, places):
    mapping = {"value": {"path": "s", "unit": "seconds", "to": "minutes", "round": places}}
    expected = (Decimal(seconds) / 60).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert norm(mapping, s=seconds).value == expected


@given(record=st.dictionaries(st.text(), JSON, max_size=6))
def test_any_record_either_normalises_or_raises_a_mapping_error(record):
    try:
        event = normalize(record, {"metadata_fields": {"x": "a.0.b"}})
    except MappingError as error:
        assert error.field in (*FIELDS, "metadata.x")
    else:
        assert event.player_id and event.event_type and isinstance(event.value, Decimal)
