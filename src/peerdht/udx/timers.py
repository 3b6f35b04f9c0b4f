"""The timers of a UDX core's streams: one heap of deadlines, and the liveness deadline of a stream
(internal to ``peerdht.udx``).

Each stream has up to four deadlines (RTO, tail-loss probe, zero-window probe, keepalive / idle
timeout; seconds on the caller's clock). The heap holds ``(deadline, seq, stream)``; streams whose
deadlines may have changed are *touched* and re-armed before the heap is read, and entries that no
longer match ``StreamState.timer_at`` are skipped (O(log n) per change, not O(streams) per event: a
server holding many streams must not pay for all of them on every datagram).
"""

from __future__ import annotations

import heapq

from peerdht.udx.state import StreamState


class StreamTimers:
    """The deadline heap of one core's streams.

    ``touched`` is the set of streams to re-arm before the next read (a core adds to it directly on
    its hot paths: a datagram, a flush, a command or a timer touches the stream).
    """

    __slots__ = ("_heap", "_seq", "touched")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, StreamState]] = []
        self._seq = 0
        self.touched: set[StreamState] = set()

    def _rearm(self) -> None:
        touched = self.touched
        if not touched:
            return
        heap = self._heap
        for st in touched:
            at: float | None = None
            if not st.closed:
                for t in (st.rto_deadline, st.pto_deadline, st.zwp_deadline, st.keepalive_deadline):
                    if t is not None and (at is None or t < at):
                        at = t
            if at != st.timer_at:
                st.timer_at = at
                if at is not None:
                    self._seq += 1
                    heapq.heappush(heap, (at, self._seq, st))
        touched.clear()

    def next_deadline(self) -> float | None:
        """The earliest deadline of an open stream (seconds), or None."""
        self._rearm()
        heap = self._heap
        while heap:
            at, _, st = heap[0]
            if st.closed or st.timer_at != at:
                heapq.heappop(heap)  # stale: the stream re-armed or closed since
                continue
            return at
        return None

    def pop_due(self, now: float) -> list[StreamState]:
        """The open streams with a deadline at or before ``now`` (seconds); they are touched, so
        whatever their timers do is re-armed before the next read."""
        self._rearm()
        heap = self._heap
        due: list[StreamState] = []
        while heap and heap[0][0] <= now:
            at, _, st = heapq.heappop(heap)
            if not st.closed and st.timer_at == at:
                st.timer_at = None
                due.append(st)
        self.touched.update(due)
        return due


def arm_liveness(st: StreamState, now: float) -> None:
    """Set the stream's liveness deadline (seconds): the heartbeat, ``keepalive`` s after the earlier
    of the last packet sent and the last received (``now + keepalive`` if that has passed), or the
    idle timeout, ``idle_timeout`` s after the last packet received, whichever comes first; None when
    both are off."""
    at: float | None = None
    if st.keepalive:
        at = min(st.last_rx, st.last_tx) + st.keepalive
        if at <= now:
            at = now + st.keepalive
    if st.idle_timeout:
        limit = st.last_rx + st.idle_timeout
        at = limit if at is None or limit < at else at
    st.keepalive_deadline = at
