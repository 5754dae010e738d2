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
