"""The telco preset's billing, CRM and app data sources through normalizeEvent (issue 3).

The preset (app/presets/telco.yaml) creates them from seed 001's list of sources
("CDR", "Billing/OCS", "CRM/Subscriber DB", "App/Web/USSD", "Network/QoE"); seed 001
gives an example record for the CDR only, so the records here follow each source's
mapping (the CDR and network sources are tested in tests/api/test_sources.py).
"""

from __future__ import annotations

import pytest

from models import Event, Player, PointTransaction
from tests.conftest import gql

NORMALIZE = """
mutation($input: NormalizeEventInput!) {
  normalizeEvent(input: $input) {
    outcome {
      pointsAwarded duplicate
      breakdown { rule amount }
      wallet { balance lifetimeEarned }
      event { id eventType category value source occurredAt metadata pointsAwarded player { id } }
    }
    errors { field message code }
  }
}"""


async def send(client, key, source_type, record, **extra):
    """normalizeEvent through the tenant's source of that type; the payload."""
    result = await gql(
        client,
        NORMALIZE,
        {"input": {"sourceType": source_type, "event": record, **extra}},
        token=key,
    )
    return result.data["normalizeEvent"]


async def sent(client, key, source_type, record, **extra):
    """The outcome of a record that must go through, its breakdown adding up."""
    payload = await send(client, key, source_type, record, **extra)
    assert payload["errors"] == [], payload["errors"]
    outcome = payload["outcome"]
    assert sum(line["amount"] for line in outcome["breakdown"]) == outcome["pointsAwarded"]
    return outcome


async def source_id(client, key, source_type: str) -> str:
    listed = await gql(client, "{ dataSources { id sourceType } }", token=key)
    (found,) = [s["id"] for s in listed.data["dataSources"] if s["sourceType"] == source_type]
    return found


async def assert_nothing_written(player_id: str | None = None) -> None:
    assert await Event.all().count() == 0
    assert await PointTransaction.all().count() == 0
    if player_id is not None:
        assert not await Player.filter(external_id=player_id).exists()


@pytest.fixture
async def telco(make_tenant):
    return await make_tenant("telco")


async def test_the_telco_preset_creates_its_five_sources(client, telco):
    listed = await gql(
        client, "{ dataSources { sourceType name syncFrequency active } }", token=telco
    )
    assert [tuple(s.values()) for s in listed.data["dataSources"]] == [
        ("cdr", "CDR System", "hourly", True),
        ("billing", "Billing / OCS", "realtime", True),
        ("crm", "CRM / Subscriber DB", "daily", True),
        ("app", "App / Web / USSD", "realtime", True),
        ("network", "Network / QoE", "hourly", True),
    ]


# ------------------------------------------------------------------ billing / OCS

RECHARGE = {
    "customer_id": "sub-7",
    "transaction_id": "tx-1001",
    "transaction_type": "recharge",
    "amount": 20,
    "transaction_time": "2026-01-22T12:30:00Z",
    "metadata": {"channel": "retail", "msisdn": "+15550001"},
}


async def test_billing_recharge_maps_type_amount_player_time_metadata_and_points(client, telco):
    outcome = await sent(client, telco, "billing", RECHARGE)
    event = outcome["event"]
    assert event["eventType"] == "RECHARGE" and event["category"] is None
    assert event["value"] == 20.0  # the amount as it is: 1 point per currency unit
    assert event["player"] == {"id": "sub-7"} and event["source"] == "billing"
    assert event["occurredAt"].startswith("2026-01-22T12:30:00")
    assert event["metadata"] == {"channel": "retail", "msisdn": "+15550001"}
    assert outcome["pointsAwarded"] == event["pointsAwarded"] == 20.0
    assert outcome["wallet"] == {"balance": 20.0, "lifetimeEarned": 20.0}
    stored = await Event.get(id=event["id"])
    # The transaction's own id is the key, within this source.
    billing = await source_id(client, telco, "billing")
    assert stored.idempotency_key == f"source-{billing}:billing-tx-1001"
    assert await PointTransaction.filter(event_id=stored.id).count() == 1


@pytest.mark.parametrize(
    ("transaction_type", "amount", "event_type", "points"),
    [
        ("recharge", 12.5, "RECHARGE", 12.5),  # per_unit 1
        ("topup", 7, "RECHARGE", 7.0),
        ("bundle", 15, "BUNDLE_PURCHASE", 50.0),  # base 50, whatever the price
        ("payment", 42.9, "PAYMENT_ON_TIME", 20.0),  # base 20
    ],
)
async def test_billing_transaction_types_look_up_to_the_telco_rules(
    client, telco, transaction_type, amount, event_type, points
):
    record = {**RECHARGE, "transaction_type": transaction_type, "amount": amount}
    outcome = await sent(client, telco, "billing", record)
    assert outcome["event"]["eventType"] == event_type
    assert outcome["event"]["value"] == float(amount)
    assert outcome["pointsAwarded"] == points


