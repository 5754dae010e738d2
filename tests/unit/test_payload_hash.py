"""An idempotency key's payload hash compares values, not the way they were written."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app import presets
from app.engine.rules import parse_rules
from app.services.event_input import EventInput, check_event

RULES = parse_rules(presets.load("habits"))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def checked(value):
    return check_event(0, EventInput("u1", "paid_invoice", value=value), RULES, NOW)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (2, 2.0),
        (2, Decimal("2.00")),
        (2.5, Decimal("2.50")),
        (250, Decimal("2.5E+2")),
        (None, 1),
        (Decimal("0.000"), 0),
        (Decimal("1E-6"), Decimal("0.0000010")),
        (-0.0, 0),
    ],
)
def test_one_value_written_two_ways_hashes_the_same(one, other):
    assert checked(one).payload_hash == checked(other).payload_hash


@pytest.mark.parametrize(("one", "other"), [(2, 2.5), (20, 2), (Decimal("0.1"), 1)])
def test_different_values_hash_apart(one, other):
    assert checked(one).payload_hash != checked(other).payload_hash


def test_a_key_stored_with_the_earlier_hash_still_matches_its_retry():
    """Before values were written canonically the hash took str(value): an event stored
    then with value 2.50 (from a raw record) is still the same event when retried."""
    item = checked(Decimal("2.50"))
    earlier = hashlib.sha256(b"u1|paid_invoice||2.50||api|{}").hexdigest()
    assert item.legacy_hash == earlier
    assert item.same_payload(earlier) and item.same_payload(item.payload_hash)
    assert not item.same_payload(checked(Decimal("2.5")).legacy_hash)  # None: no earlier form
    assert not item.same_payload(checked(3).payload_hash)
    assert checked(2).legacy_hash is None  # str(2) is already canonical
