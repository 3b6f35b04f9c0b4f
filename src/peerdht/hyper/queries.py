"""The dht-rpc queries and HyperDHT's commands as typed ops on the shared engine (:mod:`peerdht.kademlia.ops`).

:class:`HyperQuery` is dht-rpc 6.27's ``Query`` (``lib/query.js``) on :class:`~peerdht.kademlia.ops.LookupOp`:
requests go out with 5 retries; a request being retried stops counting against the 10 in flight; a node that
timed out gets a DOWN_HINT sent to each node that listed it (and to later ones that list it again); replies
without a verified id feed the lookup with their closer nodes but are not among the closest; the query ends
when only slow requests are left and 20 replies are in. Its ``commit`` (:class:`CommitQuery`) writes to each
of the closest replies with the token it gave, and the op fails with the first remote error when nothing was
stored (hyperdht's ``SEQ_REUSED``/``SEQ_TOO_LOW`` fail it in any case).

One class per command: :class:`FindNodeQuery` and :class:`RefreshQuery` (dht-rpc ``findNode``/``refresh``);
hyperdht 6.34 ``index.js``'s :class:`TopicLookupQuery` (``lookup``), :class:`FindPeerQuery` (``findPeer``),
:class:`AnnounceQuery` (``announce``), :class:`UnannounceQuery` (``lookupAndUnannounce``: writes while the
lookup runs), :class:`ImmutablePutQuery` / :class:`ImmutableGetQuery`, :class:`MutablePutQuery` /
:class:`MutableGetQuery`. The node's bootstrap query lives with the network state
(:mod:`peerdht.hyper.rpc_network`).

The queries reach the node only through :class:`QueryNode`, a few public methods of
:class:`~peerdht.hyper.rpc.RPCNode`; the node hands each query what became of its requests
(:meth:`HyperQuery.response`, :meth:`HyperQuery.failed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from peerdht.errors import DecodeError, PeerDHTError, RemoteError, RequestError, RequestTimeout
from peerdht.hyper.constants import Command, Error, InternalCommand
from peerdht.hyper.crypto import KeyPair, sign_announce, verify_mutable
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.events import LookupResult, MutablePutResult, MutableRecord
from peerdht.hyper.records import (
    Announce,
    Peer,
    decode_lookup_reply,
    decode_mutable_get_response,
    decode_peer,
    encode_announce,
)
from peerdht.hyper.rpc_requests import CLIENT, QUERY_RETRIES, REQUEST_RETRIES, REQUEST_TIMEOUT, SERVER
from peerdht.hyper.rpc_types import OutgoingRequest
from peerdht.kademlia.ops import LookupOp
from peerdht.kademlia.table import Contact

if TYPE_CHECKING:
    from peerdht.hyper.events import Event
    from peerdht.hyper.rpc_types import Reply

__all__ = [
    "AnnounceQuery",
    "CommitQuery",
    "FindNodeQuery",
    "FindPeerQuery",
    "HyperQuery",
    "ImmutableGetQuery",
    "ImmutablePutQuery",
    "MutableGetQuery",
    "MutablePutQuery",
    "QueryNode",
    "RefreshQuery",
    "TopicLookupQuery",
    "UnannounceQuery",
]

Address = tuple[str, int]

K = 20
"""dht-rpc's k: closest replies kept, nodes written to."""
CONCURRENCY = 10
"""dht-rpc's query concurrency: requests in flight (slow ones not counted)."""


