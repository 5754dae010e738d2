"""Query depth limit, and the parse/validation caches actually hitting."""

from __future__ import annotations

from strawberry.extensions.validation_cache import _get_validate_cache

from tests.conftest import gql


async def test_a_query_deeper_than_12_is_refused(client):
    nested = "id"
    for _ in range(7):
        nested = f"team {{ members {{ {nested} }} }}"
    result = await gql(client, f'{{ player(id: "x") {{ {nested} }} }}', expect_errors=True)
    assert "exceeds maximum operation depth" in result.errors[0]["message"]


async def test_repeated_operations_are_validated_once(client):
    cache = _get_validate_cache(512)
    query = '{ players(first: 3, segment: "validation-cache-probe") { id } }'
    await gql(client, query)
    hits = cache.cache_info().hits
    for _ in range(3):
        await gql(client, query)
    assert cache.cache_info().hits == hits + 3
