"""`app.aio.stop`: cancels a task and waits for it, bounded; the caller's own
cancellation is never swallowed (the bug of `suppress(CancelledError)` around a wait)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from app import aio


async def test_the_task_is_cancelled_and_waited_for():
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    await aio.stop(task)
    assert task.cancelled() and cleaned.is_set()


async def test_its_error_is_dropped_and_a_stubborn_task_is_left_after_the_limit():
    async def broken() -> None:
        raise ValueError("no")

    failing = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await aio.stop(failing)  # no error raised here
    assert isinstance(failing.exception(), ValueError)

    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(aio.stop(task, 0.05), 5)  # returns at the limit
    release.set()
    await task


@pytest.mark.parametrize("naive", [False, True])
async def test_the_callers_own_cancellation_goes_through(naive):
    """The stopper is cancelled while it waits for a slow-to-finish task: it stops,
    as cancelled. With the naive wait it carries on (what `stop` replaced)."""
    finish = asyncio.Event()
    carried_on = asyncio.Event()

    async def slow_to_finish() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await finish.wait()  # cleanup that takes a while

    async def stopper(task: asyncio.Task[None]) -> None:
        if naive:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2)
        else:
            await aio.stop(task, 2)
        carried_on.set()

    task = asyncio.create_task(slow_to_finish())
    await asyncio.sleep(0)
    outer = asyncio.create_task(stopper(task))
    await asyncio.sleep(0.01)
    outer.cancel()
    finish.set()
    with contextlib.suppress(asyncio.CancelledError):
        await outer
    assert carried_on.is_set() is naive
    assert outer.cancelled() is not naive