class QueryNode(Protocol):
    """What the queries use of the node (:class:`~peerdht.hyper.rpc.RPCNode`)."""

    firewalled: bool
    """Requests leave from the client socket (else the server socket)."""

    def submit(self, req: OutgoingRequest) -> None:
        """Send ``req`` (queued while the congestion window is full)."""

    def abort_request(self, request: OutgoingRequest) -> None:
        """Forget a request in flight (or waiting for the window)."""

    def send_down_hint(self, referrer: Contact, down: Contact) -> None:
        """DOWN_HINT ``down`` to ``referrer`` (at most 50 a tick)."""

    def closer_id(self, host: str, port: int) -> bytes | None:
        """The id of a closer node given by address (``None``: skip it)."""

    def query_closed(self, query: HyperQuery) -> None:
        """The lookup of ``query`` ended: stop pumping it, count it out of the active queries."""

    def op_done(self, op: int | None, result: object) -> None:
        """``OpDone(op, result)`` if ``op`` is still pending."""

    def op_failed(self, op: int | None, error: PeerDHTError) -> None:
        """``OpFailed(op, error)`` if ``op`` is still pending."""

    def emit(self, event: Event) -> None:
        """Queue an event."""


class HyperQuery(LookupOp[OutgoingRequest]):
    """A dht-rpc query of ``command`` towards ``target`` (see the module docstring).

    Args:
        node: the node (:class:`QueryNode`).
        op: the op id, or ``None`` for background queries.
        target: 32 bytes.
        command: the command each node is asked (``internal`` for dht-rpc's own).
        value: the request value (e.g. MUTABLE_GET's seq), or ``None``.
    """

    __slots__ = ("command", "internal", "node", "value")

    DOWN_HINTS = True

    def __init__(
        self,
        node: QueryNode,
        op: int | None,
        target: bytes,
        command: int,
        *,
        internal: bool = False,
        value: bytes | None = None,
    ) -> None:
        super().__init__(op, target, k=K, concurrency=CONCURRENCY)
        self.node = node
        self.command = command
        self.internal = internal
        self.value = value

    # -- the engine's protocol ----------------------------------------------------------------

    def send_query(self, contact: Contact, now: float) -> OutgoingRequest:
        # the outcome comes back through req.owner (this query) and req.contact
        node = self.node
        req = OutgoingRequest(
            contact.addr,
            CLIENT if node.firewalled else SERVER,
            self.internal,
            self.command,
            None,
            None,
            self.target,
            self.value,
            None,
            QUERY_RETRIES,
            REQUEST_TIMEOUT,
            contact.id or None,
            self,
            contact,
        )
        node.submit(req)
        return req

    def write(self, addr: Address, command: int, value: bytes | None, token: bytes) -> OutgoingRequest:
        """Send one write of this query (``command`` with ``value`` and the ``token`` ``addr`` gave; 3
        retries); its outcome comes back to the query."""
        node = self.node
        req = OutgoingRequest(
            addr,
            CLIENT if node.firewalled else SERVER,
            False,
            command,
            None,
            None,
            self.target,
            value,
            token,
            REQUEST_RETRIES,
            REQUEST_TIMEOUT,
            None,
            self,
            None,
        )
        node.submit(req)
        return req

    def abort_request(self, request: OutgoingRequest) -> None:
        self.node.abort_request(request)

    def emit_done(self, result: object) -> None:
        self.node.op_done(self.id, result)

    def emit_failed(self, error: PeerDHTError) -> None:
        self.node.op_failed(self.id, error)

    def lookup_closed(self) -> None:
        self.node.query_closed(self)

    def send_down_hint(self, referrer: Contact, down: Contact, now: float) -> None:
        self.node.send_down_hint(referrer, down)

    def lookup_done(self, now: float) -> None:
        self.finish(None)

    def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
        r: Reply = data  # type: ignore[assignment]  # response() passes the Reply
        m = r.message
        if fed and m.closer_nodes:
            self.lookup.add_addresses(m.closer_nodes, responder, self.node.closer_id)
        if m.error == 0:
            self.on_value(responder, r, now)

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        """A successful reply (``error == 0``): the command's meaning (query.js ``onresponse``). Default:
        nothing."""

    # -- request outcomes (called by the node) ---------------------------------------------

    def response(self, req: OutgoingRequest, contact: Contact | None, r: Reply, now: float) -> None:
        """``req`` (a query request to ``contact``, or a write) was answered with ``r``."""
        if self.stores and req in self.stores:
            error = r.message.error
            self.on_store_reply(req, now, RemoteError(error) if error else None)
            return
        assert contact is not None
        from_addr = r.from_addr
        from_id = r.from_id
        responder = Contact(from_id or contact.id, from_addr[0], from_addr[1])
        self.on_reply(req, responder, r, now, counts=r.message.error == 0 and from_id is not None)

    def failed(self, req: OutgoingRequest, contact: Contact | None, error: PeerDHTError, now: float) -> None:
        """``req`` got no reply (``error``)."""
        if self.stores and req in self.stores:
            self.on_store_failure(req, error, now)
            return
        assert contact is not None
        self.on_failure(req, contact, now, timed_out=isinstance(error, RequestTimeout))


