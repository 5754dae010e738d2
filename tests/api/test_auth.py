"""Auth: API keys, roles, revocation, player tokens, tenant isolation, production mode."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.services import access
from app.services.tenants import create_tenant
from models import ApiKey, Player
from tests.conftest import gql, logged_queries

PLAYER = "query($id: ID!) { player(id: $id) { id displayName } }"
UPSERT = 'mutation($id: ID!) { upsertPlayer(input: {id: $id, displayName: "X"}) { player { id } errors { code } } }'


@pytest.fixture
async def two_tenants(client):
    a = await create_tenant("tenant-a", preset="habits")
    b = await create_tenant("tenant-b", preset="callcenter")
    _, key_a = await access.create_api_key("tenant-a", "admin")
    _, key_b = await access.create_api_key("tenant-b", "admin")
    await gql(client, UPSERT, {"id": "shared-id"}, token=key_a)
    await gql(client, UPSERT, {"id": "only-a"}, token=key_a)
    return a, b, key_a, key_b


async def test_tenant_b_cannot_read_tenant_a_player(client, two_tenants):
    _, _, key_a, key_b = two_tenants
    assert (await gql(client, PLAYER, {"id": "only-a"}, token=key_a)).data["player"]
    assert (await gql(client, PLAYER, {"id": "only-a"}, token=key_b)).data == {"player": None}
    # The same integrator id in two tenants is two players.
    await gql(client, UPSERT, {"id": "shared-id"}, token=key_b)
    assert await Player.filter(external_id="shared-id").count() == 2
    listed = await gql(client, "{ players { id } }", token=key_b)
    assert [p["id"] for p in listed.data["players"]] == ["shared-id"]


async def test_a_player_token_reads_its_own_player_only(client, settings, two_tenants):
    tenant_a, _, _, _ = two_tenants
    token = await access.mint_player_token(settings, tenant_a, "only-a")
    own = await gql(client, PLAYER, {"id": "only-a"}, token=token)
    assert own.data["player"]["id"] == "only-a"
    other = await gql(client, PLAYER, {"id": "shared-id"}, token=token, expect_errors=True)
    assert other.data == {"player": None}
    assert other.errors[0]["extensions"]["code"] == "FORBIDDEN"
    # Read-only: no mutations, no listing of everyone.
    write = await gql(client, UPSERT, {"id": "only-a"}, token=token, expect_errors=True)
    assert write.errors[0]["extensions"]["code"] == "FORBIDDEN"
    listing = await gql(client, "{ players { id } }", token=token, expect_errors=True)
    assert listing.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_expired_and_tampered_player_tokens_are_refused(client, settings, two_tenants):
    tenant_a, tenant_b, _, _ = two_tenants
    expired = await access.mint_player_token(settings, tenant_a, "only-a", timedelta(seconds=-5))
    result = await gql(client, PLAYER, {"id": "only-a"}, token=expired, expect_errors=True)
    assert "expired" in result.errors[0]["message"]
    # A token signed for tenant B but claiming tenant A does not verify.
    forged = await access.mint_player_token(settings, tenant_b, "only-a")
    signature = forged.split(".")[2]
    good = await access.mint_player_token(settings, tenant_a, "only-a")
    mixed = ".".join([*good.split(".")[:2], signature])
    result = await gql(client, PLAYER, {"id": "only-a"}, token=mixed, expect_errors=True)
    assert result.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_revoked_key_stops_working(client, two_tenants):
    _, _, key_a, _ = two_tenants
    assert (await gql(client, PLAYER, {"id": "only-a"}, token=key_a)).data["player"]  # works
    await access.revoke_api_key(key_a)
    result = await gql(client, PLAYER, {"id": "only-a"}, token=key_a, expect_errors=True)
    assert result.data == {"player": None}
    assert result.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in result.errors[0]["message"]


async def test_unknown_and_malformed_credentials(client):
    for header in ("Bearer ql_000000000000_nope", "Bearer not-a-token", "Basic abc"):
        response = await client.post(
            "/graphql", json={"query": "{ players { id } }"}, headers={"Authorization": header}
        )
        body = response.json()
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_roles_gate_mutations(client, two_tenants):
    _, viewer_key = await access.create_api_key("tenant-a", "viewer")
    _, integrator_key = await access.create_api_key("tenant-a", "integrator")
    for key in (viewer_key, integrator_key):
        result = await gql(client, UPSERT, {"id": "new"}, token=key, expect_errors=True)
        assert result.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert not await Player.filter(external_id="new").exists()
    # Viewers read.
    assert (await gql(client, PLAYER, {"id": "only-a"}, token=viewer_key)).data["player"]


async def test_unknown_role_is_refused_and_writes_nothing(client):
    from app.errors import UserError

    with pytest.raises(UserError) as caught:
        await access.create_api_key("default", "superuser")
    assert caught.value.code == "INVALID" and "superuser" in caught.value.message
    assert await ApiKey.all().count() == 0


async def test_keys_are_stored_hashed(client):
    row, key = await access.create_api_key("default", "admin")
    stored = await ApiKey.get(id=row.id)
    assert key not in (stored.key_hash, stored.prefix) and stored.key_hash != key
    assert key.startswith(f"ql_{stored.prefix}_")


async def test_callers_missing_the_key_cache_together_share_one_read(client, settings):
    """A busy key's cache entry expires with many of its requests in flight: they read
    its row once (and write last_used_at once), and a wrong key with the same prefix
    still fails."""
    import asyncio

    from app.errors import AuthError

    await create_tenant("burst-auth", preset="habits")
    _, key = await access.create_api_key("burst-auth", "admin")
    access._verified.clear()
    with logged_queries() as counter:
        viewers = await asyncio.gather(
            *(access.authenticate(settings, key) for _ in range(20)),
            access.authenticate(settings, key[:-4] + "xxxx"),
            return_exceptions=True,
        )
    assert {v.tenant.slug for v in viewers[:20]} == {"burst-auth"}
    assert isinstance(viewers[20], AuthError)
    assert counter.count == 2  # one read of the key, one last_used_at write
    assert (await ApiKey.get(prefix=key.split("_")[1])).last_used_at is not None
    assert not len(access._key_rows)  # nothing left behind


async def test_player_tokens_read_their_tenant_once_per_cache_window(client, settings):
    """A widget's requests all name its tenant: the tenant row is read once per
    KEY_CACHE_SECONDS, by all the callers that missed it together; an unknown
    tenant's token is refused every time and nothing is kept for it."""
    import asyncio

    from app.errors import AuthError

    tenant = await create_tenant("widgets", preset="habits")
    token = await access.mint_player_token(settings, tenant, "w-1")
    with logged_queries() as first:
        viewers = await asyncio.gather(*(access.authenticate(settings, token) for _ in range(10)))
    assert {(v.tenant.slug, v.player_id) for v in viewers} == {("widgets", "w-1")}
    assert first.count == 1
    with logged_queries() as again:
        await access.authenticate(settings, token)
    assert again.count == 0
    access._tenants["widgets"] = (0.0, tenant)  # the window is over: read again
    with logged_queries() as later:
        await access.authenticate(settings, token)
    assert later.count == 1

    ghost = await create_tenant("ghost", preset="habits")
    stale = await access.mint_player_token(settings, ghost, "g-1")
    await ghost.delete()
    for _ in range(2):
        with pytest.raises(AuthError):
            await access.authenticate(settings, stale)
    assert "ghost" not in access._tenants and not len(access._tenant_rows)


