"""FakeNet: a seeded, lossy, reordering network with a fake clock for sans-IO datagram cores.

Any object with aioquic's shape (``receive_datagram(data, addr, now)``, ``handle_timer(now)``,
``datagrams_to_send(now)``, ``get_timer()``) can be attached at an address (:meth:`FakeNet.add`); a core
with several sockets (HyperDHT's server and client socket: ``datagrams_to_send`` yields ``(data, addr,
socket)`` and ``receive_datagram`` takes the socket index) is attached at one address per socket
(:meth:`FakeNet.add_sockets`). The clock never waits: it jumps to the next delivery or timer, so
minutes of protocol time run in milliseconds. The chaos (loss, duplication, reordering, delay) comes
from an injected ``random.Random``, so a failing seed replays exactly. Idea from trio's ``testing``
fake network.

Cost model (what makes 100,000 cores in one process possible): datagrams in flight and core timers sit
in two heaps (datagrams whose delivery time is not earlier than the last one queued, which with a
fixed delay is all of them, go to a FIFO instead, merged with the heap in the same (time, send order)); a delivery touches only its destination core, a timer only its own core, and after a core
has been touched its outgoing datagrams are collected and its timer re-read. Nothing polls every core
per event. A core that is driven from outside (a command such as ``lookup(...)`` called by the test)
must be :meth:`FakeNet.touch`-ed, or :meth:`FakeNet.run` told to ``poll`` every core once at its start.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

Addr = tuple[str, int]


class SansIOCore(Protocol):
    """The datagram core shape FakeNet drives."""

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]: ...

    def get_timer(self) -> float | None: ...


class _Slot:
    """One attached core: its addresses (one per socket) and bookkeeping."""

    __slots__ = ("addrs", "armed", "core", "dirty", "events", "multi")

    def __init__(self, core: Any, addrs: tuple[Addr, ...], multi: bool, events: list[object] | None) -> None:
        self.core = core
        self.addrs = addrs
        self.multi = multi
        self.events = events
        self.armed: float | None = None  # the timer value pushed on the heap (others there are stale)
        self.dirty = False


class FakeNet:
    """A network of sans-IO cores joined by a chaotic link.

    Args:
        rng: the randomness (seed it).
        loss: probability a datagram is dropped.
        duplicate: probability a datagram is delivered twice.
        reorder: probability a datagram gets ``reorder_delay`` extra delay (so later ones overtake it).
        delay: one-way latency in seconds (0 is allowed: delivery in send order at the same instant).
        jitter: extra uniform random latency in [0, jitter) seconds.
        reorder_delay: extra latency of reordered datagrams, seconds.
        rate: bottleneck bandwidth into each address, bytes/s (None: unlimited).
        queue: bottleneck buffer per address, bytes; datagrams beyond it are tail-dropped.
        max_size: datagrams longer than this (bytes of UDP payload) are dropped, like a small path MTU.
        start: initial clock value, seconds.

    Attributes:
        now: the fake clock (seconds).
        sent, delivered, dropped: datagram counters.
        down: addresses that neither send nor receive (a crashed host); their datagrams are dropped.
        filter: optional ``filter(data, src, dst) -> bool``; False drops the datagram (applied at send).
        tap: optional ``tap(data, src, dst)`` called for every datagram sent (a sniffer).
        events: per core (keyed by its first address), the events drained from cores attached with
            ``events=True`` (cores with ``next_event()``).
        on_event: optional ``on_event(addr, event, now)`` called for each such event as it is drained
            (``addr`` is the core's first address).
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
        self.down: set[Addr] = set()
        self.filter: Callable[[bytes, Addr, Addr], bool] | None = None
        self.tap: Callable[[bytes, Addr, Addr], None] | None = None
        self.events: dict[Addr, list[object]] = {}
        self.on_event: Callable[[Addr, object, float], None] | None = None
        self._slots: list[_Slot] = []
        self._where: dict[Addr, tuple[_Slot, int]] = {}
        self._dirty: list[_Slot] = []
        self._queue: list[tuple[float, int, bytes, Addr, Addr]] = []  # heap: out-of-order deliveries
        self._fifo: deque[tuple[float, int, bytes, Addr, Addr]] = deque()  # deliveries in time order
        self._timers: list[tuple[float, int, _Slot]] = []
        self._counter = 0

    # -------------------------------------------------------------------------------- attaching

    def add(self, addr: Addr, core: SansIOCore, *, events: bool = False) -> None:
        """Attach a one-socket ``core`` at ``addr``; ``events=True`` drains ``core.next_event()`` into
        ``self.events[addr]`` whenever the core was touched."""
        self._attach(core, (addr,), False, events)

    def add_sockets(self, addrs: Sequence[Addr], core: Any, *, events: bool = False) -> None:
        """Attach a core with one socket per address: ``core.datagrams_to_send(now)`` yields ``(data,
        dst, socket index)`` and ``core.receive_datagram(data, src, now, socket index)``."""
        self._attach(core, tuple(addrs), True, events)

    def _attach(self, core: Any, addrs: tuple[Addr, ...], multi: bool, events: bool) -> None:
        log: list[object] | None = None
        if events:
            log = self.events.setdefault(addrs[0], [])
        slot = _Slot(core, addrs, multi, log)
        self._slots.append(slot)
        for i, a in enumerate(addrs):
            self._where[a] = (slot, i)
        self._mark(slot)

    def remove(self, addr: Addr) -> None:
        """Detach the core at ``addr`` (all its sockets): datagrams to it are dropped from now on, its
        timer never fires again and its event log is left in ``events``."""
        slot = self._where[addr][0]
        for a in slot.addrs:
            del self._where[a]
        slot.armed = None  # its heap entries are stale now
        slot.dirty = True  # never queued for collection again
        slot.core = None  # a dead slot: skipped if still queued
        self._slots.remove(slot)

    def core_at(self, addr: Addr) -> Any:
        """The core attached at ``addr`` (KeyError if none)."""
        return self._where[addr][0].core

    def cores(self) -> Iterable[Any]:
        """Every attached core, in the order attached."""
        return (s.core for s in self._slots)

    def touch(self, addr: Addr) -> None:
        """Say the core at ``addr`` was driven from outside (a command): its datagrams and timer are
        collected at the next step."""
        self._mark(self._where[addr][0])

    def collect(self, addr: Addr) -> None:
        """Collect the core at ``addr`` now: its datagrams go on the wire, its events to ``events``."""
        self._flush(self._where[addr][0])

    def _mark(self, slot: _Slot) -> None:
        if not slot.dirty:
            slot.dirty = True
            self._dirty.append(slot)

    # -------------------------------------------------------------------------------- moving

    def inject(self, data: bytes, src: Addr, dst: Addr) -> None:
        """Put a datagram on the wire from ``src`` (need not be attached) to ``dst`` (chaos applies)."""
        self._send(data, src, dst)

    def _send(self, data: bytes, src: Addr, dst: Addr) -> None:
        self.sent += 1
        if self.tap is not None:
            self.tap(data, src, dst)
        if src in self.down or (self.max_size is not None and len(data) > self.max_size):
            self.dropped += 1
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            return
        if self.filter is not None and not self.filter(data, src, dst):
            self.dropped += 1
            return
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
            fifo = self._fifo
            if not fifo or t >= fifo[-1][0]:
                fifo.append((t, self._counter, data, src, dst))
            else:
                heapq.heappush(self._queue, (t, self._counter, data, src, dst))

    def _flush(self, slot: _Slot) -> None:
        """Collect one core's datagrams and events and re-read its timer."""
        slot.dirty = False
        core = slot.core
        now = self.now
        if slot.multi:
            addrs = slot.addrs
            for data, dst, sock in core.datagrams_to_send(now):
                self._send(data, addrs[sock], dst)
        else:
            src = slot.addrs[0]
            for data, dst in core.datagrams_to_send(now):
                self._send(data, src, dst)
        log = slot.events
        if log is not None:
            hook = self.on_event
            while (ev := core.next_event()) is not None:
                log.append(ev)
                if hook is not None:
                    hook(slot.addrs[0], ev, now)
        t = core.get_timer()
        if t != slot.armed:
            slot.armed = t
            if t is not None:
                self._counter += 1
                heapq.heappush(self._timers, (t, self._counter, slot))

    def _flush_dirty(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for slot in dirty:
                if slot.dirty and slot.core is not None:
                    self._flush(slot)

    def _next_timer(self, active: Callable[[Any], bool] | None, parked: list[_Slot] | None) -> float | None:
        """The earliest live timer, discarding stale heap entries (and parking inactive cores)."""
        timers = self._timers
        while timers:
            t, _, slot = timers[0]
            if slot.armed != t:
                heapq.heappop(timers)
                continue
            if active is not None and parked is not None and not active(slot.core):
                heapq.heappop(timers)
                slot.armed = None
                parked.append(slot)
                continue
            return t
        return None

    def step(
        self,
        *,
        until: float | None = None,
        active: Callable[[Any], bool] | None = None,
        _parked: list[_Slot] | None = None,
    ) -> bool:
        """Collect touched cores, jump the clock to the next event and process everything due then.

        Args:
            until: do not move the clock past this time (seconds); nothing later is processed.
            active: only cores for which ``active(core)`` holds have their timers fired (see
                :meth:`settle`).

        Returns:
            False when nothing (before ``until``) is left to happen.
        """
        self._flush_dirty()
        queue = self._queue
        fifo = self._fifo
        nxt: float | None = queue[0][0] if queue else None
        if fifo and (nxt is None or fifo[0][0] < nxt):
            nxt = fifo[0][0]
        t = self._next_timer(active, _parked)
        if t is not None and (nxt is None or t < nxt):
            nxt = t
        if nxt is None or (until is not None and nxt > until):
            return False
        if nxt > self.now:
            self.now = nxt
        now = self.now
        where = self._where
        down = self.down
        heappop = heapq.heappop
        popleft = fifo.popleft
        while True:
            # the earliest of the two heads, by (time, send order), as one heap would give it
            if fifo and fifo[0][0] <= now:
                _, _, data, src, dst = heappop(queue) if queue and queue[0] < fifo[0] else popleft()
            elif queue and queue[0][0] <= now:
                _, _, data, src, dst = heappop(queue)
            else:
                break
            target = where.get(dst)
            if target is None or dst in down:
                self.dropped += 1
                continue
            self.delivered += 1
            slot, sock = target
            if slot.multi:
                slot.core.receive_datagram(data, src, now, sock)
            else:
                slot.core.receive_datagram(data, src, now)
            self._flush(slot)
        timers = self._timers
        while timers and timers[0][0] <= now:
            t, _, slot = heapq.heappop(timers)
            if slot.armed != t:
                continue
            if active is not None and _parked is not None and not active(slot.core):
                slot.armed = None
                _parked.append(slot)
                continue
            slot.armed = None
            slot.core.handle_timer(now)
            self._flush(slot)
        return True

    def _poll_all(self) -> None:
        for slot in self._slots:
            self._mark(slot)

    def run(
        self,
        until: Callable[[], bool],
        *,
        max_time: float = 600.0,
        max_steps: int = 10_000_000,
        poll: bool = True,
    ) -> None:
        """Step until ``until()`` is true.

        Args:
            poll: collect every core once before starting (for cores driven from outside without
                :meth:`touch`); False keeps a run over a large network O(events).

        Raises:
            TimeoutError: the fake clock passed ``max_time`` seconds from now, ``max_steps`` ran out,
                or nothing is left to happen while ``until()`` is still false.
        """
        if poll:
            self._poll_all()
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

    def run_for(self, seconds: float, *, poll: bool = True) -> None:
        """Process everything due in the next ``seconds`` (every timer fires); the clock ends there."""
        self.run_to(self.now + seconds, poll=poll)

    def run_to(self, end: float, *, poll: bool = True) -> None:
        """Process everything due up to the clock value ``end`` (seconds); the clock ends there."""
        if poll:
            self._poll_all()
        while self.step(until=end):
            pass
        self.now = max(self.now, end)

    def settle(
        self, active: Callable[[Any], bool], *, until: float | None = None, max_steps: int = 10_000_000
    ) -> None:
        """Run until no datagram is in flight and no core for which ``active(core)`` holds has a
        timer; timers of inactive cores (periodic maintenance) do not fire meanwhile.

        Args:
            active: e.g. ``lambda core: len(core.requests) > 0`` (requests in flight).
            until: stop there (clock value, seconds) even if not settled.

        Raises:
            TimeoutError: ``max_steps`` ran out.
        """
        parked: list[_Slot] = []
        try:
            for _ in range(max_steps):
                if not self.step(until=until, active=active, _parked=parked):
                    if until is not None:
                        self.now = max(self.now, until)
                    return
            raise TimeoutError("too many steps")
        finally:
            for slot in parked:
                self._mark(slot)
            self._flush_dirty()
