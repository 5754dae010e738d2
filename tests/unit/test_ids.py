"""Event ids: UUID version 7, ordered by their millisecond."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.services.common import time_ordered_ids


def test_an_event_id_is_a_version_7_uuid_carrying_its_millisecond():
    now = datetime(2026, 11, 21, 6, 15, 0, 123000, tzinfo=UTC)
    (made,) = time_ordered_ids(now, 1)
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert made.int >> 80 == int(now.timestamp() * 1000)


def test_ids_of_later_milliseconds_sort_after_and_ids_do_not_repeat():
    start = datetime(2026, 11, 21, tzinfo=UTC)
    ids = [time_ordered_ids(start + timedelta(milliseconds=n), 1)[0] for n in range(200)]
    assert ids == sorted(ids)
    same = {time_ordered_ids(start, 1)[0] for _ in range(10_000)}
    assert len(same) == 10_000


def test_a_batch_of_ids_shares_its_millisecond_and_has_no_repeats():
    now = datetime(2026, 11, 21, 6, 15, 0, 456000, tzinfo=UTC)
    made = time_ordered_ids(now, 5_000)
    assert len(made) == 5_000 and len(set(made)) == 5_000
    assert {m.version for m in made} == {7} and {m.variant for m in made} == {uuid.RFC_4122}
    assert {m.int >> 80 for m in made} == {int(now.timestamp() * 1000)}
    assert time_ordered_ids(now, 0) == []
