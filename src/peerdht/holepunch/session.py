"""The punch session core shared by both sides of a holepunch (hyperdht ``lib/holepuncher.js`` and
the NAT sampling of ``lib/nat.js``), sans-IO.

One session per connection attempt. It samples our NAT (PINGs from the punch socket, as
:class:`PingWanted` events), keeps what the peer told us in its holepunch payloads, and runs one of the
probing strategies of :mod:`peerdht.holepunch.strategy`:

* CONSISTENT: probe the peer's addresses every :data:`~peerdht.holepunch.strategy.CONSISTENT_INTERVAL`
  seconds, :data:`~peerdht.holepunch.strategy.CONSISTENT_TRIES` times (unverified ones every 4th round);
* RANDOM_PROBES: probe random ports of the peer's verified host every
  :data:`~peerdht.holepunch.strategy.RANDOM_INTERVAL` seconds, up to ``RANDOM_TRIES`` times;
* BIRTHDAY: ask for :data:`~peerdht.holepunch.strategy.BIRTHDAY_SOCKETS` extra sockets (each sends a
  low-TTL probe to the peer's verified address as it opens), then probe from them round-robin (the
  first pass still with the low TTL).

The round exchange differs by side: :class:`peerdht.holepunch.client.ClientPunch` sends the rounds and
opens the stream where a probe comes from; :class:`peerdht.holepunch.server.ServerPunch` answers them
and waits for the client's first UDX packet.

The house shape (DESIGN.md): inputs :meth:`PunchSession.receive_datagram` (a 1-byte probe and the
socket it came in on), :meth:`~PunchSession.handle_timer` and the reports of the I/O it asked for;
outputs :meth:`~PunchSession.datagrams_to_send` (probes), :meth:`~PunchSession.get_timer` and
:meth:`~PunchSession.next_event`. No clock, no sockets, no asyncio; randomness comes from the
``random_bytes`` callable it is given (``os.urandom`` in production).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypedDict

from peerdht.holepunch.events import Event, PingWanted, PunchStarted, SocketWanted
from peerdht.holepunch.nat import MIN_SAMPLES, NatAnalyzer
from peerdht.holepunch.payload import SecurePayload
from peerdht.holepunch.strategy import (
    BIRTHDAY_SOCKETS,
    CONSISTENT_INTERVAL,
    CONSISTENT_TRIES,
    HOLEPUNCH_TTL,
    RANDOM_INTERVAL,
    RANDOM_TRIES,
    RandomPunchLimit,
    Strategy,
    consistent_targets,
    random_port,
)
from peerdht.hyper.constants import Firewall
from peerdht.hyper.records import HolepunchPayload

Address = tuple[str, int]

BIRTHDAY_SETTLE = 0.1
"""Seconds between the last birthday socket opening and the round-robin probing."""

__all__ = ["BIRTHDAY_SETTLE", "Probe", "PunchSession", "SessionArgs"]


class Probe(NamedTuple):
    """A 1-byte probe to send: to ``addr`` from socket ``socket``; ``ttl`` None means the default TTL
    (a low TTL opens our NAT mapping without reaching the peer's NAT)."""

    addr: Address
    socket: int
    ttl: int | None


class SessionArgs(TypedDict):
    """The :class:`PunchSession` arguments both sides take as they are (``**session`` in
    :class:`~peerdht.holepunch.client.ClientPunch` and :class:`~peerdht.holepunch.server.ServerPunch`);
    each side declares ``remote_firewall`` itself (the client requires it). Meanings: see
    :class:`PunchSession`."""

    secret: bytes
    firewalled: bool
    punch_socket: int
    sample_nodes: Sequence[Address]
    limit: RandomPunchLimit
    random_bytes: Callable[[int], bytes]


class PunchSession:
    """What both sides of a holepunch share: NAT sampling, the peer's state, the probing strategies.

    Args:
        secret: the Noise handshake's 32-byte ``holepunch_secret``.
        firewalled: whether our DHT node is firewalled (False: our NAT class is OPEN).
        punch_socket: the index of the socket we punch from (the driver's numbering).
        sample_nodes: DHT nodes to PING for NAT sampling, most recent first (at most
            :data:`~peerdht.holepunch.nat.MIN_SAMPLES` are used).
        limit: the node's :class:`~peerdht.holepunch.strategy.RandomPunchLimit`, shared by its sessions.
        random_bytes: ``n -> n random bytes``: nonces, our address-token key and random ports.
        remote_firewall: the peer's NAT class from its Noise payload.

    Attributes:
        nat: our :class:`~peerdht.holepunch.nat.NatAnalyzer`.
        strategy: the probing strategy once started (None before).
        punching: probing is running.
        sockets: the birthday sockets this session asked for and got (the driver closes them).
        done: the session ended (client: connected or failed; server: connected or closed).
        probes_sent: probes sent so far.
    """

    def __init__(
        self,
        *,
        secret: bytes,
        firewalled: bool,
        punch_socket: int,
        sample_nodes: Sequence[Address],
        limit: RandomPunchLimit,
        random_bytes: Callable[[int], bytes],
        remote_firewall: int = Firewall.UNKNOWN,
    ) -> None:
        self.payload = SecurePayload(secret, random_bytes(32))
        self.nat = NatAnalyzer(firewalled=firewalled)
        self.socket = punch_socket
        self.limit = limit
        self._random_bytes = random_bytes
        self.round = 0
        self.remote_firewall = remote_firewall
        self.remote_addresses: list[tuple[Address, bool]] = []
        self.remote_punching = False
        self.strategy: Strategy | None = None
        self.punching = False
        self.sockets: list[int] = []
        self.done = False
        self.probes_sent = 0
        self._sample_nodes = list(sample_nodes)[:MIN_SAMPLES]
        self._pings_left = 0
        self.sampled = False
        self._events: deque[Event] = deque()
        self._probes: list[Probe] = []
        self._timer: float | None = None
        self._on_timer: Callable[[float], None] | None = None
        self._holds_limit = False
        self._tries = 0
        self._target: Address | None = None
        self._next_socket = 0
        self._low_rounds = 1

    # ------------------------------------------------------------------ the house shape

    def start(self, now: float) -> None:
        """Begin: the sides start sampling (and the client its first round)."""
        raise NotImplementedError

    def receive_datagram(self, data: bytes, addr: Address, socket: int, now: float) -> None:
        """A datagram that is not DHT or UDX traffic arrived from ``addr`` on ``socket``; only 1-byte
        probes mean anything here (others are ignored)."""
        if len(data) == 1 and not self.done:
            self._on_probe(addr, socket, now)

    def handle_timer(self, now: float) -> None:
        """Call when ``now`` reached :meth:`get_timer`."""
        if self._timer is None or now < self._timer or self._on_timer is None:
            return
        action, self._timer, self._on_timer = self._on_timer, None, None
        action(now)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run next (seconds on the caller's clock), or None."""
        return self._timer

    def datagrams_to_send(self) -> list[Probe]:
        """The probes to send now (each a 1-byte datagram ``b"\\x00"``)."""
        out, self._probes = self._probes, []
        return out

    def next_event(self) -> Event | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ NAT sampling

    def _start_sampling(self) -> None:
        self._pings_left = len(self._sample_nodes)
        for addr in self._sample_nodes:
            self._events.append(PingWanted(addr=addr))
        if not self._sample_nodes:
            self._sampling_done(None)

    def ping_answered(self, seen_as: Address, from_addr: Address, now: float) -> None:
        """A sampling PING was answered by ``from_addr``, which saw us at ``seen_as``."""
        self.nat.add(seen_as, from_addr)
        self._ping_settled(now)

    def ping_failed(self, now: float) -> None:
        """A sampling PING got no answer."""
        self._ping_settled(now)

    def _ping_settled(self, now: float) -> None:
        self._pings_left -= 1
        if not self.sampled and (self.nat.done or self._pings_left <= 0):
            self._sampling_done(now)

    def _sampling_done(self, now: float | None) -> None:
        self.nat.give_up()
        self.sampled = True
        if now is not None:
            self._on_sampled(now)

    def _on_sampled(self, now: float) -> None:
        """Our NAT class is known (or as known as it gets). Overridden by the sides."""

    # ------------------------------------------------------------------ the peer's state

    def _seal(self, hp: HolepunchPayload) -> bytes:
        return self.payload.encrypt(hp, self._random_bytes(24))

    def _learn(self, rp: HolepunchPayload, verified_host: str | None) -> None:
        """Take the peer's NAT class, addresses and punching flag from ``rp``; addresses on a host
        already verified (or on ``verified_host``, whose token the peer echoed) are verified."""
        verified = {a[0] for a, v in self.remote_addresses if v}
        if verified_host is not None:
            verified.add(verified_host)
        self.remote_firewall = rp.firewall
        self.remote_addresses = [(a, a[0] in verified) for a in rp.addresses or ()]
        self.remote_punching = rp.punching

    def has_verified(self) -> bool:
        return any(v for _, v in self.remote_addresses)

    # ------------------------------------------------------------------ probing

    def _send_probe(self, addr: Address, socket: int | None = None, ttl: int | None = None) -> None:
        if 0 < addr[1] < 65536:
            self._probes.append(Probe(addr, self.socket if socket is None else socket, ttl))
            self.probes_sent += 1

    def _set_timer(self, when: float, action: Callable[[float], None]) -> None:
        self._timer, self._on_timer = when, action

    def _start_punch(self, strategy: Strategy, now: float, *, delay: float = 0.0) -> None:
        """Start probing with ``strategy``; the first probes go out after ``delay`` seconds (birthday
        sockets are asked for at once). The caller checked :attr:`limit` for a random strategy."""
        self.strategy = strategy
        self.punching = True
        self._tries = 0
        self._events.append(PunchStarted(strategy=strategy))
        if strategy is not Strategy.CONSISTENT:
            self.limit.begin()
            self._holds_limit = True
        if strategy is Strategy.CONSISTENT:
            self._set_timer(now + delay, self._consistent_tick)
        elif strategy is Strategy.RANDOM_PROBES:
            self._target = next(a for a, v in self.remote_addresses if v)
            self._set_timer(now + delay, self._random_tick)
        else:
            self._target = next(a for a, v in self.remote_addresses if v)
            self._events.append(SocketWanted())

    def _consistent_tick(self, now: float) -> None:
        self._tries += 1
        if self._tries > CONSISTENT_TRIES:
            self._punch_exhausted(now)
            return
        for addr in consistent_targets(self.remote_addresses, self._tries):
            self._send_probe(addr)
        self._set_timer(now + CONSISTENT_INTERVAL, self._consistent_tick)

    def _random_tick(self, now: float) -> None:
        self._tries += 1
        if self._tries > RANDOM_TRIES:
            self._punch_exhausted(now)
            return
        assert self._target is not None
        self._send_probe((self._target[0], random_port(self._random_bytes)))
        self._set_timer(now + RANDOM_INTERVAL, self._random_tick)

    def socket_opened(self, index: int, now: float) -> None:
        """The birthday socket asked for with :class:`SocketWanted` is bound, as ``index``."""
        self.sockets.append(index)
        if not self.punching or self.done:
            return
        assert self._target is not None
        self._send_probe(self._target, index, HOLEPUNCH_TTL)
        if len(self.sockets) < BIRTHDAY_SOCKETS:
            self._events.append(SocketWanted())
        else:
            self._set_timer(now + BIRTHDAY_SETTLE, self._birthday_tick)

    def socket_failed(self, now: float) -> None:
        """A birthday socket could not be bound: probe from those we have (or give up if none)."""
        if not self.punching or self.done:
            return
        if not self.sockets:
            self._punch_exhausted(now)
        else:
            self._set_timer(now + BIRTHDAY_SETTLE, self._birthday_tick)

    def _birthday_tick(self, now: float) -> None:
        self._tries += 1
        if self._tries > RANDOM_TRIES or not self.sockets:
            self._punch_exhausted(now)
            return
        if self._next_socket >= len(self.sockets):
            self._next_socket = 0
            self._low_rounds = max(0, self._low_rounds - 1)
        assert self._target is not None
        self._send_probe(self._target, self.sockets[self._next_socket], HOLEPUNCH_TTL if self._low_rounds else None)
        self._next_socket += 1
        self._set_timer(now + RANDOM_INTERVAL, self._birthday_tick)

    def stop_punching(self, now: float) -> None:
        """Stop probing (no timer left); a random strategy's slot in :attr:`limit` is given back."""
        self.punching = False
        self._timer = self._on_timer = None
        if self._holds_limit:
            self._holds_limit = False
            self.limit.end(now)

    def _punch_exhausted(self, now: float) -> None:
        self.stop_punching(now)

    def _on_probe(self, addr: Address, socket: int, now: float) -> None:
        """A probe arrived (the sides decide what it means)."""

    def close(self, now: float) -> None:
        """End the session: no more probes, timers or events that need answers."""
        self.stop_punching(now)
        self.done = True
