"""Players over HTTP: upsert, read, list, teams, and bad input that writes nothing."""

from __future__ import annotations

import json

from models import Player
from tests.conftest import gql

UPSERT = """
mutation($input: PlayerInput!) {
  upsertPlayer(input: $input) {
    player { id kind displayName segment timezone attributes createdAt team { id name } }
    errors { field message code }
  }
}"""

PLAYER = "query($id: ID!) { player(id: $id) { id displayName segment timezone team { id members { id } } } }"


async def test_upsert_creates_then_updates_only_given_fields(client):
    first = await gql(
        client,
        UPSERT,
        {
            "input": {
                "id": "p1",
                "displayName": "Pia",
                "segment": "prepaid",
                "teamId": "north",
                "timezone": "Europe/Helsinki",
                "attributes": {"activeProducts": 2},
            }
        },
    )
    player = first.data["upsertPlayer"]["player"]
    assert first.data["upsertPlayer"]["errors"] == []
    assert player["kind"] == "CUSTOMER"
    assert player["timezone"] == "Europe/Helsinki"
    assert player["attributes"] == {"activeProducts": 2}
    assert player["team"] == {"id": "north", "name": "north"}

    second = await gql(client, UPSERT, {"input": {"id": "p1", "segment": "postpaid"}})
    player = second.data["upsertPlayer"]["player"]
    assert player["displayName"] == "Pia"  # untouched
    assert player["segment"] == "postpaid"
    assert await Player.filter(external_id="p1").count() == 1


async def test_player_query_reads_team_members_and_tenant_timezone(client):
    for pid in ("a", "b"):
        await gql(client, UPSERT, {"input": {"id": pid, "teamId": "t1"}})
    result = await gql(client, PLAYER, {"id": "a"})
    player = result.data["player"]
    assert player["timezone"] == "UTC"  # the tenant's, since the player has none
    assert [m["id"] for m in player["team"]["members"]] == ["a", "b"]
    missing = await gql(client, PLAYER, {"id": "nobody"})
    assert missing.data == {"player": None}


async def test_players_lists_with_keyset_pagination_and_filters(client):
    for i in range(5):
        await gql(
            client,
            UPSERT,
            {
                "input": {
                    "id": f"p{i}",
                    "segment": "vip" if i % 2 else "std",
                    "kind": "AGENT" if i == 4 else "CUSTOMER",
                }
            },
        )
    query = "query($after: String, $segment: String, $kind: PlayerKind) { players(first: 2, after: $after, segment: $segment, kind: $kind) { id } }"
    page1 = await gql(client, query)
    page2 = await gql(client, query, {"after": "p1"})
    assert [p["id"] for p in page1.data["players"]] == ["p0", "p1"]
    assert [p["id"] for p in page2.data["players"]] == ["p2", "p3"]
    vip = await gql(client, query, {"segment": "vip"})
    assert [p["id"] for p in vip.data["players"]] == ["p1", "p3"]
    agents = await gql(client, query, {"kind": "AGENT"})
    assert [p["id"] for p in agents.data["players"]] == ["p4"]


async def test_players_refuses_a_page_larger_than_100(client):
    result = await gql(client, "{ players(first: 101) { id } }", expect_errors=True)
    assert "first must be between 0 and 100" in result.errors[0]["message"]


async def test_invalid_timezone_is_a_user_error_and_writes_nothing(client):
    result = await gql(client, UPSERT, {"input": {"id": "tz", "timezone": "Mars/Olympus"}})
    payload = result.data["upsertPlayer"]
    assert payload["player"] is None
    assert payload["errors"][0]["code"] == "INVALID"
    assert payload["errors"][0]["field"] == ["input", "timezone"]
    assert "Mars/Olympus" in payload["errors"][0]["message"]
    assert not await Player.filter(external_id="tz").exists()


async def test_attributes_must_be_an_object(client):
    result = await gql(client, UPSERT, {"input": {"id": "x", "attributes": [1, 2]}})
    assert result.data["upsertPlayer"]["errors"][0]["code"] == "INVALID"
    assert not await Player.filter(external_id="x").exists()


async def test_malformed_json_body_is_a_clear_400_and_writes_nothing(client):
    response = await client.post(
        "/graphql",
        content=b'{"query": "mutation { upsertPlayer(',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in response.text
    assert await Player.all().count() == 0


async def test_malformed_query_is_a_top_level_error(client):
    result = await gql(
        client, "mutation { upsertPlayer(input: {id: }) { errors { code } } }", expect_errors=True
    )
    assert result.errors and result.data is None
    assert await Player.all().count() == 0


async def test_get_serves_queries_but_not_mutations(client):
    ok = await client.get("/graphql", params={"query": "{ players { id } }"})
    assert ok.status_code == 200 and ok.json() == {"data": {"players": []}}
    refused = await client.get(
        "/graphql",
        params={"query": 'mutation { upsertPlayer(input: {id: "g"}) { errors { code } } }'},
    )
    assert refused.status_code == 400 and "mutation" in refused.text.lower()
    assert await Player.all().count() == 0


async def test_upsert_team_renames(client):
    query = 'mutation { upsertTeam(input: {id: "t9", name: "Night shift"}) { team { id name } errors { code } } }'
    result = await gql(client, query)
    assert result.data["upsertTeam"]["team"] == {"id": "t9", "name": "Night shift"}


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).text == "ok"
    ready = await client.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200 and body["ready"] is True and body["database"] == "ok"
    assert json.dumps(body)
