"""Data sources and normalizeEvent: seed 001's mappings, lookups, units, bad records."""

from __future__ import annotations

from models import DataSource, Event
from tests.conftest import gql

CREATE = """
mutation($input: DataSourceInput!) {
  createDataSource(input: $input) {
    dataSource { id sourceType name eventMapping syncFrequency active }
    errors { field message code }
  }
}"""
NORMALIZE = """
mutation($input: NormalizeEventInput!) {
  normalizeEvent(input: $input) {
    outcome { pointsAwarded duplicate event { eventType value source occurredAt metadata player { id } } }
    errors { field message code }
  }
}"""

# Seed 001's example record, as the seed writes it (no call_id of its own).
SEED_001_CDR = {
    "customer_id": "uuid-here",
    "call_type": "outgoing",
    "duration": 120,
    "call_time": "2026-01-22T10:00:00Z",
}


async def normalize(client, key, **input):
    result = await gql(client, NORMALIZE, {"input": input}, token=key)
    return result.data["normalizeEvent"]


async def test_seed_001_cdr_mapping_works_as_written(client, make_tenant):
    key = await make_tenant("habits")  # a wildcard rule accepts any event type
    created = await gql(
        client,
        CREATE,
        {
            "input": {
                "sourceType": "cdr",
                "name": "CDR System",
                "syncFrequency": "hourly",
                "connectionConfig": {
                    "api_endpoint": "https://cdr.example.com/api",
                    "api_key": "secret",
                },
                "eventMapping": {
                    "event_type": "call_type",
                    "value": "duration",
                    "timestamp": "call_time",
                },
            }
        },
        token=key,
    )
    source = created.data["createDataSource"]["dataSource"]
    assert source["syncFrequency"] == "hourly" and source["active"]
    assert "connectionConfig" not in source
    stored = await DataSource.get(id=int(source["id"]))
    assert stored.connection_config["api_key"] == "secret"  # stored, never returned

    payload = await normalize(client, key, sourceType="cdr", event=SEED_001_CDR)
    assert payload["errors"] == []
    event = payload["outcome"]["event"]
    assert event["player"] == {"id": "uuid-here"} and event["eventType"] == "outgoing"
    assert event["value"] == 120.0 and event["source"] == "cdr"
    assert event["occurredAt"].startswith("2026-01-22T10:00:00")
    listed = await gql(client, "{ dataSources { name sourceType } }", token=key)
    assert listed.data["dataSources"] == [{"name": "CDR System", "sourceType": "cdr"}]


async def test_telco_preset_sources_map_lookups_units_and_record_ids(client, make_tenant):
    key = await make_tenant("telco")
    cdr = {
        "customer_id": "sub-1",
        "call_id": "c-77",
        "call_type": "outgoing",
        "duration": 240,
        "call_time": "2026-01-22T10:00:00Z",
    }
    first = await normalize(client, key, sourceType="cdr", event=cdr)
    assert first["outcome"]["event"]["eventType"] == "CALL"
    assert first["outcome"]["event"]["value"] == 4.0  # 240 s -> 4 minutes
    assert first["outcome"]["pointsAwarded"] == 2.0
    again = await normalize(client, key, sourceType="cdr", event=cdr)
    assert again["outcome"]["duplicate"]  # the CDR's own id is the idempotency key
    network = await normalize(
        client,
        key,
        sourceType="network",
        event={
            "subscriber_id": "sub-1",
            "bytes": 524288000,
            "session_end": "2026-01-22T11:00:00Z",
            "qoe_score": 3.5,
            "cell_id": "A7",
        },
    )
    event = network["outcome"]["event"]
    assert (event["eventType"], event["value"]) == ("DATA_USAGE", 500.0)
    assert event["metadata"] == {"qoe": 3.5, "cell": "A7"}
    assert await Event.all().count() == 2


async def test_bad_records_and_sources_are_clear_errors(client, make_tenant):
    key = await make_tenant("telco")
    missing_player = await normalize(
        client, key, sourceType="billing", event={"transaction_type": "recharge", "amount": 5}
    )
    assert missing_player["errors"][0]["code"] == "INVALID"
    assert missing_player["errors"][0]["field"] == ["input", "event", "player_id"]
    unknown = await normalize(client, key, sourceId="999", event={"customer_id": "x"})
    assert unknown["errors"][0]["code"] == "NOT_FOUND"
    no_type = await normalize(client, key, sourceType="custom", event={"customer_id": "x"})
    assert no_type["errors"][0]["code"] == "NOT_FOUND"
    listed = await gql(client, "{ dataSources { id sourceType } }", token=key)
    crm_id = next(s["id"] for s in listed.data["dataSources"] if s["sourceType"] == "crm")
    await DataSource.filter(id=int(crm_id)).update(active=False)
    inactive = await normalize(
        client, key, sourceId=crm_id, event={"customer_id": "x", "event": "PROFILE_UPDATE"}
    )
    assert (
        inactive["errors"][0]["code"] == "INVALID"
        and "inactive" in inactive["errors"][0]["message"]
    )
    assert await Event.all().count() == 0


