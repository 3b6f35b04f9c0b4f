"""Run a sans-IO DHT core on UDP sockets: the one driver of a node's sockets.

A core has aioquic's shape: ``receive_datagram(data, addr, now)``, ``handle_timer(now)``,
``datagrams_to_send(now)``, ``get_timer()`` and ``next_event()``. The driver feeds it datagrams and
timer expiries, sends what it queues and hands its events to a callback. Time given to the core is
``loop.time()`` (seconds, monotonic).

A core that owns several sockets (dht-rpc binds a server and a client socket) receives
``receive_datagram(data, addr, now, socket=i)`` and returns ``(data, addr, i)`` triples from
``datagrams_to_send``.

Every socket is a :class:`~peerdht.aio.transport.datagram.DatagramSocket` (batched reads, GSO sends, one
backlog) that splits datagrams by first byte. :meth:`DatagramDriver.create` gives the core every byte
(Mainline, a HyperDHT node that is not connectable). :meth:`DatagramDriver.create_udx` shares each socket
with a :class:`~peerdht.aio.transport.udx.UDXSocket`, as hyperdht does: 0x03/0x13 (dht-rpc) go to the
DHT core, 0xFF (UDX) to the socket's UDX core, everything else to the handler registered with
:meth:`DatagramDriver.set_other_handler` (holepunch probes, UDX packets of streams not made yet). The
driver is the :class:`~peerdht.aio.transport.reactor.Reactor` of all of them: one timer at the earliest
deadline of the DHT core and every UDX core, one flush per read batch.

On a plain socket a datagram that produced events (a peer found, an operation done) has them handed over
at once and ends the read batch: the rest is read on the next loop turn, after the task waiting on that
result ran, as a JS client's ``peer`` listener runs while the reply is handled.
"""

from __future__ import annotations

import contextlib
import logging
import socket as socketlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from peerdht.aio.transport.datagram import SOCKET_BUFFER, DatagramSocket, Handler, bind_udp
from peerdht.aio.transport.reactor import Reactor
from peerdht.aio.transport.udx import RECV_BATCH, UDXSocket

log = logging.getLogger(__name__)

Address = tuple[str, int]

MAX_BATCH = 64
"""Datagrams read per readiness event on a plain (DHT-only) socket before the core is flushed."""
DHT_FIRST_BYTES = (0x03, 0x13)
"""First bytes of dht-rpc messages (request and response, version 3 wire)."""
OtherHandler = Callable[[bytes, Address, int], None]
"""``handler(data, addr, socket_index)`` for what a shared socket's DHT and UDX consumers do not own."""


class DatagramCore(Protocol):
    """The sans-IO core shape the driver runs."""

    def receive_datagram(
        self, data: bytes, addr: Address, now: float, /, *args: Any, **kwargs: Any
    ) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[Any]: ...

    def get_timer(self) -> float | None: ...

    def next_event(self) -> object | None: ...


class MessageTransport(Protocol):
    """A link the core's messages can leave through besides UDP (a web overlay's WebSocket and data-channel
    links, :mod:`peerdht.aio.web.links`): one message per ``sendto(data, handle)``."""

    def sendto(self, data: bytes, addr: Any) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...


