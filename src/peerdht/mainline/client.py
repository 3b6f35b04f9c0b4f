"""The client side of a Mainline node: lookups, announces, gets and puts (BEP 5, 44, 51), replies and timeouts
of our requests, bucket refresh. Part of :class:`peerdht.mainline.node.MainlineNode`.

Each command is a typed op of :mod:`peerdht.mainline.ops` on the shared engine (:mod:`peerdht.kademlia.ops`);
this module starts them and hands them what became of their requests.
"""

from __future__ import annotations

from typing import TypeVar

from peerdht.encoding.bencode import Value, encode
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RequestTimeout,
)
from peerdht.kademlia.ids import random_id_in_bucket
from peerdht.kademlia.requests import PendingRequest
from peerdht.kademlia.table import Contact
from peerdht.mainline import messages as m
from peerdht.mainline.core import (
    REFRESH_AFTER,
    Addr,
    Req,
)
from peerdht.mainline.crypto import (
    KeyPair,
    immutable_target,
    mutable_target,
    node_id_matches_ip,
    verify_mutable,
)
from peerdht.mainline.events import GetResult, Item
from peerdht.mainline.ops import (
    AnnounceOp,
    BootstrapOp,
    FindNodeOp,
    GetOp,
    GetPeersOp,
    MainlineLookupOp,
    MainlineOp,
    PingOp,
    PutOp,
    RefreshOp,
    SampleOp,
)
from peerdht.mainline.server import MainlineServer

_Op = TypeVar("_Op", bound=MainlineOp)


