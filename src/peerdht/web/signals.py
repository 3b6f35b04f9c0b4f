"""webtorrent-dht's WebRTC signalling inside KRPC: the checks on signals and the state of signalled queries.

Wire format (webtorrent-dht 0.18.6, ``k-rpc-socket-webrtc.js`` and ``k-rpc-webrtc.js``): ``find_node``,
``get_peers`` and ``get`` may carry ``a.signals``, a list of offers ``{type: "offer", sdp, id: <querier id>,
extensions: []}``; the responder forwards ``signals[i]`` to the i-th node it returns with ``peer_connection
{id, signal: <offer>}`` and puts that node's answer ``{type: "answer", sdp, id, extensions}`` (or the id-only
``{id}``) at ``r.signals[i]``. The logic that drives this is :class:`~peerdht.web.overlay.WebOverlay`'s; this
module has its pure parts: validating untrusted signals (:func:`check_sdp`, :func:`extensions`) and the
bookkeeping records of the three kinds of signalling in flight (:class:`Forward`, :class:`Sent`,
:class:`Answering`). No I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peerdht.encoding.bencode import Value
from peerdht.web.links import Handle

__all__ = ["EXTENSION", "LOOKUP_QUERIES", "Answering", "Forward", "Sent", "check_sdp", "extensions"]

LOOKUP_QUERIES = (b"find_node", b"get_peers", b"get")
"""The queries that may carry ``a.signals``."""

EXTENSION = b"peerdht"
"""Named in our signals' ``extensions``: a peer that names it too needs no settle hold (it is no webtorrent-dht)
and relays (:mod:`peerdht.web.relay`)."""


def check_sdp(signal: object, kind: bytes, max_sdp: int) -> dict[str, str] | None:
    """An untrusted bencoded signal as the ``{"type", "sdp"}`` dict of :mod:`peerdht.aio.web.webrtc`, or ``None``.

    Args:
        signal: a decoded bencode value (expected: a dict with ``type`` and ``sdp`` byte strings).
        kind: the wanted ``type``: ``b"offer"`` or ``b"answer"``.
        max_sdp: the largest SDP accepted (bytes).

    Returns:
        ``None`` unless ``type`` is ``kind`` and ``sdp`` is UTF-8 of at most ``max_sdp`` bytes starting ``v=0``.
    """
    if not isinstance(signal, dict):
        return None
    typ, sdp = signal.get(b"type"), signal.get(b"sdp")
    if typ != kind or not isinstance(sdp, bytes) or len(sdp) > max_sdp or not sdp.startswith(b"v=0"):
        return None
    try:
        return {"type": kind.decode(), "sdp": sdp.decode("utf-8")}
    except UnicodeDecodeError:
        return None


def extensions(signal: dict[bytes, Value]) -> list[Value]:
    """The signal's ``extensions``: at most 8 byte strings of at most 64 bytes each (others are dropped)."""
    ext = signal.get(b"extensions")
    if isinstance(ext, list):
        return [e for e in ext[:8] if isinstance(e, bytes) and len(e) <= 64]
    return []


@dataclass(slots=True)
class Forward:
    """A signalled query we answer once the third nodes answered our ``peer_connection``s."""

    t: bytes
    """The querier's transaction id."""
    querier: Handle
    querier_id: bytes
    method: bytes
    """``b"find_node"``, ``b"get_peers"`` or ``b"get"``."""
    target: bytes
    deadline: float
    """When we answer with what we have (seconds)."""
    entries: list[tuple[bytes, Handle]] = field(default_factory=list)
    """The nodes returned: ``(node id, its link)``; ``signals[i]`` goes to entry ``i``."""
    answers: list[dict[bytes, Value] | None] = field(default_factory=list)
    """Their answers, lined up with :attr:`entries` (``None``: none)."""
    waiting: int = 0
    """``peer_connection`` replies still due."""
    done: bool = False


@dataclass(slots=True)
class Sent:
    """Our offers that rode on one of our signalled queries (discarded unless answered by ``deadline``)."""

    offers: list[Handle]
    deadline: float


@dataclass(slots=True)
class Answering:
    """A ``peer_connection`` (transaction ``t`` from link ``asker``) whose offer aiortc is answering."""

    t: bytes
    asker: Handle
    deadline: float
