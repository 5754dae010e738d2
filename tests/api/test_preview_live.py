"""previewEvent publishes nothing (issue 3): a subscriber to the player's pointsChanged
and levelUp hears nothing of a preview, even one that would level the player up, and
nothing is written; the next recordEvent is what arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from models import Event, Player, PointTransaction, Wallet
from tests.api.test_live import LEVEL, POINTS, post, wait_for_subscribers
from tests.wsclient import GraphQLWebSocket

EVENT = """mutation($input: RecordEventInput!) { %s(input: $input) {
  outcome { pointsAwarded duplicate event { id } wallet { balance lifetimeEarned }
            levelUp { from to bonusPoints } }
  errors { code message } } }"""
RECORD = EVENT % "recordEvent"
PREVIEW = EVENT % "previewEvent"
QUIET_SECONDS = 1.5  # a published message reaches a subscriber in milliseconds


class Live:
    """A server, a telco tenant's admin key and a socket subscribed to one player's
    pointsChanged and levelUp."""

    def __init__(self, server: Any, key: str, ws: GraphQLWebSocket) -> None:
        self.server, self.key, self.ws = server, key, ws
        self.points_op = self.level_op = ""

    async def subscribe(self, player_id: str) -> None:
        self.points_op = await self.ws.subscribe(POINTS, {"id": player_id})
        self.level_op = await self.ws.subscribe(LEVEL, {"id": player_id})
        await wait_for_subscribers(self.server, 2)

    async def send(self, mutation: str, event: dict[str, Any]) -> dict[str, Any]:
        data = await post(self.server, self.key, mutation, {"input": event})
        (payload,) = data.values()
        assert payload["errors"] == [], payload["errors"]
        return payload["outcome"]

    async def assert_quiet(self) -> None:
        """Nothing arrives within QUIET_SECONDS."""
        with pytest.raises(TimeoutError):
            message = await self.ws.receive(within=QUIET_SECONDS)
            pytest.fail(f"a message that must not come: {message}")


@pytest.fixture
async def live(live_server_factory, make_tenant) -> AsyncIterator[Live]:
    key = await make_tenant("telco")  # RECHARGE: 1 point per unit; Silver at 500, bonus 50
    server = live_server_factory()
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    try:
        yield Live(server, key, ws)
    finally:
        await ws.close()


async def wallet_of(player_id: str) -> tuple[Any, ...]:
    player = await Player.get(external_id=player_id)
    wallet = await Wallet.get(player_id=player.id)
    return wallet.balance, wallet.lifetime_earned, wallet.level, wallet.streak_current


async def test_a_preview_that_would_level_up_publishes_and_writes_nothing(live):
    await live.subscribe("sub-1")
    recharge = {"playerId": "sub-1", "eventType": "RECHARGE", "value": 490}
    await live.send(RECORD, recharge)
    first = await live.ws.receive()
    assert first["id"] == live.points_op
    assert first["payload"]["data"]["pointsChanged"]["wallet"]["balance"] == 490.0
    before = await wallet_of("sub-1")
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1

    preview = await live.send(PREVIEW, {**recharge, "value": 20})
    # It would level the player up...
    assert preview["levelUp"] == {"from": 1, "to": 2, "bonusPoints": 50.0}
    assert preview["pointsAwarded"] == 20.0 and preview["wallet"]["balance"] == 560.0
    assert preview["event"] is None and not preview["duplicate"]
    # ...but neither subscription hears of it,
    await live.assert_quiet()
    # and nothing is written: no event, no ledger line, the wallet as it was.
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1
    assert await wallet_of("sub-1") == before

    # The same event recorded is what arrives, from the wallet the preview left alone.
    recorded = await live.send(RECORD, {**recharge, "value": 20})
    assert recorded["levelUp"]["to"] == 2
    received = [await live.ws.receive() for _ in range(3)]
    changes = [m["payload"]["data"]["pointsChanged"] for m in received if m["id"] == live.points_op]
    assert [(c["transaction"]["kind"], c["amount"], c["wallet"]["balance"]) for c in changes] == [
        ("EARN", 20.0, 560.0),
        ("LEVEL_UP_BONUS", 50.0, 560.0),
    ]
    assert changes[0]["transaction"]["balanceAfter"] == 510.0
    assert changes[0]["transaction"]["eventId"] == recorded["event"]["id"]
    (level,) = [m["payload"]["data"]["levelUp"] for m in received if m["id"] == live.level_op]
    assert (level["playerId"], level["levelUp"]["from"], level["levelUp"]["to"]) == ("sub-1", 1, 2)
    await live.assert_quiet()  # and nothing more


async def test_a_preview_of_a_new_player_publishes_nothing_and_creates_no_player(live):
    await live.subscribe("new-sub")
    event = {"playerId": "new-sub", "eventType": "RECHARGE", "value": 600}
    preview = await live.send(PREVIEW, event)
    assert preview["levelUp"]["to"] == 2 and preview["event"] is None
    await live.assert_quiet()
    assert not await Player.filter(external_id="new-sub").exists()
    assert await Event.all().count() == 0 and await PointTransaction.all().count() == 0

    await live.send(RECORD, event)
    received = [await live.ws.receive() for _ in range(3)]  # EARN, LEVEL_UP_BONUS, levelUp
    assert sorted(m["id"] for m in received) == sorted(
        [live.points_op, live.points_op, live.level_op]
    )
    earn = received[[m["id"] for m in received].index(live.points_op)]
    change = earn["payload"]["data"]["pointsChanged"]
    assert change["transaction"]["kind"] == "EARN" and change["amount"] == 600.0
    assert change["transaction"]["balanceAfter"] == 600.0


async def test_a_preview_of_an_event_already_recorded_shows_it_and_publishes_nothing(live):
    """A preview under a stored idempotency key is that event's duplicate: the stored
    event is shown, and nothing is published again."""
    await live.subscribe("sub-2")
    event = {"playerId": "sub-2", "eventType": "RECHARGE", "value": 30, "idempotencyKey": "t-9"}
    recorded = await live.send(RECORD, event)
    assert (await live.ws.receive())["id"] == live.points_op
    preview = await live.send(PREVIEW, event)
    assert preview["duplicate"] and preview["event"] == recorded["event"]
    assert preview["pointsAwarded"] == 30.0
    await live.assert_quiet()
    assert await Event.all().count() == 1 and await PointTransaction.all().count() == 1
