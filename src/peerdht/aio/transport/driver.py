"""Run a sans-IO datagram core on asyncio UDP sockets.

A core has aioquic's shape: ``receive_datagram(data, addr, now)``, ``handle_timer(now)``,
``datagrams_to_send(now)``, ``get_timer()`` and ``next_event()``. The driver feeds it datagrams and
timer expiries, sends what it queues and hands its events to a callback. Time given to the core is
``loop.time()`` (seconds, monotonic).

A core that owns several sockets (dht-rpc binds a server and a client socket) receives
``receive_datagram(data, addr, now, socket=i)`` and returns ``(data, addr, i)`` triples from
``datagrams_to_send``.

Plain UDP sockets are read in batches (:class:`_UDPTransport`): asyncio's datagram transport reads one
datagram per event-loop iteration (one ``epoll_wait`` each); we read what the kernel holds, up to
:data:`MAX_BATCH`, feed it all to the core and flush its output once. Python has no ``recvmmsg``; this
is the batching the loop allows. What the core queues in one flush is handed to the socket as one list
(on a shared UDX socket it leaves at the end of the read batch being handled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket as socketlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Address = tuple[str, int]

MAX_BATCH = 64
"""Datagrams read per readiness event before the core's output is flushed."""


class DatagramCore(Protocol):
    """The sans-IO core shape the driver runs."""

    def receive_datagram(
        self, data: bytes, addr: Address, now: float, /, *args: Any, **kwargs: Any
    ) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[Any]: ...

    def get_timer(self) -> float | None: ...

    def next_event(self) -> object | None: ...


class _UDPTransport:
    """A non-blocking UDP socket driven by ``add_reader``: reads in batches, sends at once (a queue and
    ``add_writer`` only when the kernel buffer is full). The parts of a DatagramTransport the driver uses."""

    def __init__(self, driver: DatagramDriver, index: int, sock: socketlib.socket) -> None:
        self.driver = driver
        self.index = index
        self.sock = sock
        self.loop = driver.loop
        self.closed = False
        self._backlog: deque[tuple[bytes, Address]] = deque()
        self.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        batch: list[tuple[bytes, Address]] = []
        recvfrom = self.sock.recvfrom
        for _ in range(MAX_BATCH):
            try:
                data, addr = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors (port unreachable) on some systems: requests time out
                log.debug("socket %d error: %s", self.index, exc)
                break
            batch.append((data, (addr[0], addr[1])))
        if batch:
            self.driver._on_batch(batch, self.index)

    def sendto(self, data: bytes, addr: Address) -> None:
        self.send_many([(data, addr)])

    def send_many(self, items: list[tuple[bytes, Address]]) -> None:
        """Send ``items`` (``(data, addr)``) in order; what does not fit in the socket buffer waits for
        writability. A datagram the kernel refuses (unreachable, malformed address) is dropped."""
        if self.closed:
            return
        if self._backlog:
            self._backlog.extend(items)
            return
        sendto = self.sock.sendto
        for i, (data, addr) in enumerate(items):
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._backlog.extend(items[i:])
                self.loop.add_writer(self.sock.fileno(), self._on_writable)
                return
            except (OSError, ValueError, TypeError, OverflowError) as exc:
                log.debug("sendto %s failed: %s", addr, exc)

    def _on_writable(self) -> None:
        while self._backlog:
            data, addr = self._backlog[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, ValueError, TypeError, OverflowError) as exc:
                log.debug("sendto %s failed: %s", addr, exc)
            self._backlog.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return self.sock.getsockname() if name == "sockname" else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            fd = self.sock.fileno()
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
            self.sock.close()


