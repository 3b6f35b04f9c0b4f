"""The typed op engine both DHTs run their commands on (sans-IO).

An *operation* is one command in progress (a ping, a lookup, an announce, a put...) with an id, the
requests it has in flight and exactly one outcome: done with a result, failed with an error, or cancelled
(no outcome event). :class:`LookupOp` adds the shared Kademlia lifecycle of the iterative commands of both
profiles (dht-rpc ``lib/query.js`` for HyperDHT; the ``find_node``/``get_peers``/``get`` traversals of
BEP 5 and BEP 44, as ``bittorrent-dht/client.js``):

1. **start** from the routing table's closest nodes (and the bootstrap nodes when the table is short);
2. **pump**: query the closest unvisited candidates with at most ``concurrency`` requests in flight, through
   :class:`~peerdht.kademlia.lookup.Lookup`; a request that is being retried (*slow*) stops counting against
   the limit (dht-rpc ``_oncycle``);
3. **replies** feed the lookup (closer nodes, the responder's data); **failures** mark the node down, and a
   profile that sends DOWN_HINTs (dht-rpc) tells every node that referred it;
4. the lookup is **done** when nothing is in flight and no unvisited candidate is closer than the k-th
   closest reply, or when only slow requests are left and ``k`` replies are in (dht-rpc ``_readMore``);
   requests still in flight are then forgotten;
5. an optional **store** phase (announce, put, commit) sends one write to each of the closest nodes that
   answered, with the token each gave; it ends when every write was answered or failed;
6. **finish** / **fail** / **cancel**: every request still in flight is forgotten and the outcome goes out.

The engine encodes nothing and sends nothing. Each profile subclasses it once with the small protocol below,
which is all the engine knows of a DHT, and then once per command for its meaning:

* :meth:`Operation.abort_request`: forget a request in flight (its reply then counts as unexpected);
* :meth:`Operation.emit_done` / :meth:`Operation.emit_failed`: the profile's ``OpDone`` / ``OpFailed`` event;
* :meth:`Operation.closed`: the op ended (any way): drop it from the node's op table;
* :meth:`LookupOp.send_query`: encode and send the lookup query to one contact (the request, or ``None``);
* :meth:`LookupOp.send_store`: encode and send one write (with the responder's data, e.g. its token);
* :meth:`LookupOp.send_down_hint`: dht-rpc only: a referred node did not answer;
* :meth:`LookupOp.on_data`: interpret one reply (values, peers, items; may finish the op);
* :meth:`LookupOp.lookup_done`: what to do with the closest replies: finish, or store to them;
* :meth:`LookupOp.store_done`: the result once every write is answered.

The two profiles: :mod:`peerdht.mainline.ops` (BEP 5/44 commands over KRPC) and :mod:`peerdht.hyper.queries`
(dht-rpc queries and commits, HyperDHT's commands); single requests are plain :class:`Operation` s
(``PingOp``/``SampleOp`` there, ``RequestOp`` in :mod:`peerdht.hyper.rpc_requests`).

Request handles are the profile's own objects (``R``: hashable, compared by identity). The profile tells the
op what became of each: :meth:`LookupOp.on_reply`, :meth:`LookupOp.on_failure`, :meth:`LookupOp.on_slow`,
:meth:`LookupOp.on_store_reply`, :meth:`LookupOp.on_store_failure` (:meth:`LookupOp.is_store` says which kind
a handle is). No clock, no randomness: ``now`` (seconds) is passed in and handed to the hooks that send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from peerdht.errors import PeerDHTError
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.table import Contact

__all__ = ["LookupOp", "Operation"]

R = TypeVar("R")
"""A profile's request handle (hashable, identity-compared)."""


class Operation(Generic[R]):
    """One command in progress: its id, the requests it has in flight, one outcome.

    Args:
        id: the op id the events carry (``None`` for background work that reports nothing, e.g. a table
            refresh).

    Attributes:
        id: the op id or ``None``.
        finished: the op has its outcome (or was cancelled); nothing more is sent or emitted.
        requests: requests in flight that belong to the op (lookup queries for a :class:`LookupOp`).
    """

    __slots__ = ("finished", "id", "requests")

    def __init__(self, id: int | None) -> None:
        self.id = id
        self.finished = False
        self.requests: set[R] = set()

    # -- the profile's side ------------------------------------------------------------------

    def abort_request(self, request: R) -> None:
        """Forget ``request`` (still in flight): its reply, if one comes, is not ours any more."""
        raise NotImplementedError

    def emit_done(self, result: object) -> None:
        """Emit the profile's result event for this op."""
        raise NotImplementedError

    def emit_failed(self, error: PeerDHTError) -> None:
        """Emit the profile's error event for this op."""
        raise NotImplementedError

    def closed(self) -> None:
        """The op ended (done, failed or cancelled), before any outcome event: forget it. Default: nothing."""

    # -- outcome -----------------------------------------------------------------------------

    def finish(self, result: object) -> None:
        """End the op with ``result`` (ignored if it already ended)."""
        if self.finished:
            return
        self._close()
        self.emit_done(result)

    def fail(self, error: PeerDHTError) -> None:
        """End the op with ``error`` (ignored if it already ended)."""
        if self.finished:
            return
        self._close()
        self.emit_failed(error)

    def cancel(self) -> None:
        """End the op without an outcome event (ignored if it already ended)."""
        if self.finished:
            return
        self._close()

    def _close(self) -> None:
        self.finished = True
        self._abort_all()
        self.closed()

    def _abort_all(self) -> None:
        reqs = self.requests
        if reqs:
            for r in list(reqs):
                self.abort_request(r)
            reqs.clear()


