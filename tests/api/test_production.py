"""Production mode: credentials are required; GraphiQL and introspection are off."""

from __future__ import annotations

import pytest

from app.services import access
from tests.conftest import gql, make_settings


@pytest.fixture
def settings(database_url):
    return make_settings(
        database_url, questline_env="production", questline_secret="a-real-production-secret-123"
    )


async def test_production_refuses_requests_without_credentials(client):
    result = await gql(client, "{ players { id } }", expect_errors=True)
    assert result.data is None
    assert result.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "credentials required" in result.errors[0]["message"]


async def test_production_accepts_a_valid_key(client):
    _, key = await access.create_api_key("default", "admin")
    query = 'mutation { upsertPlayer(input: {id: "p"}) { player { id } errors { code } } }'
    result = await gql(client, query, token=key)
    assert result.data["upsertPlayer"]["player"] == {"id": "p"}


async def test_production_serves_no_graphiql(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code != 200 or "graphiql" not in response.text.lower()


def test_production_refuses_the_default_secret(database_url):
    with pytest.raises(ValueError, match="QUESTLINE_SECRET"):
        make_settings(database_url, questline_env="production")


async def test_a_querys_bad_argument_is_a_clear_error_with_its_code_not_a_masked_one(
    client, make_tenant
):
    """A domain error raised by a query's field (here `first` past the page size, on a
    nested connection) is answered as it is, with its code and field, in production too,
    where every unexpected error is masked; an id that names no row is NOT_FOUND."""
    key = await make_tenant("habits")
    record = 'mutation { recordEvent(input: {playerId: "p", eventType: "x", value: 1}) { errors { code } } }'
    await gql(client, record, token=key)
    for query, code, message in [
        (
            '{ player(id: "p") { events(first: 500) { edges { node { id } } } } }',
            "INVALID",
            "first must be between 0 and 100",
        ),
        (
            "{ leaderboard(first: 101) { totalPlayers } }",
            "INVALID",
            "first must be between 0 and 100",
        ),
        ('mutation { approveRedemption(id: "\u00b9") { errors { code } } }', None, None),
    ]:
        result = await gql(client, query, token=key, expect_errors=code is not None)
        if code is None:  # a payload error: NOT_FOUND, not a server error
            assert result.data["approveRedemption"]["errors"] == [{"code": "NOT_FOUND"}]
            continue
        (error,) = result.errors
        assert error["message"] == message, query
        assert error["extensions"]["code"] == code, query
        assert error["extensions"]["field"] == ["first"], query
