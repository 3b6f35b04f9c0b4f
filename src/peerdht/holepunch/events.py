"""Events of a punch session (:mod:`peerdht.holepunch.session`): frozen, keyword-only dataclasses.

A session asks its driver for I/O it cannot do itself (a PING from the punch socket, a PEER_HOLEPUNCH
round through a relay, one more birthday socket) and reports its outcome (:class:`Connected`,
:class:`PunchFailed`, a server's :class:`RoundAnswered`). The 1-byte probes it sends come out of
:meth:`~peerdht.holepunch.session.PunchSession.datagrams_to_send`, not as events.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.errors import ConnectError

Address = tuple[str, int]

__all__ = [
    "Connected",
    "Event",
    "PingWanted",
    "PunchFailed",
    "PunchStarted",
    "RoundAnswered",
    "RoundWanted",
    "SocketWanted",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class PingWanted:
    """PING ``addr`` (a DHT node) from the punch socket, no retries (nat.js ``autoSample``); report
    with :meth:`~peerdht.holepunch.session.PunchSession.ping_answered` or ``ping_failed``."""

    addr: Address


@dataclass(frozen=True, kw_only=True, slots=True)
class RoundWanted:
    """Send a PEER_HOLEPUNCH request with ``value`` (an encoded ``Holepunch`` record, mode FROM_CLIENT)
    to ``relay`` from the punch socket (client side). Report the reply with
    :meth:`~peerdht.holepunch.client.ClientPunch.round_reply` / ``round_failed`` unless ``abort``:
    an abort is fire-and-forget."""

    relay: Address
    value: bytes
    abort: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class RoundAnswered:
    """Answer the PEER_HOLEPUNCH request ``request_id`` with ``value`` (a sealed holepunch payload),
    from socket ``socket`` (None: the socket the request came in on). ``error`` is the payload's
    error code (``PayloadErrorCode``; 0 when none). Server side."""

    request_id: int
    value: bytes
    socket: int | None
    error: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class SocketWanted:
    """Bind one more UDP socket (a birthday socket) and report its index with
    :meth:`~peerdht.holepunch.session.PunchSession.socket_opened` (or ``socket_failed``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PunchStarted:
    """Probing started with ``strategy`` (a :class:`~peerdht.holepunch.strategy.Strategy`)."""

    strategy: object


@dataclass(frozen=True, kw_only=True, slots=True)
class Connected:
    """A probe from the peer came through (client side): open the stream towards ``addr`` on socket
    ``socket`` (the punch socket, or a birthday socket)."""

    addr: Address
    socket: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PunchFailed:
    """The punch ended without a path (client side); ``error`` says why (hyperdht's error codes)."""

    error: ConnectError


Event = PingWanted | RoundWanted | RoundAnswered | SocketWanted | PunchStarted | Connected | PunchFailed
