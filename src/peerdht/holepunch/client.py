"""The client side of a holepunch (hyperdht ``lib/connect.js`` ``holepunch`` / ``probeRound`` /
``roundPunch`` with ``lib/holepuncher.js``), sans-IO.

The flow, after the Noise handshake told us the server is holepunchable:

1. open a session to the server's address (one probe), sample our NAT (PINGs), and send a *probe round*
   (a PEER_HOLEPUNCH with our NAT class so far) through the relay that knows the server;
2. once our NAT is sampled: if the server's class is still UNKNOWN wait
   :data:`SERVER_ANALYSIS_WAIT` and send one more probe round; if either class is still unknown, or
   both are RANDOM, abort (the server is told) and fail;
3. a *punch round* (``punching``, our address token for the server's host, its token echoed) through
   the relay we handshook with; the server starts punching and answers;
4. probe with the strategy of :func:`~peerdht.holepunch.strategy.choose_strategy`.

A probe from the server's host on the punch socket connects at any point ("fast open": a CONSISTENT
server answers the very first probe); while probing, a probe from anywhere on the punch socket (or a
birthday socket) does. :class:`~peerdht.holepunch.events.Connected` tells where; a failure is one
:class:`~peerdht.holepunch.events.PunchFailed` carrying hyperdht's error code as a
:class:`~peerdht.errors.ConnectError`.

``relayed`` (the relay -> direct upgrade of a stream already spliced through a blind relay): the same
flow, but a punch that would need birthday sockets is refused (the stream cannot change socket).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from peerdht.errors import (
    ConnectError,
    DecodeError,
    HolepunchAborted,
    HolepunchDoubleRandomized,
    HolepunchInvalid,
    HolepunchProbeTimeout,
    RemoteAborted,
    RemoteNotHolepunchable,
    RemoteNotHolepunching,
)
from peerdht.holepunch.events import Connected, PunchFailed, RoundWanted
from peerdht.holepunch.session import PunchSession, SessionArgs
from peerdht.holepunch.strategy import Strategy, choose_strategy
from peerdht.hyper.constants import Firewall, HandshakeMode
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.records import (
    Holepunch,
    HolepunchPayload,
    RelayInfo,
    decode_holepunch,
    encode_holepunch,
)

Address = tuple[str, int]

SERVER_ANALYSIS_WAIT = 1.0
"""Seconds we give a server whose NAT class is still UNKNOWN before the second probe round."""

__all__ = ["SERVER_ANALYSIS_WAIT", "ClientPunch"]


class ClientPunch(PunchSession):
    """One client holepunch. See the module docstring for the flow.

    Args:
        hp_id: the server's holepunch id (its Noise payload's ``holepunch.id``).
        relays: the server's relays (``holepunch.relays``), each with the server's address as it sees it.
        relay: the node our handshake went through (the punch round goes there).
        server_address: the server's address as ``relay`` saw it.
        remote_firewall: the server's NAT class from its Noise payload.
        relayed: upgrade mode (see the module docstring).
        session: the :class:`~peerdht.holepunch.session.SessionArgs`, passed on to
            :class:`~peerdht.holepunch.session.PunchSession`.

    Attributes:
        server_address: where we probe the server (may change to the address its relay reports).
        connected_to: ``(addr, socket)`` once connected.
        error: the failure, once failed.
    """

    def __init__(
        self,
        *,
        hp_id: int,
        relays: Sequence[RelayInfo],
        relay: Address,
        server_address: Address,
        remote_firewall: int,
        relayed: bool = False,
        **session: Unpack[SessionArgs],
    ) -> None:
        if not relays:
            raise ValueError("a holepunch needs at least one relay of the server")
        super().__init__(remote_firewall=remote_firewall, **session)
        self.hp_id = hp_id
        self.relay = relay
        self.server_relay = next((r for r in relays if r.relay_address == relay), relays[0])
        self.server_address = server_address
        self.relayed = relayed
        self.connected_to: tuple[Address, int] | None = None
        self.error: ConnectError | None = None
        self._stage = "new"
        self._retry = True
        self._expect_from: Address | None = None
        self._last: tuple[HolepunchPayload, Address] | None = None
        self._sent: tuple[HolepunchPayload, Address] | None = None

    def start(self, now: float) -> None:
        """Open the session to the server, start sampling and send the first probe round."""
        self._start_sampling()
        self._probe_round()

    # ------------------------------------------------------------------ rounds

    def _request(self, to: Address, peer_address: Address, hp: HolepunchPayload, *, abort: bool = False) -> None:
        value = encode_holepunch(
            Holepunch(mode=HandshakeMode.FROM_CLIENT, id=self.hp_id, payload=self._seal(hp), peer_address=peer_address)
        )
        self.round += 1
        if not abort:
            self._expect_from = to
            self._sent = (hp, peer_address)
        self._events.append(RoundWanted(relay=to, value=value, abort=abort))

    def _probe_round(self) -> None:
        self._send_probe(self.server_address)  # openSession
        self._stage = "probe"
        hp = HolepunchPayload(
            firewall=self.nat.firewall,
            round=self.round,
            addresses=self.nat.addresses,
            remote_address=self.server_address,
        )
        self._request(self.server_relay.relay_address, self.server_relay.peer_address, hp)

    def round_reply(self, value: bytes | None, seen_as: Address, from_addr: Address, now: float) -> None:
        """The reply to our last :class:`~peerdht.holepunch.events.RoundWanted` (its ``value``, our
        address as the replying node saw it, and that node's address)."""
        if self.done or self._stage not in ("probe", "punch"):
            return
        try:
            msg = decode_holepunch(value or b"")
        except (DecodeError, ValueError):
            self._fail(HolepunchInvalid("bad holepunch reply"), now)
            return
        if msg.mode != HandshakeMode.REPLY or from_addr != self._expect_from:
            self._fail(HolepunchInvalid("bad holepunch reply"), now)
            return
        rp = self.payload.decrypt(msg.payload)
        if rp is None:
            self._fail(HolepunchInvalid(), now)
            return
        if rp.error == Err.TRY_LATER:
            self._fail(HolepunchAborted("server asked to try later (TRY_LATER)"), now)
            return
        if rp.error != Err.NONE:
            self._fail(RemoteAborted(f"remote aborted with error code {rp.error}"), now)
            return
        assert self._sent is not None
        sent, sent_to = self._sent
        echoed = sent.token is not None and rp.remote_token is not None and rp.remote_token == sent.token
        self._learn(rp, sent_to[0] if echoed else None)
        peer_address = msg.peer_address or from_addr
        if self._stage == "punch":
            self._after_punch_round(now)
            return
        self.nat.add(seen_as, from_addr)
        self._last = (rp, peer_address)
        self._stage = "sampling"
        if self.sampled:
            self._on_sampled(now)

    def round_failed(self, reason: str, now: float) -> None:
        """The last round request got no (valid) reply."""
        if not self.done and self._stage in ("probe", "punch"):
            self._fail(HolepunchAborted(f"holepunch request failed: {reason}"), now)

    def _on_sampled(self, now: float) -> None:
        if self._stage != "sampling":
            return  # the probe round's reply is not here yet
        self._stage = "deciding"
        if self.remote_firewall == Firewall.UNKNOWN:
            self._set_timer(now + SERVER_ANALYSIS_WAIT, self._decide)
        else:
            self._decide(now)

    def _decide(self, now: float) -> None:
        assert self._last is not None
        rp, peer_address = self._last
        if (self.remote_firewall == Firewall.UNKNOWN or rp.token is None) and self._retry:
            self._retry = False
            self._probe_round()
            return
        if self.remote_firewall == Firewall.UNKNOWN or self.nat.firewall == Firewall.UNKNOWN:
            self._abort(HolepunchProbeTimeout(), now)
            return
        if self.remote_firewall >= Firewall.RANDOM and self.nat.firewall >= Firewall.RANDOM:
            self._abort(HolepunchDoubleRandomized(), now)
            return
        if self.server_relay.relay_address == self.relay and self.server_address != peer_address:
            self.server_address = peer_address
            self._send_probe(self.server_address)
        self._punch_round(rp.token, now)

    def _punch_round(self, remote_token: bytes | None, now: float) -> None:
        self.nat.freeze()
        if self.relayed and self.nat.firewall >= Firewall.RANDOM:
            self._abort(RemoteNotHolepunchable("no birthday sockets for a relayed stream (it cannot change socket)"), now)
            return
        is_random = self.remote_firewall >= Firewall.RANDOM or self.nat.firewall >= Firewall.RANDOM
        if is_random and not self.limit.allowed(now):
            self._fail(HolepunchAborted("another random punch ran less than 20 s ago (no relay to wait on)"), now)
            return
        self._stage = "punch"
        hp = HolepunchPayload(
            firewall=self.nat.firewall,
            round=self.round,
            punching=True,
            addresses=self.nat.addresses,
            token=self.payload.token(self.server_address[0]),
            remote_token=remote_token,
        )
        self._request(self.relay, self.server_address, hp)

    def _after_punch_round(self, now: float) -> None:
        self._stage = "punching"
        if not self.remote_punching:
            self._fail(RemoteNotHolepunching(), now)
            return
        strategy = choose_strategy(self.nat.firewall, self.remote_firewall, self.has_verified())
        if strategy is None:
            self._fail(RemoteNotHolepunchable(), now)
            return
        self._start_punch(strategy, now)

    def _abort(self, error: ConnectError, now: float) -> None:
        """Tell the server we stop (an ABORTED round through its relay, not awaited), then fail."""
        hp = HolepunchPayload(error=Err.ABORTED, firewall=Firewall.UNKNOWN, round=self.round)
        self._request(self.server_relay.relay_address, self.server_relay.peer_address, hp, abort=True)
        self._fail(error, now)

    # ------------------------------------------------------------------ outcomes

    def _on_probe(self, addr: Address, socket: int, now: float) -> None:
        if socket == self.socket and addr[0] == self.server_address[0]:
            self._connect(addr, socket, now)  # fast open (holepuncher.js onconnect)
        elif self.punching and (
            socket in self.sockets if self.strategy is Strategy.BIRTHDAY else socket == self.socket
        ):
            self._connect(addr, socket, now)

    def _connect(self, addr: Address, socket: int, now: float) -> None:
        if self.strategy is None:
            self.strategy = Strategy.CONSISTENT
        self.connected_to = (addr, socket)
        self.close(now)
        self._events.append(Connected(addr=addr, socket=socket))

    def _punch_exhausted(self, now: float) -> None:
        self._fail(HolepunchAborted(), now)

    def _fail(self, error: ConnectError, now: float) -> None:
        self.error = error
        self.close(now)
        self._events.append(PunchFailed(error=error))
