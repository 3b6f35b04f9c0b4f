"""The server side of a Mainline node: answering queries (BEP 5, 32, 43, 44, 51), tokens, stored peers and
items, the per-host rate limit, BEP 42 checks, and the hooks the web overlay uses. Part of
:class:`peerdht.mainline.node.MainlineNode`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peerdht.encoding.bencode import encode
from peerdht.errors import (
    LocalProtocolError,
)
from peerdht.kademlia.store import ExpiringCache
from peerdht.kademlia.table import Contact
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import (
    immutable_target,
    mutable_target,
    verify_mutable,
)
from peerdht.mainline.events import (
    Item,
)

if TYPE_CHECKING:
    pass
from peerdht.mainline.core import (
    MAX_SAMPLES,
    MAX_VALUES,
    PEER_TTL,
    SAMPLE_INTERVAL,
    Addr,
    MainlineCore,
    _is_v6,
    contact_info,
)


class MainlineServer(MainlineCore):
    """Answering queries, on top of :class:`~peerdht.mainline.core.MainlineCore`."""

    def note_querier(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A query from ``node_id`` at ``addr`` was handled outside this core (web signalling): treat it as
        one of ours (the querier is pinged and enters the table when it answers)."""
        if node_id != self.id and len(node_id) == 20:
            self._consider(node_id, addr, now)

    def limiter_allows(self, addr: Addr, now: float) -> bool:
        """The per-host query rate limit (a refusal is counted), for queries answered outside this core."""
        return self._allow(addr, now)

    def forget_address(self, addr: Addr, now: float) -> None:
        """The link behind handle ``addr`` closed: its node leaves the table, requests to it fail now."""
        for contact in [c for c in self.table if c.addr == addr]:
            self.table.remove(contact.id)
            self._fails.pop(contact.id, None)
        for req in [r for r in self.requests if r.addr == addr]:
            if self.requests.pop(req.tid, addr) is not None:
                self._on_timeout(req, now)

    # ------------------------------------------------------------------------------------------
    # server side

    def _allow(self, addr: Addr, now: float) -> bool:
        if self.limiter is None or self.limiter.allow(addr[0], now):
            return True
        self.stats["dropped_rate_limited"] += 1
        return False

    def _nodes_for(
        self, target: bytes, addr: Addr, want: frozenset[str]
    ) -> tuple[tuple[m.NodeInfo, ...], tuple[m.NodeInfo, ...]]:
        if not want:
            want = frozenset({"n6"}) if _is_v6(addr[0]) else frozenset({"n4"})
        closest = self.table.closest(target, 4 * self.k)
        n4: list[m.NodeInfo] = []
        n6: list[m.NodeInfo] = []
        for c in closest:
            if _is_v6(c.host):
                if "n6" in want and len(n6) < self.k:
                    n6.append(contact_info(c))
            elif "n4" in want and len(n4) < self.k:
                n4.append(contact_info(c))
        return tuple(n4), tuple(n6)

    def _on_query(self, msg: m.QueryMessage, addr: Addr, now: float) -> None:
        q = msg.query
        qid = q.id
        if qid == self.id:
            self.stats["dropped_own_id"] += 1
            return
        if self.read_only:
            self.stats["dropped_read_only"] += 1
            return
        if not self._allow(addr, now):
            return
        self.stats["queries_received"] += 1
        if qid is not None and not msg.read_only:
            self._consider(qid, addr, now)
        t = msg.t
        host = addr[0].encode()
        if isinstance(q, m.Ping):
            self._send_response(t, addr, m.IdResponse(id=self.id))
        elif isinstance(q, m.FindNode):
            n4, n6 = self._nodes_for(q.target, addr, q.want)
            self._send_response(t, addr, m.FindNodeResponse(id=self.id, nodes=n4, nodes6=n6))
        elif isinstance(q, m.GetPeers):
            n4, n6 = self._nodes_for(q.info_hash, addr, q.want)
            store = self.peers.get(q.info_hash, now)
            values: tuple[Addr, ...] = ()
            if store is not None:
                live = store.items(now)
                fam6 = _is_v6(addr[0])
                values = tuple(a for a, _ in reversed(live) if _is_v6(a[0]) == fam6)[:MAX_VALUES]
            resp = m.GetPeersResponse(
                id=self.id, token=self.tokens.issue(host), values=values, nodes=n4, nodes6=n6
            )
            self._send_response(t, addr, resp)
        elif isinstance(q, m.AnnouncePeer):
            if not self.tokens.check(host, q.token):
                self.stats["bad_tokens"] += 1
                self._send_error(t, addr, m.ERROR_PROTOCOL, "bad token")
                return
            port = addr[1] if q.implied_port else q.port
            peer_host = addr[0] if self.links is None else self.links.peer_host(addr)
            if peer_host is None:
                self.stats["dropped_announce_host"] += 1
                self._send_response(t, addr, m.IdResponse(id=self.id))
                return
            store = self.peers.get(q.info_hash, now)
            if store is None:
                store = ExpiringCache(max_size=500, max_age=PEER_TTL)
            store.put((peer_host, port), None, now)
            self.peers.put(q.info_hash, store, now)
            self.stats["announces_stored"] += 1
            self._send_response(t, addr, m.IdResponse(id=self.id))
        elif isinstance(q, m.Get):
            self._on_get(t, q, addr, host, now)
        elif isinstance(q, m.Put):
            self._on_put(t, q, addr, host, now)
        elif isinstance(q, m.SampleInfohashes):
            n4, n6 = self._nodes_for(q.target, addr, q.want)
            hashes = [h for h, _ in self.peers.items(now)]
            samples = self.rng.sample(hashes, min(MAX_SAMPLES, len(hashes)))
            self._send_response(
                t,
                addr,
                m.SampleInfohashesResponse(
                    id=self.id,
                    interval=SAMPLE_INTERVAL,
                    num=len(hashes),
                    samples=tuple(samples),
                    nodes=n4,
                    nodes6=n6,
                ),
            )
        else:
            self.stats["unknown_queries"] += 1
            self._send_error(t, addr, m.ERROR_METHOD_UNKNOWN, "method unknown")

    def _on_get(self, t: bytes, q: m.Get, addr: Addr, host: bytes, now: float) -> None:
        n4, n6 = self._nodes_for(q.target, addr, q.want)
        token = self.tokens.issue(host)
        item = self.items.get(q.target, now)
        if item is None:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6)
        elif item.k is None:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6, v=item.v)
        elif q.seq is not None and item.seq is not None and item.seq <= q.seq:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6, seq=item.seq)
        else:
            resp = m.GetResponse(
                id=self.id, token=token, nodes=n4, nodes6=n6, v=item.v, k=item.k, seq=item.seq, sig=item.sig
            )
        self._send_response(t, addr, resp)

    def _on_put(self, t: bytes, q: m.Put, addr: Addr, host: bytes, now: float) -> None:
        if not self.tokens.check(host, q.token):
            self.stats["bad_tokens"] += 1
            self._send_error(t, addr, m.ERROR_PROTOCOL, "bad token")
            return
        try:
            encoded = encode(q.v)
        except LocalProtocolError:  # pragma: no cover - decoded values are always encodable
            self._send_error(t, addr, m.ERROR_PROTOCOL, "invalid v")
            return
        if len(encoded) > m.MAX_VALUE:
            self._send_error(t, addr, m.ERROR_V_TOO_BIG, "v too big")
            return
        if q.k is None:
            self.items.put(immutable_target(encoded), Item(v=q.v), now)
            self.stats["items_stored"] += 1
            self._send_response(t, addr, m.IdResponse(id=self.id))
            return
        assert q.sig is not None and q.seq is not None
        if len(q.salt) > m.MAX_SALT:
            self._send_error(t, addr, m.ERROR_SALT_TOO_BIG, "salt too big")
            return
        if not verify_mutable(q.k, q.sig, encoded, q.seq, q.salt):
            self._send_error(t, addr, m.ERROR_INVALID_SIGNATURE, "invalid signature")
            return
        target = mutable_target(q.k, q.salt)
        old = self.items.get(target, now)
        if old is not None and old.seq is not None:
            if q.cas is not None and q.cas != old.seq:
                self._send_error(t, addr, m.ERROR_CAS_MISMATCH, "cas mismatch")
                return
            if q.seq < old.seq or (q.seq == old.seq and encode(old.v) != encoded):
                self._send_error(t, addr, m.ERROR_SEQ_TOO_LOW, "sequence number less than current")
                return
        self.items.put(target, Item(v=q.v, k=q.k, seq=q.seq, sig=q.sig, salt=q.salt), now)
        self.stats["items_stored"] += 1
        self._send_response(t, addr, m.IdResponse(id=self.id))

    def _consider(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A querier: refresh it if known, else ping it once a minute at most (it enters when it answers)."""
        known = self.table.get(node_id)
        if known is not None:
            if known.addr == addr:
                self.table.touch(node_id, now)
            return
        if addr in self._verified:
            return
        self._verified.put(addr, None, now)
        self._request(Contact(id=node_id, host=addr[0], port=addr[1]), m.Ping(id=self.id), now, retries=0)