class DatagramDriver(Reactor):
    """Drives one sans-IO core on one or more UDP sockets (and the UDX cores sharing them).

    Create with :meth:`create` or :meth:`create_udx`; call :meth:`kick` after queuing a command on the core.

    Attributes:
        udx_sockets: the UDX side of each shared socket (index = the core's socket index); empty for
            :meth:`create`.
    """

    def __init__(self, core: Any, on_event: Callable[[object], None], multi: bool) -> None:
        super().__init__()
        self.core = core
        self.on_event = on_event
        self.multi = multi
        self.transports: list[DatagramSocket | MessageTransport] = []
        self.udx_sockets: list[UDXSocket] = []
        self._in_step = False
        self._other: OtherHandler | None = None

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
        """Like :meth:`create`, but each socket is shared with UDX streams (a
        :class:`~peerdht.aio.transport.udx.UDXSocket`, in :attr:`udx_sockets`), as hyperdht does.

        Raises:
            OSError: the address cannot be bound.
        """
        driver = cls(core, on_event or (lambda ev: None), sockets > 1)
        try:
            for i in range(sockets):
                udx = driver.add_udx_socket(host, port if i == 0 else 0)
                udx.share()
                udx.transport.register(DHT_FIRST_BYTES, driver._shared_handler(i))
                udx.on_datagram = lambda data, addr, i=i: driver._deliver_other(data, addr, i)
                driver.udx_sockets.append(udx)
                driver.transports.append(udx.transport)
        except BaseException:
            driver.close()
            raise
        return driver

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
        """Bind ``sockets`` UDP sockets on ``host`` (the first on ``port``, the rest on port 0) whose every
        datagram goes to the core.

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
                dsock = DatagramSocket(sock, batch=MAX_BATCH)
                dsock.set_default(driver._plain_handler(i))
                dsock.on_batch_end = driver._on_batch_end
                driver.transports.append(dsock)
        except BaseException:
            driver.close()
            raise
        return driver

    def add_udx_socket(self, host: str, port: int = 0) -> UDXSocket:
        """Bind one more socket carrying only UDX streams (a birthday socket of a punch), driven by this
        driver's timer; close it with its ``close()``.

        Raises:
            OSError: it cannot be bound.
        """
        sock = bind_udp(host, port, buffers=SOCKET_BUFFER)
        return UDXSocket(DatagramSocket(sock, batch=RECV_BATCH, gro=True), self)

    def set_other_handler(self, handler: OtherHandler | None) -> OtherHandler | None:
        """Hand datagrams on shared sockets that are neither dht-rpc messages nor UDX packets of a known
        stream (holepunch probes, a stream's packets before it is made) to ``handler`` as ``(data, addr,
        socket_index)`` (None: drop them); returns the handler it replaces. The counterpart, one level
        up, of :meth:`DatagramSocket.set_default <peerdht.aio.transport.datagram.DatagramSocket.set_default>`;
        :class:`~peerdht.aio.transport.socketpool.RawStreams` registers here."""
        previous, self._other = self._other, handler
        return previous

    def add_transport(self, transport: MessageTransport) -> int:
        """Send the core's messages for socket index ``len(transports)`` through ``transport``; returns
        that index."""
        self.transports.append(transport)
        return len(self.transports) - 1

    def address(self, index: int = 0) -> Address:
        """The bound (host, port) of socket ``index``."""
        transport = self.transports[index]
        if not isinstance(transport, DatagramSocket):
            raise TypeError(f"transport {index} is not a UDP socket")
        return transport.address

    @property
    def local_address(self) -> Address:
        return self.address(0)

    def kick(self) -> None:
        """Flush queued datagrams and events and re-arm the timer (call after a command)."""
        if self._closed or self._in_step:
            return
        self.flush_now(self)

    def receive(self, data: bytes, addr: Address) -> None:
        """Feed one message that arrived outside the driver's sockets (a WebSocket or data-channel link
        whose ``addr`` is an opaque handle, :mod:`peerdht.web.overlay`)."""
        self._feed(data, addr, 0)
        self.kick()

    def close(self) -> None:
        """Close the sockets and cancel the timer. Idempotent."""
        super().close()
        for udx in self.udx_sockets:
            with contextlib.suppress(Exception):
                udx.close()
        for transport in self.transports:
            with contextlib.suppress(Exception):
                transport.close()

    # ---------------------------------------------------------------- reactor participant (the DHT core)

    def get_timer(self) -> float | None:
        """The DHT core's next deadline (loop seconds), or None."""
        when: float | None = self.core.get_timer()
        return when

    def handle_timer(self, now: float) -> None:
        """Run the DHT core's due timers."""
        self.core.handle_timer(now)

    def flush(self) -> None:
        """Send what the DHT core queued and hand out its events, until quiet (an event handler may
        issue a command)."""
        if self._in_step:
            return
        self._in_step = True
        try:
            now = self.loop.time()
            for _ in range(1000):
                sent = self._send(now)
                got = self._dispatch()
                if not sent and not got:
                    break
        finally:
            self._in_step = False

    # ---------------------------------------------------------------- plumbing

    def _plain_handler(self, index: int) -> Handler:
        core = self.core
        dispatch = self._dispatch
        if self.multi:

            def feed_multi(data: Any, addr: Address, now: float) -> bool:
                try:
                    core.receive_datagram(data, addr, now, socket=index)
                except Exception:  # a core must never raise: this is a bug, but the node must keep going
                    log.exception("core raised on a datagram from %s", addr)
                return dispatch()  # events handed over at once end the read batch

            return feed_multi

        def feed(data: Any, addr: Address, now: float) -> bool:
            try:
                core.receive_datagram(data, addr, now)
            except Exception:  # a core must never raise: this is a bug, but the node must keep going
                log.exception("core raised on a datagram from %s", addr)
            return dispatch()

        return feed

    def _shared_handler(self, index: int) -> Handler:
        core = self.core
        dirty = self._dirty
        multi = self.multi

        def feed(data: Any, addr: Address, now: float) -> None:
            if len(data) < 2:  # a 1-byte holepunch probe that happens to start with 0x03/0x13
                self._deliver_other(bytes(data), addr, index)
                return
            if type(data) is not bytes:
                data = bytes(data)
            try:
                if multi:
                    core.receive_datagram(data, addr, now, socket=index)
                else:
                    core.receive_datagram(data, addr, now)
            except Exception:  # a core must never raise: this is a bug, but the node must keep going
                log.exception("core raised on a datagram from %s", addr)
            # flushed once per read batch: one core flush for all the replies that arrived together,
            # and their follow-up requests leave together
            dirty[self] = None

        return feed

    def _deliver_other(self, data: bytes, addr: Address, index: int) -> None:
        handler = self._other
        if handler is not None and not self._closed:
            try:
                handler(data, addr, index)
            except Exception:
                log.exception("the other-datagram handler raised on a datagram from %s", addr)

    def _on_batch_end(self) -> None:
        self.batch_done(self)

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

    def _send(self, now: float) -> bool:
        out = self.core.datagrams_to_send(now)
        if not out:
            return False
        groups: Iterable[tuple[int, list[tuple[bytes, Address]]]]
        if self.multi:
            by_index: dict[int, list[tuple[bytes, Address]]] = {}
            for data, addr, index in out:
                by_index.setdefault(index, []).append((data, addr))
            groups = by_index.items()
        else:
            groups = ((0, out),)
        transports = self.transports
        for index, items in groups:
            transport = transports[index] if index < len(transports) else None
            if transport is None:
                continue
            if isinstance(transport, DatagramSocket):
                transport.send_many(items)
                continue
            if transport.is_closing():
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
