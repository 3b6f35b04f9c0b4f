"""Map a sans-IO core's operation ids to asyncio futures and async iterators.

Cores (``HyperDHTNode``, ``MainlineNode``) return an int op id per command and report it later with
events: a final result (done / failed) and, for lookups, results streamed before it. ``Operations`` is the
one piece of plumbing both asyncio DHT classes use for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.errors import PeerDHTError

_END = object()

Start = Callable[[float], int]
"""Queues a command on the core given ``now`` (seconds) and returns its op id."""


class Operations:
    """Pending operations of one core: futures for results, queues for streamed results."""

    def __init__(self, cancel: Callable[[int], None]) -> None:
        """``cancel(op)`` tells the core to stop an operation nobody waits for any more."""
        self._cancel = cancel
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._queues: dict[int, asyncio.Queue[Any]] = {}
        self.closed = False

    def track(self, op: int) -> asyncio.Future[Any]:
        """A future for ``op``'s final result (removed from the table once resolved)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[op] = fut
        fut.add_done_callback(lambda _: self._futures.pop(op, None))
        return fut

    async def run(self, driver: DatagramDriver, start: Start) -> Any:
        """Start an operation and wait for its result; cancelled waits cancel it on the core."""
        op = start(driver.now())
        fut = self.track(op)
        driver.kick()
        try:
            return await fut
        finally:
            self._abandon(driver, op, fut)

    async def stream(self, driver: DatagramDriver, start: Start) -> AsyncIterator[Any]:
        """Start an operation and yield its streamed results; raises its error, if any, at the end."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        op = start(driver.now())
        self._queues[op] = queue
        fut = self.track(op)
        driver.kick()
        try:
            while (item := await queue.get()) is not _END:
                yield item
            await fut  # raises if the operation failed or the DHT was closed
        finally:
            self._queues.pop(op, None)
            self._abandon(driver, op, fut)

    def item(self, op: int, item: object) -> None:
        """A streamed result of ``op``."""
        queue = self._queues.get(op)
        if queue is not None:
            queue.put_nowait(item)

    def done(self, op: int, result: object) -> None:
        """``op`` finished with ``result``."""
        fut = self._futures.get(op)
        if fut is not None and not fut.done():
            fut.set_result(result)
        self._end(op)

    def failed(self, op: int, error: BaseException) -> None:
        """``op`` failed with ``error``."""
        fut = self._futures.get(op)
        if fut is not None and not fut.done():
            fut.set_exception(error)
        self._end(op)

    def close(self, error: PeerDHTError) -> None:
        """Fail every pending operation with ``error`` and end every stream. Idempotent."""
        self.closed = True
        for fut in list(self._futures.values()):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be waiting
        for queue in self._queues.values():
            queue.put_nowait(_END)
        self._futures.clear()

    def _end(self, op: int) -> None:
        queue = self._queues.get(op)
        if queue is not None:
            queue.put_nowait(_END)

    def _abandon(self, driver: DatagramDriver, op: int, fut: asyncio.Future[Any]) -> None:
        # A result or an error came: the core is done with ``op``. A cancelled future was not resolved
        # by the core: a cancelled ``await fut`` (Task.cancel, wait_for's timeout) cancels the future it
        # waits on, so the op is still running on the core and must be stopped there too.
        if fut.done() and not fut.cancelled():
            return
        fut.cancel()
        if not self.closed:
            self._cancel(op)
            driver.kick()
