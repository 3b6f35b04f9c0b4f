"""One bound UDP socket: batched reads, GSO sends, one backlog, and a demultiplexer keyed by first byte.

Every socket of peerdht is a :class:`DatagramSocket`: the DHT's (dht-rpc messages start with 0x03/0x13,
UDX packets with 0xFF, 1-byte holepunch probes anything), the birthday sockets of a punch, a standalone
:class:`~peerdht.aio.transport.udx.UDXSocket` and a Mainline node's (whose core takes every byte). A
consumer registers a handler for the first bytes it owns (:meth:`DatagramSocket.register`); the rest goes
to the default handler (:meth:`DatagramSocket.set_default`). This is where libudx
(``udx_socket_t``'s receive callback in ``src/udx.c``) and hyperdht (``lib/socket-pool.js`` and dht-rpc's
``io.js``, which peek at the first byte) split one socket between UDX and the DHT.

Reading: when the socket is readable, up to ``batch`` datagrams the kernel holds are read and handed to
their handler at once (Python has no ``recvmmsg``; with Linux UDP GRO one ``recvmsg`` brings up to 64
same-size datagrams from one peer, split here), then ``on_batch_end`` runs once: the consumers flush
their cores there, so the replies to one batch leave together. A handler that returns a true value ends
the batch early (after the current ``recvmsg``); what is left stays in the kernel and is read on the next
loop turn, so a task woken by that datagram runs first.

Sending: :meth:`DatagramSocket.send_many` sends a list in order, runs of same-size datagrams to one address
in one ``sendmsg`` (Linux UDP GSO); what the kernel buffer cannot take waits in one backlog for
writability. A datagram the kernel refuses (unreachable peer, malformed address from a peer) is dropped.
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
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[Any, Address, float], object]
"""``handler(data, addr, now)``: ``data`` is ``bytes`` or a ``memoryview`` (a GRO segment), ``now`` the
loop time (seconds) of the read. A true result ends the read batch early."""

SOCKET_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF/SO_SNDBUF requested for UDX sockets (bytes; the kernel caps them at rmem_max/wmem_max)."""
USE_GSO = True
"""Use Linux UDP GSO (send) and GRO (receive) to move up to 64 datagrams per system call."""
_SOL_UDP = 17
_UDP_SEGMENT = 103
_UDP_GRO = 104
_GSO_MAX_SEGMENTS = 64
_GRO_CMSG_SPACE = socketlib.CMSG_SPACE(4)
_U16 = struct.Struct("=H")
_SEND_ERRORS = (OSError, ValueError, TypeError, OverflowError)


