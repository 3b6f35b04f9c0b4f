"""One timer and one flush schedule for the sans-IO cores that share a set of sockets.

A node's sockets carry several cores: the DHT core and one UDX core per socket
(:class:`~peerdht.aio.transport.udx.UDXSocket`). They do not each keep a timer: a :class:`Reactor` arms one
``call_at`` at the earliest ``get_timer()`` of its participants, runs the ``handle_timer`` of those that
are due, and flushes every participant that has work once per read batch or loop turn -- as libudx runs
every socket and stream of one ``udx_t`` on one libuv loop with one timer per stream.

A participant has three methods: ``get_timer()`` (seconds on the loop clock, or None), ``handle_timer(now)``
and ``flush()`` (send what its core queued, hand out its events). Times are ``loop.time()`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)

_MAX_ROUNDS = 1000
"""Participant flushes per :meth:`Reactor.flush_dirty` at most (a participant that keeps marking
itself dirty is flushed again on the next loop turn instead of stalling the loop)."""


class Participant(Protocol):
    """What a :class:`Reactor` drives: a core binding with a timer and a flush."""

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def flush(self) -> None: ...


class Reactor:
    """One timer and one flush schedule for several participants on one event loop.

    Sockets call :meth:`batch_done` after each read batch; commands call :meth:`flush_soon` (next loop
    turn, once however often it is called) or :meth:`flush_now`; :meth:`timer_changed` re-arms after a
    command that moved a participant's deadline.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._deadlines: dict[Participant, float] = {}
        self._dirty: dict[Participant, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._scheduled: asyncio.Handle | None = None
        self._flushing = False
        self._closed = False

    def now(self) -> float:
        """The loop clock (seconds, monotonic): the ``now`` the cores see."""
        return self.loop.time()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def mark(self, participant: Participant) -> None:
        """Flush ``participant`` with the others at the end of the read batch or flush being handled."""
        self._dirty[participant] = None

    def batch_done(self, participant: Participant) -> None:
        """A socket handed a read batch to its handlers: flush ``participant`` and everything marked."""
        self._dirty[participant] = None
        self.flush_dirty()

    def flush_soon(self, participant: Participant) -> None:
        """Flush ``participant`` on the next loop turn (or at the end of the flush being run)."""
        self._dirty[participant] = None
        if self._scheduled is None and not self._flushing and not self._closed:
            self._scheduled = self.loop.call_soon(self._run_scheduled)

    def flush_now(self, participant: Participant) -> None:
        """Flush ``participant`` now and re-arm the timer."""
        self._dirty.pop(participant, None)
        self._flush_one(participant)
        self._arm()

    def timer_changed(self, participant: Participant) -> None:
        """``participant``'s deadline moved outside a flush: re-arm the timer."""
        self._update(participant)
        self._arm()

    def detach(self, participant: Participant) -> None:
        """Stop driving ``participant`` (its socket closed)."""
        self._dirty.pop(participant, None)
        if self._deadlines.pop(participant, None) is not None:
            self._arm()

    def close(self) -> None:
        """Cancel the timer and the scheduled flush. Idempotent."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._dirty.clear()
        self._deadlines.clear()

    def flush_dirty(self) -> None:
        """Flush every participant marked dirty (those marked meanwhile too), then arm the timer once."""
        if self._flushing:
            return  # re-entered from a participant's event handler: the outer loop picks it up
        self._flushing = True
        dirty = self._dirty
        try:
            for _ in range(_MAX_ROUNDS):
                if not dirty:
                    break
                participant = next(iter(dirty))
                del dirty[participant]
                self._flush_one(participant)
        finally:
            self._flushing = False
        if dirty and self._scheduled is None and not self._closed:
            self._scheduled = self.loop.call_soon(self._run_scheduled)
        self._arm()

    def _run_scheduled(self) -> None:
        self._scheduled = None
        if not self._closed:
            self.flush_dirty()

    def _flush_one(self, participant: Participant) -> None:
        if self._closed:
            return
        try:
            participant.flush()
        except Exception:  # a bug in one consumer must not stall the others
            log.exception("flush of %r raised", participant)
        self._update(participant)

    def _update(self, participant: Participant) -> None:
        at = participant.get_timer()
        if at is None:
            self._deadlines.pop(participant, None)
        else:
            self._deadlines[participant] = at

    def _arm(self) -> None:
        deadlines = self._deadlines
        when = min(deadlines.values()) if deadlines else None
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if when is not None and not self._closed:
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        now = self.loop.time()
        for participant, at in list(self._deadlines.items()):
            if at <= now:
                try:
                    participant.handle_timer(now)
                except Exception:
                    log.exception("handle_timer of %r raised", participant)
                self._dirty[participant] = None
        self.flush_dirty()
