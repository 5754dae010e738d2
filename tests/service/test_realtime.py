"""The pub/sub hub: concurrent subscribers, slow subscribers, delivery through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import Decimal

import pytest

from app.realtime import PUBLISH_CHUNK, RETRY_MAX_SECONDS, Hub, SubscriberTooSlow, retry_delay
from tests.conftest import REDIS_URL, free_port


async def _receive_one(hub: Hub, channel: str, ready: asyncio.Barrier) -> dict:
    async with hub.subscribe(channel) as messages:
        await ready.wait()
        async for message in messages:
            return message
    raise AssertionError("closed without a message")


async def _fan_out(hub: Hub, subscribers: int) -> list[dict]:
    channel = f"c-{uuid.uuid4().hex}"
    ready = asyncio.Barrier(subscribers + 1)
    tasks = [asyncio.create_task(_receive_one(hub, channel, ready)) for _ in range(subscribers)]
    await asyncio.wait_for(ready.wait(), 10)
    assert hub.subscriber_count(channel) == subscribers
    await hub.publish(channel, {"n": 1})
    received = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert hub.subscriber_count(channel) == 0  # all unsubscribed cleanly
    return received


async def test_100_simultaneous_subscribers_all_receive_in_memory():
    hub = Hub("", prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        assert await _fan_out(hub, 100) == [{"n": 1}] * 100
    finally:
        await hub.disconnect()


@pytest.mark.redis
async def test_100_simultaneous_subscribers_all_receive_through_redis():
    hub = Hub(REDIS_URL, prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        assert await _fan_out(hub, 100) == [{"n": 1}] * 100
    finally:
        await hub.disconnect()


@pytest.mark.redis
async def test_a_message_published_by_one_hub_reaches_another_through_redis():
    prefix = f"t-{uuid.uuid4().hex[:6]}"
    publisher, receiver = Hub(REDIS_URL, prefix=prefix), Hub(REDIS_URL, prefix=prefix)
    await publisher.connect()
    await receiver.connect()
    try:
        async with receiver.subscribe("points") as messages:
            await publisher.publish("points", {"amount": "4.00"})
            first = await asyncio.wait_for(anext(aiter(messages)), 5)
        assert first == {"amount": "4.00"}
    finally:
        await publisher.disconnect()
        await receiver.disconnect()


@pytest.mark.redis
async def test_a_batch_of_messages_larger_than_one_script_call_arrives_whole_and_in_order():
    prefix = f"t-{uuid.uuid4().hex[:6]}"
    publisher, receiver = Hub(REDIS_URL, prefix=prefix), Hub(REDIS_URL, prefix=prefix)
    receiver.queue_size = 4096
    await publisher.connect()
    await receiver.connect()
    count = PUBLISH_CHUNK * 2 + 7  # three script calls
    try:
        async with receiver.subscribe("a") as a_messages, receiver.subscribe("b") as b_messages:
            await publisher.publish_many(
                [("a" if n % 3 else "b", {"n": n, "amount": Decimal("1.50")}) for n in range(count)]
            )
            a_iter, b_iter = aiter(a_messages), aiter(b_messages)
            got_a = [await asyncio.wait_for(anext(a_iter), 5) for n in range(count) if n % 3]
            got_b = [await asyncio.wait_for(anext(b_iter), 5) for n in range(count) if not n % 3]
        assert [m["n"] for m in got_a] == [n for n in range(count) if n % 3]
        assert [m["n"] for m in got_b] == [n for n in range(count) if not n % 3]
        assert got_a[0]["amount"] == "1.50"  # decimals travel as exact strings
        assert publisher.published == count and publisher.lost == 0
    finally:
        await publisher.disconnect()
        await receiver.disconnect()


async def test_a_slow_subscriber_is_dropped_and_others_keep_receiving():
    hub = Hub("", prefix="slow", queue_size=4)
    await hub.connect()
    try:
        async with hub.subscribe("c") as slow, hub.subscribe("c") as fast:
            fast_iter = aiter(fast)
            for n in range(10):
                await hub.publish("c", {"n": n})
                assert (await asyncio.wait_for(anext(fast_iter), 2)) == {"n": n}
            with pytest.raises(SubscriberTooSlow):
                async for _ in slow:
                    pass
    finally:
        await hub.disconnect()


class CollectingSink:
    """A direct subscriber that keeps what it is offered."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.ended = False

    def offer(self, payload: str) -> None:
        self.payloads.append(payload)

    def end(self) -> None:
        self.ended = True


