"""The pub/sub hub: concurrent subscribers, slow subscribers, delivery through Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.realtime import Hub, SubscriberTooSlow
from tests.conftest import REDIS_URL


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
