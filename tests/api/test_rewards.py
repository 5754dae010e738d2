"""The rewards shop over GraphQL: names and shapes of the contract, roles, player tokens,
payload errors, and a constant number of queries for the redemptions list."""

from __future__ import annotations

import pytest

from app.services import access
from models import PointTransaction, Redemption, RewardItem, Tenant
from tests.api.test_query_counts import count_queries  # noqa: F401 (fixture)
from tests.conftest import gql

CREATE = """mutation($input: RewardItemInput!) { createRewardItem(input: $input) {
  reward { id name description category pointsCost stock featured requiresApproval
           perPlayerLimit minLevel expiryDays codePrefix details }
  errors { field code message } } }"""
REDEEM = """mutation($input: RedeemRewardInput!) { redeemReward(input: $input) {
  redemption { id quantity pointsSpent status code expiresAt createdAt
               player { id } reward { id name } }
  wallet { balance } duplicate errors { field code message } } }"""
FLOW = """mutation($id: ID!) {
  %s(id: $id) { redemption { id status code } wallet { balance } errors { code message } } }"""
LIST = """query($player: ID, $status: RedemptionStatus) { redemptions(playerId: $player, status: $status) {
  id status quantity pointsSpent player { id displayName } reward { id name stock } } }"""
ADJUST = """mutation($id: ID!, $amount: Float!) { adjustPoints(input: {playerId: $id, amount: $amount,
  reason: "funds"}) { errors { code } } }"""
UPSERT = "mutation($id: ID!) { upsertPlayer(input: {id: $id}) { errors { code } } }"
PAGE = "query($offset: Int!) { rewards(first: 1, offset: $offset) { name } }"
ISSUE = """mutation($player: ID!, $reward: ID!) { issueReward(playerId: $player, rewardId: $reward,
  reason: "campaign: bonus data") { redemption { status pointsSpent code } errors { code } } }"""


async def create(client, key, **fields):
    values = {"name": "Gift card", "category": "PHYSICAL", "pointsCost": 100, **fields}
    result = await gql(client, CREATE, {"input": values}, token=key)
    return result.data["createRewardItem"]


async def funded(client, key, player, amount):
    await gql(client, UPSERT, {"id": player}, token=key)
    await gql(client, ADJUST, {"id": player, "amount": amount}, token=key)


@pytest.fixture
async def admin(make_tenant):
    return await make_tenant("callcenter", slug="rw")


async def test_create_list_redeem_and_the_approval_flow(client, admin):
    created = await create(
        client,
        admin,
        name="Team lunch",
        category="EXPERIENCE",
        pointsCost=250.5,
        stock=3,
        featured=True,
        requiresApproval=True,
        perPlayerLimit=2,
        details={"where": "canteen"},
    )
    assert created["errors"] == []
    reward = created["reward"]
    assert reward["pointsCost"] == 250.5 and reward["stock"] == 3 and reward["featured"]
    assert reward["details"] == {"where": "canteen"} and reward["codePrefix"] == "REWARD"
    shop = await gql(client, "{ rewards(featuredOnly: true) { id name } }", token=admin)
    assert shop.data["rewards"] == [{"id": reward["id"], "name": "Team lunch"}]
    await create(client, admin, name="Sticker", category="PHYSICAL", pointsCost=1)
    pages = [(await gql(client, PAGE, {"offset": n}, token=admin)).data for n in (0, 1, 2)]
    assert pages == [
        {"rewards": [{"name": "Team lunch"}]},  # featured first
        {"rewards": [{"name": "Sticker"}]},
        {"rewards": []},
    ]
    too_many = await gql(client, "{ rewards(first: 501) { id } }", token=admin, expect_errors=True)
    assert "first is between 0 and 500" in too_many.errors[0]["message"]
    await funded(client, admin, "agent", 600)

    redeem = {"playerId": "agent", "rewardId": reward["id"], "idempotencyKey": "k1"}
    result = (await gql(client, REDEEM, {"input": redeem}, token=admin)).data["redeemReward"]
    assert result["errors"] == [] and result["wallet"]["balance"] == 349.5
    redemption = result["redemption"]
    assert redemption["status"] == "PENDING" and redemption["code"] is None
    assert redemption["player"] == {"id": "agent"} and redemption["quantity"] == 1
    again = (await gql(client, REDEEM, {"input": redeem}, token=admin)).data["redeemReward"]
    assert again["duplicate"] and again["redemption"]["id"] == redemption["id"]

    approved = await gql(client, FLOW % "approveRedemption", {"id": redemption["id"]}, token=admin)
    approved = approved.data["approveRedemption"]
    assert approved["redemption"]["status"] == "FULFILLED"
    assert approved["redemption"]["code"].startswith("REWARD-")
    rejected = await gql(client, FLOW % "rejectRedemption", {"id": redemption["id"]}, token=admin)
    assert rejected.data["rejectRedemption"]["errors"][0]["code"] == "INVALID_TRANSITION"
    done = await gql(client, FLOW % "completeRedemption", {"id": redemption["id"]}, token=admin)
    assert done.data["completeRedemption"]["redemption"]["status"] == "COMPLETED"

    second = (
        await gql(client, REDEEM, {"input": {**redeem, "idempotencyKey": None}}, token=admin)
    ).data["redeemReward"]["redemption"]
    refund = await gql(
        client,
        'mutation($id: ID!) { rejectRedemption(id: $id, reason: "sold out") '
        "{ redemption { status } wallet { balance } errors { code } } }",
        {"id": second["id"]},
        token=admin,
    )
    assert refund.data["rejectRedemption"]["wallet"]["balance"] == 349.5
    listed = await gql(client, LIST, {"player": "agent", "status": "REJECTED"}, token=admin)
    assert [r["id"] for r in listed.data["redemptions"]] == [second["id"]]


