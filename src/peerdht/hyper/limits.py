"""Bounded, O(1)-per-event state for code that strangers can make work for us (issue 15).

(The handshake-reply cache is :class:`peerdht.kademlia.store.ExpiringCache`: entries expire oldest-first,
at most ``max_size`` of them -- what hyperdht ``lib/server.js`` does with one ``_clearLater`` timer per
handshake, without a timer each.)
* :class:`KeyedBuckets`: a token bucket per key (a source address or host), at most ``max_keys`` of
  them (the least recently used is forgotten: it comes back with a full bucket, which costs an
  address rotator nothing it did not have).
* :class:`FairSlots`: ``max_total`` slots, at most ``max_per_key`` per key; taking a slot when full
  evicts the key's own oldest slot first, else the oldest overall, and tells the caller which
  to release -- so a flooder only churns its own entries, and a legitimate one always gets a turn.

Sans-IO: time comes in as ``now`` (seconds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from peerdht.kademlia.ratelimit import TokenBucket

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["FairSlots", "KeyedBuckets"]


class KeyedBuckets(Generic[K]):
    """One :class:`~peerdht.kademlia.ratelimit.TokenBucket` per key: ``rate`` tokens per second up to
    ``burst``; unknown keys start full.

    Args:
        rate: tokens per second.
        burst: bucket size.
        max_keys: keys remembered (least recently used forgotten first).
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def allow(self, key: K, now: float, cost: int = 1) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False (nothing taken) when it has too few."""
        buckets = self._buckets
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = TokenBucket(self.rate, self.burst)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
        return b.allow(cost, now)


class FairSlots(Generic[K, V]):
    """Up to ``max_total`` held slots (values), at most ``max_per_key`` per key, oldest first out.

    :meth:`take` never refuses: when the key or the whole table is full it evicts (the key's own
    oldest first) and returns what was evicted, for the caller to release.
    """

    def __init__(self, max_total: int, max_per_key: int) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self._all: OrderedDict[int, tuple[K, V]] = OrderedDict()
        self._by_key: dict[K, OrderedDict[int, None]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._all)

    def count(self, key: K) -> int:
        """Slots held by ``key``."""
        mine = self._by_key.get(key)
        return len(mine) if mine is not None else 0

    def take(self, key: K, value: V) -> tuple[int, list[V]]:
        """Hold a slot for ``value`` under ``key``.

        Returns:
            ``(slot, evicted)``: the slot id (for :meth:`release`) and the values evicted to make room.
        """
        evicted: list[V] = []
        mine = self._by_key.get(key)
        if mine is not None and len(mine) >= self.max_per_key:
            evicted.append(self._pop(next(iter(mine))))
        elif len(self._all) >= self.max_total:
            evicted.append(self._pop(next(iter(self._all))))
        self._seq += 1
        slot = self._seq
        self._all[slot] = (key, value)
        self._by_key.setdefault(key, OrderedDict())[slot] = None
        return slot, evicted

    def release(self, slot: int) -> V | None:
        """Give ``slot`` back; its value, or None if it was already released or evicted."""
        if slot not in self._all:
            return None
        return self._pop(slot)

    def _pop(self, slot: int) -> V:
        key, value = self._all.pop(slot)
        mine = self._by_key[key]
        del mine[slot]
        if not mine:
            del self._by_key[key]
        return value
