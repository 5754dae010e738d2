"""An HTTP body past MAX_REQUEST_BYTES is refused (413) before anything runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import gql, make_settings

LIMIT = 256 * 1024


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, max_request_bytes=LIMIT)


def _batch(events: int, metadata_bytes: int) -> bytes:
    query = "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { outcomes { pointsAwarded } errors { code } } }"
    items = [
        {
            "playerId": f"b{n}",
            "eventType": "APP_LOGIN",
            "value": 1,
            "metadata": {"pad": "x" * metadata_bytes},
        }
        for n in range(events)
    ]
    return json.dumps({"query": query, "variables": {"input": items}}).encode()


async def _players(client) -> int:
    result = await gql(client, "{ players(first: 100) { id } }")
    return len(result.data["players"])


async def test_a_body_over_the_limit_is_refused_whole_and_writes_nothing(client):
    body = _batch(40, 8 * 1024)  # ~330 KB
    assert len(body) > LIMIT
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert f"{LIMIT:,} bytes" in error["message"]
    assert await _players(client) == 0


async def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(client):
    body = _batch(40, 8 * 1024)
    sent = 0

    async def chunks():
        nonlocal sent
        for start in range(0, len(body), 16 * 1024):
            sent += 1
            yield body[start : start + 16 * 1024]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await _players(client) == 0


async def test_a_body_under_the_limit_is_served(client):
    body = _batch(20, 8 * 1024)  # ~165 KB
    assert len(body) < LIMIT
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["recordEvents"]["outcomes"]) == 20
    assert await _players(client) == 20
