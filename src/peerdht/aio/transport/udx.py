"""asyncio UDX: :class:`peerdht.udx.stream.UDXSocketCore` on a
:class:`~peerdht.aio.transport.datagram.DatagramSocket`, streams with asyncio stream semantics.

Mirrors udx-native's JS API (``lib/udx.js``, ``lib/socket.js``, ``lib/stream.js``)::

    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream = sock.create_stream(local_id)
    await stream.connect(remote_id, (host, port))
    stream.write(b"..."); await stream.drain()
    data = await stream.read(65536)
    stream.write_eof(); stream.close(); await stream.wait_closed()

A :class:`UDXSocket` registers for the UDX packets of its socket (first byte 0xFF) and takes whatever no
other consumer registered for (:attr:`UDXSocket.on_datagram`). The socket reads every datagram the
kernel has queued in one go and hands each to its consumer; then the reactor flushes the core once (one
coalesced ACK per batch, data packets in GSO runs). A standalone socket (:meth:`UDXSocket.bind`) has its
own :class:`~peerdht.aio.transport.reactor.Reactor`; the DHT's sockets share the DHT driver's, so one
timer serves the DHT core and every UDX core (:mod:`peerdht.aio.transport.driver`).

A blind relay splices two streams with :func:`splice` (udx-native ``stream.relayTo`` both ways).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable

from peerdht.aio.transport.datagram import SOCKET_BUFFER, DatagramSocket, bind_udp
from peerdht.aio.transport.reactor import Reactor
from peerdht.errors import LocalProtocolError, StreamClosed, StreamError, StreamReset
from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamTerminated,
    StreamWritable,
)
from peerdht.udx.stream import DEFAULT_RECV_WINDOW, RelayLimiter, UDXSocketCore

Addr = tuple[str, int]
log = logging.getLogger(__name__)

UDX_FIRST_BYTE = 0xFF
"""The first byte of every UDX packet (libudx header magic)."""
RECV_BATCH = 512
"""Datagrams read per readiness event on a UDX socket."""
CLOSE_LINGER = 3.0
"""Seconds ``close()`` waits for the peer's END before it resets the stream with DESTROY."""


