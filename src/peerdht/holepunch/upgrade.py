"""The relay -> direct move of one stream, sans-IO (relay-connection.js ``confirmDirectUpgrade`` with
connect.js ``changeRemote``, plus a fallback hyperdht does not have).

A stream spliced through a blind relay moves to the peer's direct address once a punch got through
(or once the peer's packets arrive straight from it); what was in flight is resent there. A punched
path can still be dead one way (a NAT mapping that expired between the probe and the move, a filter
that lets probes in but not the stream's packets). So the move is *confirmed* only when the peer
acknowledges a packet first sent on the direct path (a sequence number at or after the one the stream
had at the move). If packets were sent on the direct path and none is acknowledged within
:data:`MOVE_TIMEOUT` seconds, the stream moves back to the relay (:class:`FallBackToRelay`), which is
still connected, instead of stalling on a path that carries nothing. (While nothing is sent there is
nothing to prove: the deadline waits.) Once confirmed and the peer is seen on the direct path, the
relay connection can close (:class:`RelayNoLongerNeeded`).

Inputs: :meth:`DirectMove.moved`, :meth:`~DirectMove.progress` (the stream's next sequence number and
what the peer acknowledged, reported whenever the timer fires and whenever convenient),
:meth:`~DirectMove.peer_seen`, :meth:`~DirectMove.handle_timer`; outputs :meth:`~DirectMove.get_timer`
and :meth:`~DirectMove.next_event`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

__all__ = ["CHECK_INTERVAL", "MOVE_TIMEOUT", "DirectMove", "FallBackToRelay", "MoveState", "RelayNoLongerNeeded"]

MOVE_TIMEOUT = 10.0
"""Seconds the direct path has to acknowledge what we resent there before we move back to the relay."""


class MoveState(Enum):
    RELAYED = "relayed"
    MOVING = "moving"
    DIRECT = "direct"
    FELL_BACK = "fell-back"


@dataclass(frozen=True, kw_only=True, slots=True)
class FallBackToRelay:
    """The direct path acknowledged nothing within :data:`MOVE_TIMEOUT`: move the stream back to the relay."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayNoLongerNeeded:
    """Both directions run on the direct path (our data acknowledged there, the peer seen there)."""


CHECK_INTERVAL = 0.2
"""Seconds between two progress reports the move asks for while it is not confirmed."""


class DirectMove:
    """One stream's move from its relay to a direct path. See the module docstring.

    Args:
        timeout: seconds for the direct path to acknowledge (default :data:`MOVE_TIMEOUT`).

    Attributes:
        state: a :class:`MoveState`.
    """

    def __init__(self, timeout: float = MOVE_TIMEOUT) -> None:
        self.timeout = timeout
        self.state = MoveState.RELAYED
        self._deadline: float | None = None
        self._check: float | None = None
        self._move_seq = 0
        self._seq = 0
        self._confirmed = False
        self._peer_seen = False
        self._events: deque[FallBackToRelay | RelayNoLongerNeeded] = deque()

    def moved(self, now: float, seq: int) -> None:
        """We moved the stream to the direct path; ``seq`` is its next sequence number (the first one
        that is only ever sent on the direct path)."""
        if self.state is MoveState.RELAYED:
            self.state = MoveState.MOVING
            self._move_seq = self._seq = seq
            self._deadline = now + self.timeout
            self._check = now + CHECK_INTERVAL

    def progress(self, now: float, seq: int, acked: int) -> None:
        """The stream's next sequence number ``seq``; the peer acknowledged everything below ``acked``."""
        self._seq = seq
        if self.state is MoveState.MOVING and acked > self._move_seq:
            self.state = MoveState.DIRECT
            self._deadline = self._check = None
            self._confirmed = True
            self._maybe_done()

    def peer_seen(self, now: float) -> None:
        """Packets arrived from the peer's direct address."""
        self._peer_seen = True
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._confirmed and self._peer_seen:
            self._confirmed = False  # once
            self._events.append(RelayNoLongerNeeded())

    def handle_timer(self, now: float) -> None:
        if self.state is not MoveState.MOVING or self._deadline is None:
            return
        if now >= self._deadline:
            if self._seq == self._move_seq:
                self._deadline = now + self.timeout  # nothing sent on the direct path yet: nothing to prove
            else:
                self.state = MoveState.FELL_BACK
                self._deadline = self._check = None
                self._events.append(FallBackToRelay())
                return
        self._check = now + CHECK_INTERVAL

    def get_timer(self) -> float | None:
        if self._deadline is None or self._check is None:
            return None
        return min(self._deadline, self._check)

    def next_event(self) -> FallBackToRelay | RelayNoLongerNeeded | None:
        return self._events.popleft() if self._events else None