class LookupOp(Operation[R]):
    """An iterative lookup towards ``target``, then an optional store phase (see the module docstring).

    Args:
        id: the op id (``None`` for background lookups).
        target: the id looked up (32 bytes for HyperDHT, 20 for Mainline).
        k: closest responders to collect (dht-rpc 20, BEP 5 8).
        concurrency: lookup requests in flight at most (dht-rpc 10).
        local_id: our own node id, never a candidate.

    Attributes:
        target: the target id.
        lookup: the :class:`~peerdht.kademlia.lookup.Lookup` (candidates, closest replies).
        slow: lookup requests being retried (they do not count against ``concurrency``).
        lookup_over: the lookup phase ended (done, or the op ended during it).
        storing: the store phase began (:meth:`begin_store`).
        stores: write requests in flight.
        queries: lookup queries sent.
        tried: writes sent.
        stored: writes answered without an error.
        store_errors: what became of the writes that did not succeed (remote errors, timeouts, or errors
            the command recorded itself, such as a closest node that gave no token).
    """

    __slots__ = (
        "lookup",
        "lookup_over",
        "queries",
        "slow",
        "store_errors",
        "stored",
        "stores",
        "storing",
        "target",
        "tried",
    )

    DOWN_HINTS = False
    """Tell the referrers of a node that timed out (dht-rpc DOWN_HINT). BEP 5 has no such message."""

    def __init__(
        self, id: int | None, target: bytes, *, k: int, concurrency: int, local_id: bytes | None = None
    ) -> None:
        super().__init__(id)
        self.target = target
        self.lookup = Lookup(target, k=k, concurrency=concurrency, local_id=local_id)
        self.slow: set[R] = set()
        self.lookup_over = False
        self.storing = False
        self.stores: set[R] = set()
        self.queries = 0
        self.tried = 0
        self.stored = 0
        self.store_errors: list[PeerDHTError] = []

    # -- the profile's side ------------------------------------------------------------------

    def send_query(self, contact: Contact, now: float) -> R | None:
        """Encode and send this op's lookup query to ``contact``; the request, or ``None`` if it could
        not be sent (the contact then counts as failed)."""
        raise NotImplementedError

    def send_store(self, contact: Contact, data: object, now: float) -> R | None:
        """Encode and send this op's write to ``contact``, which answered the lookup with ``data``; the
        request, or ``None`` if it could not be sent."""
        raise NotImplementedError

    def send_down_hint(self, referrer: Contact, down: Contact, now: float) -> None:
        """Tell ``referrer`` that ``down``, which it listed, did not answer (only if :attr:`DOWN_HINTS`)."""

    def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
        """A lookup reply from ``responder`` was fed to the lookup (``fed``: it counted as a reply in
        flight). Interpret it here; finishing the op stops the lookup. Default: nothing."""

    def lookup_done(self, now: float) -> None:
        """The lookup ended: finish the op with :meth:`Lookup.closest_replies`, or :meth:`begin_store`
        and :meth:`store` to them."""
        raise NotImplementedError

    def lookup_closed(self) -> None:
        """The lookup phase ended (called once, before :meth:`lookup_done` or on an early end). Default:
        nothing."""

    def store_done(self, now: float) -> None:
        """Every write was answered or failed (or none could be sent). Default: finish with :attr:`stored`."""
        self.finish(self.stored)

    # -- lookup phase ------------------------------------------------------------------------

    def start(self, seeds: Iterable[Contact], now: float, bootstrap: Iterable[Contact] = ()) -> None:
        """Offer the routing table's closest nodes (``seeds``) and ``bootstrap`` addresses, and send the
        first queries."""
        lookup = self.lookup
        lookup.add_candidates(seeds)
        if bootstrap:
            lookup.add_candidates(bootstrap)
        self.pump(now)

    def pump(self, now: float) -> None:
        """Send queries while the concurrency allows, pass on down hints, and end the lookup when done.
        Called after every reply and failure, and by the profile's timer (slow requests free room)."""
        if self.finished or self.lookup_over:
            return
        lookup = self.lookup
        for contact in lookup.next_to_query():
            req = self.send_query(contact, now)
            if req is None:
                lookup.on_failure(contact)
            else:
                self.requests.add(req)
                self.queries += 1
        if self.DOWN_HINTS:
            for ref, down in lookup.take_down_hints():
                self.send_down_hint(ref, down, now)
        inflight = lookup.inflight
        # query.js _readMore: done when nothing is in flight, or when every request still in flight is slow
        # (being retried) and k closest replies are in
        if (inflight and inflight == len(self.slow) and lookup.closest_count >= lookup.k) or lookup.done:
            self._end_lookup(now)

    def _end_lookup(self, now: float) -> None:
        self.lookup_over = True
        self._abort_all()  # the slow requests left, if any
        self.slow.clear()
        self.lookup_closed()
        self.lookup_done(now)

    def on_reply(
        self,
        request: R,
        responder: Contact,
        data: object,
        now: float,
        *,
        counts: bool = True,
        closer: Iterable[Contact] = (),
    ) -> None:
        """A lookup query was answered.

        Args:
            request: the request answered.
            responder: who answered (matched by address; its id may be new, e.g. a bootstrap node's).
            data: kept with the reply (:meth:`Lookup.closest_replies`) and handed to :meth:`on_data`.
            now: current time (seconds).
            counts: ``False`` when the responder may not be one of the closest (no verified id, an error
                reply).
            closer: the reply's closer nodes as contacts (a profile may instead add them in
                :meth:`on_data`, e.g. from bare addresses).
        """
        self.requests.discard(request)
        if self.slow:
            self.slow.discard(request)
        if self.finished or self.lookup_over:
            return
        fed = self.lookup.on_reply(responder, closer, data, counts=counts)
        self.on_data(responder, data, fed, now)
        self.pump(now)

    def on_failure(self, request: R, contact: Contact, now: float, *, timed_out: bool = True) -> None:
        """A lookup query got no (usable) reply: ``timed_out`` after its retries, or failed otherwise (a
        malformed reply, a changed id). Referrers get a down hint for a timeout (if :attr:`DOWN_HINTS`)."""
        self.requests.discard(request)
        if self.slow:
            self.slow.discard(request)
        if self.finished or self.lookup_over:
            return
        lookup = self.lookup
        if timed_out and self.DOWN_HINTS:
            refs = lookup.referrers(contact)
            lookup.on_failure(contact)
            for ref in refs:
                self.send_down_hint(ref, contact, now)
        else:
            lookup.on_failure(contact)
        self.pump(now)

    def on_slow(self, request: R, contact: Contact) -> None:
        """A lookup query is being resent: it stops counting against the concurrency limit."""
        if request in self.requests and not self.lookup_over:
            self.lookup.on_slow(contact)
            self.slow.add(request)

    # -- store phase -------------------------------------------------------------------------

    def begin_store(self) -> None:
        """Enter the store phase: the op ends (:meth:`store_done`) once no write is in flight. Writes may be
        sent before (during the lookup, as hyperdht's unannounce does)."""
        self.storing = True

    def store(self, contact: Contact, data: object, now: float) -> bool:
        """Send one write to ``contact`` (:meth:`send_store`); ``False`` if it could not be sent."""
        req = self.send_store(contact, data, now)
        if req is None:
            return False
        self.stores.add(req)
        self.tried += 1
        return True

    def is_store(self, request: R) -> bool:
        """Whether ``request`` is one of this op's writes (else a lookup query)."""
        return request in self.stores

    def on_store_reply(self, request: R, now: float, error: PeerDHTError | None = None) -> None:
        """A write was answered: stored, or refused with ``error`` (the remote error). Also called with the
        error of a write that got no reply (:meth:`on_store_failure`)."""
        stores = self.stores
        if request not in stores:
            return
        stores.discard(request)
        if self.finished:
            return
        if error is None:
            self.stored += 1
        else:
            self.store_errors.append(error)
        if self.storing and not stores:
            self.store_done(now)

    def on_store_failure(self, request: R, error: PeerDHTError, now: float) -> None:
        """A write got no reply (``error``: the timeout)."""
        self.on_store_reply(request, now, error)

    def maybe_store_done(self, now: float) -> None:
        """Call :meth:`store_done` if the store phase began and no write is in flight."""
        if self.storing and not self.stores and not self.finished:
            self.store_done(now)

    # -- ending ------------------------------------------------------------------------------

    def _close(self) -> None:
        self.finished = True
        self._abort_all()
        stores = self.stores
        if stores:
            for r in list(stores):
                self.abort_request(r)
            stores.clear()
        if not self.lookup_over:
            self.lookup_over = True
            self.slow.clear()
            self.lookup_closed()
        self.closed()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} id={self.id} target={self.target.hex()[:16]}… queries={self.queries} "
            f"lookup_over={self.lookup_over} storing={self.storing} tried={self.tried} stored={self.stored} "
            f"finished={self.finished}>"
        )