class UDXSocket:
    """UDX streams on one UDP socket (udx-native ``UDXSocket``). Create with :meth:`bind`, or let a
    :class:`~peerdht.aio.transport.driver.DatagramDriver` make one that the DHT shares.

    UDX packets (first byte 0xFF) go straight from the socket's read loop to the UDX core; the core is
    flushed and its events handed out once per read batch by the socket's :class:`Reactor`, whose one
    timer also serves the DHT core on a shared socket.

    Attributes:
        core: the sans-IO core.
        transport: the :class:`~peerdht.aio.transport.datagram.DatagramSocket` (fd, reads, sends).
        reactor: what flushes the core and arms its timer.
        on_datagram: called with ``(data, addr)`` for datagrams no other consumer of the socket owns and
            UDX packets of no known stream (holepunch probes, packets before a stream is made); dropped
            when None.
    """

    def __init__(
        self, transport: DatagramSocket, reactor: Reactor, *, core: UDXSocketCore | None = None, own_reactor: bool = False
    ) -> None:
        self.transport = transport
        self.reactor = reactor
        self.loop = reactor.loop
        self.core = core if core is not None else UDXSocketCore()
        self._own_reactor = own_reactor
        self._streams: dict[int, UDXStream] = {}
        self._relay_into: set[UDXSocket] = set()
        self._closed = False
        self.on_datagram: Callable[[bytes, Addr], None] | None = None
        transport.register((UDX_FIRST_BYTE,), self.core.receive_datagram)
        transport.set_default(self._on_other)
        transport.on_batch_end = self._on_batch_end
        self._shared = False

    @classmethod
    async def bind(cls, host: str = "127.0.0.1", port: int = 0) -> UDXSocket:
        """Bind a UDP socket on ``host``/``port`` (0 = any free port) that carries only UDX (and
        :attr:`on_datagram`), with its own reactor.

        Raises:
            OSError: the address cannot be bound.
        """
        reactor = Reactor()
        sock = bind_udp(host, port, buffers=SOCKET_BUFFER)
        return cls(DatagramSocket(sock, batch=RECV_BATCH, gro=True), reactor, own_reactor=True)

    @property
    def address(self) -> Addr:
        """The bound ``(host, port)``."""
        return self.transport.address

    def share(self) -> None:
        """Other consumers own some first bytes of this socket (the DHT): flush the UDX core after a
        read batch only if UDX packets were in it (or when its timer, a stream command or a relayed
        packet asks), instead of after every batch. Costs one call per UDX packet; saves a core flush
        per batch of DHT messages."""
        if self._shared:
            return
        self._shared = True
        receive = self.core.receive_datagram
        mark = self.reactor.mark

        def udx_packet(data: bytes | memoryview, addr: Addr, now: float) -> None:
            receive(data, addr, now)
            mark(self)

        self.transport.register((UDX_FIRST_BYTE,), udx_packet)
        self.transport.on_batch_end = self.reactor.flush_dirty

    def create_stream(self, local_id: int | None = None, *, seq: int = 0, firewall: bool = True) -> UDXStream:
        """Create a stream with local id ``local_id`` (u32, allocated when None).

        With ``firewall=False`` packets that arrive before :meth:`UDXStream.connect` are accepted and
        ``stream.on_preconnect(addr)`` is called for each new source (hyperdht's firewall hook).

        Raises:
            LocalProtocolError: the id is in use or out of range.
        """
        if self._closed:
            raise StreamClosed("socket closed")
        sid = self.core.create_stream(local_id, seq=seq, firewall=firewall)
        stream = UDXStream(self, sid)
        self._streams[sid] = stream
        return stream

    def has_stream(self, sid: int) -> bool:
        """True if a stream with local id ``sid`` (u32) was created on this socket and is still known."""
        return sid in self._streams

    def set_test_loss(self, rng: random.Random, rate: float) -> None:
        """Testing aid: drop this fraction of received and of sent datagrams (0 disables)."""
        self.transport.set_test_loss(rng, rate)

    def send_datagram(self, data: bytes, addr: Addr, *, ttl: int | None = None) -> None:
        """Send a raw datagram on this socket (a holepunch probe, the DHT sharing it); ``ttl`` as
        :meth:`DatagramSocket.send`."""
        self.transport.send(data, addr, ttl=ttl)

    def send_datagrams(self, items: list[tuple[bytes, Addr]]) -> None:
        """Send raw datagrams ``(data, (host, port))`` in order."""
        self.transport.send_many(items)

    def receive(self, data: bytes, addr: Addr) -> None:
        """Feed one UDX packet that arrived on this socket but went elsewhere first (a packet that
        opened a reserved stream); the core is flushed on the next loop turn."""
        self.core.receive_datagram(data, addr, self.loop.time())
        self.schedule_flush()

    def relay_into(self, other: UDXSocket) -> None:
        """Packets that streams of this socket relay (:meth:`UDXStream.relay_to`) leave through
        ``other``: flush ``other`` after every flush of this socket. Idempotent."""
        if other is not self:
            self._relay_into.add(other)

    def schedule_flush(self) -> None:
        """Send what the core has queued on the next loop turn (once, however often it is called)."""
        if not self._closed:
            self.reactor.flush_soon(self)

    def flush_now(self) -> None:
        """Hand out the core's events and send what it queued, now."""
        if not self._closed:
            self.reactor.flush_now(self)

    def timer_changed(self) -> None:
        """Re-arm the reactor's timer after a command that moved a stream's deadline."""
        if not self._closed:
            self.reactor.timer_changed(self)

    def close(self) -> None:
        """Destroy every stream and close the socket."""
        if self._closed:
            return
        for stream in list(self._streams.values()):
            stream.destroy()
        self.flush()
        self._closed = True
        self.reactor.detach(self)
        self.transport.close()
        if self._own_reactor:
            self.reactor.close()

    async def __aenter__(self) -> UDXSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reactor participant

    def get_timer(self) -> float | None:
        """The UDX core's next deadline (loop seconds), or None."""
        return self.core.get_timer()

    def handle_timer(self, now: float) -> None:
        """Run the UDX core's due timers."""
        self.core.handle_timer(now)

    def flush(self) -> None:
        """Hand out the core's events, send what it queued, and flush the sockets we relay into."""
        self._dispatch()
        out = self.core.datagrams_to_send(self.loop.time())
        if out:
            self.transport.send_many(out)
        self._dispatch()
        for other in self._relay_into:
            other.schedule_flush()

    # ---------------------------------------------------------------- plumbing

    def _on_batch_end(self) -> None:
        self.reactor.batch_done(self)

    def _on_other(self, data: bytes | memoryview, addr: Addr, now: float) -> None:
        callback = self.on_datagram
        if callback is not None:
            try:
                callback(bytes(data), addr)
            except Exception:  # a broken consumer must not stall the streams
                log.exception("on_datagram callback failed")

    def _dispatch(self) -> None:
        core = self.core
        streams = self._streams
        while (ev := core.next_event()) is not None:
            if isinstance(ev, StreamData):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_data(ev.data)
            elif isinstance(ev, DatagramReceived):
                self._on_other(ev.data, ev.addr, 0.0)
            elif isinstance(ev, StreamWritable):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_writable()
            elif isinstance(ev, StreamEnd):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_end()
            elif isinstance(ev, StreamTerminated):
                s = streams.pop(ev.stream_id, None)
                log.debug("stream %d closed: %r", ev.stream_id, ev.error)
                if s is not None:
                    s._on_closed(ev.error)
            elif isinstance(ev, MessageReceived):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_message(ev.data)
            elif isinstance(ev, RemoteChanged):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_remote_changed()
            elif isinstance(ev, RemoteAddress):
                s = streams.get(ev.stream_id)
                if s is not None and s.on_remote_address is not None:
                    try:
                        s.on_remote_address(ev.addr)
                    except Exception:
                        log.exception("on_remote_address callback failed")
            elif isinstance(ev, PreConnectPacket):
                s = streams.get(ev.stream_id)
                if s is not None and s.on_preconnect is not None:
                    try:
                        s.on_preconnect(ev.addr)
                    except Exception:
                        log.exception("on_preconnect callback failed")


