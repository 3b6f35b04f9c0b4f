"""The web overlay's links as connections: WebSockets (aiohttp) and WebRTC data channels (aiortc), by handle.

:class:`WebLinks` is what the :class:`~peerdht.aio.transport.driver.DatagramDriver` of a
:class:`~peerdht.web.overlay.WebOverlay` sends through (its "transport": ``sendto(data, handle)``): each overlay
link handle maps to one WebSocket (a bounded send queue drained by a writer task) or one
:class:`~peerdht.aio.web.webrtc.DataChannelPeer`. It also carries out the overlay's WebRTC events: makes offers
(:class:`~peerdht.web.events.OffersWanted`), feeds answers to our offers (``ConnectAnswer``), answers forwarded
offers (``AnswerOffer``), closes peers (``DiscardOffer``, ``LinkDropped``), and reports opened and closed
channels back to the overlay. Framing as webtorrent-dht's ``webrtc-socket.js`` and ``k-rpc-socket-webrtc.js``:
one bencoded KRPC message per binary message. The HTTP side (:mod:`peerdht.aio.web.routes`) hands it the WebSockets
and bootstrap peers it accepts; :class:`~peerdht.aio.web.node.WebNode` owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.errors import PeerDHTError
from peerdht.web.events import AnswerOffer, ConnectAnswer, DiscardOffer, LinkDropped, OffersWanted
from peerdht.web.links import Handle
from peerdht.web.overlay import WebOverlay

__all__ = ["WebLinks"]

log = logging.getLogger(__name__)

Address = tuple[str, int]

_WS_QUEUE = 256
"""Messages queued per WebSocket before sends are dropped (counted as ``ws_send_queue_full``)."""
_OPEN_TIMEOUT = 20.0
"""Seconds a data channel may take to open (ICE, DTLS, SCTP)."""


def _now() -> float:
    return asyncio.get_running_loop().time()


class _WSLink:
    """One WebSocket and the task that writes its bounded send queue (a slow reader cannot grow memory)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_WS_QUEUE)
        self.task = asyncio.ensure_future(self._writer())

    async def _writer(self) -> None:
        with contextlib.suppress(Exception):
            while (data := await self.queue.get()) is not None:
                await self.ws.send_bytes(data)

    def send(self, data: bytes) -> bool:
        """Queue one binary message; ``False`` when the queue (256 messages) is full."""
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    async def close(self) -> None:
        """Stop the writer and close the WebSocket (errors ignored)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.ws.close()


class WebLinks:
    """The connections behind the overlay's link handles, and the driver's transport for the overlay.

    Args:
        overlay: the web overlay core.
        driver: the driver that runs ``overlay`` (messages received are fed to it; it is kicked after changes).
        ice_servers: STUN/TURN URLs for aiortc (none: host candidates only).
        counters: the node's counters (``ws_*``, ``webrtc_*``).

    Attributes:
        fail_webrtc: test hook (issue 10: "a test hook that refuses the offer"): WebRTC links made through
            signalling fail as if ICE failed, so the overlay falls back to relayed messages.
        closed: set by :meth:`aclose`; no new work is started after it.
    """

    def __init__(
        self, *, overlay: WebOverlay, driver: DatagramDriver, ice_servers: list[str], counters: Counter[str]
    ) -> None:
        self.overlay = overlay
        self.driver = driver
        self.ice_servers = ice_servers
        self.counters = counters
        self.fail_webrtc = False
        self.closed = False
        self._ws: dict[Handle, _WSLink] = {}
        self._peers: dict[Handle, Any] = {}  # Handle -> DataChannelPeer
        self._opened: set[Handle] = set()  # data-channel handles the overlay has been told are open
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ the driver's transport

    def is_closing(self) -> bool:
        """Whether :meth:`aclose` ran (the driver stops sending)."""
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        """Nothing: links have no socket name (``None``)."""
        return None

    def close(self) -> None:
        """The driver closes its transports: nothing to do here (:meth:`aclose` closes the connections)."""

    # ------------------------------------------------------------------ links

    def add_websocket(self, ws: Any, handle: Handle) -> None:
        """``ws`` (an aiohttp WebSocket, server or client side) is the connection of ``handle`` from now on;
        run :meth:`pump_websocket` to receive on it."""
        self._ws[handle] = _WSLink(ws)

    def handle_event(self, event: object) -> bool:
        """Carry out an overlay event about connections (``OffersWanted``, ``DiscardOffer``, ``ConnectAnswer``,
        ``AnswerOffer``, ``LinkDropped``); ``False`` for any other event."""
        if isinstance(event, OffersWanted):
            for _ in range(event.count):
                self.spawn(self._make_offer())
        elif isinstance(event, DiscardOffer):
            peer = self._peers.pop(event.handle, None)
            self._opened.discard(event.handle)
            if peer is not None:
                self.spawn(peer.close())
        elif isinstance(event, ConnectAnswer):
            self.spawn(self._connect_answer(event))
        elif isinstance(event, AnswerOffer):
            self.spawn(self._answer_offer(event))
        elif isinstance(event, LinkDropped):
            self.close_link(event.handle)
        else:
            return False
        return True

    async def aclose(self) -> None:
        """Cancel the tasks, close every WebSocket and peer connection. Idempotent."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for link in list(self._ws.values()):
            await link.close()
        for peer in list(self._peers.values()):
            with contextlib.suppress(Exception):
                await peer.close()

    async def pump_websocket(self, ws: Any, handle: Handle) -> None:
        """Feed the messages of the WebSocket ``ws`` (aiohttp, server or client side) of ``handle`` to the overlay
        (binary as is, text as UTF-8) until it closes; then close the link."""
        from aiohttp import WSMsgType

        self.counters["ws_opened"] += 1
        self.driver.kick()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    self.driver.receive(msg.data, handle)
                elif msg.type == WSMsgType.TEXT:
                    self.driver.receive(msg.data.encode(), handle)
                else:
                    self.counters["ws_errors"] += 1
                    break
        finally:
            if ws.close_code not in (None, 1000, 1001):
                self.counters["ws_closed_abnormally"] += 1
            self.close_link(handle)

    def sendto(self, data: bytes, handle: Address) -> None:
        """The driver's send: ``data`` (one bencoded KRPC message) as one binary message on ``handle``'s WebSocket
        or data channel; dropped and counted when its send queue is full or aiortc refuses it."""
        ws = self._ws.get(handle)
        if ws is not None:
            if not ws.send(data):
                self.counters["ws_send_queue_full"] += 1
            return
        peer = self._peers.get(handle)
        if peer is not None:
            try:
                peer.send(data)
            except Exception as exc:  # aiortc raises ValueError over the remote's max message size
                self.counters["webrtc_send_failed"] += 1
                log.debug("send on %s failed: %s", handle, exc)

    def close_link(self, handle: Handle) -> None:
        """Close ``handle``'s WebSocket or peer connection and tell the overlay (a no-op for handles without a
        connection, such as relay links)."""
        ws = self._ws.pop(handle, None)
        if ws is not None:
            self.spawn(ws.close())
        peer = self._peers.pop(handle, None)
        self._opened.discard(handle)
        if peer is not None:
            self.spawn(peer.close())
        if ws is None and peer is None:
            return  # not a connection of ours (any more): a relay-only link lives on in the overlay
        if not self.closed:
            self.overlay.close_link(handle, _now())
            self.driver.kick()

    def _callbacks(self, handle: Handle) -> tuple[Callable[[bytes | str], None], Callable[[], None]]:
        """``(on_message, on_close)`` for the data channel of ``handle``: messages go to the overlay while the
        link is ours; a close closes the link. A message on an open channel that the overlay does not know is
        open yet opens the link first: it came right behind the DCEP ACK that opened the channel (one SCTP
        packet, or one busy loop iteration), before the task waiting in
        :meth:`~peerdht.aio.web.webrtc.DataChannelPeer.wait_open` resumed -- webtorrent-dht's HTTP server sends
        its ``{"http_server": ...}`` hello just then."""

        def message(data: bytes | str) -> None:
            peer = self._peers.get(handle)
            if peer is None:
                return
            if handle not in self._opened and peer.is_open:
                self.link_opened(handle, peer)
            self.driver.receive(data if isinstance(data, bytes) else data.encode(), handle)

        def closed() -> None:
            if handle in self._peers:
                self.close_link(handle)

        return message, closed

    def new_peer(self, handle: Handle) -> Any:
        """A new :class:`~peerdht.aio.web.webrtc.DataChannelPeer` for ``handle`` (its messages go to the overlay)."""
        from peerdht.aio.web.webrtc import DataChannelPeer

        message, closed = self._callbacks(handle)
        peer = DataChannelPeer(on_message=message, on_close=closed, ice_servers=self.ice_servers)
        self._peers[handle] = peer
        return peer

    def link_opened(self, handle: Handle, peer: Any) -> None:
        """``peer``'s data channel is open: tell the overlay (with the remote ICE address), once."""
        if handle in self._opened:
            return
        self._opened.add(handle)
        remote = peer.remote_address()
        self.overlay.link_opened(handle, remote[0] if remote else None, _now())
        self.driver.kick()

    async def open_then_link(self, handle: Handle, peer: Any) -> None:
        """Wait (<= 20 s) for ``peer``'s data channel, then :meth:`link_opened`; close the link if it fails."""
        try:
            await peer.wait_open(_OPEN_TIMEOUT)
        except (TimeoutError, PeerDHTError):
            self.counters["webrtc_open_failed"] += 1
            self.close_link(handle)
            return
        self.link_opened(handle, peer)

    async def _make_offer(self) -> None:
        peer = None
        offer = None
        try:
            from peerdht.aio.web.webrtc import DataChannelPeer

            peer = DataChannelPeer(ice_servers=self.ice_servers)
            offer = await peer.create_offer()
        except Exception as exc:
            log.debug("cannot make an offer: %s", exc)
        handle = self.overlay.add_offer(offer, _now())
        if handle is None or peer is None or self.closed:
            if peer is not None:
                await peer.close()
        else:
            peer.on_message, peer.on_close = self._callbacks(handle)  # the handle is known now
            self._peers[handle] = peer
        self.driver.kick()

    async def _connect_answer(self, event: ConnectAnswer) -> None:
        peer = self._peers.get(event.handle)
        if peer is None:
            return
        if self.fail_webrtc:
            self.counters["webrtc_failed_by_hook"] += 1
            self.close_link(event.handle)
            return
        try:
            await peer.accept_answer(event.answer)
        except PeerDHTError:
            self.counters["webrtc_bad_answer"] += 1
            self.close_link(event.handle)
            return
        await self.open_then_link(event.handle, peer)

    async def _answer_offer(self, event: AnswerOffer) -> None:
        from peerdht.aio.web.webrtc import SignalError

        peer = self.new_peer(event.handle)
        try:
            answer: dict[str, str] | None = await peer.accept_offer(event.offer)
        except SignalError:
            answer = None
        self.overlay.offer_answered(event.handle, answer, _now())
        self.driver.kick()
        if answer is None or self.fail_webrtc:
            self.close_link(event.handle)
            return
        await self.open_then_link(event.handle, peer)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as a task that :meth:`aclose` cancels."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
