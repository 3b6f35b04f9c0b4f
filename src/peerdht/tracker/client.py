"""One WebTorrent WebSocket tracker, client side, for one room (sans-IO): when to announce, which offers
are ours, when they expire, when to reconnect.

The decisions of npm ``bittorrent-tracker``'s ``lib/client/websocket-tracker.js`` as p2pt uses it: announce
at once when the socket opens and then every ``interval`` seconds the tracker asks for (120 s from
bittorrent-tracker's server), each announce with up to 5 fresh WebRTC offers; an offer not answered within
:data:`OFFER_TIMEOUT` (50 s) is dropped; a relayed offer from another peer is handed up to be answered; an
answer is matched to our offer by ``offer_id`` (an unknown one is dropped and counted); replies for another
info hash (a shared socket) and our own messages are ignored; a failed or closed socket is retried after
``reconnect_min * 2**n`` seconds (capped at ``reconnect_max``, plus up to 25 % jitter).

The I/O layer (:mod:`peerdht.aio.rooms.room`) owns the socket and the WebRTC peers. Inputs: :meth:`start`,
:meth:`connected`, :meth:`connect_failed`, :meth:`disconnected`, :meth:`receive`, :meth:`offers_ready`,
:meth:`send_answer`, :meth:`announce_now`, :meth:`handle_timer`, :meth:`stop`; outputs:
:meth:`messages_to_send`, :meth:`next_event`, :meth:`get_timer`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from peerdht.errors import DecodeError
from peerdht.tracker import messages as tm

if TYPE_CHECKING:
    import random

__all__ = [
    "OFFER_TIMEOUT",
    "Announced",
    "AnswerReceived",
    "ConnectNow",
    "NeedOffers",
    "OfferExpired",
    "OfferReceived",
    "TrackerClient",
    "TrackerProblem",
]

#: Seconds an offer of ours waits for its answer (websocket-tracker.js ``OFFER_TIMEOUT``).
OFFER_TIMEOUT: Final = 50.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectNow:
    """Open the WebSocket now (then call :meth:`TrackerClient.connected` or ``connect_failed``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NeedOffers:
    """Make up to ``count`` WebRTC offers and hand them to :meth:`TrackerClient.offers_ready` (fewer is fine)."""

    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OfferExpired:
    """Our offer ``offer_id`` (20 bytes) was not answered in time, or its socket closed: close its peer."""

    offer_id: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class OfferReceived:
    """Peer ``peer_id`` offers a connection (untrusted ``offer``); answer with :meth:`TrackerClient.send_answer`."""

    peer_id: bytes
    offer_id: bytes
    offer: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerReceived:
    """Peer ``peer_id`` answered our offer ``offer_id`` (untrusted ``answer``)."""

    peer_id: bytes
    offer_id: bytes
    answer: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Announced:
    """The tracker answered an announce (p2pt ``update``): swarm counts, ``None`` when absent."""

    complete: int | None
    incomplete: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackerProblem:
    """A ``failure reason``, ``warning message``, unreadable reply or lost socket (p2pt ``trackerwarning``)."""

    reason: str


ClientEvent = ConnectNow | NeedOffers | OfferExpired | OfferReceived | AnswerReceived | Announced | TrackerProblem


class TrackerClient:
    """The state machine of one tracker URL for one room.

    Args:
        info_hash, peer_id: 20 bytes each.
        offers: offers per announce (bittorrent-tracker's client: at most 5).
        interval: seconds between announces; ``None`` follows the tracker's ``interval`` (default 120).
        reconnect_min, reconnect_max: reconnect back-off bounds, seconds.
        rng: randomness for offer ids and jitter (injected; seeded in tests).
    """

    def __init__(
        self,
        info_hash: bytes,
        peer_id: bytes,
        *,
        offers: int = 5,
        interval: float | None = None,
        reconnect_min: float = 2.0,
        reconnect_max: float = 300.0,
        rng: random.Random,
    ) -> None:
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.offers = offers
        self.fixed_interval = interval
        self.interval = 120.0
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._rng = rng
        self.connected_now = False
        self._stopped = False
        self._retries = 0
        self._reconnect_at: float | None = None
        self._announce_at: float | None = None
        self._waiting_offers = False
        self._pending: dict[bytes, float] = {}  # our offer id -> deadline
        self._out: list[str] = []
        self._events: deque[ClientEvent] = deque()
        self.dropped: dict[str, int] = {"bad_reply": 0, "unknown_answer": 0, "foreign": 0}

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        """Begin: ask for a connection."""
        self._events.append(ConnectNow())

    def connected(self, now: float) -> None:
        """The socket is open: announce (offers first)."""
        self.connected_now = True
        self._retries = 0
        self._reconnect_at = None
        self._ask_offers()

    def connect_failed(self, reason: str, now: float) -> None:
        """The socket could not be opened: a warning, and a retry later."""
        self._events.append(TrackerProblem(reason=reason))
        self._schedule_reconnect(now)

    def disconnected(self, now: float) -> None:
        """The socket closed: our offers can no longer be answered; retry later."""
        if not self.connected_now:
            return
        self.connected_now = False
        self._announce_at = None
        self._waiting_offers = False
        self._out.clear()  # nothing queued for the old socket goes to the next one
        self._expire_offers(None)
        if not self._stopped:
            self._events.append(TrackerProblem(reason="connection closed"))
            self._schedule_reconnect(now)

    def receive(self, text: str | bytes, now: float) -> None:
        """One message from the tracker (untrusted)."""
        try:
            reply = tm.parse_reply(text)
        except DecodeError as e:
            self.dropped["bad_reply"] += 1
            self._events.append(TrackerProblem(reason=str(e)))
            return
        if isinstance(reply, tm.Failure):
            if reply.info_hash in (None, self.info_hash):
                self._events.append(TrackerProblem(reason=reply.reason))
            return
        if isinstance(reply, tm.ScrapeReply):
            return
        if reply.info_hash != self.info_hash:
            self.dropped["foreign"] += 1  # another room on a shared socket
            return
        if isinstance(reply, tm.AnnounceReply):
            if reply.warning:
                self._events.append(TrackerProblem(reason=reply.warning))
            if reply.interval:
                self.interval = max(10.0, min(reply.interval, 3600.0))
            self._events.append(Announced(complete=reply.complete, incomplete=reply.incomplete))
        elif isinstance(reply, tm.Offer):
            if reply.peer_id != self.peer_id:
                self._events.append(OfferReceived(peer_id=reply.peer_id, offer_id=reply.offer_id, offer=reply.offer))
        elif isinstance(reply, tm.Answer):
            if reply.peer_id == self.peer_id or self._pending.pop(reply.offer_id, None) is None:
                self.dropped["unknown_answer"] += 1
                return
            self._events.append(AnswerReceived(peer_id=reply.peer_id, offer_id=reply.offer_id, answer=reply.answer))

    def offers_ready(self, offers: list[dict[str, str]], now: float) -> list[bytes]:
        """Our offers for the announce asked for by :class:`NeedOffers`; returns their ids, in order.

        The announce is sent (with these offers, possibly none) if the socket is still open; otherwise the
        ids are expired at once (:class:`OfferExpired`).
        """
        self._waiting_offers = False
        ids = [self._rng.randbytes(20) for _ in offers]
        if not self.connected_now or self._stopped:
            self._events.extend(OfferExpired(offer_id=i) for i in ids)
            return ids
        for offer_id in ids:
            self._pending[offer_id] = now + OFFER_TIMEOUT
        self._out.append(tm.announce(self.info_hash, self.peer_id, list(zip(ids, offers, strict=True)), numwant=50))
        self._announce_at = now + (self.fixed_interval or self.interval)
        return ids

    def send_answer(self, to_peer_id: bytes, offer_id: bytes, answer: dict[str, str]) -> None:
        """Send our answer to a peer's offer through the tracker."""
        if self.connected_now:
            self._out.append(tm.answer(self.info_hash, self.peer_id, to_peer_id, offer_id, answer))

    def announce_now(self, now: float) -> None:
        """Announce again now with fresh offers (p2pt ``requestMorePeers``)."""
        if self.connected_now:
            self._ask_offers()

    def stop(self) -> list[str]:
        """Leave: returns the ``stopped`` announce to send before closing (empty when not connected)."""
        self._stopped = True
        self._expire_offers(None)
        if not self.connected_now:
            return []
        return [tm.announce(self.info_hash, self.peer_id, event="stopped", numwant=0)]

    def handle_timer(self, now: float) -> None:
        """Expire unanswered offers, announce on schedule, reconnect after the back-off."""
        self._expire_offers(now)
        if self._stopped:
            return
        if self._reconnect_at is not None and now >= self._reconnect_at:
            self._reconnect_at = None
            self._events.append(ConnectNow())
        if self.connected_now and self._announce_at is not None and now >= self._announce_at:
            self._ask_offers()

    # ------------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[str]:
        """Text messages for the tracker socket, in order; the list is emptied."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> ClientEvent | None:
        """The next event, or ``None``."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` has something to do (same clock as ``now``), or ``None``."""
        times = [t for t in (self._reconnect_at, self._announce_at) if t is not None]
        if self._pending:
            times.append(min(self._pending.values()))
        return min(times) if times else None

    @property
    def pending_offers(self) -> int:
        """Our offers waiting for an answer."""
        return len(self._pending)

    # ------------------------------------------------------------------ helpers

    def _ask_offers(self) -> None:
        if self._waiting_offers:
            return
        self._waiting_offers = True
        self._announce_at = None
        self._events.append(NeedOffers(count=max(0, min(self.offers, 2 * self.offers - len(self._pending)))))

    def _expire_offers(self, now: float | None) -> None:
        for offer_id, deadline in list(self._pending.items()):
            if now is None or deadline <= now:
                del self._pending[offer_id]
                self._events.append(OfferExpired(offer_id=offer_id))

    def _schedule_reconnect(self, now: float) -> None:
        if self._stopped:
            return
        delay = min(self.reconnect_max, self.reconnect_min * 2**self._retries)
        self._retries += 1
        self._reconnect_at = now + delay * (1 + self._rng.random() / 4)
