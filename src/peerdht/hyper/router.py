"""The PEER_HANDSHAKE / PEER_HOLEPUNCH router every HyperDHT node runs (hyperdht ``lib/router.js``).

A server self-announces to the nodes closest to ``hash(public_key)``; those nodes remember where the
announce came from (``Storage.router``, a :class:`~peerdht.hyper.storage.Forward`). A client sends
its Noise handshake to such a node (mode FROM_CLIENT); the node relays it to the server (FROM_RELAY,
carrying the client's address); the server relays its answer back through the node (FROM_SERVER),
which replies to the client (REPLY, carrying the server's address). PEER_HOLEPUNCH rounds take the
same path.

A node that itself hosts a server (:meth:`Router.listen`) answers handshakes for it directly: the
registered :class:`ServerHandler` turns the client's Noise message into a reply.

Sans-IO: :meth:`Router.handle` only queues datagrams on the node (``reply`` / ``relay``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from peerdht.errors import DecodeError
from peerdht.hyper.constants import Command
from peerdht.hyper.records import (
    Handshake,
    Holepunch,
    decode_handshake,
    decode_holepunch,
    encode_handshake,
    encode_holepunch,
)

if TYPE_CHECKING:
    from peerdht.hyper.messages import Request
    from peerdht.hyper.node import HyperDHTNode

Address = tuple[str, int]

FROM_CLIENT = 0
FROM_SERVER = 1
FROM_RELAY = 2
FROM_SECOND_RELAY = 3
REPLY = 4

__all__ = [
    "FROM_CLIENT",
    "FROM_RELAY",
    "FROM_SECOND_RELAY",
    "FROM_SERVER",
    "REPLY",
    "Router",
    "ServerAnswer",
    "ServerHandler",
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


class ServerHandler(Protocol):
    """A server hosted on this node (hyperdht ``Server._onpeerhandshake`` / ``_onpeerholepunch``)."""

    def on_peer_handshake(
        self, noise: bytes, peer_address: Address | None, from_addr: Address, socket: int, now: float
    ) -> ServerAnswer | None:
        """The client's Noise message; ``peer_address`` is None when the client came directly."""
        ...

    def on_peer_holepunch(
        self,
        id: int,
        payload: bytes,
        peer_address: Address,
        from_addr: Address,
        socket: int,
        now: float,
        respond: Callable[[ServerAnswer], None],
    ) -> None:
        """A holepunch round from the client (relayed: ``peer_address`` is the client). Call
        ``respond`` (now or later, at most once) to send the answer back through ``from_addr``;
        never calling it drops the round."""
        ...


class Router:
    """Routes PEER_HANDSHAKE and PEER_HOLEPUNCH (``lib/router.js``).

    Attributes:
        servers: local servers by target (``hash(public_key)``, 32 bytes).
        stats: ``relayed`` / ``replied`` / ``served`` / ``dropped`` counters.
    """

    def __init__(self) -> None:
        self.servers: dict[bytes, ServerHandler] = {}
        self.stats: dict[str, int] = {"relayed": 0, "replied": 0, "served": 0, "dropped": 0}

    def listen(self, target: bytes, handler: ServerHandler) -> None:
        """Host a server for ``target`` (32 bytes) on this node."""
        self.servers[bytes(target)] = handler

    def unlisten(self, target: bytes, handler: ServerHandler | None = None) -> None:
        """Stop hosting ``target`` (only if it is ``handler``, when given)."""
        cur = self.servers.get(bytes(target))
        if cur is not None and (handler is None or cur is handler):
            del self.servers[bytes(target)]

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
        server = self.servers.get(req.target) if req.target is not None else None
        if server is not None:
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
            ans = server.on_peer_handshake(hs.noise, None if direct else peer, addr, socket, now)
            if ans is None:
                return self._drop()
            out_socket = socket if ans.socket is None else ans.socket
            self.stats["served"] += 1
            if hs.mode == FROM_CLIENT:
                value = encode_handshake(Handshake(mode=REPLY, noise=ans.value))
                node.reply(req, addr, out_socket, value=value, token=False, closer_nodes=False)
            else:
                to = addr if hs.mode == FROM_RELAY else hs.relay_address
                assert to is not None
                value = encode_handshake(Handshake(mode=FROM_SERVER, noise=ans.value, peer_address=peer))
                node.relay(req, value, to, out_socket)
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
            server = self.servers.get(req.target) if req.target is not None else None
            if server is None or hp.peer_address is None:
                return self._drop()
            peer = hp.peer_address

            def respond(ans: ServerAnswer) -> None:
                value = encode_holepunch(
                    Holepunch(mode=FROM_SERVER, id=0, payload=ans.value, peer_address=peer)
                )
                node.relay(req, value, addr, socket if ans.socket is None else ans.socket)
                self.stats["served"] += 1

            server.on_peer_holepunch(hp.id, hp.payload, peer, addr, socket, now, respond)
            return None
        if hp.mode == FROM_SERVER:
            if hp.peer_address is None:
                return self._drop()
            value = encode_holepunch(Holepunch(mode=REPLY, id=hp.id, payload=hp.payload, peer_address=addr))
            node.reply(req, hp.peer_address, socket, value=value, token=False, closer_nodes=False)
            self.stats["replied"] += 1
            return None
        return self._drop()
