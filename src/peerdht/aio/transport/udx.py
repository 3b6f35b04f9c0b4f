"""asyncio UDX: one UDP socket driving :class:`peerdht.udx.stream.UDXSocketCore`, streams with asyncio
stream semantics.

Mirrors udx-native's JS API (``lib/udx.js``, ``lib/socket.js``, ``lib/stream.js``)::

    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream = sock.create_stream(local_id)
    await stream.connect(remote_id, (host, port))
    stream.write(b"..."); await stream.drain()
    data = await stream.read(65536)
    stream.write_eof(); stream.close(); await stream.wait_closed()

The socket reads every datagram the kernel has queued in one go, feeds them all to the core and only
then sends what the core produced (one coalesced ACK per batch, data packets in a ``sendto`` loop).
Datagrams that are not UDX for a known stream (dht-rpc, holepunch probes) go to ``on_datagram``.
Raw datagrams (:meth:`UDXSocket.send_datagram`) queued while such a batch is handled leave together
once the batch is done, as libudx sends its queue once per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket as socketlib
import struct
import sys
from collections import deque
from collections.abc import Callable

from peerdht.errors import LocalProtocolError, StreamClosed, StreamError, StreamReset
from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamWritable,
)
from peerdht.udx.events import StreamClosed as StreamClosedEvent
from peerdht.udx.stream import DEFAULT_RECV_WINDOW, RelayLimiter, UDXSocketCore

Addr = tuple[str, int]
log = logging.getLogger(__name__)

SOCKET_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF/SO_SNDBUF requested (bytes; the kernel caps them at rmem_max/wmem_max)."""
_RECV_BATCH = 512
USE_GSO = True
"""Use Linux UDP GSO (send) and GRO (receive) to move up to 64 datagrams per system call."""
_SOL_UDP = 17
_UDP_SEGMENT = 103
_UDP_GRO = 104
_GSO_MAX_SEGMENTS = 64
_GRO_CMSG_SPACE = socketlib.CMSG_SPACE(4)
_U16 = struct.Struct("=H")
CLOSE_LINGER = 3.0
"""Seconds ``close()`` waits for the peer's END before it resets the stream with DESTROY."""