class MainlineClient(MainlineServer):
    """Lookups and stores, on top of :class:`~peerdht.mainline.server.MainlineServer`."""

    def ping(self, addr: Addr, now: float) -> int:
        """Ping ``addr``; result :class:`~peerdht.mainline.events.PingResult`. Fails (``OpFailed``) with
        :class:`~peerdht.errors.RequestTimeout` (no reply), :class:`~peerdht.errors.RemoteError` (a KRPC
        error), or at once with :class:`~peerdht.errors.RequestError` if no transaction id is free."""
        op = self._add(PingOp(self, self._new_op_id()))
        op.start(Contact(id=b"", host=addr[0], port=addr[1]), m.Ping(id=self.id), now)
        return op.op_id

    def bootstrap(self, now: float) -> int:
        """``find_node`` on our own id from the bootstrap nodes; also emits :class:`Bootstrapped`."""
        return self._start(BootstrapOp(self, self._new_op_id(), self.id), now)

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative ``find_node``; result :class:`~peerdht.mainline.events.LookupResult`."""
        self._check_id(target)
        return self._start(FindNodeOp(self, self._new_op_id(), target), now)

    def get_peers(self, info_hash: bytes, now: float) -> int:
        """Iterative ``get_peers``: streams :class:`PeersFound`, result ``LookupResult``."""
        self._check_id(info_hash)
        return self._start(GetPeersOp(self, self._new_op_id(), info_hash), now)

    def announce_peer(self, info_hash: bytes, port: int, now: float, *, implied_port: bool = False) -> int:
        """``get_peers`` lookup, then ``announce_peer`` to the k closest with their tokens.

        Args:
            info_hash: 20 bytes.
            port: the TCP/uTP port peers should connect to (ignored by receivers with ``implied_port``).
            now: current time (seconds).
            implied_port: ask receivers to use our UDP source port instead (BEP 5).

        Result :class:`~peerdht.mainline.events.AnnounceResult`.
        """
        self._check_id(info_hash)
        if not (0 <= port <= 0xFFFF) or (port == 0 and not implied_port):
            raise LocalProtocolError(f"bad port {port}")
        op = AnnounceOp(self, self._new_op_id(), info_hash, port=port, implied_port=implied_port)
        return self._start(op, now)

    def get(self, target: bytes, now: float) -> int:
        """BEP 44 immutable ``get``; result :class:`~peerdht.mainline.events.GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        op = GetOp(self, self._new_op_id(), target)
        if local is not None and local.k is None:
            self._add(op).finish(GetResult(item=local, source=None))
            return op.op_id
        return self._start(op, now)

    def get_mutable(self, public_key: bytes, now: float, *, salt: bytes = b"") -> int:
        """BEP 44 mutable ``get`` of ``(public_key, salt)``: the verified item with the highest ``seq``.

        Result :class:`~peerdht.mainline.events.GetResult`.
        """
        if len(public_key) != 32 or len(salt) > m.MAX_SALT:
            raise LocalProtocolError("public key must be 32 bytes, salt at most 64")
        target = mutable_target(public_key, salt)
        op = GetOp(self, self._new_op_id(), target, mutable=True, public_key=public_key, salt=salt)
        self._start(op, now)
        local = self.items.get(target, now)
        if not op.finished and local is not None and local.k == public_key:
            op.best = Item(v=local.v, k=local.k, seq=local.seq, sig=local.sig, salt=salt)
        return op.op_id

    def get_item(self, target: bytes, now: float) -> int:
        """BEP 44 ``get`` of whatever is stored under ``target``: the immutable item whose bencoding hashes to
        it, or the salt-less mutable item with ``SHA1(k) == target`` and the highest verified ``seq`` (a salted
        target cannot be checked without its salt). Our own store first. Result :class:`GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        op = GetOp(self, self._new_op_id(), target, any_kind=True)
        if local is not None and local.k is None:
            self._add(op).finish(GetResult(item=local, source=None))
            return op.op_id
        self._start(op, now)
        if not op.finished and local is not None and local.k is not None and not local.salt:
            op.best = local
        return op.op_id

    def put(self, value: Value, now: float) -> int:
        """BEP 44 immutable ``put`` to the k closest nodes; result :class:`PutResult`.

        Raises:
            LocalProtocolError: ``bencode(value)`` is longer than 1000 bytes or not encodable.
        """
        encoded = encode(value)
        if len(encoded) > m.MAX_VALUE:
            raise LocalProtocolError("value longer than 1000 bytes once bencoded")
        target = immutable_target(encoded)
        self.items.put(target, Item(v=value), now)
        return self._start(PutOp(self, self._new_op_id(), target, value), now)

    def put_mutable(
        self,
        key_pair: KeyPair,
        value: Value,
        now: float,
        *,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> int:
        """BEP 44 mutable ``put``: ``get`` lookup (tokens, current seq), sign, put to the k closest.

        Args:
            key_pair: the Ed25519 key pair owning the item.
            value: the value (bencoded at most 1000 bytes).
            now: current time (seconds).
            salt: up to 64 bytes.
            seq: sequence number; ``None`` = one more than the highest found (1 if none).
            cas: compare-and-swap: storers refuse (301) unless their seq equals this.

        Result :class:`PutResult` (with the ``seq`` used).

        Raises:
            LocalProtocolError: value too long, salt too long, seq out of range.
        """
        encoded = encode(value)
        if len(encoded) > m.MAX_VALUE:
            raise LocalProtocolError("value longer than 1000 bytes once bencoded")
        if len(salt) > m.MAX_SALT:
            raise LocalProtocolError("salt longer than 64 bytes")
        if seq is not None and not 0 <= seq <= m.MAX_SEQ:
            raise LocalProtocolError("seq out of range")
        target = mutable_target(key_pair.public_key, salt)
        op = PutOp(
            self,
            self._new_op_id(),
            target,
            value,
            mutable=True,
            public_key=key_pair.public_key,
            salt=salt,
            key_pair=key_pair,
            seq=seq,
            cas=cas,
        )
        return self._start(op, now)

    def put_item(self, item: Item, now: float, *, cas: int | None = None) -> int:
        """BEP 44 put of an item signed elsewhere (a browser's, bridged by :mod:`peerdht.web`): immutable
        as :meth:`put`; mutable with its own ``k``/``seq``/``sig``/``salt``. Result :class:`PutResult`.

        Raises:
            LocalProtocolError: value too long, or a mutable item whose signature does not verify.
        """
        if item.k is None:
            return self.put(item.v, now)
        encoded = encode(item.v)
        if (
            len(encoded) > m.MAX_VALUE
            or item.sig is None
            or item.seq is None
            or len(item.salt) > m.MAX_SALT
            or not verify_mutable(item.k, item.sig, encoded, item.seq, item.salt)
        ):
            raise LocalProtocolError("not a valid signed BEP 44 item")
        op = PutOp(
            self,
            self._new_op_id(),
            mutable_target(item.k, item.salt),
            item.v,
            mutable=True,
            public_key=item.k,
            salt=item.salt,
            seq=item.seq,
            cas=cas,
            sig=item.sig,
        )
        return self._start(op, now)

    def sample_infohashes(self, addr: Addr, now: float, *, target: bytes | None = None) -> int:
        """BEP 51 ``sample_infohashes`` to one node; result :class:`SampleResult`. Fails as :meth:`ping`."""
        op = self._add(SampleOp(self, self._new_op_id()))
        query = m.SampleInfohashes(id=self.id, target=target if target is not None else self.id)
        op.start(Contact(id=b"", host=addr[0], port=addr[1]), query, now)
        return op.op_id

    def cancel(self, op_id: int) -> None:
        """Stop an op (no event is emitted for it afterwards)."""
        op = self._ops.pop(op_id, None)
        if op is not None:
            op.cancel()

    # ------------------------------------------------------------------------------------------
    # ops

    def _add(self, op: _Op) -> _Op:
        self._ops[op.op_id] = op
        return op

    def _start(self, op: MainlineLookupOp, now: float) -> int:
        self._add(op).start_lookup(self.bootstrap_nodes, now)
        return op.op_id

    # ------------------------------------------------------------------------------------------
    # client side: replies

    def _on_reply(self, msg: m.ResponseMessage | m.ErrorMessage, addr: Addr, now: float) -> None:
        if len(msg.t) != 2:
            self.stats["dropped_unexpected"] += 1
            return
        tid = int.from_bytes(msg.t, "big")
        pending = self.requests.get(tid)
        if pending is None or pending.addr != addr:
            self.stats["dropped_unexpected"] += 1
            return
        req = pending.context
        assert isinstance(req, Req)
        if isinstance(msg, m.ResponseMessage) and msg.id == self.id:
            self.stats["dropped_own_id"] += 1
            return
        self.requests.pop(tid, addr)
        self.stats["replies_received"] += 1
        if msg.ip is not None:
            self._ip_votes.append(msg.ip)
            self._maybe_adopt_bep42_id()
        if isinstance(msg, m.ErrorMessage):
            self.stats["errors_received"] += 1
            if req.op is not None:
                req.op.on_error_reply(pending, req.contact, msg, now)
            return
        contact = req.contact
        if contact.id and msg.id != contact.id:
            self.stats["dropped_wrong_id"] += 1
            self._on_failed(pending, now, RequestTimeout("responder id changed"))
            return
        try:
            resp = m.parse_response(req.method, msg.body)
        except DecodeError:
            self.stats["dropped_malformed"] += 1
            self._on_failed(pending, now, RequestTimeout("malformed response"))
            return
        responder = Contact(id=msg.id, host=addr[0], port=addr[1])
        self._fails.pop(msg.id, None)
        self._learn(responder, now)
        op = req.op
        if op is not None:
            op.on_response(pending, contact, responder, resp, now)
        elif req.replacement is not None:  # the bucket's oldest node answered: it keeps its slot
            self.table.touch(responder.id, now)

    def _learn(self, contact: Contact, now: float) -> None:
        """A node answered us: it may enter the routing table (BEP 5)."""
        known = self.table.get(contact.id)
        if known is not None:
            self.table.add(Contact(id=contact.id, host=contact.host, port=contact.port), now)
            return
        if self.enforce_bep42 and not node_id_matches_ip(contact.id, contact.host):
            return
        victim = self.table.add(Contact(id=contact.id, host=contact.host, port=contact.port), now)
        if victim is not None and now - victim.pinged > 60.0:
            victim.pinged = now
            self._request(
                victim,
                m.Ping(id=self.id),
                now,
                replacement=Contact(id=contact.id, host=contact.host, port=contact.port),
            )

    def closer_contacts(self, resp: m.FindNodeResponse | m.GetPeersResponse | m.GetResponse) -> list[Contact]:
        """The closer nodes of a reply as contacts: compact ``nodes`` (``nodes6`` on IPv6), or, on a link
        transport (:class:`~peerdht.mainline.core.LinkMap`), the handles of the nodes we have a link to."""
        nodes = resp.nodes6 if self.ipv6 else resp.nodes
        if self.links is not None:  # a link handle, known by node id, instead of the compact address
            out = []
            for n in resp.nodes + resp.nodes6:
                handle = self.links.handle_for(n) if n.id != self.id else None
                if handle is not None:
                    out.append(Contact(id=n.id, host=handle[0], port=handle[1]))
            return out
        return [Contact(id=n.id, host=n.host, port=n.port) for n in nodes if n.id != self.id]

    # ------------------------------------------------------------------------------------------
    # failures

    def _on_timeout(self, req: PendingRequest, now: float) -> None:
        self._on_failed(req, now, RequestTimeout(f"no reply from {req.addr[0]}:{req.addr[1]}"))

    def _on_failed(self, pending: PendingRequest, now: float, error: PeerDHTError) -> None:
        req = pending.context
        assert isinstance(req, Req)
        contact = req.contact
        if contact.id and contact.id in self.table:
            fails = self._fails.get(contact.id, 0) + 1
            if fails >= 2:
                self.table.remove(contact.id)
                self._fails.pop(contact.id, None)
            else:
                self._fails[contact.id] = fails
        if req.replacement is not None:  # the bucket's oldest node is gone: the newcomer takes its slot
            self.table.replace(contact.id, req.replacement, now)
            self._fails.pop(contact.id, None)
        elif req.op is not None:
            req.op.on_request_failed(pending, contact, error, now)

    # ------------------------------------------------------------------------------------------
    # maintenance

    def _maintain(self, now: float) -> None:
        if self.tokens.due(now):
            self.tokens.rotate(self.rng.randbytes(20), now=now)
        self.peers.prune(now)
        self.items.prune(now)
        self._verified.prune(now)
        if self.limiter is not None:
            self.limiter.prune(now)
        if len(self.table) == 0:
            return
        busy = any(isinstance(op, (RefreshOp, BootstrapOp)) for op in self._ops.values())
        if busy:
            return
        for index in self.table.stale_buckets(now, REFRESH_AFTER)[:1]:
            self.table.mark_refreshed(index, now)
            target = random_id_in_bucket(self.id, index, self.rng)
            self._start(RefreshOp(self, self._new_op_id(), target), now)