class _UDXTransport:
    """Adapts a :class:`peerdht.aio.transport.udx.UDXSocket` to the bits of a DatagramTransport the driver uses."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.closed = False

    def sendto(self, data: bytes, addr: Address) -> None:
        self.sock.send_datagram(data, addr)

    def send_many(self, items: list[tuple[bytes, Address]]) -> None:
        self.sock.send_datagrams(items)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return self.sock.address if name == "sockname" else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class DatagramDriver:
    """Drives one sans-IO core on one or more UDP sockets.

    Create with :meth:`create`; call :meth:`kick` after queuing a command on the core.
    """

    def __init__(self, core: Any, on_event: Callable[[object], None], multi: bool) -> None:
        self.core = core
        self.on_event = on_event
        self.multi = multi
        self.loop = asyncio.get_running_loop()
        self.transports: list[asyncio.DatagramTransport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._in_step = False
        self._unflushed = False  # datagrams from a shared UDX socket fed to the core, kick still to do
        self.udx_sockets: list[Any] = []
        #: Called with ``(data, addr, socket_index)`` for datagrams on shared UDX sockets that are
        #: not dht-rpc messages (1-byte holepunch probes, UDX packets for streams not yet connected).
        self.on_other: Callable[[bytes, Address, int], None] | None = None

    @classmethod
    async def create_udx(
        cls,
        core: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: Callable[[object], None] | None = None,
        *,
        sockets: int = 1,
    ) -> DatagramDriver:
        """Like :meth:`create`, but each socket is a :class:`peerdht.aio.transport.udx.UDXSocket` that the
        DHT shares with UDX streams, as hyperdht does: datagrams starting with 0x03/0x13 go to the
        core, UDX packets of known streams to their stream, everything else to :attr:`on_other`.

        Raises:
            OSError: the address cannot be bound.
        """
        from peerdht.aio.transport.udx import UDXSocket

        driver = cls(core, on_event or (lambda ev: None), sockets > 1)
        try:
            for i in range(sockets):
                sock = await UDXSocket.bind(host, port if i == 0 else 0)
                sock.on_datagram = lambda data, addr, i=i: driver._on_shared(data, addr, i)
                sock.on_batch_end = driver._on_batch_end
                driver.udx_sockets.append(sock)
                driver.transports.append(_UDXTransport(sock))  # type: ignore[arg-type]
        except BaseException:
            driver.close()
            raise
        return driver

    def _on_shared(self, data: bytes, addr: Address, index: int) -> None:
        if data and data[0] in (0x03, 0x13) and len(data) > 1:
            # fed now, flushed once per read batch (_on_batch_end): one core flush for all the replies
            # that arrived together, and their follow-up requests leave together
            self._feed(data, addr, index)
            self._unflushed = True
        elif self.on_other is not None and not self._closed:
            try:
                self.on_other(data, addr, index)
            except Exception:
                log.exception("on_other raised on a datagram from %s", addr)

    @classmethod
    async def create(
        cls,
        core: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: Callable[[object], None] | None = None,
        *,
        sockets: int = 1,
    ) -> DatagramDriver:
        """Bind ``sockets`` UDP sockets on ``host`` (the first on ``port``, the rest on port 0).

        Raises:
            OSError: the address cannot be bound.
        """
        driver = cls(core, on_event or (lambda ev: None), sockets > 1)
        loop = driver.loop
        family = socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
        try:
            infos = await loop.getaddrinfo(host, port, family=family, type=socketlib.SOCK_DGRAM)
            if not infos:
                raise OSError(f"cannot resolve {host}")
            local = infos[0][4]
            for i in range(sockets):
                sock = socketlib.socket(family, socketlib.SOCK_DGRAM)
                try:
                    sock.setblocking(False)
                    sock.bind(local if i == 0 else (local[0], 0, *local[2:]))
                except BaseException:
                    sock.close()
                    raise
                driver.transports.append(_UDPTransport(driver, i, sock))  # type: ignore[arg-type]
        except BaseException:
            driver.close()
            raise
        return driver

    def address(self, index: int = 0) -> Address:
        """The bound (host, port) of socket ``index``."""
        name = self.transports[index].get_extra_info("sockname")
        return (name[0], name[1])

    @property
    def local_address(self) -> Address:
        return self.address(0)

    def now(self) -> float:
        return self.loop.time()

    def kick(self) -> None:
        """Flush queued datagrams and events and re-arm the timer (call after a command)."""
        if self._closed or self._in_step:
            return
        self._in_step = True
        try:
            now = self.loop.time()
            self._flush(now)
        finally:
            self._in_step = False

    def receive(self, data: bytes, addr: Address) -> None:
        """Feed one message that arrived outside the driver's sockets (a WebSocket or data-channel link
        whose ``addr`` is an opaque handle, :mod:`peerdht.web.overlay`)."""
        self._on_datagram(data, addr, 0)

    def _on_batch_end(self) -> None:
        if self._unflushed:
            self._unflushed = False
            self.kick()

    def _on_datagram(self, data: bytes, addr: Address, index: int) -> None:
        self._feed(data, addr, index)
        self.kick()

    def _feed(self, data: bytes, addr: Address, index: int) -> None:
        if self._closed:
            return
        now = self.loop.time()
        try:
            if self.multi:
                self.core.receive_datagram(data, addr, now, socket=index)
            else:
                self.core.receive_datagram(data, addr, now)
        except Exception:  # a core must never raise: this is a bug, but the node must keep going
            log.exception("core raised on a datagram from %s", addr)

    def _on_batch(self, batch: list[tuple[bytes, Address]], index: int, start: int = 0) -> None:
        """Feed a batch of datagrams read from socket ``index``, then flush the core once.

        A datagram that produced events (a peer found, an operation done) has them handed over at once,
        and the rest of the batch waits for the next loop turn: the task waiting on that result runs
        first, as a JS client's ``peer`` listener runs while the reply is handled, instead of after
        every other reply read with it.
        """
        if self._closed:
            return
        now = self.loop.time()
        core = self.core
        multi = self.multi
        n = len(batch)
        i = start
        while i < n:
            data, addr = batch[i]
            i += 1
            try:
                if multi:
                    core.receive_datagram(data, addr, now, socket=index)
                else:
                    core.receive_datagram(data, addr, now)
            except Exception:  # a core must never raise: this is a bug, but the node must keep going
                log.exception("core raised on a datagram from %s", addr)
            if i < n and self._dispatch():
                self.kick()
                self.loop.call_soon(self._on_batch, batch, index, i)
                return
        self.kick()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        now = self.loop.time()
        try:
            self.core.handle_timer(now)
        except Exception:
            log.exception("core raised in handle_timer")
        self.kick()

    def _flush(self, now: float) -> None:
        # Events may queue more work (a callback issuing a command): loop until quiet.
        for _ in range(1000):
            sent = self._send(now)
            got = self._dispatch()
            if not sent and not got:
                break
        self._arm()

    def _send(self, now: float) -> bool:
        out = self.core.datagrams_to_send(now)
        if not out:
            return False
        if self.multi:
            groups: dict[int, list[tuple[bytes, Address]]] = {}
            for data, addr, index in out:
                groups.setdefault(index, []).append((data, addr))
        else:
            groups = {0: out}
        for index, items in groups.items():
            transport = self.transports[index] if index < len(self.transports) else None
            if transport is None or transport.is_closing():
                continue
            if isinstance(transport, (_UDPTransport, _UDXTransport)):
                transport.send_many(items)
                continue
            for data, addr in items:  # another transport (web links): one message at a time
                try:
                    transport.sendto(data, addr)
                except (OSError, ValueError, TypeError) as exc:  # unreachable or malformed address
                    log.debug("sendto %s failed: %s", addr, exc)
        return True

    def _dispatch(self) -> bool:
        got = False
        while (event := self.core.next_event()) is not None:
            got = True
            try:
                self.on_event(event)
            except Exception:
                log.exception("event handler raised on %r", event)
        return got

    def _arm(self) -> None:
        when = self.core.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if when is not None and not self._closed:
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def close(self) -> None:
        """Close the sockets and cancel the timer. Idempotent."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in self.transports:
            with contextlib.suppress(Exception):
                transport.close()
