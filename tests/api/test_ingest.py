"""Ingestion behaviour: idempotency, batches, bad input, late events, preview, reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import Event, Player, PointTransaction
from tests.api.test_presets import RECORD, days_ago, record
from tests.conftest import gql

BATCH = """
mutation($input: [RecordEventInput!]!) {
  recordEvents(input: $input) {
    outcomes { pointsAwarded duplicate event { player { id } } }
    errors { field message code }
  }
}"""
PREVIEW = RECORD.replace("recordEvent(", "previewEvent(").replace("recordEvent {", "previewEvent {")


async def errors_of(client, key, event, mutation=RECORD, name="recordEvent"):
    result = await gql(client, mutation, {"input": event}, token=key)
    return result.data[name]["errors"]


async def test_idempotency_same_payload_is_a_duplicate_with_no_new_effect(client, make_tenant):
    key = await make_tenant("habits")
    event = {
        "playerId": "i",
        "eventType": "paid_invoice",
        "category": "finance",
        "value": 2.0,
        "idempotencyKey": "inv-1",
    }
    first = await record(client, key, **event)
    again = await record(client, key, **event)
    assert not first["duplicate"] and again["duplicate"]
    assert again["pointsAwarded"] == first["pointsAwarded"] == 4.0
    assert again["event"]["id"] == first["event"]["id"]
    assert again["breakdown"] == first["breakdown"]
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1


async def test_idempotency_same_key_other_payload_is_a_conflict(client, make_tenant):
    key = await make_tenant("habits")
    await record(client, key, playerId="i", eventType="x", value=1, idempotencyKey="k")
    errors = await errors_of(
        client, key, {"playerId": "i", "eventType": "x", "value": 2, "idempotencyKey": "k"}
    )
    assert errors[0]["code"] == "CONFLICT" and errors[0]["field"] == ["input", "idempotencyKey"]
    assert await Event.all().count() == 1


async def test_a_retry_that_writes_the_value_another_way_is_a_duplicate(client, make_tenant):
    """A raw record re-sent through a mapping may spell its value "2.00", 2 or 2.0: one
    event, not a CONFLICT. Another value under the same key still is one."""
    from tests.api.test_sources import CREATE, normalize

    key = await make_tenant("habits")
    created = await gql(
        client,
        CREATE,
        {
            "input": {
                "sourceType": "billing",
                "name": "invoices",
                "eventMapping": {
                    "event_type": {"const": "paid_invoice"},
                    "category": {"const": "finance"},
                    "value": "amount",
                    "idempotency_key": "invoice_id",
                },
            }
        },
        token=key,
    )
    source = created.data["createDataSource"]["dataSource"]["id"]
    record_ = {"player_id": "h", "invoice_id": "inv-9", "timestamp": "2026-01-22T10:00:00Z"}
    outcomes = [
        await normalize(client, key, sourceId=source, event={**record_, "amount": amount})
        for amount in ("2.00", 2, 2.0)
    ]
    assert [o["errors"] for o in outcomes] == [[], [], []]
    assert [o["outcome"]["duplicate"] for o in outcomes] == [False, True, True]
    assert {o["outcome"]["pointsAwarded"] for o in outcomes} == {4.0}
    other = await normalize(client, key, sourceId=source, event={**record_, "amount": "2.01"})
    assert other["errors"][0]["code"] == "CONFLICT"
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1


async def test_a_key_repeated_in_a_batch_with_another_payload_is_that_items_conflict(
    client, make_tenant
):
    key = await make_tenant("callcenter")
    events = [
        {"playerId": "c1", "eventType": "call_completed", "idempotencyKey": "k1"},
        {"playerId": "c1", "eventType": "lead_converted", "idempotencyKey": "k1"},
        {"playerId": "c2", "eventType": "call_completed", "idempotencyKey": "k1", "value": 1.0},
        {"playerId": "c2", "eventType": "call_completed", "idempotencyKey": "k2"},
    ]
    result = await gql(client, BATCH, {"input": events}, token=key)
    payload = result.data["recordEvents"]
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [
        (["1", "idempotencyKey"], "CONFLICT"),
        (["2", "idempotencyKey"], "CONFLICT"),
    ]
    assert [(o["pointsAwarded"], o["duplicate"]) for o in payload["outcomes"]] == [
        (10.0, False),
        (10.0, False),
    ]
    assert await Event.all().count() == 2
    assert await PointTransaction.all().count() == 2


async def test_a_batch_reports_bad_items_by_index_and_records_the_others(client, make_tenant):
    key = await make_tenant("callcenter")
    events = [
        {"playerId": "b1", "eventType": "call_completed"},
        {"playerId": "b2", "eventType": "call_completed", "value": -1},
        {"playerId": "b3", "eventType": "no_such_type"},
        {"playerId": "b1", "eventType": "lead_converted", "idempotencyKey": "dup"},
        {"playerId": "b1", "eventType": "lead_converted", "idempotencyKey": "dup"},
    ]
    result = await gql(client, BATCH, {"input": events}, token=key)
    payload = result.data["recordEvents"]
    assert [(e["field"][0], e["code"]) for e in payload["errors"]] == [
        ("1", "INVALID"),
        ("2", "INVALID"),
    ]
    assert payload["errors"][0]["field"] == ["1", "value"]
    assert [(o["pointsAwarded"], o["duplicate"]) for o in payload["outcomes"]] == [
        (10.0, False),
        (50.0, False),
        (50.0, True),
    ]
    assert await Event.all().count() == 2
    assert not await Player.filter(external_id__in=["b2", "b3"]).exists()


async def test_a_batch_of_more_than_1000_is_refused(client, make_tenant):
    key = await make_tenant("habits")
    events = [{"playerId": "p", "eventType": "x"}] * 1001
    result = await gql(client, BATCH, {"input": events}, token=key)
    assert result.data["recordEvents"]["errors"][0]["code"] == "LIMIT_REACHED"
    assert await Event.all().count() == 0


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"value": -1}, "value"),
        ({"value": float("inf")}, "value"),
        ({"metadata": {"blob": "x" * 17000}}, "metadata"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"occurredAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "occurredAt"),
        ({"occurredAt": "0001-01-01T00:00:00Z"}, "occurredAt"),
        ({"occurredAt": "1969-12-31T23:59:59Z"}, "occurredAt"),
        ({"metadata": {"blob": "é" * 8200}}, "metadata"),  # 16,400 bytes of UTF-8
        ({"playerId": ""}, "playerId"),
    ],
)
async def test_bad_input_is_a_clear_error_and_writes_nothing(client, make_tenant, event, field):
    key = await make_tenant("habits")
    base = {"playerId": "bad", "eventType": "x", "value": 1}
    if field == "value" and event["value"] == float("inf"):
        # JSON has no Infinity: the GraphQL layer refuses it before our code runs
        response = await client.post(
            "/graphql",
            content=(
                '{"query": "mutation { recordEvent(input: {playerId: \\"bad\\", eventType: \\"x\\", '
                'value: 1e999}) { errors { code } } }"}'
            ),
            headers={"content-type": "application/json", "Authorization": f"Bearer {key}"},
        )
        assert response.json().get("errors") or response.json()["data"]["recordEvent"]["errors"]
    else:
        errors = await errors_of(client, key, {**base, **event})
        assert errors[0]["code"] == "INVALID" and errors[0]["field"] == ["input", field]
        assert errors[0]["message"]
    assert await Event.all().count() == 0 and not await Player.filter(external_id="bad").exists()


async def test_metadata_is_measured_in_utf8_bytes_and_an_instant_in_any_offset_is_one(
    client, make_tenant
):
    key = await make_tenant("habits")
    # 6,000 bytes of UTF-8 (the escaped JSON text is three times as long): accepted.
    emoji = {"playerId": "m", "eventType": "x", "metadata": {"x": "\U0001f600" * 1500}}
    assert await errors_of(client, key, emoji) == []
    event = {"playerId": "m", "eventType": "x", "idempotencyKey": "same-instant"}
    first = await record(client, key, **event, occurredAt="2026-11-20T10:00:00Z")
    again = await record(client, key, **event, occurredAt="2026-11-20T12:00:00+02:00")
    assert again["duplicate"] and again["event"]["id"] == first["event"]["id"]


async def test_late_events_count_toward_their_own_day(client, make_tenant):
    key = await make_tenant("callcenter")
    await record(client, key, playerId="late", eventType="call_completed", occurredAt=days_ago(2))
    await record(client, key, playerId="late", eventType="call_completed")  # today: streak 1
    # The missing day arrives late: it joins the run, so that day is a day-2 streak (×1.5)
    # and today becomes day 3.
    late = await record(
        client, key, playerId="late", eventType="call_completed", occurredAt=days_ago(1)
    )
    assert late["pointsAwarded"] == 15
    streak = await gql(
        client, '{ player(id: "late") { streak { current best lastActiveDay } } }', token=key
    )
    assert streak.data["player"]["streak"]["current"] == 3
    # The daily cap counts per own day: 500 more on a past day is still allowed there.
    total = 0.0
    for _ in range(11):
        outcome = await record(
            client, key, playerId="late", eventType="lead_converted", occurredAt=days_ago(5)
        )
        total += outcome["pointsAwarded"]
    assert total == 500.0


async def test_preview_computes_the_outcome_and_writes_nothing(client, make_tenant):
    key = await make_tenant("habits")
    result = await gql(
        client,
        PREVIEW,
        {"input": {"playerId": "pv", "eventType": "x", "category": "finance", "value": 2}},
        token=key,
    )
    outcome = result.data["previewEvent"]["outcome"]
    assert outcome["pointsAwarded"] == 4.0 and outcome["event"] is None
    assert outcome["wallet"]["balance"] == 4.0
    await record(client, key, playerId="pv", eventType="x", category="finance", value=1)
    result = await gql(
        client,
        PREVIEW,
        {"input": {"playerId": "pv", "eventType": "x", "category": "finance", "value": 2}},
        token=key,
    )
    assert result.data["previewEvent"]["outcome"]["wallet"]["balance"] == 6.0
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1


async def test_integrators_record_viewers_cannot(client, make_tenant):
    from app.services import access
    from models import Tenant

    await make_tenant("habits", slug="roles")
    tenant = await Tenant.get(slug="roles")
    _, viewer_key = await access.create_api_key(tenant.slug, "viewer")
    _, integrator_key = await access.create_api_key(tenant.slug, "integrator")
    event = {"playerId": "r", "eventType": "x"}
    denied = await gql(client, RECORD, {"input": event}, token=viewer_key, expect_errors=True)
    assert denied.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert (await record(client, integrator_key, **event))["pointsAwarded"] == 1.0


PLAYER = """
query($id: ID!, $after: String) {
  player(id: $id) {
    wallet { balance lifetimeEarned earnedToday dailyCap }
    level { number name progress nextLevelAt }
    streak { current best lastActiveDay }
    stats { totalEvents eventsByCategory pointsByCategory bestStreak currentStreak }
    transactions(first: 2, after: $after) { edges { cursor node { kind amount balanceAfter eventId } } pageInfo { hasNextPage endCursor } }
    events(first: 2) { edges { node { eventType pointsAwarded } } pageInfo { hasNextPage } }
  }
}"""


async def test_player_reads_wallet_level_streak_stats_and_history(client, make_tenant):
    key = await make_tenant("habits")
    await record(
        client,
        key,
        playerId="r",
        eventType="paid_invoice",
        category="finance",
        value=30,
        occurredAt=days_ago(1),
    )
    await record(client, key, playerId="r", eventType="lesson", category="learning", value=10)
    await record(client, key, playerId="r", eventType="walk", category="health", value=5)
    result = await gql(client, PLAYER, {"id": "r"}, token=key)
    player = result.data["player"]
    assert player["wallet"] == {
        "balance": 81.0,
        "lifetimeEarned": 81.0,
        "earnedToday": 21.0,
        "dailyCap": None,
    }
    assert player["level"] == {
        "number": 1,
        "name": "Level 1",
        "progress": 0.81,
        "nextLevelAt": 100.0,
    }
    assert player["streak"]["current"] == 2 and player["streak"]["best"] == 2
    stats = player["stats"]
    assert stats["totalEvents"] == 3
    assert stats["eventsByCategory"] == {"finance": 1, "learning": 1, "health": 1}
    assert stats["pointsByCategory"] == {"finance": 60.0, "learning": 15.0, "health": 6.0}
    page = player["transactions"]
    assert [e["node"]["amount"] for e in page["edges"]] == [6.0, 15.0]  # newest first
    assert page["edges"][0]["node"]["balanceAfter"] == 81.0 and page["pageInfo"]["hasNextPage"]
    after = await gql(
        client, PLAYER, {"id": "r", "after": page["pageInfo"]["endCursor"]}, token=key
    )
    rest = after.data["player"]["transactions"]
    assert [e["node"]["amount"] for e in rest["edges"]] == [60.0]
    assert not rest["pageInfo"]["hasNextPage"]
    assert [e["node"]["eventType"] for e in player["events"]["edges"]] == ["walk", "lesson"]


async def test_a_bad_cursor_is_a_clear_error(client, make_tenant):
    key = await make_tenant("habits")
    await record(client, key, playerId="c", eventType="x")
    result = await gql(
        client, PLAYER, {"id": "c", "after": "garbage"}, token=key, expect_errors=True
    )
    assert "invalid cursor" in result.errors[0]["message"]


EVENTS_PAGE = """query($after: String) { player(id: "o") {
  events(first: 1, after: $after) {
    edges { cursor node { id occurredAt } } pageInfo { hasNextPage } } } }"""


async def test_events_sent_with_any_offset_page_in_time_order_without_gaps(client, make_tenant):
    key = await make_tenant("habits")
    times = [
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00.500Z",
        "2026-11-20T12:00:00+02:00",  # the same instant as the first
        "2026-11-20T09:59:59.999Z",
        "2026-11-20T05:30:00-05:00",  # 10:30 UTC: the latest
    ]
    for at in times:
        await record(client, key, playerId="o", eventType="x", occurredAt=at)
    seen, after = [], None
    while True:
        result = await gql(client, EVENTS_PAGE, {"after": after}, token=key)
        page = result.data["player"]["events"]
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["edges"][-1]["cursor"]
    assert len({e["id"] for e in seen}) == len(times)
    instants = [datetime.fromisoformat(e["occurredAt"]) for e in seen]
    assert instants == sorted(instants, reverse=True)
    assert instants[0] == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


async def test_a_batch_may_hold_an_item_earlier_than_a_previous_one(client, make_tenant):
    key = await make_tenant("callcenter")
    events = [
        {"playerId": "o", "eventType": "call_completed"},  # today
        {"playerId": "o", "eventType": "call_completed", "occurredAt": days_ago(1)},  # late
        {"playerId": "o", "eventType": "call_completed"},  # today again: now day 2 of a run
    ]
    result = await gql(client, BATCH, {"input": events}, token=key)
    payload = result.data["recordEvents"]
    assert payload["errors"] == []
    assert [o["pointsAwarded"] for o in payload["outcomes"]] == [10.0, 10.0, 15.0]
    streak = await gql(client, '{ player(id: "o") { streak { current best } } }', token=key)
    assert streak.data["player"]["streak"] == {"current": 2, "best": 2}


async def test_a_batch_mixing_known_and_new_players_and_stored_keys(client, make_tenant):
    """On PostgreSQL the first statement locks the wallets only when every player of the
    batch exists; with a newcomer it creates the players first and locks them all after.
    Either way: a stored key replays, a repeat within the batch follows its first, and
    every wallet equals its ledger."""
    key = await make_tenant("habits")
    base = {"eventType": "paid_invoice", "category": "finance"}
    await record(client, key, playerId="mix-known", value=1.0, idempotencyKey="old", **base)
    for players in (["mix-known", "mix-known"], ["mix-known", "mix-fresh"]):
        items = [
            {"playerId": "mix-known", "value": 1.0, "idempotencyKey": "old", **base},
            *({"playerId": p, "value": 2.0, **base} for p in players),
            {"playerId": players[-1], "value": 3.0, "idempotencyKey": f"new-{players[-1]}", **base},
            {"playerId": players[-1], "value": 3.0, "idempotencyKey": f"new-{players[-1]}", **base},
        ]
        result = await gql(client, BATCH, {"input": items}, token=key)
        outcomes = result.data["recordEvents"]["outcomes"]
        assert result.data["recordEvents"]["errors"] == []
        assert [o["duplicate"] for o in outcomes] == [True, False, False, False, True]
        assert [o["pointsAwarded"] for o in outcomes] == [2.0, 4.0, 4.0, 6.0, 6.0]
        assert outcomes[-1]["event"] == outcomes[-2]["event"]
    for external_id, balance in (("mix-known", 2 + 4 + 4 + 6 + 4), ("mix-fresh", 4 + 6)):
        player = await Player.get(external_id=external_id).prefetch_related("wallet")
        lines = await PointTransaction.filter(player_id=player.id).values_list("amount", flat=True)
        assert player.wallet.balance == sum(lines) == balance


async def test_a_new_player_whose_every_event_is_refused_is_not_created(client, make_tenant):
    key = await make_tenant("habits")  # levels of 100 points: 4 × 10^12 points is past 2^31
    huge = {"eventType": "x", "category": "finance", "value": 2000000000000}
    batch = [
        {**huge, "playerId": "never"},
        {**huge, "playerId": "kept"},
        {"playerId": "kept", "eventType": "x", "category": "finance"},
        {"playerId": "never", **huge, "value": 3000000000000},
    ]
    result = await gql(client, BATCH, {"input": batch}, token=key)
    errors = result.data["recordEvents"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["0", "value"], "LIMIT_REACHED"),
        (["1", "value"], "LIMIT_REACHED"),
        (["3", "value"], "LIMIT_REACHED"),
    ]
    assert await Player.filter(external_id="never").count() == 0
    kept = await Player.get(external_id="kept").prefetch_related("wallet")
    assert kept.wallet.balance == 2
    assert await errors_of(client, key, {**huge, "playerId": "never"}) == [
        {"field": ["input", "value"], "message": errors[0]["message"], "code": "LIMIT_REACHED"}
    ]
    assert await Player.filter(external_id="never").count() == 0
    assert (await record(client, key, playerId="never", eventType="x"))["pointsAwarded"] >= 0
    assert await Player.filter(external_id="never").count() == 1


async def test_nul_characters_are_refused_item_by_item(client, make_tenant):
    """PostgreSQL stores no U+0000: each such event is INVALID, the batch's others land."""
    key = await make_tenant("telco")  # a wildcard rule: any event type is known
    login = {"playerId": "p", "eventType": "APP_LOGIN"}
    bad = [
        {**login, "eventType": "APP\u0000LOGIN"},
        {**login, "category": "a\u0000"},
        {**login, "source": "crm\u0000"},
        {**login, "idempotencyKey": "k\u0000"},
        {**login, "metadata": {"note": ["ok", {"deep": "a\u0000b"}]}},
        {**login, "metadata": {"k\u0000": 1}},
    ]
    batch = [*bad, {**login, "metadata": {"text": "a\\u0000 is six characters"}}]
    result = await gql(client, BATCH, {"input": batch}, token=key)
    errors = result.data["recordEvents"]["errors"]
    assert [(e["field"][1], e["code"]) for e in errors] == [
        ("eventType", "INVALID"),
        ("category", "INVALID"),
        ("source", "INVALID"),
        ("idempotencyKey", "INVALID"),
        ("metadata", "INVALID"),
        ("metadata", "INVALID"),
    ]
    assert [e["field"][0] for e in errors] == ["0", "1", "2", "3", "4", "5"]
    assert len(result.data["recordEvents"]["outcomes"]) == 1
    stored = await Event.get(player__external_id="p")
    assert stored.metadata == {"text": "a\\u0000 is six characters"}
    assert (await errors_of(client, key, bad[0]))[0]["message"] == (
        "eventType contains a NUL character"
    )


