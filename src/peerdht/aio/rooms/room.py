"""P2PT rooms: peers that share an identifier meet through WebTorrent trackers and talk over WebRTC.

The Python peer of p2pt 1.6.2 (``src/p2pt.js``), wire-compatible with it: the room identifier's SHA-1 is
the info hash announced on every tracker (npm ``bittorrent-tracker`` ``lib/client/websocket-tracker.js``
protocol, :mod:`peerdht.tracker.messages`), each announce carries fresh WebRTC offers (complete SDPs,
:mod:`peerdht.aio.web.webrtc`), offers relayed to us are answered, and every data channel carries P2PT frames
(``^`` + JSON chunks, :mod:`peerdht.tracker.framing`).

Example::

    async with Room("my-app", trackers=["ws://127.0.0.1:8000"]) as room:
        async for event in room:
            if isinstance(event, PeerConnect):
                reply = await room.send(event.peer, {"hello": "there"}, timeout=30)
            elif isinstance(event, Message):
                await event.respond("echo: " + str(event.msg))

Semantics follow p2pt: one logical :class:`RoomPeer` per remote peer id however many trackers (and data
channels) lead to it; ``PeerConnect`` on its first open channel, ``PeerClose`` when its last one closes;
:meth:`Room.send` resolves with the peer's response (a message carrying the same P2PT id), and a response
is itself a :class:`Message` whose :meth:`Message.request` continues the chain (JS
``peer.respond(msg).then(...)``); ``TrackerConnect`` on each announce reply, ``TrackerWarning`` on each
tracker failure (a dead tracker URL gives one; nothing hangs).

Where we differ from p2pt on purpose (the wire is the same): chunks are reassembled per peer and id, with
bounds (:class:`peerdht.tracker.framing.Reassembler`: message size, messages in flight, stale partials
expire, and a room-wide budget); each request has its own waiter, so concurrent requests to one peer do not
race (p2pt keeps one ``peer.respond`` per peer); at most :attr:`Room.max_peers` peers and two channels per
peer and tracker; empty strings and non-string JSON values (numbers, booleans, ``null``) can be sent;
messages that nobody reads are dropped beyond :attr:`Room.max_events` queued events (counted, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from peerdht.aio.web.webrtc import DataChannelPeer, SignalError
from peerdht.errors import (
    DecodeError,
    InvalidArgument,
    LocalProtocolError,
    RequestTimeout,
    StreamClosed,
    StreamReset,
)
from peerdht.tracker import client as tc
from peerdht.tracker import framing
from peerdht.tracker import messages as tm

__all__ = [
    "Message",
    "PeerClose",
    "PeerConnect",
    "Room",
    "RoomEvent",
    "RoomPeer",
    "TrackerConnect",
    "TrackerWarning",
]

log = logging.getLogger(__name__)

#: Offers per announce (bittorrent-tracker's client caps ``numwant`` at 5).
OFFERS = 5
#: Bytes queued in a data channel before a sender waits (simple-peer uses 64 KiB).
HIGH_WATER = 1 << 20


class RoomPeer:
    """A remote peer of the room (p2pt's ``peer``), however many data channels lead to it.

    Attributes:
        id: the peer id as 40 lower-case hex characters (p2pt ``peer.id``).
        peer_id: the same 20 bytes.
    """

    def __init__(self, peer_id: bytes, reassembler: framing.Reassembler) -> None:
        self.peer_id = peer_id
        self.id = peer_id.hex()
        self._channels: list[tuple[str, DataChannelPeer]] = []
        self._chunks = reassembler
        self._waiting: dict[framing.MessageId, asyncio.Future[Message]] = {}
        self.closed = False

    @property
    def connected(self) -> bool:
        """True while at least one data channel to this peer is open."""
        return any(ch.is_open for _, ch in self._channels)

    @property
    def channels(self) -> int:
        """Open data channels to this peer (one per tracker that introduced us, at most two each)."""
        return sum(1 for _, ch in self._channels if ch.is_open)

    def remote_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the first open channel's ICE pair, if known."""
        for _, ch in self._channels:
            if ch.is_open:
                return ch.remote_address()
        return None

    def _channel(self) -> DataChannelPeer:
        for _, ch in self._channels:
            if ch.is_open:
                return ch
        raise StreamReset(f"no open data channel to peer {self.id[:8]}")

    def __repr__(self) -> str:
        return f"RoomPeer({self.id[:12]}..., channels={self.channels})"


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerConnect:
    """The first data channel to ``peer`` opened (p2pt ``peerconnect``)."""

    peer: RoomPeer


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerClose:
    """The last data channel to ``peer`` closed (p2pt ``peerclose``); requests to it fail with StreamReset."""

    peer: RoomPeer


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """A complete P2PT message from ``peer`` (p2pt ``msg``), or the response :meth:`Room.send` returns.

    Attributes:
        peer: who sent it.
        msg: a ``str``, or the decoded JSON value when it was sent as JSON.
        id: its P2PT message id (a response carries the id of the request).
    """

    peer: RoomPeer
    msg: Any
    id: framing.MessageId
    room: Room = field(repr=False, compare=False)

    async def respond(self, msg: Any) -> None:
        """Answer this message: ``msg`` goes back with the same id, so the sender's ``send`` resolves with it.

        Raises:
            StreamReset: the peer has no open channel left.
        """
        await self.room._transmit(self.peer, self.id, msg)

    async def request(self, msg: Any, *, timeout: float | None = 30.0) -> Message:
        """Answer this message and wait for the peer's next message with the same id (a P2PT chain).

        Raises:
            RequestTimeout: nothing came back within ``timeout`` seconds.
            StreamReset: the peer left.
        """
        return await self.room._exchange(self.peer, self.id, msg, timeout)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackerConnect:
    """A tracker answered our announce (p2pt ``trackerconnect``): ``connected`` of ``total`` trackers up."""

    url: str
    connected: int
    total: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackerWarning:
    """A tracker failed, refused or could not be reached (p2pt ``trackerwarning``); it is retried later."""

    url: str
    reason: str
    connected: int
    total: int


RoomEvent = PeerConnect | PeerClose | Message | TrackerConnect | TrackerWarning


class _TrackerLink:
    """One tracker URL: drives a :class:`~peerdht.tracker.client.TrackerClient` core with a WebSocket and
    WebRTC peers (every decision about announces, offers and reconnects is the core's)."""

    def __init__(self, room: Room, url: str) -> None:
        self.room = room
        self.url = url
        self.core = tc.TrackerClient(room.info_hash, room.peer_id, offers=room.offers,
                                     interval=room.announce_interval, reconnect_min=room.reconnect_min,
                                     reconnect_max=room.reconnect_max,
                                     rng=random.SystemRandom())  # offer ids must not be predictable
        self.ws: Any = None
        self.offers: dict[bytes, DataChannelPeer] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._session: Any = None

    @property
    def connected(self) -> bool:
        return self.core.connected_now

    def start(self) -> None:
        self.core.start(self._now())
        self.spawn(self._timer())
        self.spawn(self._writer())
        self._process()

    async def stop(self, *, stopped: bool) -> None:
        last = self.core.stop()
        if stopped and self.ws is not None:
            for text in last:
                with contextlib.suppress(Exception):
                    await self.ws.send_str(text)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._session is not None:
            await self._session.close()
        self._process()  # closes the offers the core expired
        for channel in self.offers.values():
            await channel.close()
        self.offers.clear()

    def announce_now(self) -> None:
        self.core.announce_now(self._now())
        self._process()

    # ------------------------------------------------------------------ the core's outputs

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _process(self) -> None:
        for text in self.core.messages_to_send():
            self._outbox.put_nowait(text)
        room = self.room
        while (event := self.core.next_event()) is not None:
            if isinstance(event, tc.ConnectNow):
                self.spawn(self._connect())
            elif isinstance(event, tc.NeedOffers):
                self.spawn(self._make_offers(event.count))
            elif isinstance(event, tc.OfferExpired):
                channel = self.offers.pop(event.offer_id, None)
                if channel is not None:
                    self.spawn(channel.close())
            elif isinstance(event, tc.OfferReceived):
                if room._wants_channel(event.peer_id, self.url):
                    self.spawn(self._answer(event))
            elif isinstance(event, tc.AnswerReceived):
                channel = self.offers.pop(event.offer_id, None)
                if channel is not None:
                    self.spawn(self._complete(channel, event))
            elif isinstance(event, tc.Announced):
                room._tracker_connect(self)
            elif isinstance(event, tc.TrackerProblem):
                room._tracker_warning(self, event.reason)

    async def _timer(self) -> None:
        while True:
            deadline = self.core.get_timer()
            delay = 1.0 if deadline is None else deadline - self._now()
            await asyncio.sleep(max(0.01, min(1.0, delay)))
            self.core.handle_timer(self._now())
            self._process()

    async def _writer(self) -> None:
        while True:
            text = await self._outbox.get()
            if self.ws is not None and self.core.connected_now:
                with contextlib.suppress(Exception):
                    await self.ws.send_str(text)

    # ------------------------------------------------------------------ the socket

    async def _connect(self) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            self.ws = await self._session.ws_connect(self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                                     max_msg_size=4 * tm.MAX_TRACKER_MESSAGE, autoping=True,
                                                     compress=0)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # refused, DNS, TLS, bad URL: a warning, then a retry the core schedules
            self.core.connect_failed(f"error connecting to {self.url}: {e or type(e).__name__}", self._now())
            self._process()
            return
        self.core.connected(self._now())
        self._process()
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.core.receive(msg.data, self._now())
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.core.receive(msg.data.decode("utf-8", "replace"), self._now())
                else:
                    break
                self._process()
        finally:
            with contextlib.suppress(Exception):
                await self.ws.close()
            while not self._outbox.empty():  # written for the socket that closed
                self._outbox.get_nowait()
            self.core.disconnected(self._now())
            self._process()

    # ------------------------------------------------------------------ WebRTC

    async def _make_offers(self, count: int) -> None:
        room = self.room
        want = max(0, min(count, room.max_peers - len(room.peers)))
        made = await asyncio.gather(*(self._offer() for _ in range(want)), return_exceptions=True)
        pairs = [item for item in made if isinstance(item, tuple)]
        ids = self.core.offers_ready([offer for _, offer in pairs], self._now())
        for offer_id, (channel, _) in zip(ids, pairs, strict=True):
            self.offers[offer_id] = channel
        self._process()

    async def _offer(self) -> tuple[DataChannelPeer, dict[str, str]]:
        channel = self.room._new_channel(self.url)
        try:
            return channel, await channel.create_offer()
        except Exception:
            await channel.close()
            raise

    async def _answer(self, offer: tc.OfferReceived) -> None:
        room = self.room
        channel = room._new_channel(self.url)
        room._connecting(offer.peer_id, self.url, channel)
        try:
            answer = await channel.accept_offer(offer.offer)
            self.core.send_answer(offer.peer_id, offer.offer_id, answer)
            self._process()
            await channel.wait_open(room.connect_timeout)
        except (SignalError, TimeoutError) as e:
            room._dropped["signal"] += 1
            log.debug("room: offer from %s failed: %s", offer.peer_id.hex()[:8], e)
            room._abandon(offer.peer_id, self.url, channel)
            await channel.close()
            return
        except BaseException:
            room._abandon(offer.peer_id, self.url, channel)
            await channel.close()
            raise
        room._attach(offer.peer_id, self.url, channel)

    async def _complete(self, channel: DataChannelPeer, answer: tc.AnswerReceived) -> None:
        room = self.room
        if not room._wants_channel(answer.peer_id, self.url):
            await channel.close()
            return
        room._connecting(answer.peer_id, self.url, channel)
        try:
            await channel.accept_answer(answer.answer)
            await channel.wait_open(room.connect_timeout)
        except (SignalError, TimeoutError) as e:
            room._dropped["signal"] += 1
            log.debug("room: answer from %s failed: %s", answer.peer_id.hex()[:8], e)
            room._abandon(answer.peer_id, self.url, channel)
            await channel.close()
            return
        except BaseException:
            room._abandon(answer.peer_id, self.url, channel)
            await channel.close()
            raise
        room._attach(answer.peer_id, self.url, channel)


class Room:
    """A P2PT room: join with ``async with``, read events with ``async for``, talk with :meth:`send`.

    Args:
        identifier: the room's name; its SHA-1 (of the UTF-8) is the info hash announced (p2pt identifier).
        trackers: WebSocket tracker URLs (``ws://`` or ``wss://``); all are used at once.
        peer_id: our 20-byte peer id (random by default).
        ice_servers: STUN/TURN URLs for WebRTC; none by default (host candidates only).
        offers: WebRTC offers per announce (bittorrent-tracker's client: 5).
        max_peers: most remote peers at once; offers stop when reached.
        max_message: largest message accepted from a peer, in UTF-16 units (16 Mi by default).
        max_buffered: units of partial messages buffered across all peers (64 Mi by default).
        max_events: events queued for ``async for`` before new messages and tracker events are dropped
            (peer events: four times as many).
        announce_interval: seconds between announces; ``None`` follows the tracker's ``interval`` (120 s).
        connect_timeout: seconds for a data channel to open after the answer.
        reconnect_min, reconnect_max: back-off bounds (seconds) for reconnecting to a tracker.

    Raises:
        InvalidArgument: a bad identifier, tracker URL or peer id.
    """

    def __init__(
        self,
        identifier: str,
        trackers: Sequence[str] = (),
        *,
        peer_id: bytes | None = None,
        ice_servers: Sequence[str] = (),
        offers: int = OFFERS,
        max_peers: int = 50,
        max_message: int = 16 * 1024 * 1024,
        max_buffered: int = 64 * 1024 * 1024,
        max_events: int = 1024,
        announce_interval: float | None = None,
        connect_timeout: float = 30.0,
        reconnect_min: float = 2.0,
        reconnect_max: float = 300.0,
    ) -> None:
        if not isinstance(identifier, str) or not identifier:
            raise InvalidArgument("identifier must be a non-empty string")
        if peer_id is not None and (not isinstance(peer_id, bytes) or len(peer_id) != 20):
            raise InvalidArgument("peer_id must be 20 bytes")
        for url in trackers:
            _check_url(url)
        self.identifier = identifier
        self.info_hash = tm.info_hash_of(identifier)
        self.peer_id = peer_id or os.urandom(20)
        self.id = self.peer_id.hex()
        self.ice_servers = tuple(ice_servers)
        self.offers = offers
        self.max_peers = max_peers
        self.max_message = max_message
        self.max_buffered = max_buffered
        self.max_events = max_events
        self.announce_interval = announce_interval
        self.connect_timeout = connect_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.peers: dict[str, RoomPeer] = {}
        """Connected peers by 40-hex peer id."""
        self._dropped: dict[str, int] = {"frame": 0, "message": 0, "tracker": 0, "unknown_answer": 0,
                                         "signal": 0, "events": 0, "peers": 0}
        self._urls: list[str] = list(dict.fromkeys(trackers))
        self._links: dict[str, _TrackerLink] = {}
        self._pending: dict[tuple[bytes, str], set[DataChannelPeer]] = {}
        self._events: asyncio.Queue[RoomEvent | None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._rng = random.Random()
        self._tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        """Connect to every tracker and start announcing (``async with`` does this)."""
        if self._started:
            return
        self._started = True
        self._events = asyncio.Queue()
        for url in self._urls:
            self._start_link(url)
        self._timer = asyncio.create_task(self._expire_partials())

    async def close(self) -> None:
        """Leave the room: announce ``stopped``, close every channel and tracker; ``async for`` ends (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        await asyncio.gather(*(link.stop(stopped=True) for link in self._links.values()), return_exceptions=True)
        self._dropped = self.dropped  # keep the links' counts
        self._links.clear()
        for channels in list(self._pending.values()):
            for ch in list(channels):
                await ch.close()
        for peer in list(self.peers.values()):
            for _, ch in list(peer._channels):
                await ch.close()
            self._fail_waiters(peer, StreamClosed("room closed"))
        self.peers.clear()
        if self._events is not None:
            self._events.put_nowait(None)

    async def __aenter__(self) -> Room:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[RoomEvent]:
        return self

    async def __anext__(self) -> RoomEvent:
        if self._events is None:
            raise LocalProtocolError("the room is not started (use async with)")
        if self._closed and self._events.empty():
            raise StopAsyncIteration
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # later iterators end too
            raise StopAsyncIteration
        return event

    # ------------------------------------------------------------------ messages

    async def send(self, peer: RoomPeer | str, msg: Any, *, timeout: float | None = 30.0) -> Message:
        """Send ``msg`` as a new message and wait for the peer's response (p2pt ``send``).

        Args:
            peer: a :class:`RoomPeer` or its 40-hex id.
            msg: a ``str``, or any JSON-serialisable value (sent as JSON); long ones are chunked.
            timeout: seconds to wait for the response (``None``: forever).

        Returns:
            the response, a :class:`Message` (``respond`` / ``request`` on it continue the chain).

        Raises:
            RequestTimeout: no response within ``timeout`` (also a ``TimeoutError``).
            StreamReset: no open channel to the peer, or it left while we waited.
            StreamClosed: the room is closed.
            TypeError, ValueError: ``msg`` is not JSON-serialisable.
        """
        target = self._peer(peer)
        return await self._exchange(target, self._new_id(target), msg, timeout)

    async def post(self, peer: RoomPeer | str, msg: Any) -> framing.MessageId:
        """Send ``msg`` as a new message without waiting for a response; return its id.

        Raises:
            StreamReset: no open channel to the peer.
        """
        target = self._peer(peer)
        msg_id = self._new_id(target)
        await self._transmit(target, msg_id, msg)
        return msg_id

    async def broadcast(self, msg: Any) -> int:
        """:meth:`post` ``msg`` to every connected peer; return how many it was sent to."""
        sent = 0
        for peer in list(self.peers.values()):
            with contextlib.suppress(StreamReset):
                await self.post(peer, msg)
                sent += 1
        return sent

    # ------------------------------------------------------------------ trackers

    async def request_more_peers(self) -> dict[str, RoomPeer]:
        """Announce again on every tracker now (with fresh offers); returns the peers known so far."""
        for link in self._links.values():
            link.announce_now()
        return dict(self.peers)

    async def add_tracker(self, url: str) -> None:
        """Start using one more tracker.

        Raises:
            InvalidArgument: a bad URL, or one already in use.
        """
        _check_url(url)
        if url in self._urls:
            raise InvalidArgument("Tracker already added")
        self._urls.append(url)
        if self._started and not self._closed:
            self._start_link(url)

    async def remove_tracker(self, url: str) -> None:
        """Stop using a tracker; peers it introduced stay connected (p2pt ``removeTracker``).

        Raises:
            InvalidArgument: the tracker is not in use.
        """
        if url not in self._urls:
            raise InvalidArgument("Tracker does not exist")
        self._urls.remove(url)
        link = self._links.pop(url, None)
        if link is not None:
            self._dropped["tracker"] += link.core.dropped["bad_reply"]
            self._dropped["unknown_answer"] += link.core.dropped["unknown_answer"]
            await link.stop(stopped=True)

    @property
    def dropped(self) -> dict[str, int]:
        """Bad or excess input dropped so far, by kind: ``frame`` (bad P2PT frames), ``message`` (partial
        messages expired or over budget), ``tracker`` (unreadable tracker replies), ``unknown_answer``
        (answers to offers we never made), ``signal`` (offers/answers refused or never connected),
        ``events`` (unread events), ``peers`` (peers refused at ``max_peers``)."""
        counts = dict(self._dropped)
        for link in self._links.values():
            counts["tracker"] += link.core.dropped["bad_reply"]
            counts["unknown_answer"] += link.core.dropped["unknown_answer"]
        return counts

    @property
    def trackers(self) -> list[str]:
        """Tracker URLs in use."""
        return list(self._urls)

    def tracker_stats(self) -> tuple[int, int]:
        """``(connected, total)`` trackers (p2pt ``getTrackerStats``)."""
        return sum(1 for link in self._links.values() if link.connected), len(self._urls)

    # ------------------------------------------------------------------ internals: sending

    def _peer(self, peer: RoomPeer | str) -> RoomPeer:
        if self._closed:
            raise StreamClosed("room closed")
        if isinstance(peer, RoomPeer):
            return peer
        found = self.peers.get(peer)
        if found is None:
            raise StreamReset(f"not connected to peer {str(peer)[:40]}")
        return found

    def _new_id(self, peer: RoomPeer) -> int:
        while True:  # p2pt: Math.floor(Math.random() * 100000 + 100000); unique among our waiting requests
            msg_id = self._rng.randrange(100000, 200000)
            if msg_id not in peer._waiting:
                return msg_id

    async def _transmit(self, peer: RoomPeer, msg_id: framing.MessageId, msg: Any) -> None:
        if self._closed:
            raise StreamClosed("room closed")
        frames = framing.encode_message(msg_id, msg)
        for frame in frames:
            channel = peer._channel()
            if channel.buffered_amount > HIGH_WATER:
                await channel.drain(HIGH_WATER)
                channel = peer._channel()
            channel.send(frame)

    async def _exchange(self, peer: RoomPeer, msg_id: framing.MessageId, msg: Any, timeout: float | None) -> Message:
        if msg_id in peer._waiting:
            raise LocalProtocolError(f"already waiting for a response on id {msg_id!r}")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        peer._waiting[msg_id] = future
        try:
            await self._transmit(peer, msg_id, msg)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as e:
            raise RequestTimeout(f"no response from peer {peer.id[:8]} within {timeout} s") from e
        finally:
            if peer._waiting.get(msg_id) is future:
                del peer._waiting[msg_id]

    # ------------------------------------------------------------------ internals: channels

    def _start_link(self, url: str) -> None:
        link = self._links[url] = _TrackerLink(self, url)
        link.start()

    def _new_channel(self, url: str) -> DataChannelPeer:
        return DataChannelPeer(ice_servers=self.ice_servers)

    def _wants_channel(self, peer_id: bytes, url: str) -> bool:
        """At most two channels (open or opening) per peer and tracker; at most ``max_peers`` peers."""
        peer = self.peers.get(peer_id.hex())
        opening = len(self._pending.get((peer_id, url), ()))
        if peer is None:
            if len(self.peers) + len({pid for pid, _ in self._pending}) >= self.max_peers + 2:
                self._dropped["peers"] += 1
                return False
            return opening < 2
        open_here = sum(1 for u, ch in peer._channels if u == url and ch.is_open)
        return open_here + opening < 2

    def _connecting(self, peer_id: bytes, url: str, channel: DataChannelPeer) -> None:
        self._pending.setdefault((peer_id, url), set()).add(channel)

    def _abandon(self, peer_id: bytes, url: str, channel: DataChannelPeer) -> None:
        channels = self._pending.get((peer_id, url))
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self._pending[(peer_id, url)]

    def _attach(self, peer_id: bytes, url: str, channel: DataChannelPeer) -> None:
        self._abandon(peer_id, url, channel)
        if self._closed or not channel.is_open:
            self._later(channel.close())
            return
        key = peer_id.hex()
        peer = self.peers.get(key)
        new = peer is None
        if peer is None:
            if len(self.peers) >= self.max_peers:
                self._dropped["peers"] += 1
                self._later(channel.close())
                return
            peer = self.peers[key] = RoomPeer(peer_id, framing.Reassembler(max_message=self.max_message))
        target = peer
        target._channels.append((url, channel))
        channel.on_message = lambda data: self._on_frame(target, data)
        channel.on_close = lambda: self._on_channel_close(target, channel)
        if new:
            self._emit(PeerConnect(peer=peer))

    def _on_channel_close(self, peer: RoomPeer, channel: DataChannelPeer) -> None:
        peer._channels = [(u, ch) for u, ch in peer._channels if ch is not channel]
        if peer._channels or peer.closed:
            return
        peer.closed = True
        if self.peers.get(peer.id) is peer:
            del self.peers[peer.id]
        peer._chunks.clear()
        self._fail_waiters(peer, StreamReset(f"peer {peer.id[:8]} left"))
        if not self._closed:
            self._emit(PeerClose(peer=peer))

    def _fail_waiters(self, peer: RoomPeer, error: Exception) -> None:
        for future in peer._waiting.values():
            if not future.done():
                future.set_exception(error)
        peer._waiting.clear()

    # ------------------------------------------------------------------ internals: receiving

    def _on_frame(self, peer: RoomPeer, data: bytes | str) -> None:
        now = asyncio.get_running_loop().time()
        try:
            chunk = framing.decode_frame(data)
            if chunk is None:
                return  # not a P2PT frame: p2pt only reports it as raw 'data'
            done = peer._chunks.receive(chunk.id, chunk, now)
        except DecodeError as e:
            self._dropped["frame"] += 1
            log.warning("room %s: dropped a frame from peer %s: %s", self.identifier[:20], peer.id[:8], e)
            return
        if done is None:
            self._check_budget()
            return
        message = Message(peer=peer, msg=done.msg, id=done.id, room=self)
        waiter = peer._waiting.pop(done.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
        else:
            self._emit(message)

    def _check_budget(self) -> None:
        total = sum(p._chunks.buffered for p in self.peers.values())
        if total > self.max_buffered:
            worst = max(self.peers.values(), key=lambda p: p._chunks.buffered)
            log.warning("room %s: %d units of partial messages buffered (limit %d); dropping peer %s's",
                        self.identifier[:20], total, self.max_buffered, worst.id[:8])
            self._dropped["message"] += len(worst._chunks)
            worst._chunks.clear()

    async def _expire_partials(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)
            for peer in list(self.peers.values()):
                if expired := peer._chunks.expire(loop.time()):
                    self._dropped["message"] += expired
                    log.warning("room %s: %d partial messages from peer %s expired", self.identifier[:20],
                                expired, peer.id[:8])

    def _later(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: RoomEvent) -> None:
        assert self._events is not None
        queued = self._events.qsize()
        limit = self.max_events if isinstance(event, Message | TrackerConnect | TrackerWarning) else 4 * self.max_events
        if queued >= limit:
            self._dropped["events"] += 1
            if self._dropped["events"] in (1, 10, 100) or self._dropped["events"] % 1000 == 0:
                log.warning("room %s: %d events unread; dropped %d so far (latest: %s)", self.identifier[:20],
                            queued, self._dropped["events"], type(event).__name__)
            return
        self._events.put_nowait(event)

    def _tracker_connect(self, link: _TrackerLink) -> None:
        connected, total = self.tracker_stats()
        self._emit(TrackerConnect(url=link.url, connected=connected, total=total))

    def _tracker_warning(self, link: _TrackerLink, reason: str) -> None:
        if self._closed or self._links.get(link.url) is not link:
            return
        connected, total = self.tracker_stats()
        log.info("room %s: tracker %s: %s", self.identifier[:20], link.url, reason)
        self._emit(TrackerWarning(url=link.url, reason=reason, connected=connected, total=total))


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise InvalidArgument(f"tracker URL must start with ws:// or wss://: {str(url)[:80]!r}")
