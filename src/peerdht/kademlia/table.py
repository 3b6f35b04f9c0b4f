"""The Kademlia routing table shared by both profiles.

Two bucket policies, one structure (a list of buckets, bucket ``i`` holding the contacts whose id
shares exactly ``i`` leading bits with the local id; the last bucket also holds longer prefixes):

* ``split=False`` (HyperDHT, ``kademlia-routing-table/index.js``): ``8 * len(id)`` rows exist from
  the start (256 for 32-byte ids), each holding up to ``k`` contacts (dht-rpc uses k=20).
* ``split=True`` (Mainline, BEP 5 and the ``k-bucket`` npm module): the table starts as one bucket
  covering the whole id space. Only the bucket whose range covers the local id may split when it is
  full; a full bucket that does not cover the local id stays full (new contacts there are only
  admitted by replacing a dead one). BEP 5 uses K=8.

The table never sends anything: when a bucket is full, :meth:`RoutingTable.add` returns the
contact the caller should ping (least recently pinged); the caller then calls
:meth:`RoutingTable.replace` if it is dead or :meth:`RoutingTable.touch` if it answered.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peerdht.errors import LocalProtocolError

if TYPE_CHECKING:
    import random

__all__ = ["Contact", "RoutingTable"]

_SORT_ALL_UP_TO = 1.5
"""closest(target, n) sorts the whole table when it holds at most ``1.5 * n`` contacts, and otherwise
walks the buckets nearest first (a fixed 64 contacts before: the walk is 2-3x faster for n = 8 of 56
Mainline contacts or n = 20 of 60 HyperDHT ones, the whole sort slightly faster for n = 32 of 40)."""


@dataclass(slots=True)
class Contact:
    """A node we know: its id and UDP address, with timestamps the table maintains.

    Mutable on purpose: :class:`RoutingTable` updates the timestamps in place.

    Attributes:
        id: node id (``bytes``, 32 long for HyperDHT, 20 for Mainline). ``b""`` means "id not
            known yet" (e.g. a bootstrap address); such contacts are accepted by :class:`Lookup`
            but never by :class:`RoutingTable`.
        host: IP address as a string (IPv4 dotted quad or IPv6).
        port: UDP port, 1..65535.
        added: the ``now`` (seconds) when the table first added the contact.
        seen: the last ``now`` (seconds) we heard from it.
        pinged: the last ``now`` (seconds) we sent it a ping (set by the caller when it pings).
    """

    id: bytes
    host: str
    port: int
    added: float = 0.0
    seen: float = 0.0
    pinged: float = 0.0

    @property
    def addr(self) -> tuple[str, int]:
        """The UDP address ``(host, port)``."""
        return (self.host, self.port)


class _Bucket:
    """One k-bucket: contacts by id (insertion ordered) and the last time it changed."""

    __slots__ = ("changed", "contacts")

    def __init__(self, changed: float) -> None:
        self.contacts: dict[bytes, Contact] = {}
        self.changed = changed


class RoutingTable:
    """A Kademlia routing table (``kademlia-routing-table`` rows or BEP 5 splitting buckets).

    Args:
        local_id: our node id (``bytes``, 32 long for HyperDHT, 20 for Mainline).
        k: bucket capacity (dht-rpc: 20; BEP 5: 8).
        split: ``False`` for one row per shared-prefix length (``8 * len(local_id)`` rows);
            ``True`` for BEP 5 bucket splitting.
        now: the time (seconds) the table is created; empty buckets count as changed then
            (see :meth:`stale_buckets`).

    Attributes:
        local_id: our node id.
        k: bucket capacity.
        split: the bucket policy.
    """

    __slots__ = (
        "_buckets",
        "_by_id",
        "_deepest",
        "_empty",
        "_int",
        "_ints",
        "_nbits",
        "k",
        "local_id",
        "split",
    )

    def __init__(self, local_id: bytes, *, k: int = 20, split: bool = False, now: float = 0.0) -> None:
        if not local_id:
            raise LocalProtocolError("local id must not be empty")
        if k < 1:
            raise LocalProtocolError(f"k must be >= 1, got {k}")
        self.local_id = local_id
        self.k = k
        self.split = split
        self._nbits = 8 * len(local_id)
        self._int = int.from_bytes(local_id, "big")
        self._by_id: dict[bytes, Contact] = {}
        self._ints: dict[bytes, int] = {}  # id -> int.from_bytes(id): the XOR metric's operand
        nbuckets = 1 if split else self._nbits
        # rows never written share one empty bucket (a 256-row HyperDHT table is mostly empty: 256
        # buckets were half a node's memory); a row gets its own bucket when first written (_own)
        self._empty = _Bucket(now)
        self._buckets: list[_Bucket] = [self._empty] * nbuckets
        # index of the deepest non-empty bucket; None after a split, or when the deepest bucket
        # emptied, until _deepest_bucket looks again (add and _insert keep it up to date)
        self._deepest: int | None = None

    # -- indexing ---------------------------------------------------------------------------

    def bucket_index(self, id: bytes) -> int:
        """The index of the bucket ``id`` belongs in.

        Args:
            id: a node id of the table's id length.

        Returns:
            ``min(common_prefix_length(local_id, id), bucket_count - 1)``: in row mode the row of
            ``kademlia-routing-table`` (the local id itself maps to the last row), in split mode the
            bucket whose range covers ``id``.

        Raises:
            LocalProtocolError: ``id`` has the wrong length.
        """
        if len(id) != len(self.local_id):
            raise LocalProtocolError(f"id of {len(id)} bytes, table uses {len(self.local_id)}")
        cpl = self._nbits - (int.from_bytes(id, "big") ^ self._int).bit_length()
        last = len(self._buckets) - 1
        return cpl if cpl < last else last

    def _own(self, index: int) -> _Bucket:
        """Bucket ``index``, made its own (not the shared empty one) so that it may be written."""
        bucket = self._buckets[index]
        if bucket is self._empty:
            bucket = self._buckets[index] = _Bucket(bucket.changed)
        return bucket

    @property
    def bucket_count(self) -> int:
        """The number of buckets (fixed ``8 * len(local_id)`` in row mode; grows in split mode)."""
        return len(self._buckets)

    def bucket(self, index: int) -> list[Contact]:
        """The contacts of bucket ``index`` (a new list, insertion order)."""
        return list(self._buckets[index].contacts.values())

    # -- mutation ---------------------------------------------------------------------------

    def add(self, contact: Contact, now: float) -> Contact | None:
        """Add a contact, or refresh it if it is already known.

        A known id is refreshed: ``seen = now`` and its address updated to ``contact``'s (the
        stored object is kept). A new contact gets ``added = seen = now`` and is stored as given.
        In split mode a full bucket covering the local id splits first (BEP 5).

        Args:
            contact: the node to add (its ``id`` must have the table's id length).
            now: current time (seconds).

        Returns:
            ``None`` if the contact is now in the table (or is the local id, which is never
            added). If its bucket is full: the bucket's least recently pinged contact (ties: added
            earliest, as dht-rpc ``_onfullrow``). The caller should set its ``pinged = now``, ping
            it, then call :meth:`replace` (dead) or :meth:`touch` (alive); ``contact`` is not
            stored meanwhile.

        Raises:
            LocalProtocolError: ``contact.id`` has the wrong length.
        """
        id = contact.id
        index = self.bucket_index(id)
        if id == self.local_id:
            return None
        bucket = self._buckets[index]
        known = bucket.contacts.get(id)
        if known is not None:
            known.seen = now
            known.host = contact.host
            known.port = contact.port
            bucket.changed = now
            return None
        while len(bucket.contacts) >= self.k:
            if not self._can_split(index):
                return min(bucket.contacts.values(), key=_ping_order)
            self._split_last(now)
            index = self.bucket_index(id)
            bucket = self._buckets[index]
        if bucket is self._empty:
            bucket = self._own(index)
        contact.added = now
        contact.seen = now
        bucket.contacts[id] = contact
        bucket.changed = now
        self._by_id[id] = contact
        self._ints[id] = int.from_bytes(id, "big")
        self._deeper(index)
        return None

    def _can_split(self, index: int) -> bool:
        last = len(self._buckets) - 1
        return self.split and index == last and last < self._nbits - 1

    def _split_last(self, now: float) -> None:
        """Split the last bucket (the one covering the local id) into ``[last]`` and ``[last+1..]``."""
        old = self._own(len(self._buckets) - 1)
        depth = len(self._buckets) - 1
        new = _Bucket(now)
        self._buckets.append(new)
        keep: dict[bytes, Contact] = {}
        for cid, c in old.contacts.items():
            cpl = self._nbits - (int.from_bytes(cid, "big") ^ self._int).bit_length()
            if cpl > depth:
                new.contacts[cid] = c
            else:
                keep[cid] = c
        old.contacts = keep
        old.changed = now
        self._deepest = None

    def _insert(self, contact: Contact) -> bool:
        """Insert keeping the contact's timestamps (used by :meth:`rebuild`); False if no room."""
        id = contact.id
        if id == self.local_id or id in self._by_id:
            return False
        index = self.bucket_index(id)
        bucket = self._buckets[index]
        while len(bucket.contacts) >= self.k:
            if not self._can_split(index):
                return False
            self._split_last(bucket.changed)
            index = self.bucket_index(id)
            bucket = self._buckets[index]
        if bucket is self._empty:
            bucket = self._own(index)
        bucket.contacts[id] = contact
        bucket.changed = max(bucket.changed, contact.seen)
        self._by_id[id] = contact
        self._ints[id] = int.from_bytes(id, "big")
        self._deeper(index)
        return True

    def _deeper(self, index: int) -> None:
        """Bucket ``index`` just gained a contact: keep the cached deepest non-empty bucket up to date."""
        deepest = self._deepest
        if deepest is not None and index > deepest:
            self._deepest = index

    def touch(self, id: bytes, now: float) -> None:
        """Mark a contact as seen at ``now`` (it answered); unknown ids are ignored."""
        contact = self._by_id.get(id)
        if contact is None:
            return
        contact.seen = now
        # bucket_index without re-reading the id's bytes: its int is kept for every stored contact
        cpl = self._nbits - (self._ints[id] ^ self._int).bit_length()
        last = len(self._buckets) - 1
        self._buckets[cpl if cpl < last else last].changed = now

    def get(self, id: bytes) -> Contact | None:
        """The stored contact with this id, or ``None``."""
        return self._by_id.get(id)

    def remove(self, id: bytes) -> bool:
        """Remove a contact; ``True`` if it was in the table."""
        if self._by_id.pop(id, None) is None:
            return False
        del self._ints[id]
        index = self.bucket_index(id)
        contacts = self._buckets[index].contacts
        del contacts[id]
        if not contacts and index == self._deepest:
            self._deepest = None  # the deepest bucket emptied: found again when next needed
        return True

    def replace(self, old_id: bytes, new: Contact, now: float) -> None:
        """Replace a dead contact (that did not answer the ping :meth:`add` asked for) by ``new``.

        ``old_id`` is removed if present, then ``new`` is added as by :meth:`add` (if its bucket is
        still full, ``new`` is dropped).

        Args:
            old_id: id of the contact to evict.
            new: the contact that was waiting for room.
            now: current time (seconds).
        """
        self.remove(old_id)
        self.add(new, now)

    def rebuild(self, local_id: bytes) -> None:
        """Switch to a new local id and re-add every contact (dht-rpc: ephemeral -> persistent id).

        Contacts keep their timestamps; they are re-added most recently seen first, so if a
        bucket of the new layout overflows the stalest contacts are dropped. A contact whose id
        equals the new local id is dropped.

        Args:
            local_id: the new node id (same length as before).

        Raises:
            LocalProtocolError: ``local_id`` has a different length.
        """
        if len(local_id) != len(self.local_id):
            raise LocalProtocolError(
                f"new local id has {len(local_id)} bytes, table uses {len(self.local_id)}"
            )
        contacts = sorted(self._by_id.values(), key=lambda c: c.seen, reverse=True)
        oldest_change = min(b.changed for b in self._buckets)
        self.local_id = local_id
        self._int = int.from_bytes(local_id, "big")
        self._by_id = {}
        self._ints = {}
        nbuckets = 1 if self.split else self._nbits
        self._empty = _Bucket(oldest_change)
        self._buckets = [self._empty] * nbuckets
        self._deepest = None
        for c in contacts:
            self._insert(c)

    # -- queries ----------------------------------------------------------------------------

    def closest(self, target: bytes, n: int | None = None) -> list[Contact]:
        """The ``n`` contacts closest to ``target`` by XOR distance, closest first.

        Not quadratic: every bucket covers a distance interval of its own, so buckets are
        visited in distance order (:meth:`_bucket_order`) until they hold ``n`` contacts, and only
        those are sorted (in one sort: the ranges do not overlap, so that is the same order as
        sorting bucket by bucket). Cost: ``O(bucket_count + m log m)`` for the ``m`` contacts of
        those buckets. A table of at most ``1.5 * n`` contacts is simply sorted whole (faster
        there).

        Args:
            target: an id of the table's id length.
            n: how many (default ``k``).

        Returns:
            Up to ``n`` contacts sorted by ``distance(c.id, target)`` (a new list).

        Raises:
            LocalProtocolError: ``target`` has the wrong length.
        """
        if n is None:
            n = self.k
        if n <= 0 or not self._by_id:
            return []
        d = self.bucket_index(target)
        t = int.from_bytes(target, "big")
        ints = self._ints

        def key(c: Contact) -> int:
            return ints[c.id] ^ t

        if len(ints) <= n * _SORT_ALL_UP_TO:
            # hardly more contacts than asked for (a testnet, a fresh node): one sort beats walking the rows
            return sorted(self._by_id.values(), key=key)[:n]

        # buckets cover disjoint distance ranges and are visited nearest range first, so the contacts of
        # the buckets visited until n are reached, sorted once, are the n closest (distances are unique)
        buckets = self._buckets
        picked: list[Contact] = []
        for i in self._bucket_order(d, t ^ self._int, self._deepest_bucket()):
            contacts = buckets[i].contacts
            if contacts:
                picked += contacts.values()
                if len(picked) >= n:
                    break
        picked.sort(key=key)
        del picked[n:]
        return picked

    def _deepest_bucket(self) -> int:
        """Index of the deepest non-empty bucket (-1 if none); cached until membership changes."""
        deepest = self._deepest
        if deepest is None:
            buckets = self._buckets
            deepest = len(buckets) - 1
            while deepest >= 0 and not buckets[deepest].contacts:
                deepest -= 1
            self._deepest = deepest
        return deepest

    def _bucket_order(self, d: int, x: int, hi: int) -> Iterator[int]:
        """Bucket indices by increasing distance to a target in bucket ``d`` (``x = target ^ local``),
        leaving out buckets deeper than ``hi`` (empty ones: a 256-row table is mostly empty).

        Bucket ``j`` holds ids sharing bits ``[0, j)`` with the local id and differing at bit
        ``j`` (the last bucket: sharing ``[0, last)``). Against the target:

        * bucket ``d`` shares bits ``[0, d]`` with the target: closest;
        * a deeper bucket ``j`` differs from the target at bit ``d``; at bit ``j`` it matches the
          target iff the target differs from the local id there (``x_j = 1``), which puts it
          before every bucket deeper than ``j``, else after all of them;
        * a shallower bucket ``j < d`` differs from the target at bit ``j``: the smaller ``j``, the
          farther.
        """
        last = len(self._buckets) - 1
        top = self._nbits - 1
        yield d
        if d < last and d < hi:
            for j in range(d + 1, min(last, hi + 1)):
                if (x >> (top - j)) & 1:
                    yield j
            if last <= hi:
                yield last
            for j in range(min(last - 1, hi), d, -1):
                if not (x >> (top - j)) & 1:
                    yield j
        yield from range(d - 1, -1, -1)

    def stale_buckets(self, now: float, max_age: float) -> list[int]:
        """Indices of buckets that have not changed for ``max_age`` seconds (to refresh).

        A bucket changes when a contact in it is added, refreshed, touched or replaced (BEP 5:
        "buckets that have not been changed in 15 minutes should be refreshed"). In row mode only
        rows up to the deepest non-empty one are considered (deeper rows are empty in any
        realistic network and a lookup near our own id covers them).

        Args:
            now: current time (seconds).
            max_age: seconds (BEP 5: 15 * 60).

        Returns:
            Bucket indices, ascending; use :func:`~peerdht.kademlia.ids.random_id_in_bucket`
            to pick a lookup target.
        """
        limit = len(self._buckets)
        if not self.split:
            limit = 0
            for i in range(len(self._buckets) - 1, -1, -1):
                if self._buckets[i].contacts:
                    limit = i + 1
                    break
        return [i for i in range(limit) if now - self._buckets[i].changed >= max_age]

    def mark_refreshed(self, index: int, now: float) -> None:
        """Record that bucket ``index`` was just refreshed (a lookup into it was started)."""
        self._own(index).changed = now

    def random(self, rng: random.Random) -> Contact | None:
        """A uniformly random contact, or ``None`` if empty (dht-rpc ``refresh()`` looks one up).

        O(len) per call; meant for timers, not per request.
        """
        if not self._by_id:
            return None
        return rng.choice(list(self._by_id.values()))

    def oldest(self, n: int) -> list[Contact]:
        """The ``n`` least recently seen contacts (oldest first), for periodic pings."""
        if n <= 0:
            return []
        return heapq.nsmallest(n, self._by_id.values(), key=lambda c: c.seen)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Contact]:
        return iter(list(self._by_id.values()))

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    def __repr__(self) -> str:
        mode = "split" if self.split else "rows"
        head = self.local_id.hex()[:16]
        size = len(self._by_id)
        return f"<RoutingTable {head}… k={self.k} {mode} buckets={len(self._buckets)} size={size}>"


def _ping_order(c: Contact) -> tuple[float, float]:
    return (c.pinged, c.added)
