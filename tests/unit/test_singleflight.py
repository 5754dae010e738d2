"""SingleFlight: one call in flight per key, its result (or error) shared."""

from __future__ import annotations

import asyncio

import pytest

from app.singleflight import SingleFlight


async def test_callers_during_a_call_share_it_and_later_ones_call_again():
    flight: SingleFlight[int] = SingleFlight()
    calls = []
    release = asyncio.Event()

    async def load(n: int) -> int:
        calls.append(n)
        await release.wait()
        return n * 10

    waiting = [asyncio.create_task(flight.run("k", lambda n=n: load(n))) for n in range(5)]
    other = asyncio.create_task(flight.run("other", lambda: load(99)))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [0] * 5  # the first caller's call, for all
    assert await other == 990  # another key is another call
    assert calls == [0, 99]
    assert len(flight) == 0
    assert await flight.run("k", lambda: load(7)) == 70  # finished: a new call
    assert calls == [0, 99, 7]


async def test_an_error_reaches_every_sharer_and_is_not_kept():
    flight: SingleFlight[int] = SingleFlight()
    attempts = 0

    async def failing() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(flight.run("k", failing) for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [RuntimeError] * 3 and attempts == 1
    with pytest.raises(RuntimeError):
        await flight.run("k", failing)
    assert attempts == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_others():
    flight: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "row"

    first = asyncio.create_task(flight.run("k", load))
    second = asyncio.create_task(flight.run("k", load))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == "row"
    assert first.cancelled()


async def test_forget_makes_later_callers_start_anew():
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()
    calls = []

    async def load(n: int) -> int:
        calls.append(n)
        await release.wait()
        return n

    old = asyncio.create_task(flight.run("k", lambda: load(1)))
    await asyncio.sleep(0)
    flight.forget("k")
    new = asyncio.create_task(flight.run("k", lambda: load(2)))
    await asyncio.sleep(0)
    release.set()
    assert (await old, await new) == (1, 2) and calls == [1, 2]
    assert len(flight) == 0