class FindNodeQuery(HyperQuery):
    """FIND_NODE (dht-rpc ``findNode``): result the (up to 20) closest nodes that answered with a verified id."""

    __slots__ = ()

    def __init__(self, node: QueryNode, op: int | None, target: bytes) -> None:
        super().__init__(node, op, target, InternalCommand.FIND_NODE, internal=True)

    def lookup_done(self, now: float) -> None:
        self.finish(self.lookup.closest_nodes())


class RefreshQuery(FindNodeQuery):
    """A background FIND_NODE (table refresh, bootstrap): no op id, no event."""

    __slots__ = ()

    def __init__(self, node: QueryNode, target: bytes) -> None:
        super().__init__(node, None, target)

    def lookup_done(self, now: float) -> None:
        self.finish(None)


# ---------------------------------------------------------------------------------------------- reads


class TopicLookupQuery(HyperQuery):
    """LOOKUP ``topic``: a :class:`LookupResult` per node that knows peers, then ``OpDone(None)``."""

    __slots__ = ()

    def __init__(self, node: QueryNode, op: int, topic: bytes) -> None:
        super().__init__(node, op, topic, Command.LOOKUP)

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        value = r.message.value
        if value is None:
            return
        mapped = self.map_value(value)
        if mapped is not None:
            assert self.id is not None
            self.node.emit(LookupResult(op=self.id, from_addr=r.from_addr, peers=mapped[0], bump=mapped[1]))

    def map_value(self, value: bytes) -> tuple[tuple[Peer, ...], int] | None:
        """The peers (and bump) of a reply value, ``None`` if it does not decode."""
        return map_lookup(value)


class FindPeerQuery(TopicLookupQuery):
    """FIND_PEER ``hash(public_key)``: a :class:`LookupResult` (one peer) per node holding the server's
    self-announce, then ``OpDone(None)``."""

    __slots__ = ()

    def __init__(self, node: QueryNode, op: int, target: bytes) -> None:
        HyperQuery.__init__(self, node, op, target, Command.FIND_PEER)

    def map_value(self, value: bytes) -> tuple[tuple[Peer, ...], int] | None:
        try:
            return ((decode_peer(value),), 0)
        except DecodeError:
            return None


class ImmutableGetQuery(HyperQuery):
    """IMMUTABLE_GET ``hash``: the first value that hashes to it (the query stops), else ``None``."""

    __slots__ = ()

    def __init__(self, node: QueryNode, op: int, hash: bytes) -> None:
        super().__init__(node, op, hash, Command.IMMUTABLE_GET)

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        v = r.message.value
        if v is not None and blake2b(v) == self.target:
            self.finish(v)


class MutableGetQuery(HyperQuery):
    """MUTABLE_GET ``hash(public_key)``: verified values with ``seq >= seq``; with ``latest`` the highest seq
    of the whole query, else the first valid one (the query stops). Result :class:`MutableRecord` or ``None``."""

    __slots__ = ("best", "latest", "public_key", "seq")

    def __init__(
        self, node: QueryNode, op: int, public_key: bytes, seq: int, *, latest: bool, value: bytes
    ) -> None:
        super().__init__(node, op, blake2b(public_key), Command.MUTABLE_GET, value=value)
        self.public_key = public_key
        self.seq = seq
        self.latest = latest
        self.best: MutableRecord | None = None

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        v = r.message.value
        if v is None:
            return
        try:
            got = decode_mutable_get_response(v)
        except DecodeError:
            return
        best = self.best
        if best is not None and got.seq <= best.seq:
            return
        if got.seq < self.seq or not verify_mutable(got.signature, got.seq, got.value, self.public_key):
            return
        rec = MutableRecord(seq=got.seq, value=got.value, signature=got.signature, from_addr=r.from_addr)
        if not self.latest:
            self.finish(rec)
            return
        self.best = rec

    def lookup_done(self, now: float) -> None:
        self.finish(self.best)