async def _direct_fan_out(hub: Hub) -> None:
    channel = f"d-{uuid.uuid4().hex}"
    rendered: list[tuple[str, dict]] = []

    def renderer(shape: str):
        async def render(message: dict) -> str:
            rendered.append((shape, message))
            return f"{shape}:{message['n']}"

        return render

    sinks = [CollectingSink() for _ in range(100)]
    async with contextlib.AsyncExitStack() as stack:
        # Joined concurrently, in two groups (say, two GraphQL documents).
        await asyncio.gather(
            *(
                stack.enter_async_context(
                    hub.subscribe_direct(channel, n % 2, renderer(f"doc{n % 2}"), sink)
                )
                for n, sink in enumerate(sinks)
            )
        )
        assert hub.subscriber_count(channel) == 100
        await hub.publish(channel, {"n": 1})
        await hub.publish(channel, {"n": 2})
        for _ in range(200):
            if all(len(s.payloads) == 2 for s in sinks):
                break
            await asyncio.sleep(0.01)
    # Each message rendered once per group, not once per subscriber.
    assert sorted(rendered, key=str) == [
        ("doc0", {"n": 1}),
        ("doc0", {"n": 2}),
        ("doc1", {"n": 1}),
        ("doc1", {"n": 2}),
    ]
    for n, sink in enumerate(sinks):
        assert sink.payloads == [f"doc{n % 2}:1", f"doc{n % 2}:2"]
    assert hub.subscriber_count(channel) == 0


async def test_direct_subscribers_get_one_rendering_per_group_in_memory():
    hub = Hub("", prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        await _direct_fan_out(hub)
        assert hub.stats()["renders"] == 4
    finally:
        await hub.disconnect()


@pytest.mark.redis
async def test_direct_subscribers_get_one_rendering_per_group_through_redis():
    hub = Hub(REDIS_URL, prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        await _direct_fan_out(hub)
    finally:
        await hub.disconnect()


async def test_a_failing_rendering_skips_that_group_only_and_disconnect_ends_sinks():
    hub = Hub("", prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()

    async def broken(message: dict) -> str:
        raise RuntimeError("boom")

    async def fine(message: dict) -> str:
        return "ok"

    bad, good = CollectingSink(), CollectingSink()
    closed = False
    try:
        async with (
            hub.subscribe_direct("c", "bad", broken, bad),
            hub.subscribe_direct("c", "good", fine, good),
        ):
            await hub.publish("c", {"n": 1})
            for _ in range(200):
                if good.payloads:
                    break
                await asyncio.sleep(0.01)
            assert (bad.payloads, good.payloads) == ([], ["ok"])
            await hub.disconnect()
            closed = True
            assert bad.ended and good.ended
    finally:
        if not closed:
            await hub.disconnect()


def test_the_hub_backs_off_while_redis_stays_away():
    assert [retry_delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert retry_delay(10_000) == RETRY_MAX_SECONDS


async def test_a_hub_without_redis_tries_again_with_backoff_not_every_heartbeat():
    """Nothing listens on the port: the hub serves in memory and looks for Redis at 1 s,
    then 2 s later, then every 4 s; at the heartbeat's pace it would be 9 times in 4.5 s."""
    hub = Hub(f"redis://127.0.0.1:{free_port()}/0", prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        await asyncio.sleep(4.5)
        assert hub.stats()["retries"] == 2 and hub.stats()["reconnects"] == 0
    finally:
        await hub.disconnect()


async def test_a_channel_nobody_subscribes_to_any_more_leaves_nothing_behind():
    """Per-player channels come and go: their locks and entries go with them."""
    hub = Hub("", prefix=f"t-{uuid.uuid4().hex[:6]}")
    await hub.connect()
    try:
        for round_ in range(3):
            channels = [f"player-{round_}-{n}" for n in range(50)]
            for group in (channels, channels[:10]):  # some channels twice at once
                received = await asyncio.gather(*(_fan_out_on(hub, c) for c in group))
                assert received == [{"n": 1}] * len(group)
            assert hub._locks == {} and hub.total_subscribers() == 0
    finally:
        await hub.disconnect()


async def _fan_out_on(hub: Hub, channel: str) -> dict:
    ready = asyncio.Barrier(3)
    tasks = [asyncio.create_task(_receive_one(hub, channel, ready)) for _ in range(2)]
    await asyncio.wait_for(ready.wait(), 10)
    await hub.publish(channel, {"n": 1})
    first, second = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert first == second
    return first
