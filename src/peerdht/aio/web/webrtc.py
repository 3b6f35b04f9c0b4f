"""WebRTC data channels for peerdht (aiortc): one peer connection, one data channel, complete SDPs.

The one WebRTC layer of peerdht, used by the web overlay (webtorrent-dht's KRPC over data channels) and by
P2PT rooms. Signalling is non-trickle, as both simple-peer (``trickle: false`` in webtorrent-dht) and the
WebTorrent tracker protocol use it: an offer or answer is a dict ``{"type": "offer"|"answer", "sdp": str}``
whose SDP already holds every ICE candidate (aiortc gathers them all in ``setLocalDescription``).

No STUN/TURN server is used unless given: ``ice_servers=[]`` is the default (aiortc would otherwise ask
``stun.l.google.com``). Real deployments pass ``ice_servers=["stun:stun.example.org:3478"]``.

Example::

    a, b = DataChannelPeer(), DataChannelPeer()
    answer = await b.accept_offer(await a.create_offer())
    await a.accept_answer(answer)
    await a.wait_open(10)
    a.send(b"hello")

Untrusted signals are checked before aiortc sees them (:func:`check_signal`): a wrong shape or an SDP over
:data:`MAX_SDP` bytes raises :class:`SignalError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from peerdht.errors import RemoteProtocolError

__all__ = ["MAX_SDP", "DataChannelPeer", "SignalError", "check_signal"]

log = logging.getLogger(__name__)

#: Largest SDP accepted from a peer, in bytes. Chromium's and aiortc's complete offers are 1-4 KB.
MAX_SDP = 16 * 1024


class SignalError(RemoteProtocolError, ValueError):
    """A WebRTC offer or answer from a peer is malformed, too large, or did not lead to a connection."""


def check_signal(signal: Any, kind: str) -> dict[str, str]:
    """Validate an untrusted ``{"type", "sdp"}`` signal and return it with ``str`` values.

    Args:
        signal: a ``dict`` from JSON or bencode (``bytes`` values are decoded as UTF-8).
        kind: ``"offer"`` or ``"answer"``.

    Raises:
        SignalError: not a dict, wrong ``type``, no SDP, an SDP over :data:`MAX_SDP` bytes or not UTF-8.
    """
    if not isinstance(signal, dict):
        raise SignalError(f"{kind}: not a dict")
    typ, sdp = signal.get("type", signal.get(b"type")), signal.get("sdp", signal.get(b"sdp"))
    if isinstance(typ, bytes):
        typ = typ.decode("latin-1")
    if typ != kind:
        raise SignalError(f"{kind}: type is {str(typ)[:20]!r}")
    if isinstance(sdp, bytes):
        if len(sdp) > MAX_SDP:
            raise SignalError(f"{kind}: SDP of {len(sdp)} bytes (limit {MAX_SDP})")
        try:
            sdp = sdp.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SignalError(f"{kind}: SDP is not UTF-8") from e
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SignalError(f"{kind}: no SDP")
    if len(sdp.encode("utf-8")) > MAX_SDP:
        raise SignalError(f"{kind}: SDP over {MAX_SDP} bytes")
    return {"type": kind, "sdp": sdp}


class DataChannelPeer:
    """One aiortc ``RTCPeerConnection`` carrying one ordered, reliable data channel.

    Args:
        on_message: called with each message (``bytes`` for binary, ``str`` for text), in order.
        on_close: called once when the channel or the connection closes or fails.
        ice_servers: STUN/TURN URLs (``"stun:host:port"``); empty by default (host candidates only).
        label: the data channel's label when we create it (simple-peer uses 40 random hex chars).

    Raises:
        ImportError: aiortc is not installed (``pip install 'peerdht[web]'``).
    """

    def __init__(
        self,
        *,
        on_message: Callable[[bytes | str], None] | None = None,
        on_close: Callable[[], None] | None = None,
        ice_servers: Sequence[str] = (),
        label: str | None = None,
    ) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.on_message = on_message
        self.on_close = on_close
        self._label = label or os.urandom(20).hex()
        servers = [RTCIceServer(urls=url) for url in ice_servers]
        self._pc: Any = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._channel: Any = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._pc_closed: asyncio.Future[None] | None = None
        self._low = asyncio.Event()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._pc.on("datachannel", self._adopt)
        self._pc.on("connectionstatechange", self._state_changed)

    # ------------------------------------------------------------------ signalling

    async def create_offer(self) -> dict[str, str]:
        """Create our data channel and a complete offer (all candidates in the SDP)."""
        self._adopt(self._pc.createDataChannel(self._label))
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return {"type": "offer", "sdp": self._pc.localDescription.sdp}

    async def accept_offer(self, offer: Any) -> dict[str, str]:
        """Take a peer's offer (untrusted) and return our complete answer.

        Raises:
            SignalError: the offer is malformed, offers no data channel, or aiortc rejects it.
        """
        from aiortc import RTCSessionDescription

        checked = check_signal(offer, "offer")
        if "m=application" not in checked["sdp"]:
            await self.close()
            raise SignalError("offer has no data channel (no m=application section)")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(**checked))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except Exception as e:  # aiortc raises ValueError/InvalidStateError and others on bad SDP
            await self.close()
            raise SignalError(f"offer rejected: {e}") from e
        return {"type": "answer", "sdp": self._pc.localDescription.sdp}

    async def accept_answer(self, answer: Any) -> None:
        """Take the peer's answer (untrusted) to our offer.

        Raises:
            SignalError: the answer is malformed or aiortc rejects it.
        """
        from aiortc import RTCSessionDescription

        checked = check_signal(answer, "answer")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(**checked))
        except Exception as e:
            await self.close()
            raise SignalError(f"answer rejected: {e}") from e

    async def wait_open(self, timeout: float) -> None:
        """Wait until the data channel is open.

        Raises:
            TimeoutError: not open after ``timeout`` seconds (the connection is closed).
            SignalError: the connection failed or closed first.
        """
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            await self.close()
            raise

    # ------------------------------------------------------------------ data

    @property
    def is_open(self) -> bool:
        """True while the data channel is open."""
        return self._channel is not None and self._channel.readyState == "open" and not self._closed

    @property
    def buffered_amount(self) -> int:
        """Bytes queued in the channel and not yet handed to SCTP."""
        return int(self._channel.bufferedAmount) if self._channel is not None else 0

    def send(self, data: bytes | str) -> None:
        """Send one message (binary for ``bytes``, text for ``str``); dropped when not open."""
        if not self.is_open:
            return
        self.bytes_sent += len(data)
        self._channel.send(data)

    async def drain(self, high: int = 1 << 20) -> None:
        """Wait until at most ``high`` bytes are queued in the channel (back-pressure for large sends).

        Returns at once when the channel is not open (later sends are dropped).
        """
        while self.is_open and self.buffered_amount > high:
            self._low.clear()
            self._channel.bufferedAmountLowThreshold = high // 2
            await self._low.wait()  # set by the channel's bufferedamountlow event and by close()

    def remote_address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` of the selected ICE pair's remote candidate, if known."""
        with contextlib.suppress(Exception):
            ice = self._pc.sctp.transport.transport  # RTCSctpTransport -> RTCDtlsTransport -> RTCIceTransport
            pair = ice._connection._nominated.get(1)  # aioice: component 1's nominated pair
            if pair is not None:
                return (pair.remote_candidate.host, pair.remote_candidate.port)
        return None

    async def close(self) -> None:
        """Close the channel and the peer connection (idempotent); ``on_close`` runs once."""
        if not self._closed:
            self._closed = True
            self._low.set()
            if not self._opened.done():
                self._opened.set_exception(SignalError("connection closed before the data channel opened"))
                self._opened.exception()  # retrieved: nobody may be waiting
            if self.on_close is not None:
                self.on_close()
        if self._pc_closed is None:  # aiortc's close() is not re-entrant (InvalidStateError when raced)
            self._pc_closed = asyncio.ensure_future(self._pc.close())
        await asyncio.shield(self._pc_closed)

    # ------------------------------------------------------------------ aiortc callbacks

    def _adopt(self, channel: Any) -> None:
        if self._channel is not None and channel is not self._channel:
            channel.close()  # one channel per connection, as simple-peer and P2PT use
            return
        self._channel = channel

        def opened() -> None:
            if not self._opened.done():
                self._opened.set_result(None)

        def message(data: bytes | str) -> None:
            self.bytes_received += len(data)
            if self.on_message is not None and not self._closed:
                self.on_message(data)

        channel.on("open", opened)
        channel.on("message", message)
        channel.on("close", self._close_soon)
        channel.on("bufferedamountlow", self._low.set)

        if channel.readyState == "open":
            opened()

    def _state_changed(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._close_soon()

    def _close_soon(self) -> None:
        task = asyncio.ensure_future(self.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
