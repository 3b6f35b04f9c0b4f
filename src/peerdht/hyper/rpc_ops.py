"""dht-rpc queries: starting them and DOWN_HINTs (the node's side of :mod:`peerdht.hyper.queries`).

Part of :class:`peerdht.hyper.rpc.RPCNode`; mirrors dht-rpc 6.27 ``lib/query.js`` (``_open``, ``_downHint``).
The queries themselves are typed ops (:mod:`peerdht.hyper.queries`) on the shared engine
(:mod:`peerdht.kademlia.ops`) and build their own requests; this layer seeds them and implements the rest
of their :class:`~peerdht.hyper.queries.QueryNode` surface.
"""

from __future__ import annotations

from peerdht.encoding.compact import encode_ipv4_address
from peerdht.hyper.constants import InternalCommand
from peerdht.hyper.crypto import node_id
from peerdht.hyper.queries import FindNodeQuery, HyperQuery, RefreshQuery
from peerdht.hyper.rpc_requests import (
    DOWN_HINTS_PER_TICK,
    REFRESH_TICKS,
    K,
    RPCRequests,
    _is_ipv4,
)
from peerdht.hyper.rpc_util import cached_node_id, check32, noop
from peerdht.kademlia.table import Contact


class RPCOps(RPCRequests):
    """Queries (dht-rpc ``Query``) on top of :class:`RPCRequests`."""

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative FIND_NODE towards ``target`` (32 bytes); ``OpDone(result=list[Contact])``
        with the (up to 20) closest nodes that answered with a verified id."""
        self._now = now
        check32(target, "target")
        self._refresh_ticks = REFRESH_TICKS
        op = self._new_op(None)
        return self._start_query(FindNodeQuery(self, op, target))

    def refresh(self) -> None:
        """A background FIND_NODE towards a random table node's id (dht-rpc ``refresh``)."""
        contacts = list(self.table)
        target = self._rng.choice(contacts).id if contacts else self.table.local_id
        self._refresh_ticks = REFRESH_TICKS
        self._start_query(RefreshQuery(self, target))

    # ------------------------------------------------------------------ queries

    def _start_query(self, q: HyperQuery) -> int:
        """Register ``q`` (its op id, the active queries), seed it from the table (and the bootstrap nodes
        when the table has fewer than k nodes) and send its first requests; returns its op id (0 for a
        background query)."""
        if q.id is not None:
            self._ops[q.id] = q
        self._queries_stats["active"] += 1
        self._queries_stats["total"] += 1
        self._queries[q] = None
        seeds = self.table.closest(q.target, K)
        boot: list[Contact] = []
        if len(seeds) < K:
            boot = [
                Contact(node_id(h, p), h, p) for h, p in self.bootstrap_nodes if _is_ipv4(h) and 0 < p < 65536
            ]
        q.start(seeds, self._now, boot)
        return q.id or 0

    def query_closed(self, query: HyperQuery) -> None:
        """The lookup of ``query`` ended: it is no longer pumped by the timer nor counted active."""
        if query in self._queries:
            del self._queries[query]
            self._queries_stats["active"] -= 1

    def closer_id(self, host: str, port: int) -> bytes | None:
        """The id of a closer node (dht-rpc derives it from the address), None for a bad port or our own id."""
        if not 0 < port < 65536:
            return None
        cid = cached_node_id(host, port)
        return None if cid == self.table.local_id else cid

    def send_down_hint(self, referrer: Contact, down: Contact) -> None:
        """DOWN_HINT ``down`` to ``referrer`` (query.js ``_downHint``), at most 50 a tick."""
        if self._down_hints_sent >= DOWN_HINTS_PER_TICK:
            return
        self._down_hints_sent += 1
        self._request(
            referrer.addr,
            internal=True,
            command=InternalCommand.DOWN_HINT,
            value=encode_ipv4_address(down.host, down.port),
            on_response=noop,
            on_error=noop,
        )
