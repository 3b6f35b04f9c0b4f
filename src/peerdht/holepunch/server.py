"""The server side of a holepunch (hyperdht ``lib/server.js`` ``_onpeerholepunch`` with
``lib/holepuncher.js``), sans-IO.

A session starts with an accepted handshake that offered holepunching: we sample our NAT at once.
Each PEER_HOLEPUNCH round of the client (:meth:`ServerPunch.receive_round`) updates what we know of
the client and is answered once our NAT is sampled (:class:`~peerdht.holepunch.events.RoundAnswered`):

* an error round (the client aborts) is answered with ABORTED at once;
* our class still UNKNOWN after sampling: ABORTED;
* we map CONSISTENTly and the client probed an address of ours: one probe back ("fast mode");
* the client punches and we do not yet: choose the strategy; none (or birthday sockets for a stream
  already on a relay): ABORTED; a random strategy while another ran within the last
  :data:`~peerdht.holepunch.strategy.RANDOM_PUNCH_INTERVAL` seconds: TRY_LATER; else start probing
  (a CONSISTENT punch waits one interval first: the client's probes go first);
* the answer carries our class, addresses, whether we punch, our token for the client's host (only
  through our own relays, whose address reports we trust) and the client's token echoed.

The stream opens with the client's first UDX packet; the driver then calls :meth:`ServerPunch.connected`.
"""

from __future__ import annotations

from typing import Unpack

from peerdht.holepunch.events import RoundAnswered
from peerdht.holepunch.session import PunchSession, SessionArgs
from peerdht.holepunch.strategy import (
    CONSISTENT_INTERVAL,
    Strategy,
    choose_strategy,
    coerce_firewall,
)
from peerdht.hyper.constants import Firewall
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.records import HolepunchPayload

Address = tuple[str, int]

__all__ = ["ServerPunch"]


class _Round:
    __slots__ = ("peer_address", "request_id", "rp", "trusted")

    def __init__(self, request_id: int, rp: HolepunchPayload, peer_address: Address, trusted: bool) -> None:
        self.request_id = request_id
        self.rp = rp
        self.peer_address = peer_address
        self.trusted = trusted


class ServerPunch(PunchSession):
    """One server holepunch, for one accepted handshake. See the module docstring.

    Args:
        remote_firewall: the client's NAT class from its Noise payload (UNKNOWN if it gave none).
        relayed: the stream already runs through a blind relay (may be set later, as an attribute).
        session: the :class:`~peerdht.holepunch.session.SessionArgs`, passed on to
            :class:`~peerdht.holepunch.session.PunchSession`.

    Attributes:
        is_connected: the client's stream opened (we stop probing; rounds are still answered).
        rounds: rounds received and decrypted; ``bad_payloads``: rounds that did not decrypt.
    """

    def __init__(
        self,
        *,
        remote_firewall: int = Firewall.UNKNOWN,
        relayed: bool = False,
        **session: Unpack[SessionArgs],
    ) -> None:
        super().__init__(remote_firewall=remote_firewall, **session)
        self.relayed = relayed
        self.is_connected = False
        self.rounds = 0
        self.bad_payloads = 0
        self._waiting: list[_Round] = []

    def start(self, now: float) -> None:
        """Start sampling our NAT."""
        self._start_sampling()

    def receive_round(
        self, request_id: int, payload: bytes, peer_address: Address, *, trusted: bool, now: float
    ) -> bool:
        """A PEER_HOLEPUNCH round for this session: ``payload`` sealed by the client, ``peer_address``
        the client's address as the forwarding relay saw it; ``trusted``: that relay is one of ours.

        Returns:
            True if a :class:`~peerdht.holepunch.events.RoundAnswered` for ``request_id`` will come
            (now or once sampled); False if the payload did not decrypt (dropped, counted).
        """
        rp = self.payload.decrypt(payload)
        if rp is None:
            self.bad_payloads += 1
            return False
        self.rounds += 1
        if rp.error != Err.NONE:
            self.round = max(self.round, rp.round)
            self._answer_abort(request_id, now)
            return True
        echoed = trusted and rp.remote_token is not None and rp.remote_token == self.payload.token(peer_address[0])
        if rp.round >= self.round:
            self.round = rp.round
            self._learn(rp, peer_address[0] if echoed else None)
        r = _Round(request_id, rp, peer_address, trusted)
        if self.sampled:
            self._answer(r, now)
        else:
            self._waiting.append(r)
        return True

    def _on_sampled(self, now: float) -> None:
        waiting, self._waiting = self._waiting, []
        for r in waiting:
            self._answer(r, now)

    def _answer_abort(self, request_id: int, now: float, error: int = Err.ABORTED) -> None:
        if self.strategy is not None:
            self.stop_punching(now)
        hp = HolepunchPayload(error=error, firewall=Firewall.UNKNOWN, round=self.round)
        self._events.append(RoundAnswered(request_id=request_id, value=self._seal(hp), socket=None, error=error))

    def _answer(self, r: _Round, now: float) -> None:
        if self.nat.firewall == Firewall.UNKNOWN:
            self._answer_abort(r.request_id, now)
            return
        if (
            coerce_firewall(self.nat.firewall) == Firewall.CONSISTENT
            and r.rp.remote_address is not None
            and self.nat.addresses is not None
            and r.rp.remote_address in self.nat.addresses
        ):
            self._send_probe(r.peer_address)  # fast mode: the client opened a session to us
        if self.remote_punching and self.strategy is None:
            strategy = choose_strategy(self.nat.firewall, self.remote_firewall, self.has_verified())
            if strategy is None or (strategy is Strategy.BIRTHDAY and self.relayed):
                self._answer_abort(r.request_id, now)  # (a relayed stream cannot move to a birthday socket)
                return
            if strategy is not Strategy.CONSISTENT and not self.limit.allowed(now):
                self._answer_abort(r.request_id, now, Err.TRY_LATER)
                return
            delay = CONSISTENT_INTERVAL if strategy is Strategy.CONSISTENT else 0.0  # the client probes first
            self._start_punch(strategy, now, delay=delay)
        if self.nat.firewall != Firewall.UNKNOWN:
            self.nat.freeze()
        hp = HolepunchPayload(
            firewall=self.nat.firewall,
            round=self.round,
            connected=self.is_connected,
            punching=self.punching,
            addresses=self.nat.addresses,
            token=self.payload.token(r.peer_address[0]) if r.trusted else None,
            remote_token=r.rp.token,
        )
        self._events.append(RoundAnswered(request_id=r.request_id, value=self._seal(hp), socket=self.socket))

    def _on_probe(self, addr: Address, socket: int, now: float) -> None:
        # birthday sockets answer every probe so the client learns the path is open
        if self.punching and self.strategy is Strategy.BIRTHDAY and socket in self.sockets:
            self._send_probe(addr, socket)

    def connected(self, now: float) -> None:
        """The client's stream opened: stop probing (later rounds are still answered)."""
        self.is_connected = True
        self.stop_punching(now)
