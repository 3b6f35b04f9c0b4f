"""The bridge between the web overlay and UDP Mainline (issue 10), sans-IO: what a link may make us do on UDP.

A :class:`~peerdht.aio.web.node.WebNode` with ``bridge=True`` sits in both worlds and shares one BEP 44 item
store between them. Here is the overlay's half:

* a link's ``get``/``get_peers`` that we cannot answer from our stores is *held* and a
  :class:`~peerdht.web.events.BridgeLookup` goes out; the asyncio layer looks the target up on UDP Mainline,
  puts what it found into the shared stores (:meth:`Bridge.add_peers` for peers) and calls
  :meth:`~peerdht.web.overlay.WebOverlay.bridge_done`; the held queries are then answered by the Mainline core
  as usual (or after :attr:`~peerdht.web.links.WebLimits.bridge_hold` seconds, unbridged);
* a link's ``put``/``announce_peer`` that the overlay's core accepted (token, signature, ``seq``: BEP 44, BEP
  5) is stored on UDP Mainline too: :class:`~peerdht.web.events.BridgeStore`,
  :class:`~peerdht.web.events.BridgeAnnounce` (announced from the web node's own address, never one the link
  named; ``implied_port`` announces are not bridged).

Bounds: bridged lookups and writes per second per link (token buckets of :mod:`peerdht.web.links`),
lookups in progress (all links), and queries held per target (64). webtorrent-dht has no bridge.
"""

from __future__ import annotations

from collections import Counter, deque

from peerdht.encoding.bencode import Value, encode
from peerdht.errors import DecodeError
from peerdht.kademlia.store import ExpiringCache
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import immutable_target, mutable_target
from peerdht.mainline.events import Item
from peerdht.mainline.node import MainlineNode
from peerdht.web.events import BridgeAnnounce, BridgeLookup, BridgeStore
from peerdht.web.links import Handle, Link, WebLimits, valid_id

__all__ = ["Bridge", "answers_locally"]

MAX_HELD_PER_TARGET = 64
"""Queries held for one bridged lookup; more for the same target are answered unbridged."""


def answers_locally(node: MainlineNode, q: bytes, target: bytes, now: float) -> bool:
    """Whether ``node`` holds an answer with values for query ``q`` (``b"get"``: an item under the 20-byte
    ``target``; ``b"get_peers"``: announced peers for it). Such queries are answered without signals and
    without the bridge (as webtorrent-dht answers a hit)."""
    if q == b"get":
        return node.items.get(target, now) is not None
    if q == b"get_peers":
        store = node.peers.get(target, now)
        return store is not None and bool(store.items(now))
    return False