async def test_a_billing_record_sent_again_is_a_duplicate_by_its_transaction_id(client, telco):
    first = await sent(client, telco, "billing", RECHARGE)
    again = await sent(client, telco, "billing", RECHARGE)
    assert not first["duplicate"] and again["duplicate"]
    assert again["event"]["id"] == first["event"]["id"] and again["pointsAwarded"] == 20.0
    # The same transaction id with another amount: a conflict, not a second recharge.
    changed = await send(client, telco, "billing", {**RECHARGE, "amount": 25})
    assert changed["errors"][0]["code"] == "CONFLICT"
    # Another transaction of the same customer is recorded.
    other = await sent(client, telco, "billing", {**RECHARGE, "transaction_id": "tx-1002"})
    assert not other["duplicate"] and other["wallet"]["balance"] == 40.0
    assert await Event.all().count() == 2 and await PointTransaction.all().count() == 2


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"transaction_type": "refund"}, "event_type", "no lookup entry for 'refund'"),
        ({"transaction_type": None}, "event_type", "no event_type"),
        ({"amount": None}, "value", "no value"),
        ({"amount": "twenty"}, "value", "finite number"),
        ({"customer_id": None}, "player_id", "no player_id"),
        ({"transaction_time": "last tuesday"}, "timestamp", "neither ISO-8601 nor epoch"),
    ],
)
async def test_bad_billing_records_are_clear_errors_and_write_nothing(
    client, telco, change, field, says
):
    record = {k: v for k, v in {**RECHARGE, **change}.items() if v is not None}
    payload = await send(client, telco, "billing", record)
    assert payload["outcome"] is None
    (error,) = payload["errors"]
    assert error["code"] == "INVALID" and error["field"] == ["input", "event", field]
    assert says in error["message"], error["message"]
    await assert_nothing_written("sub-7")


# ------------------------------------------------------------------ CRM / subscriber DB

CRM_RECORD = {
    "customer_id": "sub-8",
    "event": "AUTO_RENEW_SETUP",
    "updated_at": "2026-01-22T08:15:00+00:00",
    "value": 99,  # the mapping counts every CRM change as 1
    "metadata": {"plan": "postpaid-30"},
}


async def test_crm_record_maps_its_event_as_it_is_with_a_value_of_one(client, telco):
    outcome = await sent(client, telco, "crm", CRM_RECORD)
    event = outcome["event"]
    assert event["eventType"] == "AUTO_RENEW_SETUP" and event["value"] == 1.0
    assert event["player"] == {"id": "sub-8"} and event["source"] == "crm"
    assert event["occurredAt"].startswith("2026-01-22T08:15:00")
    assert event["metadata"] == {"plan": "postpaid-30"}
    assert outcome["pointsAwarded"] == 100.0  # AUTO_RENEW_SETUP: base 100
    # An event type without a rule of its own is accepted by the wildcard, for 0 points.
    profile = await sent(client, telco, "crm", {**CRM_RECORD, "event": "PROFILE_UPDATE"})
    assert profile["event"]["eventType"] == "PROFILE_UPDATE"
    assert profile["pointsAwarded"] == 0.0 and profile["wallet"]["balance"] == 100.0
    payment = await sent(client, telco, "crm", {**CRM_RECORD, "event": "PAYMENT_ON_TIME"})
    assert payment["pointsAwarded"] == 20.0
    assert await Event.filter(source="crm").count() == 3


async def test_a_crm_record_names_no_id_of_its_own_so_the_caller_keys_it(client, telco):
    # The CRM mapping names no idempotency key: the caller's makes a re-send a duplicate.
    first = await sent(client, telco, "crm", CRM_RECORD, idempotencyKey="crm-sub-8-renew")
    again = await sent(client, telco, "crm", CRM_RECORD, idempotencyKey="crm-sub-8-renew")
    assert not first["duplicate"] and again["duplicate"]
    assert again["event"]["id"] == first["event"]["id"]
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1
    stored = await Event.get(id=first["event"]["id"])
    assert stored.idempotency_key == "crm-sub-8-renew"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"event": None}, "event_type", "no event_type"),
        ({"event": "   "}, "event_type", "no event_type"),
        ({"customer_id": None}, "player_id", "no player_id"),
        ({"event": {"kind": "renew"}}, "event_type", "string or a number"),
    ],
)
async def test_bad_crm_records_are_clear_errors_and_write_nothing(
    client, telco, change, field, says
):
    record = {k: v for k, v in {**CRM_RECORD, **change}.items() if v is not None}
    payload = await send(client, telco, "crm", record)
    assert payload["outcome"] is None
    (error,) = payload["errors"]
    assert error["code"] == "INVALID" and error["field"] == ["input", "event", field]
    assert says in error["message"], error["message"]
    await assert_nothing_written("sub-8")


