"""The PEER_HANDSHAKE / PEER_HOLEPUNCH router every HyperDHT node runs (hyperdht ``lib/router.js``).

A server self-announces to the nodes closest to ``hash(public_key)``; those nodes remember where the
announce came from (``Storage.router``, a :class:`~peerdht.hyper.storage.Forward`). A client sends
its Noise handshake to such a node (mode FROM_CLIENT); the node relays it to the server (FROM_RELAY,
carrying the client's address); the server relays its answer back through the node (FROM_SERVER),
which replies to the client (REPLY, carrying the server's address). PEER_HOLEPUNCH rounds take the
same path.

A node that itself hosts a server (:meth:`Router.listen`) does not call the server: it emits a
:class:`~peerdht.hyper.events.HandshakeReceived` / :class:`~peerdht.hyper.events.HolepunchReceived`
event and keeps the request until the application answers through :meth:`Router.answer` (or
:meth:`Router.decline`); the answer goes back through the same request, as ``server.js`` answers
through ``req.reply`` / ``req.relay``. At most :data:`MAX_WAITING` requests wait, each at most
:data:`ANSWER_TIMEOUT` seconds (oldest dropped first, counted in ``stats["unanswered"]``).

Sans-IO: :meth:`Router.handle` only queues datagrams on the node (``reply`` / ``relay``) and events
on :attr:`Router.events`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peerdht.errors import DecodeError
from peerdht.hyper.constants import Command
from peerdht.hyper.events import HandshakeReceived, HolepunchReceived
from peerdht.hyper.records import (
    Handshake,
    Holepunch,
    decode_handshake,
    decode_holepunch,
    encode_handshake,
    encode_holepunch,
)
from peerdht.kademlia.store import ExpiringCache

if TYPE_CHECKING:
    from peerdht.hyper.messages import Request
    from peerdht.hyper.node import HyperDHTNode

Address = tuple[str, int]

FROM_CLIENT = 0
FROM_SERVER = 1
FROM_RELAY = 2
FROM_SECOND_RELAY = 3
REPLY = 4

ANSWER_TIMEOUT = 30.0
"""Seconds a request for a local server waits for its answer (a holepunch round waits for the
server's NAT sampling; a JS client has long given up by then)."""
MAX_WAITING = 4096
"""Requests for local servers waiting for an answer at most; beyond it the oldest is forgotten."""

__all__ = [
    "ANSWER_TIMEOUT",
    "FROM_CLIENT",
    "FROM_RELAY",
    "FROM_SECOND_RELAY",
    "FROM_SERVER",
    "MAX_WAITING",
    "REPLY",
    "Router",
    "ServerAnswer",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerAnswer:
    """What a local server answers to a handshake or holepunch message.

    Attributes:
        value: the Noise reply (handshake) or the encrypted holepunch payload.
        socket: the node socket to send it from (``None``: the one the request arrived on).
    """

    value: bytes
    socket: int | None = None


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A request for a local server waiting for its answer: where the answer goes."""

    req: Request
    addr: Address  # who sent the request
    socket: int
    holepunch: bool
    mode: int  # handshake mode (FROM_CLIENT / FROM_RELAY / FROM_SECOND_RELAY); FROM_RELAY for rounds
    peer: Address  # the client
    relay_address: Address | None  # FROM_SECOND_RELAY: the first relay, which gets the answer


class Router:
    """Routes PEER_HANDSHAKE and PEER_HOLEPUNCH (``lib/router.js``).

    Attributes:
        servers: the targets (``hash(public_key)``, 32 bytes) of the servers hosted here.
        events: :class:`HandshakeReceived` / :class:`HolepunchReceived` not yet taken (the node's
            ``next_event`` drains them).
        stats: ``relayed`` / ``replied`` / ``served`` / ``dropped`` (malformed, or declined by the
            local server) / ``unanswered`` (waited longer than :data:`ANSWER_TIMEOUT`, or evicted)
            counters.
    """

    def __init__(self) -> None:
        self.servers: set[bytes] = set()
        self.events: deque[HandshakeReceived | HolepunchReceived] = deque()
        self.stats: dict[str, int] = {"relayed": 0, "replied": 0, "served": 0, "dropped": 0, "unanswered": 0}
        self._waiting: ExpiringCache[int, _Waiting] = ExpiringCache(max_size=MAX_WAITING, max_age=ANSWER_TIMEOUT)
        self._next_id = 0

    def listen(self, target: bytes) -> None:
        """Host a server for ``target`` (32 bytes) on this node: its handshakes become events."""
        self.servers.add(bytes(target))

    def unlisten(self, target: bytes) -> None:
        """Stop hosting ``target``."""
        self.servers.discard(bytes(target))

    @property
    def waiting(self) -> int:
        """Requests waiting for :meth:`answer` / :meth:`decline` (at most :data:`MAX_WAITING`)."""
        return len(self._waiting)

    def answer(self, node: HyperDHTNode, request_id: int, value: bytes, now: float, socket: int | None = None) -> bool:
        """Answer the request of a :class:`HandshakeReceived` (the Noise reply) or
        :class:`HolepunchReceived` (the encrypted holepunch payload) through the request it came in.

        Args:
            node: the node that emitted the event.
            request_id: the event's ``request_id``.
            value: the answer bytes.
            now: seconds.
            socket: the node socket to send from (``None``: the one the request arrived on).

        Returns:
            False when the request is unknown, already answered or expired (nothing is sent).
        """
        w = self._take(request_id, now)
        if w is None:
            return False
        out_socket = w.socket if socket is None else socket
        self.stats["served"] += 1
        if w.holepunch:
            hp = Holepunch(mode=FROM_SERVER, id=0, payload=value, peer_address=w.peer)
            node.relay(w.req, encode_holepunch(hp), w.addr, out_socket)
        elif w.mode == FROM_CLIENT:
            reply = encode_handshake(Handshake(mode=REPLY, noise=value))
            node.reply(w.req, w.addr, out_socket, value=reply, token=False, closer_nodes=False)
        else:
            to = w.addr if w.mode == FROM_RELAY else w.relay_address
            assert to is not None
            hs = Handshake(mode=FROM_SERVER, noise=value, peer_address=w.peer)
            node.relay(w.req, encode_handshake(hs), to, out_socket)
        return True

    def decline(self, request_id: int, now: float) -> bool:
        """Drop the request of an event unanswered (counted in ``stats["dropped"]``; the client
        times out, as with JS when the server refuses). Returns False when it was not waiting."""
        if self._take(request_id, now) is None:
            return False
        self._drop()
        return True

    def _take(self, request_id: int, now: float) -> _Waiting | None:
        stored = self._waiting.stored_at(request_id)
        w = self._waiting.get(request_id, now)
        if w is None:
            if stored is not None:
                self.stats["unanswered"] += 1  # expired just now
            return None
        self._waiting.delete(request_id)
        return w

    def _wait(self, w: _Waiting, now: float) -> int:
        self.stats["unanswered"] += self._waiting.prune(now)
        if len(self._waiting) >= MAX_WAITING:
            self.stats["unanswered"] += 1  # put() evicts the oldest
        self._next_id += 1
        self._waiting.put(self._next_id, w, now)
        return self._next_id

    def handle(self, node: HyperDHTNode, req: Request, addr: Address, socket: int, now: float) -> bool:
        """Handle a PEER_HANDSHAKE / PEER_HOLEPUNCH request ``req`` from ``addr`` on ``socket``.

        Returns:
            True when handled (answered, relayed or silently dropped as JS does), False for other
            commands.
        """
        if req.command == Command.PEER_HANDSHAKE:
            self._on_handshake(node, req, addr, socket, now)
            return True
        if req.command == Command.PEER_HOLEPUNCH:
            self._on_holepunch(node, req, addr, socket, now)
            return True
        return False

    def _relay_of(self, node: HyperDHTNode, target: bytes | None, now: float) -> Address | None:
        if target is None:
            return None
        fwd = node.storage.router.get(target, now)
        return fwd.relay if fwd is not None else None

    def _drop(self) -> None:
        self.stats["dropped"] += 1

    def _on_handshake(self, node: HyperDHTNode, req: Request, addr: Address, socket: int, now: float) -> None:
        if req.value is None:
            return self._drop()
        try:
            hs = decode_handshake(req.value)
        except DecodeError:
            return self._drop()
        if req.target is not None and req.target in self.servers:
            if not hs.noise:
                return self._drop()
            if hs.mode not in (FROM_CLIENT, FROM_RELAY, FROM_SECOND_RELAY):
                return self._drop()
            if hs.mode == FROM_SECOND_RELAY and hs.relay_address is None:
                return self._drop()
            direct = hs.mode == FROM_CLIENT
            peer = addr if direct else hs.peer_address
            if peer is None:
                return self._drop()
            rid = self._wait(_Waiting(req, addr, socket, False, hs.mode, peer, hs.relay_address), now)
            self.events.append(
                HandshakeReceived(
                    request_id=rid,
                    target=req.target,
                    noise=hs.noise,
                    peer_address=None if direct else peer,
                    from_addr=addr,
                    socket=socket,
                )
            )
            return None
        relay = self._relay_of(node, req.target, now)
        if hs.mode == FROM_CLIENT:
            if not hs.noise:
                return self._drop()
            if relay is None and hs.relay_address is None:
                node.reply(req, addr, socket, token=False, closer_nodes=True)  # help the client route
                return None
            value = encode_handshake(Handshake(mode=FROM_RELAY, noise=hs.noise, peer_address=addr))
            node.relay(req, value, hs.relay_address or relay, socket)  # type: ignore[arg-type]
            self.stats["relayed"] += 1
            return None
        if hs.mode == FROM_RELAY:
            if relay is None or not hs.noise:
                return self._drop()
            value = encode_handshake(
                Handshake(
                    mode=FROM_SECOND_RELAY, noise=hs.noise, peer_address=hs.peer_address, relay_address=addr
                )
            )
            node.relay(req, value, relay, socket)
            self.stats["relayed"] += 1
            return None
        if hs.mode == FROM_SERVER:
            if hs.peer_address is None or not hs.noise:
                return self._drop()
            value = encode_handshake(Handshake(mode=REPLY, noise=hs.noise, peer_address=addr))
            node.reply(req, hs.peer_address, socket, value=value, token=False, closer_nodes=False)
            self.stats["replied"] += 1
            return None
        return self._drop()

    def _on_holepunch(self, node: HyperDHTNode, req: Request, addr: Address, socket: int, now: float) -> None:
        if req.value is None:
            return self._drop()
        try:
            hp = decode_holepunch(req.value)
        except DecodeError:
            return self._drop()
        if hp.mode == FROM_CLIENT:
            to = hp.peer_address or self._relay_of(node, req.target, now)
            if to is None:
                return self._drop()
            value = encode_holepunch(
                Holepunch(mode=FROM_RELAY, id=hp.id, payload=hp.payload, peer_address=addr)
            )
            node.relay(req, value, to, socket)
            self.stats["relayed"] += 1
            return None
        if hp.mode == FROM_RELAY:
            if req.target is None or req.target not in self.servers or hp.peer_address is None:
                return self._drop()
            rid = self._wait(_Waiting(req, addr, socket, True, FROM_RELAY, hp.peer_address, None), now)
            self.events.append(
                HolepunchReceived(
                    request_id=rid,
                    target=req.target,
                    id=hp.id,
                    payload=hp.payload,
                    peer_address=hp.peer_address,
                    from_addr=addr,
                    socket=socket,
                )
            )
            return None
        if hp.mode == FROM_SERVER:
            if hp.peer_address is None:
                return self._drop()
            value = encode_holepunch(Holepunch(mode=REPLY, id=hp.id, payload=hp.payload, peer_address=addr))
            node.reply(req, hp.peer_address, socket, value=value, token=False, closer_nodes=False)
            self.stats["replied"] += 1
            return None
        return self._drop()
