"""Requests in flight: transaction ids, timeouts, retries, and dht-rpc's congestion window.

Mirrors ``dht-rpc/lib/io.js`` (16-bit ``tid`` counting up from a random start, resend on a 1 s
timeout, give up after ``retries`` resends, a window of at most 80 new sends per 750 ms slot) and
BEP 5 KRPC transaction ids (``t``, opaque bytes; random ids by default; use ``tid_space`` and
encode the int as you like).

Sans-IO: the node calls :meth:`RequestTable.expired` from its timer with ``now`` and resends or
fails what comes back; :meth:`RequestTable.next_deadline` tells it when to wake up.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peerdht.errors import LocalProtocolError

if TYPE_CHECKING:
    import random

__all__ = ["PendingRequest", "RequestTable", "Window"]


@dataclass(slots=True, eq=False)
class PendingRequest:
    """One request waiting for its response (compared and hashed by identity: ops keep sets of them).

    Attributes:
        tid: transaction id, ``0 <= tid < tid_space`` (dht-rpc: uint16).
        addr: where it was sent, ``(host, port)``.
        payload: the encoded datagram (resent as is on retry).
        context: the caller's object (lookup, future id, command...).
        sent: ``now`` (seconds) of the latest send.
        deadline: ``now`` (seconds) when the latest send times out.
        tries: how many times it has been sent (1 after :meth:`RequestTable.add`).
        retries: how many resends are allowed (total sends = ``retries + 1``, as dht-rpc's
            ``sent > retries`` check).
        timeout: seconds to wait for a reply after each send.
        first_sent: ``now`` (seconds) of the first send.
    """

    tid: int
    addr: tuple[str, int]
    payload: bytes
    context: object
    sent: float
    deadline: float
    tries: int
    retries: int
    timeout: float = 1.0
    first_sent: float = 0.0


class RequestTable:
    """The requests a node has in flight, by transaction id.

    Args:
        rng: injected random source for transaction ids.
        tid_space: number of distinct tids (dht-rpc: ``1 << 16``).
        timeout: default seconds per send (dht-rpc: 1.0).
        retries: default resends after the first send (dht-rpc: 3 for requests, queries use 5).
        sequential: hand out tids counting up (wrapping) from a random start, skipping ids in
            flight, as dht-rpc's ``io.js`` does (``this._tid++``); otherwise each tid is drawn at
            random (the default, for KRPC).
    """

    __slots__ = ("_heap", "_next", "_pending", "_rng", "_seq", "retries", "sequential", "tid_space", "timeout")

    def __init__(
        self,
        rng: random.Random,
        *,
        tid_space: int = 1 << 16,
        timeout: float = 1.0,
        retries: int = 3,
        sequential: bool = False,
    ) -> None:
        if tid_space < 1:
            raise LocalProtocolError("tid_space must be >= 1")
        self._rng = rng
        self.tid_space = tid_space
        self.timeout = timeout
        self.retries = retries
        self.sequential = sequential
        self._next = rng.randrange(tid_space) if sequential else 0
        self._pending: dict[int, PendingRequest] = {}
        # (deadline, seq, request): lazily invalidated when the request is popped or rescheduled
        self._heap: list[tuple[float, int, PendingRequest]] = []
        self._seq = 0

    def new_tid(self) -> int:
        """A transaction id not used by any request in flight: the next one counting up if the table
        is ``sequential``, else random (from the injected rng).

        Raises:
            LocalProtocolError: all ``tid_space`` ids are in flight.
        """
        pending = self._pending
        space = self.tid_space
        if len(pending) >= space:
            raise LocalProtocolError(f"all {space} transaction ids are in flight")
        if self.sequential:
            tid = self._next
            while tid in pending:  # ends: fewer than `space` ids are in flight
                tid = tid + 1 if tid + 1 < space else 0
            self._next = tid + 1 if tid + 1 < space else 0
            return tid
        for _ in range(8):
            tid = self._rng.randrange(space)
            if tid not in pending:
                return tid
        # table nearly full: scan from a random start
        start = self._rng.randrange(space)
        for i in range(space):
            tid = (start + i) % space
            if tid not in pending:
                return tid
        raise AssertionError("unreachable")  # pragma: no cover

    def add(
        self,
        tid: int,
        addr: tuple[str, int],
        payload: bytes,
        now: float,
        context: object = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> PendingRequest:
        """Record a request that was just sent (first try).

        Args:
            tid: from :meth:`new_tid`.
            addr: destination ``(host, port)``.
            payload: the datagram, kept for resends.
            now: send time (seconds).
            context: the caller's object, returned with the request.
            timeout: seconds per try (default: the table's).
            retries: resends allowed (default: the table's; 0 = send once).

        Returns:
            The new :class:`PendingRequest`.

        Raises:
            LocalProtocolError: ``tid`` is already in flight or out of range.
        """
        if not 0 <= tid < self.tid_space:
            raise LocalProtocolError(f"tid {tid} outside [0, {self.tid_space})")
        if tid in self._pending:
            raise LocalProtocolError(f"tid {tid} already in flight")
        t = self.timeout if timeout is None else timeout
        r = self.retries if retries is None else retries
        # positional: a keyword call of the dataclass __init__ costs ~3x (one request per send)
        req = PendingRequest(tid, addr, payload, context, now, now + t, 1, r, t, now)
        self._pending[tid] = req
        self._seq += 1
        heapq.heappush(self._heap, (req.deadline, self._seq, req))
        return req

    def track(self, req: PendingRequest) -> None:
        """Record a request that was just sent, given as a ready :class:`PendingRequest` (or an instance of
        a subclass that carries the caller's own fields, as the dht-rpc node's requests do: one object per
        request instead of two). Its ``tid``, ``addr``, ``payload``, ``sent``, ``deadline``, ``tries``,
        ``retries`` and ``timeout`` must be set as :meth:`add` would set them.

        Raises:
            LocalProtocolError: ``req.tid`` is already in flight or out of range.
        """
        tid = req.tid
        if not 0 <= tid < self.tid_space:
            raise LocalProtocolError(f"tid {tid} outside [0, {self.tid_space})")
        pending = self._pending
        if tid in pending:
            raise LocalProtocolError(f"tid {tid} already in flight")
        pending[tid] = req
        self._seq += 1
        heapq.heappush(self._heap, (req.deadline, self._seq, req))

    def _push(self, req: PendingRequest) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (req.deadline, self._seq, req))

    def get(self, tid: int) -> PendingRequest | None:
        """The request in flight with this tid, without removing it."""
        return self._pending.get(tid)

    def pop(self, tid: int, addr: tuple[str, int] | None = None) -> PendingRequest | None:
        """Match a response and stop tracking its request.

        Args:
            tid: the response's transaction id (untrusted: any int).
            addr: the response's source address; if given it must equal the request's ``addr``,
                otherwise nothing is removed (a spoofed or stray response).

        Returns:
            The request, or ``None`` if no request matches.
        """
        req = self._pending.get(tid)
        if req is None or (addr is not None and addr != req.addr):
            return None
        del self._pending[tid]
        return req

    def cancel(self, context: object) -> list[PendingRequest]:
        """Drop every request whose ``context`` is ``context`` (e.g. a finished lookup)."""
        gone = [r for r in self._pending.values() if r.context is context]
        for r in gone:
            del self._pending[r.tid]
        return gone

    def _live(self, entry: tuple[float, int, PendingRequest]) -> bool:
        deadline, _, req = entry
        return self._pending.get(req.tid) is req and req.deadline == deadline

    def expired(self, now: float) -> tuple[list[PendingRequest], list[PendingRequest]]:
        """Requests whose deadline is ``<= now``.

        Args:
            now: current time (seconds).

        Returns:
            ``(to_resend, timed_out)``. ``to_resend``: ``tries`` incremented, ``sent = now``,
            ``deadline = now + timeout``; the caller sends ``payload`` again to ``addr``.
            ``timed_out``: already sent ``retries + 1`` times; removed from the table; the caller
            fails them (``RequestTimeout``).
        """
        resend: list[PendingRequest] = []
        dead: list[PendingRequest] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            req = entry[2]
            if req.tries > req.retries:
                del self._pending[req.tid]
                dead.append(req)
            else:
                req.tries += 1
                req.sent = now
                req.deadline = now + req.timeout
                resend.append(req)
        for req in resend:
            self._push(req)
        return resend, dead

    def next_deadline(self) -> float | None:
        """The earliest deadline (seconds) of a request in flight, or ``None`` if none."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        if len(heap) > 4 * len(self._pending) + 64:
            # many stale entries (popped requests): compact
            self._heap = [e for e in heap if self._live(e)]
            heapq.heapify(self._heap)
            heap = self._heap
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tid: object) -> bool:
        return tid in self._pending

    def __iter__(self) -> Iterator[PendingRequest]:
        return iter(list(self._pending.values()))


class Window:
    """dht-rpc's congestion window (``CongestionWindow`` in ``lib/io.js``), driven by ``now``.

    Time is cut into slots of ``slot`` seconds (dht-rpc drains every 750 ms); the window
    remembers the last 4 slots. It is full when the current slot already has ``max_window`` sends
    (80) or the 4 slots together have ``2 * max_window``. A response frees one send of the current
    slot (``recv``). Requests that find the window full wait in the caller's queue.

    Args:
        max_window: sends per slot (dht-rpc ``MAX_WINDOW`` = 80).
        slot: slot length in seconds (dht-rpc: 0.75).
    """

    __slots__ = ("_index", "_slot_no", "_total", "_until", "_window", "max_window", "slot")

    def __init__(self, max_window: int = 80, *, slot: float = 0.75) -> None:
        self.max_window = max_window
        self.slot = slot
        self._window = [0, 0, 0, 0]
        self._index = 0
        self._total = 0
        self._slot_no: int | None = None
        self._until = float("-inf")  # end (seconds) of the current slot: before it, no need to advance

    def _advance(self, now: float) -> None:
        no = int(now // self.slot)
        if self._slot_no is None:
            self._slot_no = no
            self._until = (no + 1) * self.slot
            return
        steps = no - self._slot_no
        if steps <= 0:
            return
        for _ in range(min(steps, 4)):
            self._index = (self._index + 1) & 3
            self._total -= self._window[self._index]
            self._window[self._index] = 0
        self._slot_no = no
        self._until = (no + 1) * self.slot

    def full(self, now: float) -> bool:
        """True if no new request may be sent now."""
        if now >= self._until:
            self._advance(now)
        return self._total >= 2 * self.max_window or self._window[self._index] >= self.max_window

    def send(self, now: float) -> None:
        """Count a send (first send or resend) in the current slot."""
        if now >= self._until:
            self._advance(now)
        self._total += 1
        self._window[self._index] += 1

    def recv(self, now: float) -> None:
        """A response (or a dropped request) frees one send of the current slot."""
        if now >= self._until:
            self._advance(now)
        if self._window[self._index] > 0:
            self._window[self._index] -= 1
            self._total -= 1

    def next_slot(self, now: float) -> float:
        """When (seconds) the next slot starts, i.e. when a full window may open again."""
        return (int(now // self.slot) + 1) * self.slot

    def clear(self) -> None:
        """Forget every counted send."""
        self._window = [0, 0, 0, 0]
        self._total = 0
