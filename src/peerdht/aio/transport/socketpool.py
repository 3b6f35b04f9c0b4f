"""Raw UDX streams on the DHT's own sockets (hyperdht ``dht.createRawStream`` + its firewall hook).

A connect or an accepted handshake reserves a UDX stream id before it knows where the peer will
send from. Whichever comes first opens the stream: our own decision to connect to an address
(:meth:`RawStreams.connect`), or the first UDX packet the peer sends to that id on either DHT
socket (udx-native's ``firewall(socket, port, host)`` hook, which hyperdht uses to learn the
peer's address). 1-byte holepunch probes go to :attr:`RawStreams.probe_listeners`; other datagrams are
counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket as socketlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from peerdht.errors import LocalProtocolError
from peerdht.holepunch.strategy import RandomPunchLimit

if TYPE_CHECKING:
    from peerdht.aio.transport.driver import DatagramDriver
    from peerdht.aio.transport.udx import UDXSocket, UDXStream

Address = tuple[str, int]

_UDX_HEADER = 20
EXTRA_BASE = 100
"""Indices of extra (birthday) sockets start here; 0 and 1 are the DHT's server and client sockets."""


def local_addresses(bound: Address) -> tuple[Address, ...]:
    """Our LAN address(es) with the port of the socket bound at ``bound`` (holepuncher.js
    ``localAddresses``): the bound host itself, or, bound to any address, the source address of
    the default route (found with a connected UDP socket; nothing is sent)."""
    host, port = bound
    if host not in ("0.0.0.0", ""):
        return ((host, port),)
    probe = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM)
    try:
        probe.connect(("203.0.113.1", 9))
        ip = probe.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    finally:
        probe.close()
    return ((ip, port),)


class _Pending:
    __slots__ = ("early", "future", "remote_id")

    def __init__(self, future: asyncio.Future[UDXStream]) -> None:
        self.future = future
        self.remote_id: int | None = None
        self.early: list[tuple[bytes, Address, int]] = []


