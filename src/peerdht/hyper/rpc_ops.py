"""dht-rpc queries and commits: iterative lookups and the write phase of announce/put.

Part of :class:`peerdht.hyper.rpc.RPCNode`; mirrors dht-rpc 6.27 ``lib/query.js``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from peerdht.encoding.compact import encode_ipv4_address
from peerdht.errors import (
    PeerDHTError,
    RemoteError,
    RequestError,
    RequestTimeout,
)
from peerdht.hyper.constants import InternalCommand
from peerdht.hyper.crypto import node_id
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.table import Contact

if TYPE_CHECKING:
    pass

from peerdht.hyper.rpc_requests import (
    CLIENT,
    CONCURRENCY,
    DOWN_HINTS_PER_TICK,
    QUERY_RETRIES,
    REFRESH_TICKS,
    REQUEST_TIMEOUT,
    SERVER,
    Commit,
    K,
    OutgoingRequest,
    Query,
    Reply,
    RPCRequests,
    _is_ipv4,
)
from peerdht.hyper.rpc_util import cached_node_id, check32, noop, op_id


class RPCOps(RPCRequests):
    """Queries (dht-rpc ``Query``) and commits on top of :class:`RPCRequests`."""

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative FIND_NODE towards ``target`` (32 bytes); ``OpDone(result=list[Contact])``
        with the (up to 20) closest nodes that answered with a verified id."""
        self._now = now
        check32(target, "target")
        self._refresh_ticks = REFRESH_TICKS
        q = self._new_query(target, InternalCommand.FIND_NODE, internal=True)
        op = q.op

        def on_finished(q: Query) -> None:
            self._done(op, q.lookup.closest_nodes())

        q.on_finished = on_finished
        self._start_query(q)
        return op_id(op)

    def refresh(self) -> None:
        """A background FIND_NODE towards a random table node's id (dht-rpc ``refresh``)."""
        contacts = list(self.table)
        target = self._rng.choice(contacts).id if contacts else self.table.local_id
        self._start_query(self._background_query(target))

    # ------------------------------------------------------------------ queries

    def _new_query(
        self, target: bytes, command: int, *, internal: bool = False, value: bytes | None = None
    ) -> Query:
        q = Query(
            op=None,
            target=target,
            command=command,
            internal=internal,
            value=value,
            lookup=Lookup(target, k=K, concurrency=CONCURRENCY),
        )
        q.op = self._new_op(q)
        return q

    def _background_query(
        self,
        target: bytes,
        *,
        on_data: Callable[[Query, Contact, Reply], None] | None = None,
        on_finished: Callable[[Query], None] | None = None,
    ) -> Query:
        self._refresh_ticks = REFRESH_TICKS
        return Query(
            op=None,
            target=target,
            command=InternalCommand.FIND_NODE,
            internal=True,
            value=None,
            lookup=Lookup(target, k=K, concurrency=CONCURRENCY),
            on_data=on_data,
            on_finished=on_finished,
        )

    def _start_query(self, q: Query) -> None:
        self._queries_stats["active"] += 1
        self._queries_stats["total"] += 1
        self._queries.add(q)
        seeds = self.table.closest(q.target, K)
        q.lookup.add_candidates(seeds)
        if len(seeds) < K:
            boot = [
                Contact(node_id(h, p), h, p) for h, p in self.bootstrap_nodes if _is_ipv4(h) and 0 < p < 65536
            ]
            q.lookup.add_candidates(boot)
        self._pump(q)

    def _pump(self, q: Query) -> None:
        if q.finished:
            return
        for c in q.lookup.next_to_query():
            self._query_send(q, c)
        for ref, down in q.lookup.take_down_hints():
            self._down_hint(ref, down)
        lookup = q.lookup
        # query.js _readMore: done when nothing is in flight, or when every request still in
        # flight is slow (timed out once) and k closest replies are in
        slow_only = (
            lookup.inflight > 0 and lookup.inflight == len(q.slow) and lookup.closest_count >= K
        )
        if (slow_only or lookup.done) and not q.finished:
            q.finished = True
            self._queries.discard(q)
            self._queries_stats["active"] -= 1
            for r in list(q.reqs):
                self._abort_req(r)
            q.reqs.clear()
            q.slow.clear()
            if q.on_finished is not None:
                q.on_finished(q)

    def _stop_query(self, q: Query) -> None:
        if q.finished:
            return
        q.finished = True
        self._queries.discard(q)
        self._queries_stats["active"] -= 1
        for r in list(q.reqs):
            self._abort_req(r)
        q.reqs.clear()
        q.slow.clear()
        if q.op is not None:
            self._ops.pop(q.op, None)

    def _query_send(self, q: Query, c: Contact) -> None:
        # a query's request: the outcome goes to _query_reply / _query_error through req.owner, req.contact
        req = OutgoingRequest(
            c.addr,
            CLIENT if self.firewalled else SERVER,
            q.internal,
            q.command,
            None,
            None,
            q.target,
            q.value,
            None,
            QUERY_RETRIES,
            REQUEST_TIMEOUT,
            c.id or None,
            q,
            c,
        )
        q.reqs.add(req)
        self._submit(req)

    def _id_of(self, host: str, port: int) -> bytes | None:
        """The id of a closer node (dht-rpc derives it from the address), None for a bad port or our own id."""
        if not 0 < port < 65536:
            return None
        cid = cached_node_id(host, port)
        return None if cid == self.table.local_id else cid

    def _query_reply(self, q: Query, c: Contact, req: OutgoingRequest, r: Reply) -> None:
        q.reqs.discard(req)
        if q.slow:
            q.slow.discard(req)
        if q.finished:
            return
        m = r.message
        ok = m.error == 0
        if ok:
            q.successes += 1
        else:
            q.errors += 1
        from_addr = r.from_addr
        responder = Contact(r.from_id or c.id, from_addr[0], from_addr[1])
        lookup = q.lookup
        if lookup.on_reply(responder, (), r, counts=ok and r.from_id is not None) and m.closer_nodes:
            lookup.add_addresses(m.closer_nodes, responder, self._id_of)
        if ok and q.on_data is not None:
            q.on_data(q, responder, r)
        self._pump(q)

    def _query_error(self, q: Query, c: Contact, req: OutgoingRequest, e: PeerDHTError) -> None:
        q.reqs.discard(req)
        q.slow.discard(req)
        if q.finished:
            return
        q.errors += 1
        refs = q.lookup.referrers(c)
        q.lookup.on_failure(c)
        if isinstance(e, RequestTimeout):
            for ref in refs:
                self._down_hint(ref, c)
        self._pump(q)

    def _down_hint(self, ref: Contact, down: Contact) -> None:
        if self._down_hints_sent >= DOWN_HINTS_PER_TICK:
            return
        self._down_hints_sent += 1
        self._request(
            ref.addr,
            internal=True,
            command=InternalCommand.DOWN_HINT,
            value=encode_ipv4_address(down.host, down.port),
            on_response=noop,
            on_error=noop,
        )

    def _commit_query(
        self,
        target: bytes,
        command: int,
        value: bytes | None,
        write_command: int,
        build: Callable[[Contact, bytes], bytes],
        result: Callable[[int], object],
        *,
        fail_on_remote: frozenset[int] = frozenset(),
    ) -> int:
        self._refresh_ticks = REFRESH_TICKS
        q = self._new_query(target, command, value=value)
        op = op_id(q.op)

        def on_finished(q: Query) -> None:
            replies = q.lookup.closest_replies()
            if not replies:
                self._fail(op, RequestError("too few nodes responded"))
                return
            commit = Commit(op=op, result=result, fail_on_remote=fail_on_remote)
            self._ops[op] = commit
            for c, data in replies:
                assert isinstance(data, Reply)
                token = data.message.token
                if token is None:
                    commit.errors.append(RequestError("no token received from closest node"))
                    continue
                commit.pending += 1
                self._commit_send(commit, c, data, token, target, write_command, build(c, token))
            self._commit_maybe_done(commit)

        q.on_finished = on_finished
        self._start_query(q)
        return op

    def _commit_send(
        self,
        commit: Commit,
        c: Contact,
        data: Reply,
        token: bytes,
        target: bytes,
        command: int,
        value: bytes,
    ) -> None:
        def ok(r: Reply) -> None:
            commit.reqs.discard(req)
            commit.pending -= 1
            if r.message.error == 0:
                commit.success += 1
            else:
                commit.errors.append(RemoteError(r.message.error))
            self._commit_maybe_done(commit)

        def err(e: PeerDHTError) -> None:
            commit.reqs.discard(req)
            commit.pending -= 1
            commit.errors.append(e)
            self._commit_maybe_done(commit)

        req = self._request(
            data.from_addr,
            internal=False,
            command=command,
            target=target,
            value=value,
            token=token,
            on_response=ok,
            on_error=err,
        )
        commit.reqs.add(req)

    def _commit_maybe_done(self, commit: Commit) -> None:
        if commit.pending > 0:
            return
        for e in commit.errors:
            if isinstance(e, RemoteError) and e.code in commit.fail_on_remote:
                self._fail(commit.op, e)
                return
        if commit.success > 0:
            self._done(commit.op, commit.result(commit.success))
            return
        remote = [e for e in commit.errors if isinstance(e, RemoteError)]
        error = (
            remote[0]
            if remote
            else commit.errors[-1]
            if commit.errors
            else RequestError("no node stored the value")
        )
        self._fail(commit.op, error)