# ---------------------------------------------------------------------------------------------- writes


class CommitQuery(HyperQuery):
    """A query, then a write (``write_command``) to each of the closest replies with its token (dht-rpc
    ``query.js`` ``commit``). Result :meth:`result` of the number of nodes that stored it; ``OpFailed``
    ("too few nodes responded") when no node answered the query, else when nothing was stored: the first
    remote error, or the last error, or "no node stored the value". A remote error whose code is in
    :attr:`FAIL_ON` fails the op even if others stored it."""

    __slots__ = ("write_command",)

    FAIL_ON: frozenset[int] = frozenset()

    def __init__(
        self,
        node: QueryNode,
        op: int,
        target: bytes,
        command: int,
        write_command: int,
        *,
        value: bytes | None = None,
    ) -> None:
        super().__init__(node, op, target, command, value=value)
        self.write_command = write_command

    def write_value(self, contact: Contact, token: bytes) -> bytes:
        """The write's value for ``contact``, which gave ``token``."""
        raise NotImplementedError

    def result(self, stored: int) -> object:
        """The op's result once ``stored`` nodes stored the value."""
        return stored

    def lookup_done(self, now: float) -> None:
        replies = self.lookup.closest_replies()
        if not replies:
            self.fail(RequestError("too few nodes responded"))
            return
        self.begin_store()
        for c, data in replies:
            r: Reply = data  # type: ignore[assignment]  # response() keeps the Reply
            if r.message.token is None:
                self.store_errors.append(RequestError("no token received from closest node"))
                continue
            self.store(c, r, now)
        self.maybe_store_done(now)

    def send_store(self, contact: Contact, data: object, now: float) -> OutgoingRequest:
        r: Reply = data  # type: ignore[assignment]
        token = r.message.token
        assert token is not None
        return self.write(r.from_addr, self.write_command, self.write_value(contact, token), token)

    def store_done(self, now: float) -> None:
        errors = self.store_errors
        for e in errors:
            if isinstance(e, RemoteError) and e.code in self.FAIL_ON:
                self.fail(e)
                return
        if self.stored > 0:
            self.finish(self.result(self.stored))
            return
        remote = [e for e in errors if isinstance(e, RemoteError)]
        self.fail(remote[0] if remote else errors[-1] if errors else RequestError("no node stored the value"))


class AnnounceQuery(CommitQuery):
    """LOOKUP ``topic``, then a signed ANNOUNCE of ``peer`` to each of the closest (hyperdht ``announce``);
    result the number of nodes that stored it."""

    __slots__ = ("key_pair", "peer")

    def __init__(self, node: QueryNode, op: int, topic: bytes, peer: Peer, key_pair: KeyPair) -> None:
        super().__init__(node, op, topic, Command.LOOKUP, Command.ANNOUNCE)
        self.peer = peer
        self.key_pair = key_pair

    def write_value(self, contact: Contact, token: bytes) -> bytes:
        sig = sign_announce(self.target, contact.id, token, self.peer, None, self.key_pair)
        return encode_announce(Announce(peer=self.peer, signature=sig))


class ImmutablePutQuery(CommitQuery):
    """IMMUTABLE_GET, then IMMUTABLE_PUT of ``value`` (hyperdht ``immutablePut``); result ``hash(value)``."""

    __slots__ = ("put_value",)

    def __init__(self, node: QueryNode, op: int, value: bytes) -> None:
        super().__init__(node, op, blake2b(value), Command.IMMUTABLE_GET, Command.IMMUTABLE_PUT)
        self.put_value = value

    def write_value(self, contact: Contact, token: bytes) -> bytes:
        return self.put_value

    def result(self, stored: int) -> object:
        return self.target


