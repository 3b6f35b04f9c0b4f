"""The client side of a Mainline node: lookups, announces, gets and puts (BEP 5, 44, 51), replies and timeouts
of our requests, bucket refresh. Part of :class:`peerdht.mainline.node.MainlineNode`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, cast

from peerdht.encoding.bencode import Value, encode
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RemoteError,
    RequestTimeout,
)
from peerdht.kademlia.ids import random_id_in_bucket
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.requests import PendingRequest
from peerdht.kademlia.table import Contact
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import (
    KeyPair,
    immutable_target,
    mutable_target,
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
    pass
from peerdht.mainline.core import (
    REFRESH_AFTER,
    Addr,
    Op,
    Req,
    contact_info,
)
from peerdht.mainline.server import MainlineServer


class MainlineClient(MainlineServer):
    """Lookups and stores, on top of :class:`~peerdht.mainline.server.MainlineServer`."""

    def ping(self, addr: Addr, now: float) -> int:
        """Ping ``addr``; result :class:`~peerdht.mainline.events.PingResult`."""
        op = self._new_op("ping")
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), m.Ping(id=self.id), "ping", now, op=op)
        return op.id

    def bootstrap(self, now: float) -> int:
        """``find_node`` on our own id from the bootstrap nodes; also emits :class:`Bootstrapped`."""
        return self._start_lookup("bootstrap", self.id, "find_node", now)

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative ``find_node``; result :class:`~peerdht.mainline.events.LookupResult`."""
        self._check_id(target)
        return self._start_lookup("find_node", target, "find_node", now)

    def get_peers(self, info_hash: bytes, now: float) -> int:
        """Iterative ``get_peers``: streams :class:`PeersFound`, result ``LookupResult``."""
        self._check_id(info_hash)
        return self._start_lookup("get_peers", info_hash, "get_peers", now)

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
        return self._start_lookup(
            "announce", info_hash, "get_peers", now, payload={"port": port, "implied_port": implied_port}
        )

    def get(self, target: bytes, now: float) -> int:
        """BEP 44 immutable ``get``; result :class:`~peerdht.mainline.events.GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        op_payload: dict[str, object] = {"mutable": False}
        if local is not None and local.k is None:
            op = self._new_op("get", target)
            self._finish(op, GetResult(item=local, source=None))
            return op.id
        return self._start_lookup("get", target, "get", now, payload=op_payload)

    def get_mutable(self, public_key: bytes, now: float, *, salt: bytes = b"") -> int:
        """BEP 44 mutable ``get`` of ``(public_key, salt)``: the verified item with the highest ``seq``.

        Result :class:`~peerdht.mainline.events.GetResult`.
        """
        if len(public_key) != 32 or len(salt) > m.MAX_SALT:
            raise LocalProtocolError("public key must be 32 bytes, salt at most 64")
        target = mutable_target(public_key, salt)
        op_id = self._start_lookup(
            "get", target, "get", now, payload={"mutable": True, "k": public_key, "salt": salt}
        )
        op = self._ops.get(op_id)
        local = self.items.get(target, now)
        if op is not None and local is not None and local.k == public_key:
            op.best = Item(v=local.v, k=local.k, seq=local.seq, sig=local.sig, salt=salt)
        return op_id

    def get_item(self, target: bytes, now: float) -> int:
        """BEP 44 ``get`` of whatever is stored under ``target``: the immutable item whose bencoding hashes to
        it, or the salt-less mutable item with ``SHA1(k) == target`` and the highest verified ``seq`` (a salted
        target cannot be checked without its salt). Our own store first. Result :class:`GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        if local is not None and local.k is None:
            op = self._new_op("get", target)
            self._finish(op, GetResult(item=local, source=None))
            return op.id
        op_id = self._start_lookup("get", target, "get", now, payload={"mutable": "any", "salt": b""})
        running = self._ops.get(op_id)
        if running is not None and local is not None and local.k is not None and not local.salt:
            running.best = local
        return op_id

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
        return self._start_lookup("put", target, "get", now, payload={"v": value, "mutable": False})

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
        return self._start_lookup(
            "put",
            target,
            "get",
            now,
            payload={
                "v": value,
                "mutable": True,
                "key_pair": key_pair,
                "k": key_pair.public_key,
                "salt": salt,
                "seq": seq,
                "cas": cas,
            },
        )

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
        payload: dict[str, object] = {
            "v": item.v,
            "mutable": True,
            "k": item.k,
            "salt": item.salt,
            "seq": item.seq,
            "cas": cas,
            "sig": item.sig,
        }
        return self._start_lookup("put", mutable_target(item.k, item.salt), "get", now, payload=payload)

    def sample_infohashes(self, addr: Addr, now: float, *, target: bytes | None = None) -> int:
        """BEP 51 ``sample_infohashes`` to one node; result :class:`SampleResult`."""
        op = self._new_op("sample")
        query = m.SampleInfohashes(id=self.id, target=target if target is not None else self.id)
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), query, "sample", now, op=op)
        return op.id

    def cancel(self, op_id: int) -> None:
        """Stop an op (no event is emitted for it afterwards)."""
        op = self._ops.pop(op_id, None)
        if op is not None:
            op.finished = True
            self._cancel_op(op)

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
            self._on_error_reply(req, msg, now)
            return
        contact = req.contact
        if contact.id and msg.id != contact.id:
            self.stats["dropped_wrong_id"] += 1
            self._on_failed(req, now, RequestTimeout("responder id changed"))
            return
        try:
            resp = m.parse_response(req.method, msg.body)
        except DecodeError:
            self.stats["dropped_malformed"] += 1
            self._on_failed(req, now, RequestTimeout("malformed response"))
            return
        responder = Contact(id=msg.id, host=addr[0], port=addr[1])
        self._fails.pop(msg.id, None)
        self._learn(responder, now)
        self._dispatch_reply(req, responder, resp, now)

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
                "evict",
                now,
                extra=Contact(id=contact.id, host=contact.host, port=contact.port),
            )

    def _on_error_reply(self, req: Req, msg: m.ErrorMessage, now: float) -> None:
        op = req.op
        if req.purpose == "lookup" and op is not None and op.lookup is not None:
            op.lookup.on_reply(req.contact, [], None, counts=False)
            self._advance(op, now)
        elif req.purpose == "store" and op is not None:
            op.errors.append(msg.code)
            op.pending -= 1
            self._maybe_finish_store(op)
        elif req.purpose in ("ping", "sample") and op is not None:
            self._fail(op, RemoteError(msg.code, msg.message))

    def _dispatch_reply(self, req: Req, responder: Contact, resp: m.Response, now: float) -> None:
        op = req.op
        purpose = req.purpose
        if purpose == "evict":
            self.table.touch(responder.id, now)
            return
        if purpose == "verify" or op is None:
            return
        if purpose == "ping":
            self._finish(op, PingResult(id=responder.id, addr=responder.addr))
        elif purpose == "sample":
            assert isinstance(resp, m.SampleInfohashesResponse)
            self._finish(
                op,
                SampleResult(
                    id=resp.id,
                    samples=resp.samples,
                    num=resp.num,
                    interval=resp.interval,
                    nodes=resp.nodes + resp.nodes6,
                ),
            )
        elif purpose == "store":
            op.stored += 1
            op.pending -= 1
            self._maybe_finish_store(op)
        elif purpose == "lookup":
            self._on_lookup_reply(op, req, responder, resp, now)

    def _closer(self, resp: m.FindNodeResponse | m.GetPeersResponse | m.GetResponse) -> list[Contact]:
        nodes = resp.nodes6 if self.ipv6 else resp.nodes
        if self.links is not None:  # a link handle, known by node id, instead of the compact address
            out = []
            for n in resp.nodes + resp.nodes6:
                handle = self.links.handle_for(n) if n.id != self.id else None
                if handle is not None:
                    out.append(Contact(id=n.id, host=handle[0], port=handle[1]))
            return out
        return [Contact(id=n.id, host=n.host, port=n.port) for n in nodes if n.id != self.id]

    def _on_lookup_reply(self, op: Op, req: Req, responder: Contact, resp: m.Response, now: float) -> None:
        lookup = op.lookup
        if lookup is None or op.finished:
            return
        counts = not self.enforce_bep42 or node_id_matches_ip(responder.id, responder.host)
        if isinstance(resp, m.FindNodeResponse):
            lookup.on_reply(_replace_id(req.contact, responder.id), self._closer(resp), None, counts=counts)
        elif isinstance(resp, m.GetPeersResponse):
            new = [a for a in resp.values if a not in op.peers]
            for a in new:
                op.peers[a] = None
            if new and op.kind == "get_peers":
                self._events.append(PeersFound(op=op.id, peers=tuple(new), source=responder.addr))
            lookup.on_reply(
                _replace_id(req.contact, responder.id), self._closer(resp), resp.token, counts=counts
            )
        elif isinstance(resp, m.GetResponse):
            self._check_item(op, resp, responder)
            if op.finished:
                return
            lookup.on_reply(_replace_id(req.contact, responder.id), self._closer(resp), resp, counts=counts)
        else:
            lookup.on_reply(req.contact, [], None, counts=False)
        self._advance(op, now)

    def _check_item(self, op: Op, resp: m.GetResponse, responder: Contact) -> None:
        if resp.v is None:
            return
        try:
            encoded = encode(resp.v)
        except LocalProtocolError:  # pragma: no cover
            return
        mode = op.payload.get("mutable")
        if not mode or (mode == "any" and resp.k is None):
            if immutable_target(encoded) == op.target:
                item = Item(v=resp.v)
                if op.kind == "get":
                    op.best, op.best_source = item, responder.addr
                    self._finish(op, GetResult(item=item, source=responder.addr))
            else:
                self.stats["bad_items"] += 1
            return
        k = op.payload.get("k")
        if mode == "any":  # get_item: a salt-less mutable item's target is SHA1(k)
            k = resp.k if resp.k is not None and hashlib.sha1(resp.k).digest() == op.target else None
        salt = op.payload.get("salt", b"")
        assert isinstance(salt, bytes)
        if (
            k is None
            or resp.k is None
            or resp.k != k
            or resp.sig is None
            or resp.seq is None
            or resp.seq < 0
            or not verify_mutable(resp.k, resp.sig, encoded, resp.seq, salt)
        ):
            self.stats["bad_items"] += 1
            return
        if op.best is None or (op.best.seq is not None and resp.seq > op.best.seq):
            op.best = Item(v=resp.v, k=resp.k, seq=resp.seq, sig=resp.sig, salt=salt)
            op.best_source = responder.addr

    # ------------------------------------------------------------------------------------------
    # failures

    def _on_timeout(self, req: PendingRequest, now: float) -> None:
        ctx = req.context
        assert isinstance(ctx, Req)
        self._on_failed(ctx, now, RequestTimeout(f"no reply from {req.addr[0]}:{req.addr[1]}"))

    def _on_failed(self, req: Req, now: float, error: PeerDHTError) -> None:
        contact = req.contact
        if contact.id and contact.id in self.table:
            fails = self._fails.get(contact.id, 0) + 1
            if fails >= 2:
                self.table.remove(contact.id)
                self._fails.pop(contact.id, None)
            else:
                self._fails[contact.id] = fails
        op = req.op
        if req.purpose == "evict":
            assert isinstance(req.extra, Contact)
            self.table.replace(contact.id, req.extra, now)
            self._fails.pop(contact.id, None)
        elif op is None:
            return
        elif req.purpose == "lookup" and op.lookup is not None:
            op.lookup.on_failure(contact)
            self._advance(op, now)
        elif req.purpose == "store":
            op.pending -= 1
            self._maybe_finish_store(op)
        elif req.purpose in ("ping", "sample"):
            self._fail(op, error)

    # ------------------------------------------------------------------------------------------
    # lookups

    def _start_lookup(
        self, kind: str, target: bytes, method: str, now: float, *, payload: dict[str, object] | None = None
    ) -> int:
        op = self._new_op(kind, target)
        op.method = method
        op.payload = payload or {}
        lookup = Lookup(target, k=self.k, concurrency=self.concurrency)
        op.lookup = lookup
        lookup.add_candidates(self.table.closest(target, self.k))
        if len(self.table) < self.k:
            lookup.add_candidates(Contact(id=b"", host=h, port=p) for h, p in self.bootstrap_nodes)
        self._advance(op, now)
        return op.id

    def _lookup_query(self, op: Op) -> m.Query:
        if op.method == "find_node":
            return m.FindNode(id=self.id, target=op.target)
        if op.method == "get_peers":
            return m.GetPeers(id=self.id, info_hash=op.target)
        return m.Get(id=self.id, target=op.target)

    def _advance(self, op: Op, now: float) -> None:
        lookup = op.lookup
        if lookup is None or op.finished or op.phase != "lookup":
            return
        query = self._lookup_query(op)
        for contact in lookup.next_to_query():
            if not self._request(contact, query, "lookup", now, op=op):
                lookup.on_failure(contact)
        if lookup.done:
            self._lookup_done(op, now)

    def _lookup_done(self, op: Op, now: float) -> None:
        lookup = op.lookup
        assert lookup is not None
        replies = lookup.closest_replies()
        nodes = tuple(contact_info(c) for c, _ in replies)
        if op.kind == "refresh":
            op.finished = True
            self._ops.pop(op.id, None)
        elif op.kind == "bootstrap":
            self._events.append(Bootstrapped(nodes=len(self.table)))
            self._finish(op, LookupResult(nodes=nodes, queries=op.queries))
        elif op.kind in ("find_node", "get_peers"):
            if not replies and lookup.replies == 0:
                self._fail(op, RequestTimeout("no node answered the lookup"))
                return
            self._finish(op, LookupResult(nodes=nodes, peers=tuple(op.peers), queries=op.queries))
        elif op.kind == "get":
            self._finish(op, GetResult(item=op.best, source=op.best_source))
        elif op.kind == "announce":
            op.phase = "store"
            port = op.payload["port"]
            implied = op.payload["implied_port"]
            assert isinstance(port, int) and isinstance(implied, bool)
            for contact, token in replies:
                if isinstance(token, bytes):
                    q = m.AnnouncePeer(
                        id=self.id, info_hash=op.target, port=port, token=token, implied_port=implied
                    )
                    if self._request(contact, q, "store", now, op=op):
                        op.pending += 1
                        op.tried += 1
            self._maybe_finish_store(op)
        elif op.kind == "put":
            self._start_put(op, replies, now)

    def _start_put(self, op: Op, replies: list[tuple[Contact, object]], now: float) -> None:
        op.phase = "store"
        p = op.payload
        value = cast(Value, p["v"])
        if p.get("mutable"):
            salt = p["salt"]
            assert isinstance(salt, bytes)
            seq = p["seq"]
            if seq is None:
                seq = 1 if op.best is None or op.best.seq is None else op.best.seq + 1
            assert isinstance(seq, int)
            cas = p["cas"]
            assert cas is None or isinstance(cas, int)
            encoded = encode(value)
            public_key = p["k"]
            assert isinstance(public_key, bytes)
            signed = p.get("sig")
            if isinstance(signed, bytes):  # signed elsewhere (put_item)
                sig = signed
            else:
                key_pair = p["key_pair"]
                assert isinstance(key_pair, KeyPair)
                sig = sign_mutable(key_pair, encoded, seq, salt)
            query: m.Put = m.Put(
                id=self.id,
                token=b"",
                v=value,
                k=public_key,
                sig=sig,
                seq=seq,
                salt=salt,
                cas=cas,
            )
            self.items.put(op.target, Item(v=value, k=public_key, seq=seq, sig=sig, salt=salt), now)
            p["seq_used"] = seq
        else:
            query = m.Put(id=self.id, token=b"", v=value)
        for contact, resp in replies:
            if isinstance(resp, m.GetResponse) and resp.token is not None:
                q = m.Put(
                    id=query.id,
                    token=resp.token,
                    v=query.v,
                    k=query.k,
                    sig=query.sig,
                    seq=query.seq,
                    salt=query.salt,
                    cas=query.cas,
                )
                if self._request(contact, q, "store", now, op=op):
                    op.pending += 1
                    op.tried += 1
        self._maybe_finish_store(op)

    def _maybe_finish_store(self, op: Op) -> None:
        if op.finished or op.phase != "store" or op.pending > 0:
            return
        if op.kind == "announce":
            self._finish(op, AnnounceResult(stored=op.stored, tried=op.tried))
            return
        seq = op.payload.get("seq_used")
        assert seq is None or isinstance(seq, int)
        self._finish(
            op,
            PutResult(target=op.target, seq=seq, stored=op.stored, tried=op.tried, errors=tuple(op.errors)),
        )

    def _finish(self, op: Op, result: object) -> None:
        if op.finished:
            return
        op.finished = True
        self._ops.pop(op.id, None)
        self._cancel_op(op)
        self._events.append(OpDone(op=op.id, result=result))

    def _fail(self, op: Op, error: PeerDHTError) -> None:
        if op.finished:
            return
        op.finished = True
        self._ops.pop(op.id, None)
        self._cancel_op(op)
        self._events.append(OpFailed(op=op.id, error=error))

    def _cancel_op(self, op: Op) -> None:
        """Forget requests still in flight for ``op`` (their replies then count as unexpected)."""
        for req in list(self.requests):
            ctx = req.context
            if isinstance(ctx, Req) and ctx.op is op:
                self.requests.pop(req.tid)

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
        busy = any(op.kind in ("refresh", "bootstrap") for op in self._ops.values())
        if busy:
            return
        for index in self.table.stale_buckets(now, REFRESH_AFTER)[:1]:
            self.table.mark_refreshed(index, now)
            target = random_id_in_bucket(self.id, index, self.rng)
            self._start_lookup("refresh", target, "find_node", now)


def _replace_id(contact: Contact, node_id: bytes) -> Contact:
    if contact.id == node_id:
        return contact
    return Contact(id=node_id, host=contact.host, port=contact.port)