class Bridge:
    """The overlay's bridge state: queries held for bridged lookups, and the checks on bridged writes.

    Args:
        node: the overlay's Mainline core (its stores, write tokens).
        limits: bounds (``bridge_pending``, ``bridge_hold``).
        stats: the overlay's counters (``bridge_*``, ``dropped_bridge_rate``).
        events: the overlay's event queue (:class:`~peerdht.web.events.BridgeLookup`, ``BridgeStore``,
            ``BridgeAnnounce`` are appended).

    Attributes:
        held: ``(method, target)`` -> the held queries ``(message bytes, link handle, deadline in seconds)``.
    """

    def __init__(self, *, node: MainlineNode, limits: WebLimits, stats: Counter[str], events: deque[object]) -> None:
        self.node = node
        self.limits = limits
        self.stats = stats
        self.events = events
        self.held: dict[tuple[bytes, bytes], list[tuple[bytes, Handle, float]]] = {}

    def read(self, q: bytes, a: dict[bytes, Value], data: bytes, link: Link, now: float) -> bool:
        """A link's ``get``/``get_peers`` (``q``, arguments ``a``, raw ``data``): ``True`` when it is held for a
        bridged lookup (started now or already running), ``False`` when the core should answer it now."""
        target = valid_id(a.get(b"info_hash" if q == b"get_peers" else b"target"))
        if target is None or answers_locally(self.node, q, target, now):
            return False
        key = (q, target)
        if key not in self.held:
            if len(self.held) >= self.limits.bridge_pending:
                self.stats["bridge_busy"] += 1
                return False
            if not link.bridge_reads.allow(1, now):
                self.stats["dropped_bridge_rate"] += 1
                return False
            self.held[key] = []
            self.events.append(BridgeLookup(method=q.decode(), target=target))
            self.stats["bridge_lookups"] += 1
        if len(self.held[key]) >= MAX_HELD_PER_TARGET:  # the same target asked again and again: answer unbridged
            self.stats["dropped_bridge_rate"] += 1
            return False
        self.held[key].append((data, link.handle, now + self.limits.bridge_hold))
        return True

    def take(self, method: str, target: bytes) -> list[tuple[bytes, Handle, float]]:
        """Remove and return the queries held for the lookup ``(method, target)``."""
        return self.held.pop((method.encode(), target), [])

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """Lookups ``(method, target)`` whose first held query has waited its :attr:`WebLimits.bridge_hold`."""
        return [(key[0].decode(), key[1]) for key, held in self.held.items() if held and min(h[2] for h in held) <= now]

    def deadlines(self) -> list[float]:
        """When held queries time out (seconds)."""
        return [h[2] for held in self.held.values() for h in held]

    def write_before(self, msg: object, link: Link, now: float) -> m.AnnouncePeer | m.Put | None:
        """Before the core sees a link's decoded message ``msg``: the ``put``/``announce_peer`` to bridge if
        the core accepts it (token checked for announces; within the link's write rate), else ``None``."""
        if not isinstance(msg, dict) or msg.get(b"y") != b"q" or msg.get(b"q") not in (b"put", b"announce_peer"):
            return None
        try:
            parsed = m.decode_message(encode(msg))
        except DecodeError:
            return None
        if not isinstance(parsed, m.QueryMessage):
            return None
        q = parsed.query
        if isinstance(q, m.AnnouncePeer):
            if q.implied_port or not self.node.tokens.check(link.handle[0].encode(), q.token):
                return None
        elif not isinstance(q, m.Put):
            return None
        if not link.bridge_writes.allow(1, now):
            self.stats["dropped_bridge_rate"] += 1
            return None
        return q

    def write_after(self, q: m.AnnouncePeer | m.Put, now: float) -> None:
        """After the core handled the query ``q`` of :meth:`write_before`: emit ``BridgeAnnounce``, or
        ``BridgeStore`` if the core stored exactly that item (not refused: token, signature, ``seq``)."""
        if isinstance(q, m.AnnouncePeer):
            self.events.append(BridgeAnnounce(info_hash=q.info_hash, port=q.port))
            self.stats["bridge_announces"] += 1
            return
        target = immutable_target(encode(q.v)) if q.k is None else mutable_target(q.k, q.salt)
        item = self.node.items.get(target, now)
        if item is None or item.v != q.v or (q.k is not None and (item.sig != q.sig or item.seq != q.seq)):
            return  # refused by the core (token, signature, seq): nothing to bridge
        self.events.append(BridgeStore(target=target, item=Item(v=q.v, k=q.k, seq=q.seq, sig=q.sig, salt=q.salt)))
        self.stats["bridge_puts"] += 1

    def add_peers(self, info_hash: bytes, peers: list[tuple[str, int]], now: float) -> None:
        """Peers ``(host, port)`` found on UDP Mainline for the 20-byte ``info_hash``: stored (at most 200 at a
        time, 500 per info hash, 30 minutes) and served to links' ``get_peers``."""
        store = self.node.peers.get(info_hash, now)
        if store is None:
            store = ExpiringCache(max_size=500, max_age=30 * 60.0)
        for peer in peers[:200]:
            store.put(peer, None, now)
        self.node.peers.put(info_hash, store, now)