class UDXSocket:
    """A bound UDP socket carrying UDX streams (udx-native ``UDXSocket``). Create with :meth:`bind`.

    Attributes:
        core: the sans-IO core.
        on_datagram: called with ``(data, addr)`` for datagrams that are not UDX packets of a known
            stream (the DHT shares the socket); dropped when None.
        on_batch_end: called (no arguments) once everything read in one go has been handed to
            ``on_datagram``, before the raw datagrams queued meanwhile are sent: a consumer can feed
            its core datagram by datagram and flush it once per batch.
    """

    def __init__(self, sock: socketlib.socket, core: UDXSocketCore | None = None) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self.core = core if core is not None else UDXSocketCore()
        self._streams: dict[int, UDXStream] = {}
        self._pending: deque[tuple[bytes, Addr]] = deque()
        self._writer_on = False
        self._in_io = False  # handling a read/timer batch: raw datagrams wait for its end
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._closed = False
        self._relay_peers: set[UDXSocket] = set()
        self.on_datagram: Callable[[bytes, Addr], None] | None = None
        self.on_batch_end: Callable[[], None] | None = None
        self._family = sock.family
        self._loss_rng: random.Random | None = None
        self._loss = 0.0
        self._gso = sys.platform == "linux" and USE_GSO
        self._gro = False
        if self._gso:
            try:
                sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
                self._gro = True
            except OSError:
                pass
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def bind(cls, host: str = "127.0.0.1", port: int = 0) -> UDXSocket:
        """Bind a UDP socket on ``host``/``port`` (0 = any free port).

        Raises:
            OSError: the address cannot be bound.
        """
        family = socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
        sock = socketlib.socket(family, socketlib.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for opt in (socketlib.SO_RCVBUF, socketlib.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socketlib.SOL_SOCKET, opt, SOCKET_BUFFER)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @property
    def address(self) -> Addr:
        """The bound ``(host, port)``."""
        name = self._sock.getsockname()
        return (name[0], name[1])

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
        self._loss_rng = rng
        self._loss = rate

    def send_datagram(self, data: bytes, addr: Addr) -> None:
        """Send a raw datagram on this socket (for the DHT sharing it).

        Sent at once, or, when called while the socket handles what it read (an ``on_datagram``
        callback), at the end of that batch together with the others.
        """
        self._pending.append((data, addr))
        if not self._in_io:
            self._send_pending()

    def send_datagrams(self, items: list[tuple[bytes, Addr]]) -> None:
        """Send raw datagrams ``(data, (host, port))``; queued to the end of the current batch like
        :meth:`send_datagram`."""
        self._pending.extend(items)
        if not self._in_io:
            self._send_pending()

    def close(self) -> None:
        """Destroy every stream and close the socket."""
        if self._closed:
            return
        for stream in list(self._streams.values()):
            stream.destroy()
        self._flush()
        if self._pending and not self._writer_on:
            self._send_pending()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._sock.fileno())
        if self._writer_on:
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()

    async def __aenter__(self) -> UDXSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing

    def _on_readable(self) -> None:
        now = self._loop.time()
        receive = self.core.receive_datagram
        if self._gro:
            recvmsg = self._sock.recvmsg
            for _ in range(_RECV_BATCH):
                try:
                    data, anc, _flags, addr = recvmsg(65536, _GRO_CMSG_SPACE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue  # e.g. ICMP port unreachable surfacing as ECONNREFUSED
                peer = (addr[0], addr[1])
                if anc and anc[0][1] == _UDP_GRO:
                    seg = int.from_bytes(anc[0][2][:4], sys.byteorder)
                    view = memoryview(data)
                    for k in range(0, len(data), seg):
                        if self._loss and self._lossy():
                            continue
                        receive(view[k : k + seg], peer, now)
                elif not (self._loss and self._lossy()):
                    receive(data, peer, now)
        else:
            recv = self._sock.recvfrom
            for _ in range(_RECV_BATCH):
                try:
                    data, addr = recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                if self._loss and self._lossy():
                    continue
                receive(data, (addr[0], addr[1]), now)
        self._after_io()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self._loop.time())
        self._after_io()

    def schedule_flush(self) -> None:
        """Send what the core has queued on the next loop turn (once, however often it is called)."""
        if not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if not self._closed:
            self._after_io()

    def _after_io(self) -> None:
        outer = self._in_io  # re-entered from a stream callback: the outermost call sends
        self._in_io = True
        try:
            self._dispatch()
            if self.on_batch_end is not None:
                try:
                    self.on_batch_end()
                except Exception:  # a broken consumer must not stall the streams
                    log.exception("on_batch_end callback failed")
            if self._pending and not self._writer_on:  # raw datagrams from on_datagram, together
                self._send_pending()
            self._flush()
            self._dispatch()
        finally:
            self._in_io = outer
        if self._pending and not self._writer_on and not outer:
            self._send_pending()
        self._arm_timer()
        if self._relay_peers:  # packets we relayed leave through other sockets
            for peer in self._relay_peers:
                peer.schedule_flush()

    def _flush(self) -> None:
        out = self.core.datagrams_to_send(self._loop.time())
        if out:
            if self._pending:
                self._pending.extend(out)
            else:
                self._send_list(out)

    def _lossy(self) -> bool:
        rng = self._loss_rng
        return rng is not None and rng.random() < self._loss

    def _send_list(self, out: list[tuple[bytes, Addr]]) -> None:
        if self._loss:
            out = [d for d in out if not self._lossy()]
        sendto = self._sock.sendto
        n = len(out)
        i = 0
        while i < n:
            data, addr = out[i]
            j = i + 1
            if self._gso and j < n:
                # UDP GSO: a run of same-size datagrams to one address (the last may be shorter)
                # leaves in one sendmsg; the kernel splits it (Linux UDP_SEGMENT)
                size = len(data)
                limit = min(n, i + min(_GSO_MAX_SEGMENTS, 65000 // size))
                while j < limit:
                    d, a = out[j]
                    if a != addr or len(d) != size:
                        if a == addr and len(d) < size:
                            j += 1
                        break
                    j += 1
                if j - i > 1:
                    try:
                        self._sock.sendmsg(
                            [d for d, _ in out[i:j]], [(_SOL_UDP, _UDP_SEGMENT, _U16.pack(size))], 0, addr
                        )
                    except (BlockingIOError, InterruptedError):
                        self._pending.extend(out[i:])
                        self._want_writer()
                        return
                    except OSError:
                        self._gso = False  # e.g. no checksum offload on the route: plain sendto from now on
                        j = i + 1
                    else:
                        i = j
                        continue
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._pending.extend(out[i:])
                self._want_writer()
                return
            except OSError:
                pass  # unreachable peer etc.: UDX retransmits or times out
            i += 1

    def _send_pending(self) -> None:
        pending = self._pending
        sendto = self._sock.sendto
        while pending:
            data, addr = pending[0]
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._want_writer()
                return
            except (OSError, ValueError, TypeError, OverflowError):
                pass  # unreachable peer, malformed address from a peer: dropped
            pending.popleft()
        if self._writer_on:
            self._writer_on = False
            self._loop.remove_writer(self._sock.fileno())

    def _want_writer(self) -> None:
        if not self._writer_on and not self._closed:
            self._writer_on = True
            self._loop.add_writer(self._sock.fileno(), self._send_pending)

    def _arm_timer(self) -> None:
        at = self.core.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None and not self._closed:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _dispatch(self) -> None:
        core = self.core
        streams = self._streams
        while (ev := core.next_event()) is not None:
            if isinstance(ev, StreamData):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_data(ev.data)
            elif isinstance(ev, DatagramReceived):
                if self.on_datagram is not None:
                    try:
                        self.on_datagram(ev.data, ev.addr)
                    except Exception:  # a broken consumer must not stall the streams
                        log.exception("on_datagram callback failed")
            elif isinstance(ev, StreamWritable):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_writable()
            elif isinstance(ev, StreamEnd):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s._on_end()
            elif isinstance(ev, StreamClosedEvent):
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
        self._loop = socket._loop
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
        self.socket._after_io()
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
        self._core.relay_to(self.id, other._core, other.id, limiter=limiter)
        if other.socket is not self.socket:
            self.socket._relay_peers.add(other.socket)

    def set_keepalive(self, interval: float, *, timeout: float = 0.0) -> None:
        """Send a HEARTBEAT after ``interval`` seconds without traffic either way (0 disables;
        udx-native ``setKeepalive``); with ``timeout`` (seconds, 0 disables) the stream fails with
        :class:`~peerdht.errors.StreamTimeout` once nothing arrived from the peer for that long, also
        when both sides are half-closed (see :meth:`UDXSocketCore.set_keepalive`)."""
        self._check()
        self._core.set_keepalive(self.id, interval, self._loop.time(), timeout=timeout)
        self.socket._arm_timer()

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
        self.socket._after_io()

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
