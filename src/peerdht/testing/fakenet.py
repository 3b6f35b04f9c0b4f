"""FakeNet: a seeded, lossy, reordering network with a fake clock for sans-IO datagram cores.

Any object with aioquic's shape (``receive_datagram(data, addr, now)``, ``handle_timer(now)``,
``datagrams_to_send(now)``, ``get_timer()``) can be attached at an address. The clock never waits: it
jumps to the next delivery or timer, so minutes of protocol time run in milliseconds. The chaos
(loss, duplication, reordering, delay) comes from an injected ``random.Random``, so a failing seed
replays exactly. Idea from trio's ``testing`` fake network.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Protocol

Addr = tuple[str, int]


class SansIOCore(Protocol):
    """The datagram core shape FakeNet drives."""

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]: ...

    def get_timer(self) -> float | None: ...


class FakeNet:
    """A network of sans-IO cores joined by a chaotic link.

    Args:
        rng: the randomness (seed it).
        loss: probability a datagram is dropped.
        duplicate: probability a datagram is delivered twice.
        reorder: probability a datagram gets ``reorder_delay`` extra delay (so later ones overtake it).
        delay: one-way latency in seconds.
        jitter: extra uniform random latency in [0, jitter) seconds.
        reorder_delay: extra latency of reordered datagrams, seconds.
        rate: bottleneck bandwidth into each address, bytes/s (None: unlimited).
        queue: bottleneck buffer per address, bytes; datagrams beyond it are tail-dropped.
        max_size: datagrams longer than this (bytes of UDP payload) are dropped, like a small path MTU.
        start: initial clock value, seconds.

    Attributes:
        now: the fake clock (seconds).
        sent, delivered, dropped: datagram counters.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.001,
        jitter: float = 0.0,
        reorder_delay: float = 0.005,
        rate: float | None = None,
        queue: int = 65536,
        max_size: int | None = None,
        start: float = 1000.0,
    ) -> None:
        self.rng = rng
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.jitter = jitter
        self.reorder_delay = reorder_delay
        self.rate = rate
        self.queue = queue
        self.queue_drops = 0
        self.max_size = max_size
        self._busy_until: dict[Addr, float] = {}
        self.now = start
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self._cores: dict[Addr, SansIOCore] = {}
        self._queue: list[tuple[float, int, bytes, Addr, Addr]] = []
        self._counter = 0

    def add(self, addr: Addr, core: SansIOCore) -> None:
        """Attach ``core`` at ``addr``."""
        self._cores[addr] = core

    def _collect(self) -> None:
        rng = self.rng
        for src, core in self._cores.items():
            for data, dst in core.datagrams_to_send(self.now):
                self.sent += 1
                if self.max_size is not None and len(data) > self.max_size:
                    self.dropped += 1
                    continue
                if self.loss and rng.random() < self.loss:
                    self.dropped += 1
                    continue
                copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
                for _ in range(copies):
                    t = self.now + self.delay
                    if self.rate:
                        free = max(self._busy_until.get(dst, 0.0), self.now)
                        if (free - self.now) * self.rate > self.queue:
                            self.dropped += 1
                            self.queue_drops += 1
                            continue
                        free += len(data) / self.rate
                        self._busy_until[dst] = free
                        t = free + self.delay
                    if self.jitter:
                        t += rng.random() * self.jitter
                    if self.reorder and rng.random() < self.reorder:
                        t += self.reorder_delay
                    self._counter += 1
                    heapq.heappush(self._queue, (t, self._counter, data, src, dst))

    def step(self) -> bool:
        """Flush every core, jump the clock to the next event and process it.

        Returns:
            False when nothing is left to happen (no datagram in flight, no timer armed).
        """
        self._collect()
        nxt: float | None = self._queue[0][0] if self._queue else None
        for core in self._cores.values():
            t = core.get_timer()
            if t is not None and (nxt is None or t < nxt):
                nxt = t
        if nxt is None:
            return False
        if nxt > self.now:
            self.now = nxt
        queue = self._queue
        while queue and queue[0][0] <= self.now:
            _, _, data, src, dst = heapq.heappop(queue)
            target = self._cores.get(dst)
            if target is None:
                self.dropped += 1
                continue
            self.delivered += 1
            target.receive_datagram(data, src, self.now)
        for core in self._cores.values():
            t = core.get_timer()
            if t is not None and t <= self.now:
                core.handle_timer(self.now)
        return True

    def run(self, until: Callable[[], bool], *, max_time: float = 600.0, max_steps: int = 10_000_000) -> None:
        """Step until ``until()`` is true.

        Raises:
            TimeoutError: the fake clock passed ``max_time`` seconds from now, ``max_steps`` ran out,
                or nothing is left to happen while ``until()`` is still false.
        """
        deadline = self.now + max_time
        for _ in range(max_steps):
            if until():
                return
            if not self.step():
                if until():
                    return
                raise TimeoutError("network idle before the condition held")
            if self.now > deadline:
                raise TimeoutError(f"condition not reached within {max_time} fake seconds")
        raise TimeoutError("too many steps")