async def test_create_data_source_refuses_bad_mappings(client, make_tenant):
    key = await make_tenant("telco")
    for bad, field in [
        ({"sourceType": "fax", "name": "x", "eventMapping": {}}, "sourceType"),
        ({"sourceType": "cdr", "name": "x", "eventMapping": {"colour": "c"}}, "eventMapping"),
        (
            {"sourceType": "cdr", "name": "x", "eventMapping": {}, "syncFrequency": "sometimes"},
            "syncFrequency",
        ),
    ]:
        result = await gql(client, CREATE, {"input": bad}, token=key)
        errors = result.data["createDataSource"]["errors"]
        assert errors[0]["code"] == "INVALID" and errors[0]["field"][:2] == ["input", field]


async def test_record_ids_are_keys_per_source_and_epochs_may_be_milliseconds(client, make_tenant):
    key = await make_tenant("habits")
    ids = []
    for name in ("A", "B"):
        created = await gql(
            client,
            CREATE,
            {
                "input": {
                    "sourceType": "custom",
                    "name": name,
                    "eventMapping": {"event_type": {"const": "x"}, "idempotency_key": "id"},
                }
            },
            token=key,
        )
        ids.append(created.data["createDataSource"]["dataSource"]["id"])
    # The same raw id in two sources: two records, not a conflict.
    a = await normalize(client, key, sourceId=ids[0], event={"player_id": "s", "id": "1"})
    b = await normalize(
        client, key, sourceId=ids[1], event={"player_id": "s", "id": "1", "value": 2}
    )
    assert a["errors"] == [] and b["errors"] == [] and not b["outcome"]["duplicate"]
    again = await normalize(client, key, sourceId=ids[0], event={"player_id": "s", "id": "1"})
    assert again["outcome"]["duplicate"]
    millis = await normalize(
        client, key, sourceId=ids[0], event={"player_id": "s", "timestamp": 1763700000000}
    )
    assert millis["outcome"]["event"]["occurredAt"].startswith("2025-11-21T04:40:00")


async def test_seed_001_record_without_its_own_id_goes_through_the_telco_cdr_source(
    client, make_tenant
):
    key = await make_tenant("telco")
    payload = await normalize(client, key, sourceType="cdr", event=SEED_001_CDR)
    assert payload["errors"] == []
    assert payload["outcome"]["event"]["eventType"] == "CALL"


async def test_out_of_range_source_ids_and_dates_are_clear_errors(client, make_tenant):
    key = await make_tenant("telco")
    for source_id in ("3000000000", "99999999999999999999999"):
        found = await normalize(client, key, sourceId=source_id, event={"customer_id": "x"})
        assert found["errors"][0]["code"] == "NOT_FOUND"
    ancient = await normalize(
        client,
        key,
        sourceType="cdr",
        event={"customer_id": "x", "call_type": "outgoing", "call_time": "-62135596800"},
    )
    assert ancient["errors"][0]["code"] == "INVALID"
    assert await Event.all().count() == 0


async def test_connection_config_secrets_never_appear_in_errors_or_logs(
    client, make_tenant, caplog
):
    key = await make_tenant("telco")
    config = {"api_key": "SECRET-VAR-1", "port": 5432}
    # Variables: the input lacks its name, and graphql-core's message quotes the value.
    by_variables = await gql(
        client,
        CREATE,
        {"input": {"sourceType": "cdr", "eventMapping": {}, "connectionConfig": config}},
        token=key,
        expect_errors=True,
    )
    # Inline: a wrong type beside the secret, and the logged error's source line.
    inline = await gql(
        client,
        'mutation { createDataSource(input: {sourceType: "cdr", name: 5, eventMapping: {}, '
        'connectionConfig: {api_key: "SECRET-INLINE-2"}}) { errors { code } } }',
        token=key,
        expect_errors=True,
    )
    answered = str(by_variables.errors) + str(inline.errors)
    assert by_variables.errors and inline.errors
    assert "required field 'name'" in answered and "[redacted]" in answered
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "required field 'name'" in logged
    for secret in ("SECRET-VAR-1", "5432", "SECRET-INLINE-2"):
        assert secret not in answered and secret not in logged
