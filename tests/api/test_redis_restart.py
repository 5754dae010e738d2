"""Live updates survive a Redis restart; mutations keep succeeding while it is down.

The test runs its own redis-server on a free port and stops only that one."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import httpx
import pytest

from tests.api.test_live import POINTS, RECORD, post, wait_for_subscribers
from tests.conftest import free_port
from tests.wsclient import GraphQLWebSocket

pytestmark = pytest.mark.redis


class OwnRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ok = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ok.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the restart test")
    redis = OwnRedis()
    redis.start()
    yield redis
    redis.stop()


async def realtime(server) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{server.url}/readyz")).json()["realtime"]


async def test_subscribers_receive_again_after_redis_comes_back(
    live_server_factory, make_tenant, own_redis
):
    key = await make_tenant("habits", slug="restart")
    server = live_server_factory(REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(POINTS, {"id": "r"})
    await wait_for_subscribers(server, 1)
    await post(server, key, RECORD, {"input": {"playerId": "r", "eventType": "x", "value": 1}})
    assert (await ws.receive())["payload"]["data"]["pointsChanged"]["amount"] == 1.0

    own_redis.stop()
    # Redis is down: the mutation still succeeds (its update is lost, and counted).
    data = await post(
        server, key, RECORD, {"input": {"playerId": "r", "eventType": "x", "value": 2}}
    )
    assert data["recordEvent"]["outcome"]["pointsAwarded"] == 2.0
    assert (await realtime(server))["lost"] >= 1

    own_redis.start()
    for _ in range(100):  # the watchdog notices and resubscribes
        if (await realtime(server))["reconnects"] >= 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the hub did not resubscribe")
    await post(server, key, RECORD, {"input": {"playerId": "r", "eventType": "x", "value": 3}})
    change = (await ws.receive())["payload"]["data"]["pointsChanged"]
    assert change["amount"] == 3.0 and change["wallet"]["balance"] == 6.0
    await ws.close()


async def test_a_server_starts_while_redis_is_down_and_goes_live_when_it_comes(
    live_server_factory, make_tenant
):
    key = await make_tenant("habits", slug="late-redis")
    redis = OwnRedis()  # its port is free: nothing answers there yet
    server = live_server_factory(REDIS_URL=f"redis://127.0.0.1:{redis.port}/0")
    try:
        data = await post(
            server, key, RECORD, {"input": {"playerId": "d", "eventType": "x", "value": 1}}
        )
        assert data["recordEvent"]["outcome"]["pointsAwarded"] == 1.0
        redis.start()
        for _ in range(100):
            if (await realtime(server))["reconnects"] >= 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the hub did not subscribe once Redis came")
        ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
        await ws.subscribe(POINTS, {"id": "d"})
        await wait_for_subscribers(server, 1)
        await post(server, key, RECORD, {"input": {"playerId": "d", "eventType": "x", "value": 2}})
        assert (await ws.receive())["payload"]["data"]["pointsChanged"]["amount"] == 2.0
        await ws.close()
    finally:
        redis.stop()


async def test_a_hung_redis_does_not_hold_mutations(live_server_factory, make_tenant, own_redis):
    """A Redis that stops answering (SIGSTOP) rather than refusing: each mutation still
    answers within the Redis timeouts, with its outcome."""
    import signal

    key = await make_tenant("habits", slug="hung")
    server = live_server_factory(REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0")
    await post(server, key, RECORD, {"input": {"playerId": "h", "eventType": "x", "value": 1}})
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        data = await post(
            server, key, RECORD, {"input": {"playerId": "h", "eventType": "x", "value": 2}}
        )
        assert data["recordEvent"]["outcome"]["pointsAwarded"] == 2.0
        assert time.monotonic() - started < 10  # the boards' and the hub's timeouts
    finally:
        own_redis.process.send_signal(signal.SIGCONT)


async def test_live_boards_look_again_when_redis_comes_back(
    live_server_factory, make_tenant, own_redis
):
    """A change made while Redis was away was never announced: once the hub has
    resubscribed, live boards look again and push it."""
    key = await make_tenant("habits", slug="relook")
    server = live_server_factory(REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0")
    ws = await GraphQLWebSocket.connect(server.ws_url, {"Authorization": f"Bearer {key}"})
    await ws.subscribe(
        "subscription { leaderboardChanged(period: ALL_TIME, first: 3) "
        "{ entries { points player { id } } } }"
    )
    assert (await ws.receive())["payload"]["data"]["leaderboardChanged"]["entries"] == []
    own_redis.stop()
    await post(server, key, RECORD, {"input": {"playerId": "q", "eventType": "x", "value": 7}})
    own_redis.start()
    pushed = (await ws.receive(within=20))["payload"]["data"]["leaderboardChanged"]
    assert pushed["entries"] == [{"points": 7.0, "player": {"id": "q"}}]
    await ws.close()