async def test_payload_errors_for_bad_input_write_nothing(client, admin):
    reward = (await create(client, admin, pointsCost=100, stock=1))["reward"]
    await funded(client, admin, "poor", 50)
    await funded(client, admin, "rich", 500)
    before = (await Redemption.all().count(), await PointTransaction.all().count())
    cases = [
        ({"playerId": "rich", "rewardId": "999"}, "NOT_FOUND"),
        ({"playerId": "rich", "rewardId": reward["id"], "quantity": 0}, "INVALID"),
        ({"playerId": "rich", "rewardId": reward["id"], "quantity": 2}, "OUT_OF_STOCK"),
        ({"playerId": "poor", "rewardId": reward["id"]}, "INSUFFICIENT_POINTS"),
        ({"playerId": "ghost", "rewardId": reward["id"]}, "NOT_FOUND"),
    ]
    for values, code in cases:
        payload = (await gql(client, REDEEM, {"input": values}, token=admin)).data["redeemReward"]
        assert payload["redemption"] is None
        assert [e["code"] for e in payload["errors"]] == [code], values
        assert payload["errors"][0]["field"][0] == "input"
    bad_item = await create(client, admin, pointsCost=-5)
    assert bad_item["errors"][0]["code"] == "INVALID" and bad_item["reward"] is None
    assert (await Redemption.all().count(), await PointTransaction.all().count()) == before
    assert await RewardItem.all().count() == 1


async def test_player_tokens_redeem_only_for_themselves(client, admin, settings):
    tenant = await Tenant.get(slug="rw")
    reward = (await create(client, admin, pointsCost=10, requiresApproval=True))["reward"]
    await funded(client, admin, "me", 100)
    await funded(client, admin, "you", 100)
    token = await access.mint_player_token(settings, tenant, "me")
    mine = await gql(
        client, REDEEM, {"input": {"playerId": "me", "rewardId": reward["id"]}}, token=token
    )
    rid = mine.data["redeemReward"]["redemption"]["id"]
    theirs = await gql(
        client,
        REDEEM,
        {"input": {"playerId": "you", "rewardId": reward["id"]}},
        token=token,
        expect_errors=True,
    )
    assert theirs.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert await Redemption.filter(player__external_id="you").count() == 0
    # The admin's steps are the admin's; the player's redemptions are the player's.
    approve = await gql(
        client, FLOW % "approveRedemption", {"id": rid}, token=token, expect_errors=True
    )
    assert approve.errors[0]["extensions"]["code"] == "FORBIDDEN"
    other_token = await access.mint_player_token(settings, tenant, "you")
    cancel = await gql(
        client, FLOW % "cancelRedemption", {"id": rid}, token=other_token, expect_errors=True
    )
    assert cancel.errors[0]["extensions"]["code"] == "FORBIDDEN"
    own_list = await gql(client, "{ redemptions { id } }", token=token)
    assert [r["id"] for r in own_list.data["redemptions"]] == [rid]
    others = await gql(client, LIST, {"player": "you"}, token=token, expect_errors=True)
    assert others.errors[0]["extensions"]["code"] == "FORBIDDEN"
    cancelled = await gql(client, FLOW % "cancelRedemption", {"id": rid}, token=token)
    assert cancelled.data["cancelRedemption"]["redemption"]["status"] == "CANCELLED"
    assert cancelled.data["cancelRedemption"]["wallet"]["balance"] == 100
    _, viewer = await access.create_api_key("rw", "viewer")
    refused = await gql(
        client,
        REDEEM,
        {"input": {"playerId": "me", "rewardId": reward["id"]}},
        token=viewer,
        expect_errors=True,
    )
    assert refused.errors[0]["extensions"]["code"] == "FORBIDDEN"
    for mutation in (CREATE, ISSUE):
        variables = (
            {"input": {"name": "x", "category": "OFFER", "pointsCost": 0}}
            if mutation is CREATE
            else {"player": "me", "reward": reward["id"]}
        )
        denied = await gql(client, mutation, variables, token=token, expect_errors=True)
        assert denied.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_issue_reward_gives_an_offer_at_cost_zero(client, admin):
    reward = (await create(client, admin, name="1 GB", category="OFFER", pointsCost=300))["reward"]
    await funded(client, admin, "cust", 0)
    issued = await gql(client, ISSUE, {"player": "cust", "reward": reward["id"]}, token=admin)
    redemption = issued.data["issueReward"]["redemption"]
    assert redemption["status"] == "FULFILLED" and redemption["pointsSpent"] == 0
    assert redemption["code"].startswith("REWARD-")


async def test_the_redemptions_list_costs_the_same_queries_for_3_or_30(
    client,
    admin,
    count_queries,  # noqa: F811
):
    items = [(await create(client, admin, name=f"r{n}", pointsCost=1))["reward"] for n in range(3)]
    counts = []
    for players in (3, 30):
        await Redemption.all().delete()
        for n in range(players):
            await funded(client, admin, f"l{n}", 5)
            values = {"playerId": f"l{n}", "rewardId": items[n % 3]["id"]}
            await gql(client, REDEEM, {"input": values}, token=admin)
        before = count_queries.count
        listed = await gql(client, LIST, {}, token=admin)
        counts.append(count_queries.count - before)
        assert len(listed.data["redemptions"]) == players
    assert counts[0] == counts[1], counts