# ------------------------------------------------------------------ app / web / USSD

LOGIN = {"user_id": "sub-9", "action": "login", "ts": 1769076000}  # 2026-01-22T10:00:00Z


async def test_app_login_maps_user_id_action_and_epoch_time_and_earns_its_streak(client, telco):
    outcome = await sent(client, telco, "app", LOGIN)
    event = outcome["event"]
    assert event["eventType"] == "APP_LOGIN" and event["value"] == 1.0
    assert event["player"] == {"id": "sub-9"} and event["source"] == "app"
    assert event["occurredAt"].startswith("2026-01-22T10:00:00")
    assert event["metadata"] == {}
    assert outcome["pointsAwarded"] == 5.0  # base 5, day 1 of a streak
    # The next day's login is day 2 of the streak: +10 % per streak day, so +20 %.
    next_day = await sent(client, telco, "app", {**LOGIN, "ts": LOGIN["ts"] + 86400})
    assert next_day["event"]["occurredAt"].startswith("2026-01-23T10:00:00")
    assert next_day["pointsAwarded"] == 6.0
    assert [line["amount"] for line in next_day["breakdown"]] == [5.0, 1.0]
    # The mapping reads user_id only: a customer_id beside it does not win.
    both = await sent(client, telco, "app", {**LOGIN, "customer_id": "someone-else"})
    assert both["event"]["player"] == {"id": "sub-9"}
    assert not await Player.filter(external_id="someone-else").exists()


@pytest.mark.parametrize(
    ("action", "event_type", "points"),
    [
        ("auto_renew_on", "AUTO_RENEW_SETUP", 100.0),
        ("view_offer", "APP_EVENT", 0.0),  # lookup_default, accepted by the wildcard
    ],
)
async def test_app_actions_look_up_to_the_telco_rules(client, telco, action, event_type, points):
    outcome = await sent(client, telco, "app", {**LOGIN, "action": action})
    assert outcome["event"]["eventType"] == event_type
    assert outcome["event"]["value"] == 1.0 and outcome["pointsAwarded"] == points


async def test_an_app_record_names_no_id_of_its_own_so_the_caller_keys_it(client, telco):
    first = await sent(client, telco, "app", LOGIN, idempotencyKey="app-sub-9-1")
    again = await sent(client, telco, "app", LOGIN, idempotencyKey="app-sub-9-1")
    assert not first["duplicate"] and again["duplicate"]
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1


@pytest.mark.parametrize(
    ("record", "field", "says"),
    [
        ({"action": "login", "ts": 1769076000}, "player_id", "raw 'user_id'"),
        (
            {"customer_id": "sub-9", "action": "login", "ts": 1769076000},
            "player_id",
            "raw 'user_id'",
        ),
        ({"user_id": "sub-9", "ts": 1769076000}, "event_type", "no event_type"),
        ({"user_id": "sub-9", "action": ["login"], "ts": 1769076000}, "event_type", "lookup key"),
        ({"user_id": "sub-9", "action": "login", "ts": "soon"}, "timestamp", "neither ISO-8601"),
    ],
)
async def test_bad_app_records_are_clear_errors_and_write_nothing(
    client, telco, record, field, says
):
    payload = await send(client, telco, "app", record)
    assert payload["outcome"] is None
    (error,) = payload["errors"]
    assert error["code"] == "INVALID" and error["field"] == ["input", "event", field]
    assert says in error["message"], error["message"]
    await assert_nothing_written("sub-9")


async def test_a_cdr_data_session_is_minutes_not_megabytes(client, make_tenant):
    """A CDR measures time: its data session is DATA_SESSION in minutes (no points, as
    any type the preset does not reward), never DATA_USAGE, which is MB and pays by the
    MB (from the network source)."""
    key = await make_tenant("telco")
    record = {
        "customer_id": "sub-d",
        "call_id": "d-1",
        "call_type": "data",
        "duration": 600,
        "call_time": "2026-01-22T11:00:00Z",
    }
    outcome = await sent(client, key, "cdr", record)
    assert (outcome["event"]["eventType"], outcome["event"]["value"]) == ("DATA_SESSION", 10.0)
    assert outcome["pointsAwarded"] == 0.0
