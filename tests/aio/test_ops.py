"""aio/transport/ops.Operations: an abandoned wait stops the operation on the core."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peerdht.aio.transport.ops import Operations
from peerdht.errors import LocalProtocolError


class FakeDriver:
    """What Operations uses of a DatagramDriver: now() and kick()."""

    def __init__(self) -> None:
        self.kicks = 0

    def now(self) -> float:
        return 0.0

    def kick(self) -> None:
        self.kicks += 1


def _setup() -> tuple[Operations, FakeDriver, list[int]]:
    cancelled: list[int] = []
    return Operations(cancelled.append), FakeDriver(), cancelled


async def test_a_wait_for_timeout_cancels_the_op_on_the_core() -> None:
    ops, driver, cancelled = _setup()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ops.run(driver, lambda now: 7), 0.01)  # type: ignore[arg-type]
    assert cancelled == [7]


async def test_a_cancelled_task_cancels_the_op_on_the_core() -> None:
    ops, driver, cancelled = _setup()
    task = asyncio.ensure_future(ops.run(driver, lambda now: 3))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == [3]


async def test_an_op_the_core_finished_or_failed_is_not_cancelled() -> None:
    ops, driver, cancelled = _setup()
    loop = asyncio.get_running_loop()
    loop.call_soon(ops.done, 1, "result")
    assert await ops.run(driver, lambda now: 1) == "result"  # type: ignore[arg-type]
    loop.call_soon(ops.failed, 2, LocalProtocolError("no"))
    with pytest.raises(LocalProtocolError):
        await ops.run(driver, lambda now: 2)  # type: ignore[arg-type]
    assert cancelled == []


async def test_a_stream_left_early_cancels_the_op_on_the_core() -> None:
    ops, driver, cancelled = _setup()
    loop = asyncio.get_running_loop()
    loop.call_soon(ops.item, 5, "first")
    stream: Any = ops.stream(driver, lambda now: 5)  # type: ignore[arg-type]
    async for item in stream:
        assert item == "first"
        break
    await stream.aclose()
    assert cancelled == [5]
