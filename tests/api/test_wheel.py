"""Spin & win over GraphQL: configuration (admin), readable odds, spins for oneself."""

from __future__ import annotations

from app.services import access
from models import Spin, Tenant
from tests.conftest import gql

CONFIGURE = """mutation($input: WheelInput!) { configureWheel(input: $input) {
  wheel { name spinCost freeSpinsPerDay dailyBudget budgetLeftToday totalWeight
          prizes { index label kind points weight odds reward { id name } } }
  errors { field code message } } }"""
WHEEL = "{ wheel { totalWeight prizes { label odds } } }"
SPIN = """mutation($id: ID!, $key: String) { spinWheel(playerId: $id, idempotencyKey: $key) {
  spin { id prize { label kind } pointsWon cost free draw totalWeight player { id } redemption { status } }
  wallet { balance } duplicate errors { code message } } }"""
SPINS = "query($id: ID) { spins(playerId: $id) { id draw prize { label } player { id } } }"
UPSERT = "mutation($id: ID!) { upsertPlayer(input: {id: $id}) { errors { code } } }"
PRIZES = [
    {"label": "5 points", "kind": "POINTS", "points": 5, "weight": 1},
    {"label": "Try again", "kind": "NOTHING", "weight": 3},
]


async def test_configure_read_the_odds_and_spin(client, make_tenant, settings):
    admin = await make_tenant("agents", slug="spin")
    tenant = await Tenant.get(slug="spin")
    bad = await gql(
        client,
        CONFIGURE,
        {"input": {"prizes": [{"label": "x", "kind": "POINTS", "weight": 1}]}},
        token=admin,
    )
    assert bad.data["configureWheel"]["errors"][0]["code"] == "INVALID"
    configured = await gql(
        client,
        CONFIGURE,
        {"input": {"prizes": PRIZES, "freeSpinsPerDay": 1, "spinCost": 10, "dailyBudget": 500}},
        token=admin,
    )
    wheel = configured.data["configureWheel"]["wheel"]
    assert [p["odds"] for p in wheel["prizes"]] == [0.25, 0.75] and wheel["totalWeight"] == 4
    for who in ("me", "you"):
        await gql(client, UPSERT, {"id": who}, token=admin)
    token = await access.mint_player_token(settings, tenant, "me")
    seen = await gql(client, WHEEL, token=token)  # players read the odds
    assert seen.data["wheel"]["prizes"][1] == {"label": "Try again", "odds": 0.75}

    spun = (await gql(client, SPIN, {"id": "me", "key": "k"}, token=token)).data["spinWheel"]
    assert spun["errors"] == [] and spun["spin"]["free"] and spun["spin"]["cost"] == 0
    assert spun["spin"]["player"] == {"id": "me"} and 0 <= spun["spin"]["draw"] < 4
    again = (await gql(client, SPIN, {"id": "me", "key": "k"}, token=token)).data["spinWheel"]
    assert again["duplicate"] and again["spin"]["id"] == spun["spin"]["id"]
    paid = (await gql(client, SPIN, {"id": "me"}, token=token)).data["spinWheel"]
    if spun["spin"]["pointsWon"] < 10:
        assert paid["errors"][0]["code"] == "INSUFFICIENT_POINTS"

    forbidden = await gql(client, SPIN, {"id": "you"}, token=token, expect_errors=True)
    assert forbidden.errors[0]["extensions"]["code"] == "FORBIDDEN"
    reconfigure = await gql(
        client, CONFIGURE, {"input": {"prizes": PRIZES}}, token=token, expect_errors=True
    )
    assert reconfigure.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert await Spin.filter(player__external_id="you").count() == 0
    audit = await gql(client, SPINS, {"id": "me"}, token=admin)
    assert audit.data["spins"][-1]["id"] == spun["spin"]["id"]
    own = await gql(client, SPINS, {}, token=token)
    assert {s["player"]["id"] for s in own.data["spins"]} == {"me"}
