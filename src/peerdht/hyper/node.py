"""The sans-IO HyperDHT node: dht-rpc's node plus HyperDHT's storage commands.

Mirrors hyperdht 6.34 ``index.js`` (``onrequest`` and the query helpers ``lookup``,
``findPeer``, ``announce``, ``unannounce``, ``immutablePut/Get``, ``mutablePut/Get``) on top of
:class:`peerdht.hyper.rpc.RPCNode` (dht-rpc); the records themselves live in
:class:`peerdht.hyper.storage.Storage` (``lib/persistent.js``).

Shape (aioquic's): the asyncio layer calls :meth:`HyperDHTNode.bind` once with the two bound
socket addresses, then feeds :meth:`~HyperDHTNode.receive_datagram` and
:meth:`~HyperDHTNode.handle_timer`, sends what :meth:`~HyperDHTNode.datagrams_to_send` returns
(``(data, addr, socket)``, ``socket`` being :data:`SERVER` or :data:`CLIENT`) and hands
:meth:`~HyperDHTNode.next_event` results to the application. Commands return an operation id
that the events carry.

Driving it (what the asyncio layer does)::

    node = HyperDHTNode(rng=random.Random(), secrets=os.urandom(64), bootstrap=[("1.2.3.4", 49737)])
    node.bind(server_sock.getsockname(), client_sock.getsockname(), loop.time())
    op = node.bootstrap(loop.time())
    # after every receive_datagram / handle_timer / command: send datagrams_to_send(now),
    # drain next_event(), and re-arm one timer at get_timer() (absolute, same clock as now);
    # when it fires call handle_timer(now). get_timer() is never None between bind() and
    # destroy() (the io.js drain runs every 0.75 s).

Modes: a bootstrap node is ``host=<public ip>, ephemeral=False, firewalled=False`` (dht-rpc
``DHT.bootstrapper``): persistent as soon as :meth:`HyperDHTNode.bootstrap` ran. Testnet members
are ``ephemeral=False, firewalled=False`` with a bootstrap list: persistent after their first
bootstrap query taught them their address (or at once with ``host``). ``ephemeral=None``
(default) is dht-rpc's adaptive mode. Ephemeral nodes answer HyperDHT's storage commands with
UNKNOWN_COMMAND (hyperdht ``onrequest`` while ``_persistent`` is null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from peerdht.errors import LocalProtocolError
from peerdht.hyper.constants import Command, Error
from peerdht.hyper.crypto import KeyPair, sign_mutable
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.events import Event
from peerdht.hyper.messages import Request
from peerdht.hyper.queries import (
    AnnounceQuery,
    FindPeerQuery,
    ImmutableGetQuery,
    ImmutablePutQuery,
    MutableGetQuery,
    MutablePutQuery,
    TopicLookupQuery,
    UnannounceQuery,
)
from peerdht.hyper.records import (
    MutablePutRequest,
    Peer,
    encode_mutable_put_request,
)
from peerdht.hyper.router import Router
from peerdht.hyper.rpc import (
    CLIENT,
    REFRESH_TICKS,
    SERVER,
    Address,
    Reply,
    RPCNode,
    check32,
)
from peerdht.hyper.storage import STORAGE_COMMANDS, Storage, encode_seq

if TYPE_CHECKING:
    import random

__all__ = ["CLIENT", "SERVER", "HyperDHTNode", "Reply"]


class HyperDHTNode(RPCNode):
    """A HyperDHT node core (hyperdht ``HyperDHT`` minus connections): dht-rpc plus records.

    Args:
        rng: injected random source (transaction ids, table id, fresh token secrets, LOOKUP
            samples).
        secrets: 64 random bytes, the two initial token secrets.
        bootstrap: bootstrap nodes as IPv4 ``(host, port)`` (resolve names before).
        ephemeral: ``None`` adaptive as dht-rpc (ephemeral until ~20 min of stable ticks and a
            passed firewall check); ``False`` go persistent right after the first bootstrap query
            if our address is known (``host`` or samples); ``True`` stay ephemeral.
        firewalled: start assuming we are firewalled (dht-rpc default ``True``).
        host: our public IPv4 when known (a bootstrap node): with the server port it gives the id.
        nodes: known nodes to add to the table at :meth:`bind`.

    Attributes:
        storage: the records this node keeps for others (served while persistent).
        router: PEER_HANDSHAKE / PEER_HOLEPUNCH routing and the servers hosted here
            (:class:`peerdht.hyper.router.Router`).
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        secrets: bytes,
        bootstrap: Sequence[Address] = (),
        ephemeral: bool | None = None,
        firewalled: bool = True,
        host: str | None = None,
        nodes: Sequence[Address] = (),
    ) -> None:
        super().__init__(
            rng=rng,
            secrets=secrets,
            bootstrap=bootstrap,
            ephemeral=ephemeral,
            firewalled=firewalled,
            host=host,
            nodes=nodes,
        )
        self.storage = Storage(rng)
        self.router = Router()

    # ------------------------------------------------------------------ serving (index.js onrequest)

    def _on_app_request(self, req: Request, addr: Address, socket: int, now: float) -> None:
        command = req.command
        if command in (Command.PEER_HANDSHAKE, Command.PEER_HOLEPUNCH):
            if not self.on_router_request(req, addr, socket, now):
                self._send_reply(req, addr, socket, error=Error.UNKNOWN_COMMAND, token=False)
            return
        if self.ephemeral:
            self._send_reply(req, addr, socket, error=Error.UNKNOWN_COMMAND, token=False)
            return
        if command in STORAGE_COMMANDS:
            reply = self.storage.handle(
                command,
                target=req.target,
                token=req.token,
                value=req.value,
                from_addr=addr,
                node_id=self.table.local_id,
                now=now,
            )
            if reply is None:
                self._drop("rejected_request")
                return
            self._send_reply(
                req,
                addr,
                socket,
                error=reply.error,
                value=reply.value,
                token=reply.token,
                closer=reply.closer_nodes,
            )
            return
        if command == Command.PLUGIN:
            self._drop("rejected_request")  # no plugins: hyperdht stays silent
            return
        self._send_reply(req, addr, socket, error=Error.UNKNOWN_COMMAND, token=False)

    def on_router_request(self, req: Request, addr: Address, socket: int, now: float) -> bool:
        """PEER_HANDSHAKE / PEER_HOLEPUNCH hook (hyperdht ``lib/router.js``; issue 4).

        Self-announces are in ``storage.router`` (:class:`~peerdht.hyper.storage.Forward`);
        answer with :meth:`reply` or forward with :meth:`relay`.

        Returns:
            True if handled; False answers UNKNOWN_COMMAND.
        """
        return self.router.handle(self, req, addr, socket, now)

    def answer(self, request_id: int, value: bytes, now: float, socket: int | None = None) -> bool:
        """Answer a :class:`~peerdht.hyper.events.HandshakeReceived` (the Noise reply) or
        :class:`~peerdht.hyper.events.HolepunchReceived` (the encrypted holepunch payload) through
        the request it came in (hyperdht ``lib/server.js`` ``req.reply`` / ``req.relay``).

        Args:
            request_id: the event's ``request_id``.
            value: the answer bytes.
            now: seconds.
            socket: the node socket to send from (``None``: the one the request arrived on).

        Returns:
            False when the request is unknown, already answered or expired (nothing is sent).
        """
        self._now = now
        return self.router.answer(self, request_id, value, now, socket)

    def decline(self, request_id: int, now: float) -> bool:
        """Leave the request of a router event unanswered (the client times out). Returns False when
        it was not waiting."""
        self._now = now
        return self.router.decline(request_id, now)

    def next_event(self) -> Event | None:
        """The next event (command results first, then router events), or None."""
        event = super().next_event()
        if event is None and self.router.events:
            return self.router.events.popleft()
        return event

    def _on_tick(self, now: float) -> None:
        super()._on_tick(now)
        # every tick (5 s): a prune looks at the oldest entry of each store only, and expired records go
        # at most a tick late (every 64 ticks let them stay up to 5 min past max_age)
        self.storage.prune(now)

    # ------------------------------------------------------------------ commands (index.js)

    def lookup(self, topic: bytes, now: float) -> int:
        """LOOKUP ``topic`` (32 bytes): a :class:`LookupResult` per node that knows peers, then
        ``OpDone(result=None)`` (hyperdht ``lookup``)."""
        self._now = now
        check32(topic, "topic")
        self._refresh_ticks = REFRESH_TICKS
        return self._start_query(TopicLookupQuery(self, self._new_op(None), topic))

    def find_peer(self, public_key: bytes, now: float) -> int:
        """FIND_PEER ``hash(public_key)``: a :class:`LookupResult` (one peer) per node holding the
        server's self-announce, then ``OpDone(result=None)`` (hyperdht ``findPeer``)."""
        self._now = now
        check32(public_key, "public_key")
        self._refresh_ticks = REFRESH_TICKS
        return self._start_query(FindPeerQuery(self, self._new_op(None), blake2b(public_key)))

    def announce(
        self, topic: bytes, key_pair: KeyPair, relay_addresses: Sequence[Address], now: float
    ) -> int:
        """Announce ``key_pair.public_key`` under ``topic`` (hyperdht ``announce``): a LOOKUP,
        then a signed ANNOUNCE to each of the (up to 20) closest nodes with the token it gave.

        ``OpDone(result=int)`` the number of nodes that stored it; ``OpFailed`` if none did.
        """
        self._now = now
        check32(topic, "topic")
        peer = Peer(public_key=key_pair.public_key, relay_addresses=tuple(relay_addresses)[:3])
        for a in peer.relay_addresses:
            self._check_addr(a)
        self._refresh_ticks = REFRESH_TICKS
        return self._start_query(AnnounceQuery(self, self._new_op(None), topic, peer, key_pair))

    def unannounce(self, topic: bytes, key_pair: KeyPair, now: float) -> int:
        """Remove our announce under ``topic`` (hyperdht ``unannounce`` =
        ``lookupAndUnannounce``): a LOOKUP, and a signed UNANNOUNCE to every node that lists our
        key. ``OpDone(result=int)`` the number of nodes that acknowledged."""
        self._now = now
        check32(topic, "topic")
        self.storage.unannounce(topic, key_pair.public_key)
        return self._start_query(UnannounceQuery(self, self._new_op(None), topic, key_pair))

    def immutable_put(self, value: bytes, now: float) -> int:
        """Store ``value`` at ``hash(value)`` (hyperdht ``immutablePut``); ``OpDone(result=hash)``
        (32 bytes) once at least one of the closest nodes stored it."""
        self._now = now
        value = bytes(value)
        if not value:
            raise LocalProtocolError("value must not be empty")
        self._refresh_ticks = REFRESH_TICKS
        return self._start_query(ImmutablePutQuery(self, self._new_op(None), value))

    def immutable_get(self, hash: bytes, now: float) -> int:
        """Fetch the value stored at ``hash`` (32 bytes) and verify it; stops at the first valid
        one. ``OpDone(result=bytes | None)``."""
        self._now = now
        check32(hash, "hash")
        return self._start_query(ImmutableGetQuery(self, self._new_op(None), hash))

    def mutable_put(self, key_pair: KeyPair, value: bytes, seq: int, now: float) -> int:
        """Sign and store ``value`` under ``hash(key_pair.public_key)`` with sequence ``seq``
        (hyperdht ``mutablePut``). ``OpDone(result=MutablePutResult)``; ``OpFailed`` with
        :class:`RemoteError` code 16 (SEQ_REUSED) / 17 (SEQ_TOO_LOW) if a node refused it so."""
        self._now = now
        value = bytes(value)
        if not value:
            raise LocalProtocolError("value must not be empty")
        if seq < 0:
            raise LocalProtocolError("seq must be >= 0")
        signature = sign_mutable(seq, value, key_pair)
        signed = encode_mutable_put_request(
            MutablePutRequest(public_key=key_pair.public_key, seq=seq, value=value, signature=signature)
        )
        self._refresh_ticks = REFRESH_TICKS
        q = MutablePutQuery(
            self, self._new_op(None), key_pair.public_key, seq, signature, signed, value=encode_seq(0)
        )
        return self._start_query(q)

    def mutable_get(self, public_key: bytes, now: float, *, seq: int = 0, latest: bool = True) -> int:
        """Fetch the mutable value of ``public_key`` (hyperdht ``mutableGet``): only verified
        values with ``seq >= seq``; with ``latest`` the highest seq seen during the whole query,
        else the first valid one. ``OpDone(result=MutableRecord | None)``."""
        self._now = now
        check32(public_key, "public_key")
        q = MutableGetQuery(self, self._new_op(None), public_key, seq, latest=latest, value=encode_seq(seq))
        return self._start_query(q)
