"""validate_mapping: every malformed DataSource mapping is refused, naming the bad key."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from app.engine.mapping import MappingError, validate_mapping
from tests.unit.mapping_helpers import BASE, LOOKUP, fails, norm, rejected

# --- validate_mapping ---------------------------------------------------------------


def test_validate_mapping_returns_a_good_mapping():
    mapping = {
        "player_id": "msisdn",
        "event_type": {"path": "t", "lookup": LOOKUP, "lookup_default": "OTHER"},
        "category": {"const": "voice"},
        "value": {"path": "b", "unit": "bytes", "to": "GB", "round": 3, "default": 0},
        "timestamp": {"path": "ms", "divide": 1000},
        "metadata": "extra",
        "idempotency_key": {"template": "cdr-{call_id}-{{x}}"},
        "metadata_fields": {"cell": "cell_id", "fee": {"path": "c", "multiply": 2}},
    }
    assert validate_mapping(mapping) is mapping
    assert validate_mapping({}) == {}


@pytest.mark.parametrize("mapping", [None, [], "event_type", 3])
def test_a_mapping_must_be_an_object(mapping):
    rejected(mapping, "mapping", "must be a JSON object")


def test_unknown_mapping_keys_are_rejected():
    rejected({"player": "id"}, "player", "unknown mapping key 'player'")


@pytest.mark.parametrize("spec", [3, None, True, ["a"], ""])
def test_a_spec_must_be_a_path_or_an_object(spec):
    rejected({"value": spec}, "value")


@pytest.mark.parametrize(
    "spec",
    [{}, {"default": 1}, {"lookup": {}}, {"path": "a", "const": 1}, {"const": 1, "template": "x"}],
)
def test_a_spec_object_needs_exactly_one_source(spec):
    rejected({"value": spec}, "value", "exactly one of path, const, template")


@pytest.mark.parametrize("path", ["", 3, None, ["a"]])
def test_a_spec_path_must_be_a_non_empty_string(path):
    rejected({"value": {"path": path}}, "value", "path must be a string")


def test_unknown_spec_options_are_rejected():
    rejected({"value": {"path": "a", "multipy": 2}}, "value", "unknown spec option.*multipy")


def test_multiply_and_divide_together_are_rejected():
    rejected({"value": {"path": "a", "multiply": 2, "divide": 3}}, "value", "not both")


@pytest.mark.parametrize("op", ["multiply", "divide"])
@pytest.mark.parametrize("bad", ["two", True, None, [2], float("nan"), float("inf")])
def test_non_numeric_multiply_or_divide_is_rejected(op, bad):
    rejected({"value": {"path": "a", op: bad}}, "value", f"{op} must be a finite number")


@pytest.mark.parametrize("zero", [0, 0.0, "0", Decimal("-0")])
def test_divide_by_zero_is_rejected(zero):
    rejected({"value": {"path": "a", "divide": zero}}, "value", "divide must not be zero")


@pytest.mark.parametrize("lookup", [["a"], "a", None, 1])
def test_a_lookup_must_be_an_object(lookup):
    rejected({"event_type": {"path": "a", "lookup": lookup}}, "event_type", "lookup must be")


def test_lookup_default_without_lookup_is_rejected():
    rejected({"event_type": {"path": "a", "lookup_default": "X"}}, "event_type", "needs lookup")


@pytest.mark.parametrize(
    ("unit", "to"),
    [("bytes", "minutes"), ("MB", "cents"), ("bytes", "TB"), ("furlongs", "miles"), ("MB", None)],
)
def test_unknown_unit_pairs_are_rejected(unit, to):
    rejected({"value": {"path": "a", "unit": unit, "to": to}}, "value", "cannot convert unit")


def test_unit_and_to_need_each_other():
    rejected({"value": {"path": "a", "unit": "bytes"}}, "value", "cannot convert unit")
    rejected({"value": {"path": "a", "to": "MB"}}, "value", "cannot convert unit")


@pytest.mark.parametrize("places", [-1, 1.5, "2", True, None])
def test_round_must_be_a_non_negative_int(places):
    rejected({"value": {"path": "a", "round": places}}, "value", "round must be")


@pytest.mark.parametrize("template", ["cdr-{", "cdr-}", "cdr-{}", "{ }", "{{a}", 5])
def test_malformed_templates_are_rejected(template):
    rejected({"idempotency_key": {"template": template}}, "idempotency_key", "template")


def test_metadata_fields_must_be_an_object_of_named_specs():
    rejected({"metadata_fields": ["cell"]}, "metadata_fields", "must be a JSON object")
    rejected({"metadata_fields": {"": "cell"}}, "metadata_fields", "not a usable metadata name")
    rejected({"metadata_fields": {"cell": 3}}, "metadata_fields.cell")
    bad_divide = {"metadata_fields": {"fee": {"path": "c", "divide": 0}}}
    rejected(bad_divide, "metadata_fields.fee", "divide must not be zero")


def test_normalize_rechecks_the_mapping():
    fails({"value": {"path": "a", "divide": 0}}, {**BASE, "a": 1}, "value", "not be zero")


# --- the error type -----------------------------------------------------------------


def test_mapping_error_is_a_value_error_with_field_and_message():
    error = MappingError("value", "bad")
    assert isinstance(error, ValueError)
    assert (error.field, error.message, str(error)) == ("value", "bad", "value: bad")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.message) == ("value", "bad")


def test_the_event_is_frozen():
    event = norm({})
    with pytest.raises(AttributeError):
        event.player_id = "other"  # type: ignore[misc]