def splice(a: UDXStream, b: UDXStream, *, limiters: tuple[RelayLimiter | None, RelayLimiter | None] = (None, None)) -> None:
    """Relay two connected streams into each other (a blind relay's link, blind-relay ``pair``): what
    ``a``'s peer sends leaves to ``b``'s peer and back, untouched but for the stream id. ``limiters``
    bound the rate of each direction (``a`` -> ``b``, ``b`` -> ``a``).

    Raises:
        LocalProtocolError: a stream is not connected or already relays. StreamClosed: one is closed.
    """
    a.relay_to(b, limiter=limiters[0])
    b.relay_to(a, limiter=limiters[1])


class UDXStream:
    """One UDX stream with asyncio stream semantics (the raw stream secret-stream wraps).

    Reading: :meth:`read`, :meth:`readexactly`, :meth:`at_eof`. Writing: :meth:`write` then
    ``await`` :meth:`drain` (waits while more than the high-water mark is unacknowledged, so memory
    stays bounded), :meth:`write_eof` (half-close, END). :meth:`close` ends the stream (and resets it
    with DESTROY if the peer does not end within ``CLOSE_LINGER`` seconds); :meth:`destroy` resets it now.
    Errors: :class:`~peerdht.errors.StreamReset` when the peer destroyed the stream or it timed out,
    :class:`~peerdht.errors.StreamClosed` when used after close.
    """

    def __init__(self, socket: UDXSocket, stream_id: int, read_limit: int = DEFAULT_RECV_WINDOW) -> None:
        self.socket = socket
        self.id = stream_id
        self.remote_id: int | None = None
        self.remote_addr: Addr | None = None
        self._core = socket.core
        self._loop = socket.loop
        self._chunks: deque[bytes] = deque()
        self._head_off = 0
        self._size = 0
        self._eof = False
        self._error: StreamError | None = None
        self._closed = False
        self._closing = False
        self._eof_sent = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._closed_fut: asyncio.Future[None] = self._loop.create_future()
        self._messages: asyncio.Queue[bytes] = asyncio.Queue()
        self._remote_changed: asyncio.Future[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self.on_preconnect: Callable[[Addr], None] | None = None
        """Called with the source address of packets that arrive before connect (``firewall=False``)."""
        self.on_remote_address: Callable[[Addr], None] | None = None
        """Called with each new source address of a stream watched with :meth:`watch_remote_address`."""
        self._core.set_manual_window(stream_id)

    async def connect(self, remote_id: int, addr: Addr, *, ack: int | None = None) -> None:
        """Connect to stream ``remote_id`` at ``addr`` (udx-native ``stream.connect``)."""
        self.connect_nowait(remote_id, addr, ack=ack)

    def connect_nowait(self, remote_id: int, addr: Addr, *, ack: int | None = None) -> None:
        """:meth:`connect` without awaiting (it never waits): for code that opens streams from a callback.

        Raises:
            LocalProtocolError: already connected. StreamClosed: the stream is closed.
        """
        self._check()
        self._core.connect(self.id, remote_id, addr, ack=ack)
        self.remote_id = remote_id
        self.remote_addr = addr
        self.socket.schedule_flush()

    async def change_remote(self, remote_id: int, addr: Addr, *, resend: bool = False) -> None:
        """Move the stream to a new remote; returns once data sent before the move is acknowledged.
        ``resend``: retransmit what is in flight on the new path at once (the old one may be gone)."""
        self._check()
        self._remote_changed = self._loop.create_future()
        self._core.change_remote(self.id, remote_id, addr, resend=resend)
        self.remote_id = remote_id
        self.remote_addr = addr
        self.socket.flush_now()
        await self._remote_changed

    def send_progress(self) -> tuple[int, int]:
        """``(seq, acked)``: the next sequence number this stream sends and the peer's cumulative
        acknowledgement (every packet below it arrived), both unwrapped counts of packets."""
        st = self._core.stream_stats(self.id)
        return int(st["seq"]), int(st["acked"])

    def watch_remote_address(self, callback: Callable[[Addr], None]) -> None:
        """Call ``callback(addr)`` when packets for this stream come from a new address (the peer
        moved to another path, e.g. relay -> direct; see :meth:`UDXSocketCore.watch_remote_address`)."""
        self._check()
        self.on_remote_address = callback
        self._core.watch_remote_address(self.id)

    def relay_to(self, other: UDXStream, *, limiter: RelayLimiter | None = None) -> None:
        """Forward every packet this stream receives to ``other``'s remote, untouched but for the
        stream id (udx-native ``stream.relayTo``; see :meth:`UDXSocketCore.relay_to`). Both streams
        must be connected; call it both ways to splice two streams. ``limiter`` bounds the rate.

        Raises:
            LocalProtocolError: not connected or already relaying. StreamClosed: a stream is closed.
        """
        self._check()
        self._core.relay_to(self.id, other.socket.core, other.id, limiter=limiter)
        self.socket.relay_into(other.socket)

    def set_keepalive(self, interval: float, *, timeout: float = 0.0) -> None:
        """Send a HEARTBEAT after ``interval`` seconds without traffic either way (0 disables;
        udx-native ``setKeepalive``); with ``timeout`` (seconds, 0 disables) the stream fails with
        :class:`~peerdht.errors.StreamTimeout` once nothing arrived from the peer for that long, also
        when both sides are half-closed (see :meth:`UDXSocketCore.set_keepalive`)."""
        self._check()
        self._core.set_keepalive(self.id, interval, self._loop.time(), timeout=timeout)
        self.socket.timer_changed()

    # ---------------------------------------------------------------- reading

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes as soon as any are available (all until EOF when ``n < 0``); b"" at EOF.

        Raises:
            StreamReset: the stream was destroyed by the peer or timed out.
        """
        if n == 0:
            return b""
        if n < 0:
            chunks: list[bytes] = []
            while True:
                chunk = await self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        while not self._size:
            if self._error is not None:
                raise self._error
            if self._eof or self._closed:
                return b""
            await self._wait_read()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes.

        Raises:
            asyncio.IncompleteReadError: EOF came first.
            StreamReset: the stream was destroyed by the peer or timed out.
        """
        while self._size < n:
            if self._error is not None:
                raise self._error
            if self._eof or self._closed:
                raise asyncio.IncompleteReadError(self._take(self._size), n)
            await self._wait_read()
        return self._take(n)

    def at_eof(self) -> bool:
        """True when the peer ended the stream and the buffer is empty."""
        return (self._eof or self._closed) and not self._size

    def _take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes (whole chunks are handed out without copying)."""
        chunks = self._chunks
        parts: list[bytes] = []
        want = n
        while want and chunks:
            head = chunks[0]
            off = self._head_off
            avail = len(head) - off
            if avail <= want:
                parts.append(head if off == 0 else head[off:])
                chunks.popleft()
                self._head_off = 0
                want -= avail
            else:
                parts.append(head[off : off + want])
                self._head_off = off + want
                want = 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._size -= len(data)
        self._consumed(len(data))
        return data

    async def _wait_read(self) -> None:
        fut = self._read_waiter = self._loop.create_future()
        try:
            await fut
        finally:
            self._read_waiter = None

    def _consumed(self, n: int) -> None:
        if n and not self._closed:
            self._core.stream_consumed(self.id, n)
            self.socket.schedule_flush()

    # ---------------------------------------------------------------- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for sending (never blocks; ``await drain()`` for backpressure).

        Raises:
            StreamReset: the stream broke. StreamClosed: after close. LocalProtocolError: after write_eof.
        """
        self._check()
        if self._eof_sent:
            raise LocalProtocolError("write after write_eof")
        if not self._core.send(self.id, data):
            self._paused = True
        self.socket.schedule_flush()

    def writelines(self, data: list[bytes]) -> None:
        """Write several buffers."""
        for d in data:
            self.write(d)

    async def drain(self) -> None:
        """Wait until unacknowledged bytes fall below the high-water mark (256 KiB + send window).

        Raises:
            StreamReset: the stream broke meanwhile.
        """
        while self._paused:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StreamClosed("stream closed")
            fut = self._drain_waiter = self._loop.create_future()
            try:
                await fut
            finally:
                self._drain_waiter = None
        if self._error is not None:
            raise self._error

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after everything written (END)."""
        if self._eof_sent or self._closed:
            return
        self._eof_sent = True
        self._core.end(self.id)
        self.socket.schedule_flush()

    def can_write_eof(self) -> bool:
        """Always True."""
        return True

    def send_message(self, data: bytes) -> None:
        """Send an unordered, unreliable MESSAGE datagram on the stream (udx-native ``stream.trySend``)."""
        self._check()
        self._core.send_message(self.id, data)
        self.socket.schedule_flush()

    async def receive_message(self) -> bytes:
        """The next MESSAGE datagram received on the stream."""
        return await self._messages.get()

    # ---------------------------------------------------------------- closing

    def close(self) -> None:
        """End the stream gracefully: END after pending writes, clean close once the peer ends too;
        DESTROY if the peer has not ended after ``CLOSE_LINGER`` seconds. Idempotent."""
        if self._closed or self._closing:
            return
        self._closing = True
        if self.remote_id is None:  # never connected: nothing to end
            self.destroy()
            return
        self.write_eof()
        self._linger = self._loop.call_later(CLOSE_LINGER, self.destroy)

    def destroy(self) -> None:
        """Reset the stream now (DESTROY to the peer)."""
        if self._closed:
            return
        self._core.destroy(self.id)
        self.socket.flush_now()

    def is_closing(self) -> bool:
        """True after close() or once the stream is gone."""
        return self._closing or self._closed

    async def wait_closed(self) -> None:
        """Wait until the stream is closed (cleanly, reset or destroyed); never raises."""
        await asyncio.shield(self._closed_fut)

    async def __aenter__(self) -> UDXStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed or self._closing:
            raise StreamClosed("stream closed")

    # ---------------------------------------------------------------- events from the socket

    def _wake_reader(self) -> None:
        w = self._read_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_data(self, data: bytes) -> None:
        if self._closing:
            self._core.stream_consumed(self.id, len(data))
            return
        self._chunks.append(data)
        self._size += len(data)
        self._wake_reader()

    def _on_end(self) -> None:
        self._eof = True
        self._wake_reader()

    def _on_writable(self) -> None:
        self._paused = False
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_message(self, data: bytes) -> None:
        self._messages.put_nowait(data)

    def _on_remote_changed(self) -> None:
        f = self._remote_changed
        if f is not None and not f.done():
            f.set_result(None)

    def _on_closed(self, error: StreamError | None) -> None:
        self._closed = True
        if error is not None and self._error is None:
            self._error = error
        if self._linger is not None:
            self._linger.cancel()
        self._paused = False
        self._wake_reader()
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)
        f = self._remote_changed
        if f is not None and not f.done():
            f.set_exception(StreamReset("stream closed before the remote change completed"))
        if not self._closed_fut.done():
            self._closed_fut.set_result(None)
