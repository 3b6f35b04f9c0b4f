"""WebTorrent WebSocket tracker messages, client side: build requests, parse replies (sans-IO).

The JSON protocol of npm ``bittorrent-tracker`` 11.2.3 (``lib/client/websocket-tracker.js``; the server half
is :mod:`peerdht.tracker.server`). ``info_hash``, ``peer_id``, ``to_peer_id`` and ``offer_id`` are 20-character
strings whose character codes are the raw bytes (``bytes.decode("latin-1")``); here they are ``bytes`` of
length 20. A P2PT room's info hash is SHA-1 of the UTF-8 identifier (p2pt ``setIdentifier``).

Requests: :func:`announce` (with offers, or ``event="stopped"`` without), :func:`answer`, :func:`scrape`.
Replies: :func:`parse_reply` turns one text message from a tracker into an :class:`AnnounceReply`,
:class:`Offer`, :class:`Answer`, :class:`ScrapeReply` or :class:`Failure`, or raises
:class:`~peerdht.errors.DecodeError`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from peerdht.errors import DecodeError

__all__ = [
    "MAX_TRACKER_MESSAGE",
    "AnnounceReply",
    "Answer",
    "Failure",
    "Offer",
    "ScrapeReply",
    "announce",
    "answer",
    "b2s",
    "info_hash_of",
    "parse_reply",
    "s2b",
    "scrape",
]

#: Largest tracker message accepted, in characters (an offer relay is one SDP of <= 16 KiB plus ids).
MAX_TRACKER_MESSAGE: Final = 256 * 1024


def b2s(data: bytes) -> str:
    """20 raw bytes -> the 20-character JS string the tracker protocol carries (latin-1)."""
    return data.decode("latin-1")


def s2b(text: Any, what: str) -> bytes:
    """A 20-character protocol string -> 20 raw bytes.

    Raises:
        DecodeError: not a string of 20 characters in U+0000-U+00FF.
    """
    if not isinstance(text, str) or len(text) != 20:
        raise DecodeError(f"invalid {what}")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as e:
        raise DecodeError(f"invalid {what}: characters above U+00FF") from e


def info_hash_of(identifier: str) -> bytes:
    """A P2PT room identifier -> its 20-byte info hash (SHA-1 of the UTF-8 identifier, p2pt ``setIdentifier``)."""
    return hashlib.sha1(identifier.encode("utf-8")).digest()


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def announce(
    info_hash: bytes,
    peer_id: bytes,
    offers: list[tuple[bytes, dict[str, str]]] | None = None,
    *,
    numwant: int = 50,
    event: str | None = None,
) -> str:
    """An announce request: ``offers`` is a list of ``(offer_id, {"type": "offer", "sdp": ...})``.

    p2pt announces ``numwant: 50, uploaded: 0, downloaded: 0`` with no ``event`` and 5 offers;
    ``event="stopped"`` leaves the swarm (no offers).
    """
    msg: dict[str, Any] = {"numwant": numwant, "uploaded": 0, "downloaded": 0}
    if event is not None:
        msg["event"] = event
    msg.update(action="announce", info_hash=b2s(info_hash), peer_id=b2s(peer_id))
    if offers is not None and event not in ("stopped", "completed"):
        msg["numwant"] = min(numwant, len(offers))
        msg["offers"] = [{"offer": offer, "offer_id": b2s(offer_id)} for offer_id, offer in offers]
    return _dumps(msg)


def answer(info_hash: bytes, peer_id: bytes, to_peer_id: bytes, offer_id: bytes, sdp_answer: dict[str, str]) -> str:
    """An answer to an offer relayed by the tracker (sent back through it to ``to_peer_id``)."""
    return _dumps({
        "action": "announce",
        "info_hash": b2s(info_hash),
        "peer_id": b2s(peer_id),
        "to_peer_id": b2s(to_peer_id),
        "answer": sdp_answer,
        "offer_id": b2s(offer_id),
    })


def scrape(info_hashes: list[bytes]) -> str:
    """A scrape request for one or more info hashes."""
    return _dumps({"action": "scrape", "info_hash": [b2s(h) for h in info_hashes]})


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnounceReply:
    """The tracker's reply to our announce (p2pt's ``update`` -> ``trackerconnect``).

    Attributes:
        info_hash: 20 bytes.
        complete: seeders in the swarm; incomplete: leechers (every P2PT peer counts as one).
        interval: seconds until the next announce the tracker asks for (``None`` when absent).
        warning: the tracker's ``warning message``, if any.
    """

    info_hash: bytes
    complete: int | None
    incomplete: int | None
    interval: float | None
    warning: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Offer:
    """A peer's WebRTC offer relayed by the tracker: answer it with :func:`answer`.

    Attributes:
        info_hash, peer_id (the offerer), offer_id: 20 bytes each.
        offer: the untrusted signal (check it with :func:`peerdht.aio.web.webrtc.check_signal`).
    """

    info_hash: bytes
    peer_id: bytes
    offer_id: bytes
    offer: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """A peer's answer to one of our offers (matched by ``offer_id``). Fields as in :class:`Offer`."""

    info_hash: bytes
    peer_id: bytes
    offer_id: bytes
    answer: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class ScrapeReply:
    """Scrape counts: ``files`` maps a 20-byte info hash to ``(complete, incomplete, downloaded)``."""

    files: dict[bytes, tuple[int, int, int]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """``failure reason`` from the tracker (p2pt's ``trackerwarning``); ``info_hash`` may be absent."""

    reason: str
    info_hash: bytes | None


TrackerReply = AnnounceReply | Offer | Answer | ScrapeReply | Failure


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return int(max(0, min(value, 2**31)))


def parse_reply(text: str | bytes) -> TrackerReply:
    """Parse one message from a tracker.

    Raises:
        DecodeError: too long, not JSON, not an object, an unknown ``action``, or bad ids.
    """
    if len(text) > MAX_TRACKER_MESSAGE:
        raise DecodeError(f"tracker message of {len(text)} (limit {MAX_TRACKER_MESSAGE})")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise DecodeError("Invalid tracker response") from e
    if not isinstance(data, dict):
        raise DecodeError("Invalid tracker response")
    failure = data.get("failure reason")
    if failure is not None:
        info_hash = None
        if "info_hash" in data:
            info_hash = s2b(data["info_hash"], "info_hash")
        return Failure(reason=str(failure)[:200], info_hash=info_hash)
    action = data.get("action")
    if action == "scrape":
        files = data.get("files")
        if not isinstance(files, dict):
            raise DecodeError("invalid scrape response")
        out = {}
        for key, value in list(files.items())[:100]:
            if isinstance(value, dict):
                out[s2b(key, "info_hash")] = (
                    _count(value.get("complete")) or 0,
                    _count(value.get("incomplete")) or 0,
                    _count(value.get("downloaded")) or 0,
                )
        return ScrapeReply(files=out)
    if action != "announce":
        raise DecodeError(f"invalid action in WS response: {str(action)[:20]!r}")
    info_hash = s2b(data.get("info_hash"), "info_hash")
    if data.get("offer") is not None:
        return Offer(info_hash=info_hash, peer_id=s2b(data.get("peer_id"), "peer_id"),
                     offer_id=s2b(data.get("offer_id"), "offer_id"), offer=data["offer"])
    if data.get("answer") is not None:
        return Answer(info_hash=info_hash, peer_id=s2b(data.get("peer_id"), "peer_id"),
                      offer_id=s2b(data.get("offer_id"), "offer_id"), answer=data["answer"])
    interval = data.get("interval", data.get("min interval"))
    warning = data.get("warning message")
    return AnnounceReply(
        info_hash=info_hash,
        complete=_count(data.get("complete")),
        incomplete=_count(data.get("incomplete")),
        interval=float(_count(interval) or 0) or None,
        warning=None if warning is None else str(warning)[:200],
    )