# What a player token may read of another player it reaches (through its team or a
# leaderboard): every other field of Player is private to that player.
PUBLIC_PLAYER_FIELDS = {"id", "kind", "displayName", "level", "team"}


async def test_a_player_token_sees_only_the_public_fields_of_other_players(
    client, settings, two_tenants
):
    """A team leads a player token to its teammates: their public fields answer, every
    private one is FORBIDDEN. The fields are read from the schema, so a field added to
    Player later is private unless listed as public."""
    tenant_a, _, key_a, _ = two_tenants
    join = 'mutation($id: ID!) { upsertPlayer(input: {id: $id, teamId: "t1"}) { errors { code } } }'
    for pid in ("only-a", "mate"):
        await gql(client, join, {"id": pid}, token=key_a)
    token = await access.mint_player_token(settings, tenant_a, "only-a")
    fields = await gql(client, '{ __type(name: "Player") { fields { name args { name } } } }')
    names = [f["name"] for f in fields.data["__type"]["fields"]]
    assert set(names) > PUBLIC_PLAYER_FIELDS
    selection = {
        "level": "level { number }",
        "team": "team { id }",
        "wallet": "wallet { balance }",
        "streak": "streak { current }",
        "stats": "stats { totalEvents }",
        "transactions": "transactions { edges { cursor } }",
        "events": "events { edges { cursor } }",
        "rank": "rank { rank }",
    }
    query = '{{ player(id: "only-a") {{ team {{ members {{ id {} }} }} }} }}'
    for name in names:
        result = await gql(
            client, query.format(selection.get(name, name)), token=token, expect_errors=True
        )
        if name in PUBLIC_PLAYER_FIELDS:
            assert not result.errors, (name, result.errors)
            assert len(result.data["player"]["team"]["members"]) == 2
        else:  # refused for the teammate (the token's own row may answer)
            assert result.errors, name
            assert {e["extensions"]["code"] for e in result.errors} == {"FORBIDDEN"}, result
            assert all(e["path"][-1] == name for e in result.errors), result
    # Their own player's private fields still answer.
    own = await gql(
        client, '{ player(id: "only-a") { wallet { balance } attributes } }', token=token
    )
    assert own.data["player"]["wallet"] == {"balance": 0.0}
