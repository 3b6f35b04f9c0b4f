"""The Mainline commands as typed ops on the shared engine (:mod:`peerdht.kademlia.ops`).

One class per command: :class:`PingOp` and :class:`SampleOp` (one request, BEP 5 ``ping``, BEP 51
``sample_infohashes``); the iterative ones on :class:`MainlineLookupOp` -- :class:`FindNodeOp` (and
:class:`BootstrapOp`, :class:`RefreshOp`), :class:`GetPeersOp`, :class:`AnnounceOp` (BEP 5 ``get_peers`` then
``announce_peer`` to the closest responders with their tokens), :class:`GetOp` and :class:`PutOp` (BEP 44
``get``, then ``put`` with the tokens, the highest verified ``seq`` + 1, ``cas``). What
``bittorrent-dht/client.js`` does in ``lookup``, ``announce``, ``get`` and ``put``.

The ops speak KRPC through :class:`OpNode`, the small public surface of
:class:`~peerdht.mainline.client.MainlineClient` they need (send a query, forget a request, emit an event);
the node hands each op what became of its requests (:meth:`MainlineOp.on_response`,
:meth:`MainlineOp.on_error_reply`, :meth:`MainlineOp.on_request_failed`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol

from peerdht.encoding.bencode import Value, encode
from peerdht.errors import LocalProtocolError, PeerDHTError, RemoteError, RequestError, RequestTimeout
from peerdht.kademlia.ops import LookupOp, Operation
from peerdht.kademlia.requests import PendingRequest
from peerdht.kademlia.table import Contact
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import (
    KeyPair,
    immutable_target,
    node_id_matches_ip,
    sign_mutable,
    verify_mutable,
)
from peerdht.mainline.events import (
    AnnounceResult,
    Bootstrapped,
    GetResult,
    Item,
    LookupResult,
    OpDone,
    OpFailed,
    PeersFound,
    PingResult,
    PutResult,
    SampleResult,
)

if TYPE_CHECKING:
    from collections import Counter

    from peerdht.kademlia.store import ExpiringCache
    from peerdht.kademlia.table import RoutingTable

__all__ = [
    "AnnounceOp",
    "BootstrapOp",
    "FindNodeOp",
    "GetOp",
    "GetPeersOp",
    "MainlineLookupOp",
    "MainlineOp",
    "OpNode",
    "PingOp",
    "PutOp",
    "RefreshOp",
    "SampleOp",
]

Addr = tuple[str, int]


class OpNode(Protocol):
    """What the ops use of the node (:class:`~peerdht.mainline.client.MainlineClient`)."""

    id: bytes
    k: int
    concurrency: int
    enforce_bep42: bool
    table: RoutingTable
    items: ExpiringCache[bytes, Item]
    stats: Counter[str]

    def send_query(
        self, op: MainlineOp, contact: Contact, query: m.Query, now: float
    ) -> PendingRequest | None:
        """Encode and send ``query`` to ``contact`` for ``op``; the request, or ``None`` (no tid free)."""

    def abort_request(self, request: PendingRequest) -> None:
        """Forget ``request`` if it is still in flight."""

    def emit(self, event: object) -> None:
        """Queue an event for :meth:`next_event`."""

    def forget_op(self, op: MainlineOp) -> None:
        """Drop ``op`` from the op table (it ended)."""

    def closer_contacts(self, resp: m.FindNodeResponse | m.GetPeersResponse | m.GetResponse) -> list[Contact]:
        """The closer nodes of a reply, as contacts of our transport."""


class MainlineOp(Operation[PendingRequest]):
    """A Mainline op: the engine's protocol side (forget requests, ``OpDone``/``OpFailed`` events) and the
    request outcomes the node hands in. Subclasses give the meaning."""

    __slots__ = ()

    node: OpNode

    @property
    def op_id(self) -> int:
        """The op id (Mainline ops always have one)."""
        assert self.id is not None
        return self.id

    def abort_request(self, request: PendingRequest) -> None:
        self.node.abort_request(request)

    def emit_done(self, result: object) -> None:
        self.node.emit(OpDone(op=self.op_id, result=result))

    def emit_failed(self, error: PeerDHTError) -> None:
        self.node.emit(OpFailed(op=self.op_id, error=error))

    def closed(self) -> None:
        self.node.forget_op(self)

    def send(self, contact: Contact, query: m.Query, now: float) -> PendingRequest | None:
        """Send ``query`` to ``contact`` as a request of this op (tracked until it ends)."""
        req = self.node.send_query(self, contact, query, now)
        if req is not None:
            self.requests.add(req)
        return req

    # -- request outcomes (called by the node) -------------------------------------------------

    def on_response(
        self, request: PendingRequest, contact: Contact, responder: Contact, resp: m.Response, now: float
    ) -> None:
        """``request`` (sent to ``contact``) got the parsed response ``resp`` from ``responder``."""
        raise NotImplementedError

    def on_error_reply(
        self, request: PendingRequest, contact: Contact, msg: m.ErrorMessage, now: float
    ) -> None:
        """``request`` (sent to ``contact``) got a KRPC error."""
        raise NotImplementedError

    def on_request_failed(
        self, request: PendingRequest, contact: Contact, error: PeerDHTError, now: float
    ) -> None:
        """``request`` timed out, or its reply was unusable (``error``)."""
        raise NotImplementedError


class PingOp(MainlineOp):
    """BEP 5 ``ping`` of one address; result :class:`PingResult`."""

    __slots__ = ("node",)

    def __init__(self, node: OpNode, id: int) -> None:
        super().__init__(id)
        self.node = node

    def start(self, contact: Contact, query: m.Query, now: float) -> None:
        """Send the op's one request; if no transaction id is free (every one of the 2-byte ``t`` values
        is in flight), the op fails at once with :class:`~peerdht.errors.RequestError` (nothing else would
        ever end it)."""
        if self.send(contact, query, now) is None:
            self.fail(RequestError("no transaction id free: too many requests in flight"))

    def on_response(
        self, request: PendingRequest, contact: Contact, responder: Contact, resp: m.Response, now: float
    ) -> None:
        self.finish(PingResult(id=responder.id, addr=responder.addr))

    def on_error_reply(
        self, request: PendingRequest, contact: Contact, msg: m.ErrorMessage, now: float
    ) -> None:
        self.fail(RemoteError(msg.code, msg.message))

    def on_request_failed(
        self, request: PendingRequest, contact: Contact, error: PeerDHTError, now: float
    ) -> None:
        self.fail(error)


class SampleOp(PingOp):
    """BEP 51 ``sample_infohashes`` to one node; result :class:`SampleResult`."""

    __slots__ = ()

    def on_response(
        self, request: PendingRequest, contact: Contact, responder: Contact, resp: m.Response, now: float
    ) -> None:
        assert isinstance(resp, m.SampleInfohashesResponse)
        self.finish(
            SampleResult(
                id=resp.id,
                samples=resp.samples,
                num=resp.num,
                interval=resp.interval,
                nodes=resp.nodes + resp.nodes6,
            )
        )


class MainlineLookupOp(LookupOp[PendingRequest], MainlineOp):
    """An iterative Mainline op: the lookup query (:meth:`make_query`), replies read as KRPC responses."""

    __slots__ = ("_query", "node")

    def __init__(self, node: OpNode, id: int, target: bytes) -> None:
        LookupOp.__init__(self, id, target, k=node.k, concurrency=node.concurrency)
        self.node = node
        self._query: m.Query | None = None

    def make_query(self) -> m.Query:
        """The lookup query (``find_node``, ``get_peers`` or ``get``) with our current id."""
        raise NotImplementedError

    def send_query(self, contact: Contact, now: float) -> PendingRequest | None:
        query = self._query
        if query is None or query.id != self.node.id:  # our id may change (BEP 42 adoption)
            query = self._query = self.make_query()
        return self.node.send_query(self, contact, query, now)

    def start_lookup(self, bootstrap: list[Addr], now: float) -> None:
        """Seed from the table's ``k`` closest (and ``bootstrap`` while the table has fewer than ``k``
        nodes), send the first queries."""
        node = self.node
        boot = [Contact(id=b"", host=h, port=p) for h, p in bootstrap] if len(node.table) < node.k else []
        self.start(node.table.closest(self.target, node.k), now, boot)

    def on_response(
        self, request: PendingRequest, contact: Contact, responder: Contact, resp: m.Response, now: float
    ) -> None:
        if self.is_store(request):
            self.on_store_reply(request, now)
            return
        if isinstance(resp, (m.FindNodeResponse, m.GetPeersResponse, m.GetResponse)):
            node = self.node
            counts = not node.enforce_bep42 or node_id_matches_ip(responder.id, responder.host)
            if contact.id != responder.id:
                contact = Contact(id=responder.id, host=contact.host, port=contact.port)
            self.on_reply(request, contact, resp, now, counts=counts, closer=node.closer_contacts(resp))
        else:
            self.on_reply(request, contact, None, now, counts=False)

    def on_error_reply(
        self, request: PendingRequest, contact: Contact, msg: m.ErrorMessage, now: float
    ) -> None:
        if self.is_store(request):
            self.on_store_reply(request, now, RemoteError(msg.code, msg.message))
        else:
            self.on_reply(request, contact, None, now, counts=False)

    def on_request_failed(
        self, request: PendingRequest, contact: Contact, error: PeerDHTError, now: float
    ) -> None:
        if self.is_store(request):
            self.on_store_failure(request, error, now)
        else:
            self.on_failure(request, contact, now)

    def closest_nodes(self) -> tuple[m.NodeInfo, ...]:
        """The closest responders as node infos, closest first."""
        return tuple(m.NodeInfo(id=c.id, host=c.host, port=c.port) for c, _ in self.lookup.closest_replies())


class FindNodeOp(MainlineLookupOp):
    """Iterative ``find_node``; result :class:`LookupResult` (``OpFailed`` if no node answered)."""

    __slots__ = ()

    def make_query(self) -> m.Query:
        return m.FindNode(id=self.node.id, target=self.target)

    def lookup_done(self, now: float) -> None:
        lookup = self.lookup
        if not lookup.closest_count and lookup.replies == 0:
            self.fail(RequestTimeout("no node answered the lookup"))
            return
        self.finish(LookupResult(nodes=self.closest_nodes(), queries=self.queries))


class BootstrapOp(FindNodeOp):
    """``find_node`` of our own id from the bootstrap nodes: :class:`Bootstrapped`, then :class:`LookupResult`."""

    __slots__ = ()

    def lookup_done(self, now: float) -> None:
        self.node.emit(Bootstrapped(nodes=len(self.node.table)))
        self.finish(LookupResult(nodes=self.closest_nodes(), queries=self.queries))


class RefreshOp(FindNodeOp):
    """A bucket refresh: ``find_node`` of a random id in a stale bucket, no outcome event."""

    __slots__ = ()

    def lookup_done(self, now: float) -> None:
        self.cancel()


class GetPeersOp(MainlineLookupOp):
    """Iterative ``get_peers``: a :class:`PeersFound` per reply with new peers, result :class:`LookupResult`."""

    __slots__ = ("peers",)

    STREAM = True

    def __init__(self, node: OpNode, id: int, target: bytes) -> None:
        super().__init__(node, id, target)
        self.peers: dict[Addr, None] = {}

    def make_query(self) -> m.Query:
        return m.GetPeers(id=self.node.id, info_hash=self.target)

    def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
        if not isinstance(data, m.GetPeersResponse) or not data.values:
            return
        peers = self.peers
        new = [a for a in data.values if a not in peers]
        for a in new:
            peers[a] = None
        if new and self.STREAM:
            self.node.emit(PeersFound(op=self.op_id, peers=tuple(new), source=responder.addr))

    def lookup_done(self, now: float) -> None:
        lookup = self.lookup
        if not lookup.closest_count and lookup.replies == 0:
            self.fail(RequestTimeout("no node answered the lookup"))
            return
        self.finish(LookupResult(nodes=self.closest_nodes(), peers=tuple(self.peers), queries=self.queries))


class AnnounceOp(GetPeersOp):
    """``get_peers``, then ``announce_peer`` to the closest responders with their tokens; result
    :class:`AnnounceResult`."""

    __slots__ = ("implied_port", "port")

    STREAM = False

    def __init__(self, node: OpNode, id: int, target: bytes, *, port: int, implied_port: bool) -> None:
        super().__init__(node, id, target)
        self.port = port
        self.implied_port = implied_port

    def lookup_done(self, now: float) -> None:
        self.begin_store()
        for contact, resp in self.lookup.closest_replies():
            if isinstance(resp, m.GetPeersResponse) and resp.token is not None:
                self.store(contact, resp.token, now)
        self.maybe_store_done(now)

    def send_store(self, contact: Contact, data: object, now: float) -> PendingRequest | None:
        assert isinstance(data, bytes)
        query = m.AnnouncePeer(
            id=self.node.id, info_hash=self.target, port=self.port, token=data, implied_port=self.implied_port
        )
        return self.node.send_query(self, contact, query, now)

    def store_done(self, now: float) -> None:
        self.finish(AnnounceResult(stored=self.stored, tried=self.tried))


class GetOp(MainlineLookupOp):
    """BEP 44 ``get``: the first immutable item whose bencoding hashes to the target, or the verified mutable
    item with the highest ``seq``; result :class:`GetResult`.

    Args:
        mutable: look for a mutable item of ``public_key`` and ``salt``.
        any_kind: take whatever is stored (``get_item``): immutable, or salt-less mutable with ``SHA1(k)``
            equal to the target.
    """

    __slots__ = ("any_kind", "best", "best_source", "mutable", "public_key", "salt")

    def __init__(
        self,
        node: OpNode,
        id: int,
        target: bytes,
        *,
        mutable: bool = False,
        any_kind: bool = False,
        public_key: bytes | None = None,
        salt: bytes = b"",
    ) -> None:
        super().__init__(node, id, target)
        self.mutable = mutable
        self.any_kind = any_kind
        self.public_key = public_key
        self.salt = salt
        self.best: Item | None = None
        self.best_source: Addr | None = None

    def make_query(self) -> m.Query:
        return m.Get(id=self.node.id, target=self.target)

    def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
        if isinstance(data, m.GetResponse) and data.v is not None:
            self._check_item(data, data.v, responder)

    def found_immutable(self, item: Item, source: Addr) -> None:
        """A valid immutable item arrived: a get ends with it."""
        self.best, self.best_source = item, source
        self.finish(GetResult(item=item, source=source))

    def _check_item(self, resp: m.GetResponse, v: Value, responder: Contact) -> None:
        try:
            encoded = encode(v)
        except LocalProtocolError:  # pragma: no cover
            return
        if not (self.mutable or self.any_kind) or (self.any_kind and resp.k is None):
            if immutable_target(encoded) == self.target:
                self.found_immutable(Item(v=v), responder.addr)
            else:
                self.node.stats["bad_items"] += 1
            return
        k = self.public_key
        if self.any_kind:  # a salt-less mutable item's target is SHA1(k)
            k = resp.k if resp.k is not None and hashlib.sha1(resp.k).digest() == self.target else None
        salt = self.salt
        if (
            k is None
            or resp.k is None
            or resp.k != k
            or resp.sig is None
            or resp.seq is None
            or resp.seq < 0
            or not verify_mutable(resp.k, resp.sig, encoded, resp.seq, salt)
        ):
            self.node.stats["bad_items"] += 1
            return
        best = self.best
        if best is None or (best.seq is not None and resp.seq > best.seq):
            self.best = Item(v=v, k=resp.k, seq=resp.seq, sig=resp.sig, salt=salt)
            self.best_source = responder.addr

    def lookup_done(self, now: float) -> None:
        self.finish(GetResult(item=self.best, source=self.best_source))


class PutOp(GetOp):
    """BEP 44 ``put``: a ``get`` lookup (tokens, the current ``seq``), then ``put`` to the closest responders
    with their tokens; result :class:`PutResult` (with the ``seq`` used and the error codes received).

    Args:
        value: the value (bencoded at most 1000 bytes).
        key_pair: signs a mutable item (``None``: immutable, or signed elsewhere with ``sig``).
        seq: ``None`` = one more than the highest found (1 if none).
        cas: compare-and-swap: storers refuse (301) unless their seq equals this.
        sig: the signature of an item signed elsewhere.
    """

    __slots__ = ("cas", "key_pair", "put_query", "seq", "seq_used", "sig", "value")

    def __init__(
        self,
        node: OpNode,
        id: int,
        target: bytes,
        value: Value,
        *,
        mutable: bool = False,
        public_key: bytes | None = None,
        salt: bytes = b"",
        key_pair: KeyPair | None = None,
        seq: int | None = None,
        cas: int | None = None,
        sig: bytes | None = None,
    ) -> None:
        super().__init__(node, id, target, mutable=mutable, public_key=public_key, salt=salt)
        self.value = value
        self.key_pair = key_pair
        self.seq = seq
        self.cas = cas
        self.sig = sig
        self.seq_used: int | None = None
        self.put_query: m.Put | None = None

    def found_immutable(self, item: Item, source: Addr) -> None:
        """A put keeps looking for tokens."""

    def lookup_done(self, now: float) -> None:
        self.begin_store()
        self.put_query = (
            self._signed_put(now) if self.mutable else m.Put(id=self.node.id, token=b"", v=self.value)
        )
        for contact, resp in self.lookup.closest_replies():
            if isinstance(resp, m.GetResponse) and resp.token is not None:
                self.store(contact, resp.token, now)
        self.maybe_store_done(now)

    def _signed_put(self, now: float) -> m.Put:
        seq = self.seq
        if seq is None:
            seq = 1 if self.best is None or self.best.seq is None else self.best.seq + 1
        encoded = encode(self.value)
        public_key = self.public_key
        assert public_key is not None
        if self.sig is not None:  # signed elsewhere (put_item)
            sig = self.sig
        else:
            assert self.key_pair is not None
            sig = sign_mutable(self.key_pair, encoded, seq, self.salt)
        salt = self.salt
        self.node.items.put(self.target, Item(v=self.value, k=public_key, seq=seq, sig=sig, salt=salt), now)
        self.seq_used = seq
        return m.Put(
            id=self.node.id, token=b"", v=self.value, k=public_key, sig=sig, seq=seq, salt=salt, cas=self.cas
        )

    def send_store(self, contact: Contact, data: object, now: float) -> PendingRequest | None:
        assert isinstance(data, bytes) and self.put_query is not None
        q = self.put_query
        query = m.Put(id=q.id, token=data, v=q.v, k=q.k, sig=q.sig, seq=q.seq, salt=q.salt, cas=q.cas)
        return self.node.send_query(self, contact, query, now)

    def store_done(self, now: float) -> None:
        codes = tuple(e.code for e in self.store_errors if isinstance(e, RemoteError))
        self.finish(
            PutResult(
                target=self.target, seq=self.seq_used, stored=self.stored, tried=self.tried, errors=codes
            )
        )