class MutablePutQuery(CommitQuery):
    """MUTABLE_GET, then MUTABLE_PUT of a signed record (hyperdht ``mutablePut``); result
    :class:`MutablePutResult`. A SEQ_REUSED or SEQ_TOO_LOW from any node fails the op."""

    __slots__ = ("public_key", "seq", "signature", "signed")

    FAIL_ON = frozenset({Error.SEQ_REUSED, Error.SEQ_TOO_LOW})

    def __init__(
        self,
        node: QueryNode,
        op: int,
        public_key: bytes,
        seq: int,
        signature: bytes,
        signed: bytes,
        *,
        value: bytes,
    ) -> None:
        super().__init__(node, op, blake2b(public_key), Command.MUTABLE_GET, Command.MUTABLE_PUT, value=value)
        self.public_key = public_key
        self.seq = seq
        self.signature = signature
        self.signed = signed

    def write_value(self, contact: Contact, token: bytes) -> bytes:
        return self.signed

    def result(self, stored: int) -> object:
        return MutablePutResult(
            public_key=self.public_key, seq=self.seq, signature=self.signature, stored=stored
        )


class UnannounceQuery(HyperQuery):
    """LOOKUP ``topic`` and a signed UNANNOUNCE to every node that lists our key, while the lookup runs
    (hyperdht ``lookupAndUnannounce``); result the number of nodes that acknowledged. ``OpFailed`` ("too few
    nodes responded") if no node answered the lookup."""

    __slots__ = ("key_pair", "peer")

    def __init__(self, node: QueryNode, op: int, topic: bytes, key_pair: KeyPair) -> None:
        super().__init__(node, op, topic, Command.LOOKUP)
        self.key_pair = key_pair
        self.peer = Peer(public_key=key_pair.public_key)

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        m = r.message
        if m.value is None or m.token is None or r.from_id is None:
            return
        mapped = map_lookup(m.value)
        if mapped is None:
            return
        peers = mapped[0]
        if len(peers) < 20 and not any(p.public_key == self.key_pair.public_key for p in peers):
            return
        self.store(responder, r, now)

    def send_store(self, contact: Contact, data: object, now: float) -> OutgoingRequest:
        r: Reply = data  # type: ignore[assignment]
        token = r.message.token
        assert token is not None and r.from_id is not None
        sig = sign_announce(self.target, r.from_id, token, self.peer, None, self.key_pair, unannounce=True)
        value = encode_announce(Announce(peer=self.peer, signature=sig))
        return self.write(r.from_addr, Command.UNANNOUNCE, value, token)

    def lookup_done(self, now: float) -> None:
        if not self.lookup.closest_count:
            self.fail(RequestError("too few nodes responded"))
            return
        self.begin_store()
        self.maybe_store_done(now)


def map_lookup(value: bytes) -> tuple[tuple[Peer, ...], int] | None:
    """The peers and bump of a LOOKUP reply value (``None`` if it does not decode), memoised: the (up to 20)
    closest nodes of a topic hold the same records, so a lookup gets the same value bytes from most of them
    (the result is immutable: shared safely)."""
    got = _LOOKUP_VALUES.get(value)
    if got is not None:
        return got
    try:
        r = decode_lookup_reply(value)
    except DecodeError:
        return None
    got = (r.peers, r.bump)
    if len(value) <= _LOOKUP_VALUE_MAX:
        if len(_LOOKUP_VALUES) >= _LOOKUP_VALUES_MAX:
            _LOOKUP_VALUES.clear()
        _LOOKUP_VALUES[value] = got
    return got


_LOOKUP_VALUES: dict[bytes, tuple[tuple[Peer, ...], int]] = {}  # LOOKUP reply value -> decoded (bounded)
_LOOKUP_VALUES_MAX = 256
_LOOKUP_VALUE_MAX = 2048  # bytes: larger values are decoded every time
