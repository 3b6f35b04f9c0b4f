"""The iterative Kademlia lookup engine (sans-IO bookkeeping only).

Mirrors ``dht-rpc/lib/query.js`` (HyperDHT) and the ``find_node``/``get_peers`` traversal of
BEP 5 (``bittorrent-dht/client.js``): keep a set of candidates ordered by XOR distance to the
target, query the closest unvisited ones with at most ``concurrency`` requests in flight, feed the
``closer nodes`` of every reply back in, and stop when nothing in flight and no unvisited candidate
is closer than the k-th closest node that replied.

The engine sends nothing and reads no clock: the node asks :meth:`Lookup.next_to_query` whom to
send to, and reports :meth:`Lookup.on_reply` / :meth:`Lookup.on_failure` as requests finish.
Candidates are keyed by address (as dht-rpc does) and deduplicated by id as well.

Typical driver::

    q = Lookup(target, k=20, concurrency=10)
    q.add_candidates(table.closest(target))
    for c in q.next_to_query(): send(c)
    ...  # on each reply / timeout:
    q.on_reply(c, closer_nodes, data)        # or: ref = q.on_failure(c); if ref: send DOWN_HINT to ref
    for c in q.next_to_query(): send(c)
    if q.done: result = q.closest_replies()
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Final

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.table import Contact

__all__ = ["Lookup"]

_PENDING: Final = 0
_INFLIGHT: Final = 1
_DONE: Final = 2
_DOWN: Final = 3


class _Candidate:
    __slots__ = ("contact", "dist", "referrers", "since", "slow", "state", "until")

    def __init__(self, contact: Contact, dist: int, since: int) -> None:
        self.contact = contact
        self.dist = dist
        self.state = _PENDING
        # first first, appended as replies list the node (each referrer replies once per lookup); repeats
        # (a reply listing an address twice) are dropped where the list is read (_unique_referrers).
        # Replies given as bare addresses (Lookup.add_addresses) are not appended one by one: the ones of
        # Lookup._listings[since:until] that name this address are its later referrers (Lookup._settle)
        self.referrers: list[Contact] = []
        self.since = since
        self.until = -1  # listings seen while it was pending or in flight: -1 while it still is
        self.slow = False


class Lookup:
    """State of one iterative lookup towards ``target``.

    Args:
        target: the id looked up (``bytes``, 32 long for HyperDHT, 20 for Mainline).
        k: how many closest responders to collect (dht-rpc: 20; BEP 5: 8).
        concurrency: maximum requests in flight (dht-rpc default 10; BEP 5 suggests alpha=3).
        local_id: our own node id; candidates with this id are ignored (dht-rpc skips its own
            id in closer nodes).

    Attributes:
        target: the target id.
        k: result size.
        concurrency: the in-flight bound.
        inflight: requests sent and not yet answered or failed.
        queried: requests sent so far (contacts handed out by :meth:`next_to_query`).
        replies: replies received (including ones with ``counts=False``).
        failures: requests that failed (:meth:`on_failure`).
    """

    def __init__(
        self, target: bytes, *, k: int = 20, concurrency: int = 10, local_id: bytes | None = None
    ) -> None:
        if k < 1 or concurrency < 1:
            raise LocalProtocolError(f"k and concurrency must be >= 1 (k={k}, concurrency={concurrency})")
        self.target = target
        self.k = k
        self.concurrency = concurrency
        self.inflight = 0
        self.queried = 0
        self.replies = 0
        self.failures = 0
        self._t = int.from_bytes(target, "big")
        self._by_addr: dict[tuple[str, int], _Candidate] = {}
        self._ids: set[bytes] = set()
        if local_id:
            self._ids.add(local_id)
        self._heap: list[tuple[int, int, _Candidate]] = []
        self._seq = 0
        self._slow = 0
        # closest responders: sorted list of (dist, seq, contact, data), at most k long
        self._closest: list[tuple[int, int, Contact, object]] = []
        self._closest_ids: set[bytes] = set()
        self._down_hints: list[tuple[Contact, Contact]] = []
        # add_addresses' replies, in order: (referrer, its address, the addresses it listed); and the
        # addresses of candidates that failed (a reply listing one gets a down hint)
        self._listings: list[tuple[Contact, tuple[str, int], tuple[tuple[str, int], ...]]] = []
        self._down_addrs: set[tuple[str, int]] = set()

    # -- distances --------------------------------------------------------------------------

    def _dist(self, id: bytes) -> int:
        """Distance of ``id`` to the target; ``-1`` for an unknown id (``b""``: query first)."""
        if not id:
            return -1
        if len(id) != len(self.target):
            raise LocalProtocolError(f"id of {len(id)} bytes, target has {len(self.target)}")
        return int.from_bytes(id, "big") ^ self._t

    def _is_closer(self, dist: int) -> bool:
        """True if a node at ``dist`` would enter the k closest replies (dht-rpc ``_isCloser``)."""
        return len(self._closest) < self.k or dist < self._closest[-1][0]

    # -- inputs -----------------------------------------------------------------------------

    def add_candidates(self, contacts: Iterable[Contact], referrer: Contact | None = None) -> None:
        """Offer nodes to visit.

        A node is skipped if its address or id was offered before (its ``referrer`` is still
        remembered for DOWN_HINTs), or if it is not closer than the k-th closest reply so far.
        A node offered by a new referrer after it already failed produces a down hint (see
        :meth:`take_down_hints`). Contacts with ``id == b""`` (unknown, e.g. bootstrap
        addresses) are queried before all others.

        Args:
            contacts: nodes to consider (ids of the target's length, or ``b""``).
            referrer: the node whose reply listed them (``None`` for the routing table or
                bootstrap list).

        Raises:
            LocalProtocolError: an id has a wrong (non-zero) length.
        """
        by_addr = self._by_addr
        ids = self._ids
        t = self._t
        tlen = len(self.target)
        closest = self._closest
        k = self.k
        ref_addr = (referrer.host, referrer.port) if referrer is not None else None
        for c in contacts:
            addr = (c.host, c.port)
            cand = by_addr.get(addr)
            if cand is not None:
                if ref_addr is not None and ref_addr != addr:
                    state = cand.state
                    if state == _DOWN:
                        assert referrer is not None
                        self._down_hints.append((referrer, cand.contact))
                    elif state != _DONE:
                        assert referrer is not None
                        if self._listings:
                            self._settle(cand, addr)  # keep the referrers in order
                        cand.referrers.append(referrer)
                continue
            cid = c.id
            if cid:
                if cid in ids:
                    continue
                if len(cid) != tlen:
                    raise LocalProtocolError(f"id of {len(cid)} bytes, target has {tlen}")
                dist = int.from_bytes(cid, "big") ^ t
            else:
                dist = -1
            # _is_closer, inlined (this loop runs for every closer node of every reply)
            if len(closest) >= k and dist >= closest[-1][0]:
                continue
            cand = _Candidate(c, dist, len(self._listings))
            if ref_addr is not None:
                assert referrer is not None
                cand.referrers.append(referrer)
            by_addr[addr] = cand
            if cid:
                ids.add(cid)
            self._seq += 1
            heapq.heappush(self._heap, (dist, self._seq, cand))

    def add_addresses(
        self,
        addrs: Iterable[tuple[str, int]],
        referrer: Contact,
        id_of: Callable[[str, int], bytes | None],
    ) -> None:
        """:meth:`add_candidates` for the ``closer nodes`` of a reply given as bare addresses.

        Addresses already offered only get ``referrer`` recorded (or a down hint); ``id_of`` is
        called for new ones only and gives the id (dht-rpc derives it from the address), or
        ``None`` to skip the address (e.g. our own id, a bad port). Equivalent to
        ``add_candidates([Contact(id_of(h, p), h, p) for h, p in addrs if id_of(h, p)], referrer)``
        without building contacts or ids for the (many) nodes seen before.

        Raises:
            LocalProtocolError: ``id_of`` returned an id of the wrong (non-zero) length.
        """
        # Most addresses of a reply were offered before (in a lookup of the 32-node bench, 98 %; 79 % of
        # the replies list no new one). Their referrer is not appended to each of them: the reply is
        # kept in _listings, and a candidate that fails reads its referrers from there (_settle). So only
        # the set operations below run per reply, in C, unless an address is new or failed before.
        if addrs.__class__ is not tuple:
            addrs = tuple(addrs)
        if not addrs:
            return
        ref_addr = (referrer.host, referrer.port)
        self._listings.append((referrer, ref_addr, addrs))
        by_addr = self._by_addr
        down = self._down_addrs
        if down and not down.isdisjoint(addrs):
            hints = self._down_hints
            for addr in addrs:
                if addr in down and addr != ref_addr:
                    hints.append((referrer, by_addr[addr].contact))
        fresh = set(addrs).difference(by_addr)
        if fresh:
            new: list[Contact] = []
            for addr in addrs:
                if addr in fresh:
                    host, port = addr
                    cid = id_of(host, port)
                    if cid is not None:
                        new.append(Contact(cid, host, port))
            if new:
                self.add_candidates(new, referrer)

    def _settle(self, cand: _Candidate, addr: tuple[str, int]) -> None:
        """Append to ``cand.referrers`` the referrers of the :meth:`add_addresses` replies that listed
        ``addr`` while it was pending or in flight (and were not its own reply), in order."""
        listings = self._listings
        end = len(listings) if cand.until < 0 else cand.until
        if cand.since >= end:
            return
        refs = cand.referrers
        for i in range(cand.since, end):
            ref, ref_addr, addrs = listings[i]
            if ref_addr != addr and addr in addrs:
                refs.append(ref)
        cand.since = end

    def next_to_query(self) -> list[Contact]:
        """Contacts to send the lookup request to now, closest first.

        Hands out unvisited candidates while fewer than ``concurrency`` requests are in flight
        (requests marked slow with :meth:`on_slow` do not count, as in dht-rpc) and marks them in
        flight. Candidates no longer closer than the k-th closest reply are dropped.

        Returns:
            A new list, possibly empty.
        """
        out: list[Contact] = []
        heap = self._heap
        while heap and self.inflight - self._slow < self.concurrency:
            dist, _, cand = heapq.heappop(heap)
            if cand.state != _PENDING:
                continue
            if not self._is_closer(dist):
                # replies only get closer, so this candidate never will be: drop the rest too
                heap.clear()
                break
            cand.state = _INFLIGHT
            self.inflight += 1
            self.queried += 1
            out.append(cand.contact)
        return out

    def _finish(self, contact: Contact, state: int) -> _Candidate | None:
        addr = contact.addr
        cand = self._by_addr.get(addr)
        if cand is None or cand.state != _INFLIGHT:
            return None
        cand.state = state
        cand.until = len(self._listings)
        if state == _DOWN:
            self._down_addrs.add(addr)
        self.inflight -= 1
        if cand.slow:
            cand.slow = False
            self._slow -= 1
        return cand

    def on_reply(
        self, contact: Contact, closer: Iterable[Contact], data: object = None, *, counts: bool = True
    ) -> bool:
        """A reply to a request of this lookup arrived.

        Replies from addresses not in flight (duplicates, or after :meth:`on_failure`) are
        ignored.

        Args:
            contact: the responder, matched by address. Its ``id`` may differ from the candidate's
                (e.g. a bootstrap node whose id was unknown): the given one is recorded.
            closer: the ``closer nodes`` of the reply (become candidates referred by ``contact``).
            data: anything to keep with the reply (token, value, peers...).
            counts: ``False`` when the responder gave no verified id (dht-rpc: no ``id`` in the
                reply, i.e. an ephemeral node): its closer nodes are used but it is not one of the
                closest replies.

        Returns:
            ``False`` if the reply was ignored (``contact`` not in flight).
        """
        # _finish(contact, _DONE) and _dist, inlined: this runs for every reply
        cand = self._by_addr.get((contact.host, contact.port))
        if cand is None or cand.state != _INFLIGHT:
            return False
        cand.state = _DONE
        cand.until = len(self._listings)
        self.inflight -= 1
        if cand.slow:
            cand.slow = False
            self._slow -= 1
        self.replies += 1
        cid = contact.id
        if cid:
            self._ids.add(cid)  # e.g. a bootstrap node's id, learnt only now
        if counts and cid:
            if len(cid) != len(self.target):
                raise LocalProtocolError(f"id of {len(cid)} bytes, target has {len(self.target)}")
            dist = int.from_bytes(cid, "big") ^ self._t
            if cid not in self._closest_ids and self._is_closer(dist):
                self._seq += 1
                entry = (dist, self._seq, contact, data)
                # insertion into a list of at most k (20): bisect-free linear insert is fine
                lst = self._closest
                i = len(lst)
                while i > 0 and lst[i - 1][0] > dist:
                    i -= 1
                lst.insert(i, entry)
                self._closest_ids.add(contact.id)
                if len(lst) > self.k:
                    dropped = lst.pop()
                    self._closest_ids.discard(dropped[2].id)
        if closer:
            self.add_candidates(closer, contact)
        return True

    def on_failure(self, contact: Contact) -> Contact | None:
        """A request timed out after its retries (or failed otherwise).

        Args:
            contact: the node that did not answer (matched by address).

        Returns:
            The node that referred it (the first one; all are in :meth:`referrers`), to which
            dht-rpc sends a DOWN_HINT; ``None`` if it came from the table/bootstrap or was not in
            flight.
        """
        cand = self._finish(contact, _DOWN)
        if cand is None:
            return None
        self.failures += 1
        self._settle(cand, contact.addr)
        return cand.referrers[0] if cand.referrers else None

    def on_slow(self, contact: Contact) -> None:
        """The request to ``contact`` is being retried: stop counting it against ``concurrency``.

        dht-rpc ``_oncycle``: a slow request lets one more request go out. The request still
        counts in :attr:`inflight` until :meth:`on_reply` or :meth:`on_failure`.
        """
        cand = self._by_addr.get(contact.addr)
        if cand is not None and cand.state == _INFLIGHT and not cand.slow:
            cand.slow = True
            self._slow += 1

    # -- outputs ----------------------------------------------------------------------------

    def referrers(self, contact: Contact) -> list[Contact]:
        """Every node that listed ``contact`` as a closer node (by address), first first."""
        addr = contact.addr
        cand = self._by_addr.get(addr)
        if cand is None:
            return []
        self._settle(cand, addr)
        return _unique_referrers(cand.referrers)

    def take_down_hints(self) -> list[tuple[Contact, Contact]]:
        """``(referrer, down_node)`` pairs seen since the last call: a node that had already failed
        was offered again by ``referrer`` (dht-rpc sends it a DOWN_HINT). Clears the list."""
        out, self._down_hints = self._down_hints, []
        return out

    @property
    def done(self) -> bool:
        """Nothing in flight and no unvisited candidate closer than the k-th closest reply."""
        if self.inflight:
            return False
        heap = self._heap
        while heap:
            dist, _, cand = heap[0]
            if cand.state == _PENDING and self._is_closer(dist):
                return False
            heapq.heappop(heap)
        return True

    def closest_replies(self) -> list[tuple[Contact, object]]:
        """Up to ``k`` responders (counted ones) sorted by distance to the target, with their data."""
        return [(c, data) for _, _, c, data in self._closest]

    def closest_nodes(self) -> list[Contact]:
        """The contacts of :meth:`closest_replies`."""
        return [c for _, _, c, _ in self._closest]

    @property
    def closest_count(self) -> int:
        """``len(closest_nodes())`` without building the list: counted replies kept so far (at most ``k``)."""
        return len(self._closest)

    def __repr__(self) -> str:
        return (
            f"<Lookup {self.target.hex()[:16]}… k={self.k} inflight={self.inflight} queried={self.queried} "
            f"replies={self.replies} failures={self.failures} closest={len(self._closest)}>"
        )


def _unique_referrers(refs: list[Contact]) -> list[Contact]:
    """``refs`` without later repeats of an address (the first contact of each address kept, in order)."""
    seen: set[tuple[str, int]] = set()
    out: list[Contact] = []
    for r in refs:
        addr = (r.host, r.port)
        if addr not in seen:
            seen.add(addr)
            out.append(r)
    return out
