"""Events of the web overlay core (:class:`peerdht.web.overlay.WebOverlay`) for the asyncio layer.

Handles are the opaque ``(str, int)`` link handles the overlay gives out (``("web:7", 0)``); the asyncio
layer keeps one WebSocket, data channel or pending aiortc peer connection per handle. Signals are the plain
``{"type": "offer"|"answer", "sdp": str}`` dicts of :mod:`peerdht.aio.web.webrtc`.

The Mainline core's own events (:mod:`peerdht.mainline.events`: op results) come out of the same
:meth:`~peerdht.web.overlay.WebOverlay.next_event`. :class:`peerdht.aio.web.links.WebLinks` carries out the
connection events (offers, answers, closes: webtorrent-dht does the same inside ``k-rpc-socket-webrtc.js`` with
simple-peer), :class:`peerdht.aio.web.node.WebNode` the bridge events (:mod:`peerdht.web.bridge`).
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.mainline.events import Item
from peerdht.web.links import Handle

__all__ = [
    "AnswerOffer",
    "BridgeAnnounce",
    "BridgeLookup",
    "BridgeStore",
    "ConnectAnswer",
    "DiscardOffer",
    "LinkDropped",
    "OffersWanted",
]

@dataclass(frozen=True, kw_only=True, slots=True)
class OffersWanted:
    """Create ``count`` WebRTC offers (aiortc, complete SDP) and give each to ``add_offer``: they ride on
    our next ``find_node``/``get_peers``/``get`` queries as webtorrent-dht's ``a.signals``."""

    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DiscardOffer:
    """The offer on ``handle`` will never be answered (unused, expired or refused): close its peer."""

    handle: Handle


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectAnswer:
    """Node ``node_id`` answered our offer on ``handle``: feed ``answer`` to that peer and report
    ``link_opened(handle, ...)`` once its data channel is open (``close_link`` if it fails)."""

    handle: Handle
    node_id: bytes
    answer: dict[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerOffer:
    """A ``peer_connection`` forwarded ``offer`` from node ``node_id``: answer it on a new peer for
    ``handle`` and call ``offer_answered(handle, answer_or_None)``; ``link_opened`` once open."""

    handle: Handle
    node_id: bytes
    offer: dict[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkDropped:
    """The overlay gave up on the link ``handle`` (bad input, wrong id, limits): close it."""

    handle: Handle
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeLookup:
    """A link asked for something we do not hold: look ``target`` up on UDP Mainline (``method`` ``"get"``:
    an immutable item, store it in the shared item store; ``"get_peers"``: give the peers to ``add_peers``),
    then call ``bridge_done(method, target)``; the held query is answered then (or after a few seconds)."""

    method: str
    target: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeStore:
    """A link stored ``item`` (checked: token, size, signature) under ``target``: put it on UDP Mainline too."""

    target: bytes
    item: Item


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeAnnounce:
    """A link announced ``info_hash`` (token checked): announce it on UDP Mainline from this node with ``port``
    (BEP 5 stores the sender's own IP: ours, never an address the browser chose)."""

    info_hash: bytes
    port: int
