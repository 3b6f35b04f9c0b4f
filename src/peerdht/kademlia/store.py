"""A size-bounded key/value store whose entries expire (the records a DHT node keeps for others).

Serves hyperdht's record caches (``hyperdht/lib/persistent.js`` over ``xache``: announces,
mutable and immutable records, each with ``maxSize``/``maxAge``), the BEP 5 peer store
(announce_peer entries) and BEP 44 items. One policy: an entry lives ``max_age`` seconds after
its latest :meth:`ExpiringCache.put`; when more than ``max_size`` entries are stored the least
recently put one is evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from peerdht.errors import LocalProtocolError

__all__ = ["ExpiringCache"]

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """Entries expire ``max_age`` seconds after they were (last) put; at most ``max_size`` kept.

    ``now`` must not go backwards between calls (a monotonic clock); entries are kept in put
    order, so eviction and pruning are O(1) per entry.

    Args:
        max_size: maximum number of entries (>= 1).
        max_age: entry lifetime in seconds (> 0).
    """

    __slots__ = ("_data", "max_age", "max_size")

    def __init__(self, *, max_size: int, max_age: float) -> None:
        if max_size < 1 or max_age <= 0:
            raise LocalProtocolError(f"need max_size >= 1 and max_age > 0 (got {max_size}, {max_age})")
        self.max_size = max_size
        self.max_age = max_age
        # key -> (value, stored_at seconds), oldest put first
        self._data: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def _expired(self, stored: float, now: float) -> bool:
        return now - stored >= self.max_age

    def get(self, key: K, now: float) -> V | None:
        """The value stored under ``key``, or ``None`` if absent or expired (then it is dropped)."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if self._expired(entry[1], now):
            del self._data[key]
            return None
        return entry[0]

    def stored_at(self, key: K) -> float | None:
        """When (seconds) ``key`` was last put, or ``None`` (expiry not checked)."""
        entry = self._data.get(key)
        return None if entry is None else entry[1]

    def put(self, key: K, value: V, now: float) -> None:
        """Store (or overwrite and renew) ``key``; evicts the least recently put entries when over
        ``max_size`` (expired ones go first, being the oldest)."""
        data = self._data
        if key in data:
            data.move_to_end(key)
        data[key] = (value, now)
        while len(data) > self.max_size:
            data.popitem(last=False)

    def delete(self, key: K) -> None:
        """Remove ``key`` if present."""
        self._data.pop(key, None)

    def prune(self, now: float) -> int:
        """Drop expired entries; returns how many were dropped."""
        data = self._data
        n = 0
        while data:
            key, (_, stored) = next(iter(data.items()))
            if not self._expired(stored, now):
                break
            del data[key]
            n += 1
        return n

    def items(self, now: float) -> list[tuple[K, V]]:
        """Live ``(key, value)`` pairs, least recently put first (prunes expired ones first)."""
        self.prune(now)
        return [(k, v) for k, (v, _) in self._data.items()]

    def __len__(self) -> int:
        """Entries held, including expired ones not yet pruned."""
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