def bind_udp(host: str, port: int, *, buffers: int | None = None) -> socketlib.socket:
    """A non-blocking UDP socket bound to ``(host, port)`` (port 0: any free port); ``buffers`` (bytes)
    asks for that much kernel send and receive buffer.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
    sock = socketlib.socket(family, socketlib.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if buffers:
            for opt in (socketlib.SO_RCVBUF, socketlib.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socketlib.SOL_SOCKET, opt, buffers)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _drop(data: Any, addr: Address, now: float) -> None:
    return None


def _nothing() -> None:
    return None


class DatagramSocket:
    """A bound, non-blocking UDP socket read with ``add_reader`` and split by first byte.

    Args:
        sock: a bound non-blocking UDP socket; closed by :meth:`close`.
        on_batch_end: called (no arguments) after each read batch has been handed to the handlers
            (a public attribute: the consumer that flushes may set it after construction).
        batch: datagrams (``recvmsg`` calls) read per readiness event at most.
        gro: receive with Linux UDP GRO when available (UDX streams: many same-size packets).
    """

    def __init__(
        self,
        sock: socketlib.socket,
        on_batch_end: Callable[[], None] | None = None,
        *,
        batch: int = 512,
        gro: bool = False,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self.on_batch_end: Callable[[], None] = on_batch_end or _nothing
        self._batch = batch
        self._default: Handler = _drop
        self._table: list[Handler] = [_drop] * 256
        self._own: set[int] = set()
        self._backlog: deque[tuple[Any, Address]] = deque()
        self._writer_on = False
        self._closed = False
        self._loss_rng: random.Random | None = None
        self._loss = 0.0
        self._gso = sys.platform == "linux" and USE_GSO
        self._gro = False
        if gro and self._gso:
            try:
                sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
                self._gro = True
            except OSError:
                pass
        self.loop.add_reader(self._fd, self._on_readable)

    # ---------------------------------------------------------------- demultiplexing

    def register(self, first_bytes: Iterable[int], handler: Handler) -> None:
        """Hand datagrams whose first byte is in ``first_bytes`` (each 0-255) to ``handler``."""
        for b in first_bytes:
            self._own.add(b)
            self._table[b] = handler

    def set_default(self, handler: Handler) -> None:
        """Hand every datagram no :meth:`register` ed handler owns (and empty ones) to ``handler``."""
        self._default = handler
        for b in range(256):
            if b not in self._own:
                self._table[b] = handler

    def handler(self, first_byte: int) -> Handler:
        """The handler datagrams starting with ``first_byte`` (0-255) go to now."""
        return self._table[first_byte]

    # ---------------------------------------------------------------- state

    @property
    def address(self) -> Address:
        """The bound ``(host, port)``."""
        name = self._sock.getsockname()
        return (name[0], name[1])

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def set_test_loss(self, rng: random.Random, rate: float) -> None:
        """Testing aid: drop this fraction of received and of sent datagrams (0 disables)."""
        self._loss_rng = rng
        self._loss = rate

    def close(self) -> None:
        """Stop reading, drop the backlog and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.loop.remove_reader(self._fd)
        if self._writer_on:
            self.loop.remove_writer(self._fd)
        self._backlog.clear()
        self._sock.close()

    # ---------------------------------------------------------------- reading

    def _on_readable(self) -> None:
        now = self.loop.time()
        table = self._table
        default = self._default
        lossy = self._loss
        paused = False
        if self._gro:
            recvmsg = self._sock.recvmsg
            for _ in range(self._batch):
                try:
                    data, anc, _flags, addr = recvmsg(65536, _GRO_CMSG_SPACE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    if self._closed:  # a handler closed the socket
                        break
                    continue  # e.g. ICMP port unreachable surfacing as ECONNREFUSED
                peer = (addr[0], addr[1])
                if anc and anc[0][1] == _UDP_GRO:
                    seg = int.from_bytes(anc[0][2][:4], sys.byteorder)
                    view = memoryview(data)
                    for k in range(0, len(data), seg):
                        if lossy and self._lossy():
                            continue
                        if table[data[k]](view[k : k + seg], peer, now):
                            paused = True
                elif not (lossy and self._lossy()) and (table[data[0]] if data else default)(data, peer, now):
                    paused = True
                if paused:
                    break
        else:
            recvfrom = self._sock.recvfrom
            for _ in range(self._batch):
                try:
                    data, addr = recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    if self._closed:
                        break
                    continue
                if lossy and self._lossy():
                    continue
                if (table[data[0]] if data else default)(data, (addr[0], addr[1]), now):
                    break
        if not self._closed:
            self.on_batch_end()

    def _lossy(self) -> bool:
        rng = self._loss_rng
        return rng is not None and rng.random() < self._loss

    # ---------------------------------------------------------------- sending

    def send(self, data: bytes, addr: Address, *, ttl: int | None = None) -> None:
        """Send one datagram now (after the backlog, if any). ``ttl`` (IPv4 hops, e.g. 5) sends it at
        once with that TTL, so it opens our NAT's mapping without reaching the peer's NAT (hyperdht
        ``holepuncher.js`` ``HOLEPUNCH_TTL``, udx-native ``socket.send(buf, port, host, ttl)``)."""
        if self._closed:
            return
        if ttl is None:
            self.send_many([(data, addr)])
            return
        raw = self._sock
        with contextlib.suppress(*_SEND_ERRORS):
            raw.setsockopt(socketlib.IPPROTO_IP, socketlib.IP_TTL, ttl)
            try:
                raw.sendto(data, addr)
            finally:
                raw.setsockopt(socketlib.IPPROTO_IP, socketlib.IP_TTL, 64)

    def send_many(self, items: list[tuple[Any, Address]]) -> None:
        """Send ``items`` (``(data, (host, port))``) in order; runs of same-size datagrams to one address
        leave in one ``sendmsg`` (GSO). What the kernel buffer cannot take waits for writability."""
        if self._closed or not items:
            return
        if self._loss:
            items = [d for d in items if not self._lossy()]
        if self._backlog:
            self._backlog.extend(items)
            return
        sock = self._sock
        sendto = sock.sendto
        n = len(items)
        i = 0
        while i < n:
            data, addr = items[i]
            j = i + 1
            if j < n and self._gso and items[j][1] == addr:
                # a run of same-size datagrams to one address (the last may be shorter) leaves in one
                # sendmsg; the kernel splits it (Linux UDP_SEGMENT)
                size = len(data)
                limit = min(n, i + min(_GSO_MAX_SEGMENTS, 65000 // max(size, 1)))
                while j < limit:
                    d, a = items[j]
                    if a != addr or len(d) != size:
                        if a == addr and len(d) < size:
                            j += 1
                        break
                    j += 1
                if j - i > 1:
                    try:
                        sock.sendmsg(
                            [d for d, _ in items[i:j]], [(_SOL_UDP, _UDP_SEGMENT, _U16.pack(size))], 0, addr
                        )
                    except (BlockingIOError, InterruptedError):
                        self._wait_writable(items, i)
                        return
                    except _SEND_ERRORS:
                        self._gso = False  # e.g. no checksum offload on the route: plain sendto from now on
                        j = i + 1
                    else:
                        i = j
                        continue
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._wait_writable(items, i)
                return
            except _SEND_ERRORS as exc:
                log.debug("sendto %s failed: %s", addr, exc)
            i += 1

    def _wait_writable(self, items: list[tuple[Any, Address]], start: int) -> None:
        self._backlog.extend(items[start:])
        if not self._writer_on and not self._closed:
            self._writer_on = True
            self.loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        backlog = self._backlog
        sendto = self._sock.sendto
        while backlog:
            data, addr = backlog[0]
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except _SEND_ERRORS as exc:
                log.debug("sendto %s failed: %s", addr, exc)
            backlog.popleft()
        self._writer_on = False
        self.loop.remove_writer(self._fd)
