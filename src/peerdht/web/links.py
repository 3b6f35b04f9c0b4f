"""The web overlay's link table: one entry per WebSocket, data channel, pending WebRTC peer or relay path.

Sans-IO (no clock: ``now`` in seconds). A link's handle is the opaque, hashable ``("web:N", 0)`` that the
Mainline core uses as an "address" and the asyncio layer (:mod:`peerdht.aio.web.links`) maps to its WebSocket
or aiortc peer; handles are never reused and never reach a UDP reply. The table holds the bounds on links
(:class:`WebLimits`: all links, links per IP, WebRTC peer connections) and each link's token buckets
(:class:`~peerdht.kademlia.ratelimit.TokenBucket`): bytes in, ``peer_connection`` queries, relayed messages
and bytes, bridged reads and writes. It maps node ids to the one link that speaks for each id.

Link kinds (:attr:`Link.kind`): ``"websocket"`` (``GET /ws``), ``"webrtc"`` (a data channel, webtorrent-dht's
``webrtc-socket.js`` framing) and ``"relay"`` (no connection: messages travel inside ``relay`` queries,
:mod:`peerdht.web.relay`). States (:attr:`Link.state`): ``"offer"`` (a pooled offer of ours), ``"answering"``
(aiortc answers a forwarded offer), ``"connecting"`` (ICE/DTLS under way) and ``"open"``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from peerdht.kademlia.ratelimit import TokenBucket

__all__ = ["Handle", "Link", "LinkTable", "WebLimits", "valid_id"]

Handle = tuple[str, int]
"""A link handle: ``("web:N", 0)``, opaque and hashable (the Mainline core's "address" of a link)."""


def valid_id(value: object) -> bytes | None:
    """``value`` if it is a 20-byte node id (``bytes``), else ``None``."""
    return value if isinstance(value, bytes) and len(value) == 20 else None


@dataclass(frozen=True, kw_only=True, slots=True)
class WebLimits:
    """Bounds on what links may make the overlay do (all counts per node unless said otherwise)."""

    max_message: int = 64 * 1024
    """Largest KRPC message on a link (bytes)."""
    bytes_per_second: float = 256 * 1024.0
    """Sustained bytes per second accepted per link."""
    burst_bytes: float = 1024 * 1024.0
    """Token-bucket depth for :attr:`bytes_per_second` (bytes)."""
    max_links: int = 256
    """WebSocket and data-channel links together."""
    max_links_per_ip: int = 16
    """Open links from one IP address (a page opening hundreds of sockets)."""
    max_webrtc: int = 32
    """WebRTC peer connections: pooled offers, connecting and open links."""
    max_signals: int = 8
    """``a.signals`` entries in one query (more: the query is dropped)."""
    max_sdp: int = 16 * 1024
    """Largest SDP accepted (bytes)."""
    offers_per_query: int = 2
    """Offers we attach to each of our signalled queries (webtorrent-dht: ``max(2, floor(log2 K))``)."""
    offer_pool: int = 4
    """Offers kept ready."""
    offer_ttl: float = 60.0
    """Seconds an unused offer is kept."""
    connect_timeout: float = 20.0
    """Seconds a WebRTC link may take from answer to open data channel."""
    peer_connection_rate: tuple[float, float] = (2.0, 8.0)
    """``peer_connection`` queries per second per link, burst."""
    max_answering: int = 8
    """Offers being answered at once (aiortc work in progress)."""
    forward_timeout: float = 5.0
    """Seconds we wait for third nodes' answers before replying to a signalled query."""
    max_forwards: int = 32
    """Signalled queries being answered at once (all links)."""
    max_forwards_per_link: int = 4
    """... from one link."""
    max_queued: int = 16
    """Messages held for a link whose data channel is not open yet."""
    relay_rate: tuple[float, float] = (20.0, 40.0)
    """Relayed messages per second per link, burst."""
    relay_bytes: tuple[float, float] = (64 * 1024.0, 128 * 1024.0)
    """Relayed bytes per second per link, burst."""
    relay_hops: int = 8
    """Most hops a relayed message travels."""
    relay_idle: float = 120.0
    """Seconds a relay-only peer is kept without traffic."""
    relay_seen: int = 4096
    """Message ids remembered for duplicate suppression."""
    bridge_reads: tuple[float, float] = (2.0, 10.0)
    """Bridged UDP lookups per second per link, burst."""
    bridge_writes: tuple[float, float] = (0.5, 5.0)
    """Bridged UDP puts/announces per second per link, burst."""
    bridge_pending: int = 32
    """Bridged lookups in progress (all links)."""
    bridge_hold: float = 5.0
    """Seconds a query waits for its bridged UDP lookup before it is answered anyway."""
    settle: float = 0.5
    """Seconds we hold our messages on a new data channel until the peer speaks first: webtorrent-dht loses
    messages that arrive before simple-peer's ``connect`` event (``webrtc-socket.js`` waits for a
    ``connected`` event that never fires), which comes up to ~100 ms after the channel opens."""



@dataclass(slots=True)
class Link:
    """One link of the overlay (mutable bookkeeping of the cores; not an event)."""

    handle: Handle
    kind: str
    """``"websocket"``, ``"webrtc"`` or ``"relay"``."""
    state: str
    """``"offer"`` (pooled), ``"answering"``, ``"connecting"`` or ``"open"``."""
    created: float
    """When the link was made (seconds)."""
    bytes_in: TokenBucket
    peer_connections: TokenBucket
    bridge_reads: TokenBucket
    bridge_writes: TokenBucket
    relay_msgs: TokenBucket
    relay_bytes: TokenBucket
    ip: str | None = None
    """The remote IP address (WebSocket peer, ICE candidate), if known."""
    node_id: bytes | None = None
    """The 20-byte node id the link speaks for, once claimed (or known from signalling)."""
    offer: dict[str, str] | None = None
    """Our pooled offer ``{"type": "offer", "sdp"}`` (state ``"offer"``)."""
    deadline: float | None = None
    """When the link expires unless it opens (or, for relay links, sees traffic) (seconds)."""
    queue: list[bytes] = field(default_factory=list)
    """Messages held until the link opens or its settle hold ends."""
    hold: float | None = None
    """End of the settle hold on a new data channel (seconds), see :attr:`WebLimits.settle`."""
    peerdht: bool = False
    """The peer's signals named ``extensions: ["peerdht"]`` (it relays; no settle hold)."""
    forwards: int = 0
    """Signalled queries of this link being answered."""
    received: int = 0
    sent: int = 0


class LinkTable:
    """The links of one overlay, by handle and by node id, within :class:`WebLimits`.

    Args:
        limits: the bounds (:class:`WebLimits`).
        stats: the overlay's counters (refusals are counted there: ``dropped_link_cap``,
            ``dropped_webrtc_cap``).

    Attributes:
        by_handle: every link (any kind and state) by handle.
        by_id: node id -> the handle of the link that speaks for it.
    """

    __slots__ = ("_next", "by_handle", "by_id", "limits", "stats")

    def __init__(self, limits: WebLimits, stats: Counter[str]) -> None:
        self.limits = limits
        self.stats = stats
        self.by_handle: dict[Handle, Link] = {}
        self.by_id: dict[bytes, Handle] = {}
        self._next = 1

    def new(self, kind: str, state: str, now: float) -> Link | None:
        """A new link (fresh handle, full token buckets), or ``None`` over :attr:`WebLimits.max_links` or, for
        ``kind="webrtc"``, :attr:`WebLimits.max_webrtc` (counted)."""
        lim = self.limits
        if len(self.by_handle) >= lim.max_links:
            self.stats["dropped_link_cap"] += 1
            return None
        if kind == "webrtc" and self.count_webrtc() >= lim.max_webrtc:
            self.stats["dropped_webrtc_cap"] += 1
            return None
        handle = (f"web:{self._next}", 0)
        self._next += 1
        link = Link(
            handle=handle,
            kind=kind,
            state=state,
            created=now,
            bytes_in=TokenBucket(lim.bytes_per_second, lim.burst_bytes),
            peer_connections=TokenBucket(*lim.peer_connection_rate),
            relay_msgs=TokenBucket(*lim.relay_rate),
            bridge_reads=TokenBucket(*lim.bridge_reads),
            bridge_writes=TokenBucket(*lim.bridge_writes),
            relay_bytes=TokenBucket(*lim.relay_bytes),
        )
        self.by_handle[handle] = link
        return link

    def get(self, handle: Handle | None) -> Link | None:
        """The link of ``handle`` (``None``: unknown or gone)."""
        return self.by_handle.get(handle) if handle is not None else None

    def of_id(self, node_id: bytes) -> Link | None:
        """The link that speaks for ``node_id`` (any kind and state), if any."""
        return self.get(self.by_id.get(node_id))

    def count_ip(self, ip: str) -> int:
        """Links (any kind and state) from ``ip``."""
        return sum(1 for link in self.by_handle.values() if link.ip == ip)

    def count_webrtc(self) -> int:
        """WebRTC links in any state (pooled offers, answering, connecting, open)."""
        return sum(1 for link in self.by_handle.values() if link.kind == "webrtc")

    def compact(self, handle: Handle) -> bytes:
        """A 6-byte compact address for ``handle`` in a reply's ``nodes``: the link's IPv4 address (else
        ``0.0.0.0``) and port 1 (webtorrent-dht reaches nodes by id, never by this address)."""
        link = self.by_handle.get(handle)
        ip = link.ip if link is not None and link.ip else "0.0.0.0"
        try:
            packed = ipaddress.IPv4Address(ip).packed
        except ValueError:
            packed = b"\x00\x00\x00\x00"
        return packed + b"\x00\x01"

    def peer_host(self, handle: Handle) -> str | None:
        """The IP address of ``handle``'s link if it is a valid IPv4/IPv6 address (``announce_peer`` stores it
        as the announcer's address), else ``None``."""
        link = self.by_handle.get(handle)
        if link is None or link.ip is None:
            return None
        try:
            ipaddress.ip_address(link.ip)
        except ValueError:
            return None
        return link.ip

    def rows(self) -> list[dict[str, object]]:
        """Open links: ``{"handle", "transport", "id" (hex or None), "ip", "received", "sent"}``."""
        return [
            {
                "handle": f"{h[0]}",
                "transport": link.kind,
                "id": link.node_id.hex() if link.node_id else None,
                "ip": link.ip,
                "received": link.received,
                "sent": link.sent,
            }
            for h, link in self.by_handle.items()
            if link.state == "open"
        ]