ADJUST = """mutation($amount: Float!) { adjustPoints(input: {playerId: "big", amount: $amount,
  reason: "r"}) { errors { code field } } }"""


async def test_points_beyond_what_the_ledger_holds_are_refused_and_write_nothing(
    client, make_tenant
):
    key = await make_tenant("habits")  # levels of 100 points, no level-up bonus
    # 2 × 10^11 points: 2 × 10^9 levels, found at once (not one by one).
    huge = {"playerId": "big", "eventType": "x", "category": "finance", "value": 100000000000}
    first = await record(client, key, **huge)
    assert first["pointsAwarded"] == 200000000000.0
    assert first["levelUp"]["to"] == 2000000001
    errors = await errors_of(client, key, huge)  # a level beyond 32 bits
    assert errors[0]["code"] == "LIMIT_REACHED"
    batch = await gql(
        client, BATCH, {"input": [huge, {"playerId": "b", "eventType": "x"}]}, token=key
    )
    assert [e["field"] for e in batch.data["recordEvents"]["errors"]] == [["0", "value"]]
    assert len(batch.data["recordEvents"]["outcomes"]) == 1  # the other item is recorded
    assert await Event.filter(player__external_id="big").count() == 1

    key = await make_tenant("callcenter", slug="cc")  # ten levels: points may grow
    await record(client, key, playerId="big", eventType="call_completed")
    lines = PointTransaction.filter(player__external_id="big", tenant__slug="cc")
    for amount, code in ((1e26, "INVALID"), (-1e30, "INVALID"), (9e13, None)):
        result = await gql(client, ADJUST, {"amount": amount}, token=key)
        assert [e["code"] for e in result.data["adjustPoints"]["errors"]] == (
            [code] if code else []
        )
    written = await lines.count()  # the event, the award and nine level-up bonuses
    result = await gql(client, ADJUST, {"amount": 9e13}, token=key)  # 1.8 × 10^14 in all
    assert result.data["adjustPoints"]["errors"][0]["code"] == "LIMIT_REACHED"
    assert await lines.count() == written == 11
