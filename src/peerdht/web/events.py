"""Events of the web overlay core (:class:`peerdht.web.overlay.WebOverlay`) for the asyncio layer.

Handles are the opaque ``(str, int)`` link handles the overlay gives out (``("web:7", 0)``); the asyncio
layer keeps one WebSocket, data channel or pending aiortc peer connection per handle. Signals are the plain
``{"type": "offer"|"answer", "sdp": str}`` dicts of :mod:`peerdht.aio.webrtc`.

The Mainline core's own events (:mod:`peerdht.mainline.events`: op results) come out of the same
:meth:`~peerdht.web.overlay.WebOverlay.next_event`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnswerOffer", "ConnectAnswer", "DiscardOffer", "LinkDropped", "OffersWanted"]

Handle = tuple[str, int]


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
