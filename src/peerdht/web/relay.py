"""Relayed messages of the web overlay (issue 10; our own wire format, not peer-relay's), sans-IO.

A KRPC message for a node we have no link to travels inside one-way ``relay`` queries (no response is ever
sent to a ``relay``)::

    {t: <2 random bytes>, y: "q", q: "relay",
     a: {id: <sender of this hop>, to: <20-byte destination id>, from: <20-byte origin id>,
         mid: <8 random bytes, the message id>, hops: <hops so far: 0 from the origin>, m: <the KRPC message>}}

Each hop drops duplicates (``mid`` seen), ``hops >= 8``, a hop-0 message whose sender is not ``from``
(forged source), a message from ourselves (loop), and more than 20 messages / 64 KiB per second per link;
then delivers it (``to`` is us) or forwards it with ``hops + 1``: to ``to`` itself when linked, else back
along the link ``to``'s own latest relayed message came in on (reverse path), else to the open link whose node
id is closest to ``to`` by XOR (greedy; never back to the link it came from; only links that relay:
WebSockets and data channels whose signals named ``peerdht``). Delivered messages are handled as if they
came over a ``relay`` link to ``from`` (so the inner message's ``id`` must be ``from``; inner ``relay``
messages are dropped), and our messages to that node go back through relays. A relayed reply therefore
matches only a transaction we sent through a relay to that same node. The browser side mirrors this in
``static/relay.js``.

:class:`RelayRouter` holds the relay state of one overlay (message ids seen, reverse paths) and makes the
relay links (kind ``"relay"`` in :mod:`peerdht.web.links`); :class:`~peerdht.web.overlay.WebOverlay` feeds it
``relay`` queries and hands it the messages for relay links. No clock, no I/O: ``now`` is passed in
(seconds), message and transaction ids come from the injected ``random.Random``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from peerdht.encoding.bencode import Value, encode
from peerdht.web.links import Handle, Link, LinkTable, WebLimits, valid_id

if TYPE_CHECKING:
    import random

__all__ = ["RelayRouter"]


class RelayRouter:
    """Relay state and routing of one web overlay.

    Args:
        node_id: our 20-byte node id.
        links: the overlay's link table (relay links are made in it).
        limits: bounds (:attr:`~peerdht.web.links.WebLimits.relay_hops`, ``relay_rate``, ``relay_bytes``,
            ``relay_idle``, ``relay_seen``, ``max_message``).
        rng: message ids (8 bytes) and ``relay`` transaction ids (2 bytes).
        stats: the overlay's counters (``relay_*``, ``dropped_relay_*``, ``sent``).
        emit: sends one encoded message on an open link (the overlay's outbox).

    Attributes:
        seen: message ids (``mid``) seen -> when (seconds); at most ``relay_seen``, the oldest quarter dropped.
        paths: origin node id -> the handle its latest relayed message came in on (reverse path); same bound.
    """

    def __init__(
        self,
        *,
        node_id: bytes,
        links: LinkTable,
        limits: WebLimits,
        rng: random.Random,
        stats: Counter[str],
        emit: Callable[[bytes, Link], None],
    ) -> None:
        self.id = node_id
        self.links = links
        self.limits = limits
        self.rng = rng
        self.stats = stats
        self.emit = emit
        self.seen: dict[bytes, float] = {}
        self.paths: dict[bytes, Handle] = {}

    def link_to(self, node_id: bytes, now: float) -> Link | None:
        """The relay-only link to ``node_id`` (made if needed and there is no open direct link; a WebRTC link
        still connecting to it does not wait: the node reaches us by relay meanwhile). ``None``: a direct link
        is open, or the table is full."""
        link = self.links.of_id(node_id)
        if link is not None:
            if link.kind == "relay":
                return link
            if link.state == "open":
                return None
        link = self.links.new("relay", "open", now)
        if link is None:
            return None
        link.node_id = node_id
        link.deadline = now + self.limits.relay_idle
        self.links.by_id[node_id] = link.handle
        self.stats["relay_links"] += 1
        return link

    def send(self, data: bytes, link: Link, now: float) -> None:
        """Our message ``data`` (bencoded KRPC) for the relay-only peer of ``link``: wrap it (hops 0, fresh
        ``mid``) and hand it to the next hop. ``now`` 0: do not extend the link's idle deadline."""
        assert link.node_id is not None
        if len(data) > self.limits.max_message - 256:
            self.stats["dropped_relay_oversize"] += 1
            return
        if now:
            link.deadline = now + self.limits.relay_idle
        mid = self.rng.randbytes(8)
        self.remember(mid, now)
        a: dict[bytes, Value] = {b"id": self.id, b"to": link.node_id, b"from": self.id, b"mid": mid, b"hops": 0,
                                 b"m": data}
        self.forward(a, link.node_id, None)
        link.sent += 1
        self.stats["relay_sent"] += 1

    def next_hop(self, to: bytes, exclude: Handle | None) -> Link | None:
        """Greedy XOR: the open, relaying link whose node id is closest to ``to`` (not ``exclude``)."""
        best: Link | None = None
        best_d = 0
        for link in self.links.by_handle.values():
            if link.kind == "relay" or link.state != "open" or link.node_id is None or link.handle == exclude:
                continue
            if link.kind == "webrtc" and not link.peerdht:
                continue  # webtorrent-dht peers do not relay (they answer 'relay' with a 204 error)
            d = int.from_bytes(link.node_id, "big") ^ int.from_bytes(to, "big")
            if best is None or d < best_d:
                best, best_d = link, d
        return best

    def forward(self, a: dict[bytes, Value], to: bytes, exclude: Handle | None) -> None:
        """Send the ``relay`` arguments ``a`` (``a.id`` is set to ours) one hop towards ``to``: the reverse path
        when ``to`` has no open direct link, else (or when there is none) greedy XOR."""
        hop: Link | None = None
        direct = self.links.of_id(to)
        if direct is None or direct.kind == "relay" or direct.state != "open":
            back = self.paths.get(to)  # reverse path: the link `to`'s own relayed messages came in on
            hop = self.links.get(back) if back != exclude else None
            if hop is not None and (hop.state != "open" or hop.kind == "relay"):
                hop = None
        if hop is None:
            hop = self.next_hop(to, exclude)
        if hop is None:
            self.stats["dropped_relay_no_route"] += 1
            return
        a[b"id"] = self.id
        self.emit(encode({b"t": self.rng.randbytes(2), b"y": b"q", b"q": b"relay", b"a": a}), hop)

    def remember(self, mid: bytes, now: float) -> bool:
        """Record a message id; ``False`` if it was seen already."""
        if mid in self.seen:
            return False
        if len(self.seen) >= self.limits.relay_seen:
            for old in list(self.seen)[: len(self.seen) // 4]:
                del self.seen[old]
        self.seen[mid] = now
        return True

    def receive(self, a: dict[bytes, Value], link: Link, now: float) -> tuple[Handle, bytes] | None:
        """A ``relay`` query's arguments ``a`` from ``link``: drop it (counted), forward it, or deliver it.

        Returns:
            ``(relay link handle, inner message)`` when it is for us: handle the inner KRPC message as if it
            came over that link; ``None`` otherwise.
        """
        inner = a.get(b"m")
        size = len(inner) if isinstance(inner, bytes) else 0
        if not link.relay_msgs.allow(1, now) or not link.relay_bytes.allow(size, now):
            self.stats["dropped_relay_rate"] += 1
            return None
        to, origin, mid, hops = valid_id(a.get(b"to")), valid_id(a.get(b"from")), a.get(b"mid"), a.get(b"hops")
        if (to is None or origin is None or not isinstance(mid, bytes) or len(mid) != 8 or not isinstance(hops, int)
                or not isinstance(inner, bytes) or not inner or link.kind == "relay"):
            self.stats["dropped_relay_malformed"] += 1
            return None
        if hops < 0 or hops >= self.limits.relay_hops:
            self.stats["dropped_relay_hops"] += 1
            return None
        if hops == 0 and link.node_id != origin:
            self.stats["dropped_relay_forged"] += 1  # the first hop must come from the origin itself
            return None
        if origin == self.id:
            self.stats["dropped_relay_loop"] += 1
            return None
        if not self.remember(mid, now):
            self.stats["dropped_relay_duplicate"] += 1
            return None
        if len(self.paths) >= self.limits.relay_seen and origin not in self.paths:
            for old in list(self.paths)[: len(self.paths) // 4]:
                del self.paths[old]
        self.paths[origin] = link.handle
        if to == self.id:
            if inner[:1] != b"d" or b"5:relay" in inner[:64]:
                self.stats["dropped_relay_malformed"] += 1
                return None
            peer = self.link_to(origin, now)
            if peer is None:
                self.stats["dropped_relay_no_link"] += 1
                return None
            peer.deadline = now + self.limits.relay_idle
            self.stats["relay_delivered"] += 1
            self.stats[f"relay_hops_{hops + 1}"] += 1
            return peer.handle, inner
        out: dict[bytes, Value] = {b"to": to, b"from": origin, b"mid": mid, b"hops": hops + 1, b"m": inner}
        self.stats["relay_forwarded"] += 1
        self.forward(out, to, link.handle)
        return None