class RawStreams:
    """Reserved UDX stream ids on a DHT's shared sockets.

    Attributes:
        stats: ``probes`` (1-byte datagrams), ``early`` (streams opened by the peer's first packet),
            ``unknown`` (other dropped datagrams).
    """

    def __init__(self, driver: DatagramDriver) -> None:
        self._driver = driver
        self._pending: dict[int, _Pending] = {}
        self.stats = {"probes": 0, "early": 0, "unknown": 0}
        self._extra: dict[int, UDXSocket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: One punch involving a RANDOM NAT at a time for the whole node (shared by its punch sessions).
        self.random_punch_limit = RandomPunchLimit()
        #: The socket index each opened stream runs on, by stream id.
        self.sockets: dict[int, int] = {}
        self._next_extra = EXTRA_BASE
        #: Called with ``(addr, socket)`` for every 1-byte probe (a server echoes them).
        self.probe_listeners: list[Callable[[Address, int], None]] = []
        driver.set_other_handler(self._on_other)

    def send_probe(self, socket: int, addr: Address, ttl: int | None = None) -> None:
        """Send a 1-byte holepunch probe from socket ``socket`` to ``addr``; ``ttl`` (e.g. 5) lets
        it open our NAT mapping without reaching the peer's NAT (holepuncher.js ``HOLEPUNCH_TTL``)."""
        if not 0 < addr[1] < 65536:
            return
        self._sock(socket).send_datagram(b"\x00", addr, ttl=ttl)

    async def add_socket(self) -> int:
        """Bind one more UDP socket (a birthday socket) next to the DHT's; returns its index.

        Raises:
            OSError: it cannot be bound.
        """
        host = self._driver.udx_sockets[0].address[0]
        sock = self._driver.add_udx_socket(host)
        index = self._next_extra
        self._next_extra += 1
        sock.on_datagram = lambda data, addr: self._on_other(data, addr, index)
        self._extra[index] = sock
        return index

    def close_socket(self, index: int, after: UDXStream | None = None) -> None:
        """Close extra socket ``index`` now, or once stream ``after`` (which runs on it) closed."""
        sock = self._extra.get(index)
        if sock is None:
            return
        if after is None:
            del self._extra[index]
            sock.close()
            return

        async def later() -> None:
            with contextlib.suppress(Exception):
                await after.wait_closed()
            self.close_socket(index)

        task = asyncio.ensure_future(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close_all(self) -> None:
        """Close every extra socket (the DHT is being destroyed)."""
        for index in list(self._extra):
            self.close_socket(index)

    def _sock(self, index: int) -> UDXSocket:
        if index >= EXTRA_BASE:
            return self._extra[index]
        s: UDXSocket = self._driver.udx_sockets[index]
        return s

    def index_of(self, sock: UDXSocket) -> int | None:
        """The index of one of the DHT's sockets (0 server, 1 client) or of an extra socket."""
        for i, s in enumerate(self._driver.udx_sockets):
            if s is sock:
                return i
        return next((i for i, s in self._extra.items() if s is sock), None)

    def reserve(self) -> int:
        """A fresh, unused u32 stream id, waiting for :meth:`connect` or the peer's first packet."""
        socks = self._driver.udx_sockets
        while True:  # O(sockets) per try, not O(streams): a handshake flood must not cost quadratic time
            sid = int.from_bytes(os.urandom(4), "little")
            if sid and sid not in self._pending and not any(s.has_stream(sid) for s in socks):
                break
        self._pending[sid] = _Pending(asyncio.get_running_loop().create_future())
        return sid

    def expect(self, sid: int, remote_id: int) -> None:
        """The peer's UDX id is known: a packet from it may now open the stream."""
        p = self._pending.get(sid)
        if p is not None:
            p.remote_id = remote_id
            early, p.early = p.early, []
            for data, addr, index in early:
                self._on_other(data, addr, index)

    def release(self, sid: int) -> None:
        """Give up a reserved id (the connect failed)."""
        p = self._pending.pop(sid, None)
        if p is not None and not p.future.done():
            p.future.cancel()

    def opened(self, sid: int) -> UDXStream | None:
        """The stream if the peer's first packet already opened it."""
        p = self._pending.get(sid)
        if p is not None and p.future.done() and not p.future.cancelled():
            return p.future.result()
        return None

    async def wait(self, sid: int, timeout: float) -> UDXStream:
        """Wait up to ``timeout`` seconds for the peer to open stream ``sid``.

        Raises:
            TimeoutError: it did not.
        """
        p = self._pending.get(sid)
        if p is None:
            raise LocalProtocolError("stream id not reserved")
        return await asyncio.wait_for(asyncio.shield(p.future), timeout)

    def connect(self, sid: int, socket: int, remote_id: int, addr: Address) -> UDXStream:
        """Open reserved stream ``sid`` on DHT socket ``socket`` towards ``remote_id`` at ``addr``
        (returns the already opened stream if the peer was first)."""
        p = self._pending.get(sid)
        if p is None:
            raise LocalProtocolError("stream id not reserved")
        if p.future.done() and not p.future.cancelled():
            return p.future.result()
        stream = self._open(sid, socket, remote_id, addr)
        p.future.set_result(stream)
        return stream

    def adopt(self, sid: int, stream: UDXStream) -> bool:
        """Open reserved stream ``sid`` with a stream made elsewhere (spliced through a blind relay);
        False if the id is no longer reserved or already opened."""
        p = self._pending.get(sid)
        if p is None or p.future.done():
            return False
        p.future.set_result(stream)
        return True

    def forget(self, sid: int) -> None:
        """Drop the bookkeeping of an opened stream."""
        self._pending.pop(sid, None)
        self.sockets.pop(sid, None)

    def _open(self, sid: int, socket: int, remote_id: int, addr: Address) -> UDXStream:
        sock = self._sock(socket)
        self.sockets[sid] = socket
        stream = sock.create_stream(sid)
        stream.connect_nowait(remote_id, addr)
        return stream

    def _on_other(self, data: bytes, addr: Address, index: int) -> None:
        if len(data) == 1:
            self.stats["probes"] += 1
            for cb in list(self.probe_listeners):
                cb(addr, index)
            return
        if len(data) >= _UDX_HEADER and data[0] == 0xFF and data[1] == 1:
            sid = int.from_bytes(data[4:8], "little")
            p = self._pending.get(sid)
            if p is not None and p.remote_id is None and len(p.early) < 32:
                p.early.append((bytes(data), addr, index))  # before we know the peer's id
                return
            if p is not None and p.remote_id is not None and not p.future.done():
                stream = self._open(sid, index, p.remote_id, addr)
                p.future.set_result(stream)
                self.stats["early"] += 1
                self._sock(index).receive(bytes(data), addr)
                return
        self.stats["unknown"] += 1
