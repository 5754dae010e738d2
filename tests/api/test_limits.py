"""Query depth limit, and the parse/validation caches actually hitting."""

from __future__ import annotations

from schema.build import validation_counts
from tests.conftest import gql


async def test_a_query_deeper_than_12_is_refused(client):
    nested = "id"
    for _ in range(7):
        nested = f"team {{ members {{ {nested} }} }}"
    for _ in range(2):  # the second time from the validation cache
        result = await gql(client, f'{{ player(id: "x") {{ {nested} }} }}', expect_errors=True)
        assert "exceeds maximum operation depth" in result.errors[0]["message"]
        assert result.data is None


async def test_an_invalid_operation_is_refused_every_time(client):
    misses = validation_counts["misses"]
    for _ in range(3):
        result = await gql(client, "{ players(first: 1) { nope } }", expect_errors=True)
        assert "Cannot query field 'nope'" in result.errors[0]["message"]
    assert validation_counts["misses"] == misses + 1


async def test_repeated_operations_are_validated_once(client):
    query = '{ players(first: 3, segment: "validation-cache-probe") { id } }'
    await gql(client, query)
    hits, misses = validation_counts["hits"], validation_counts["misses"]
    for _ in range(3):
        await gql(client, query)
    assert validation_counts["hits"] == hits + 3
    assert validation_counts["misses"] == misses
    # Another text is another document: validated on its own.
    await gql(client, query.replace("first: 3", "first: 4"))
    assert validation_counts["misses"] == misses + 1
