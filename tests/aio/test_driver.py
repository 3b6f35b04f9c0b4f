"""peerdht.aio.transport.driver: how a read batch reaches the core and its events reach the application (issue 14),
how a shared socket splits datagrams by first byte and how one timer serves every core of a node (issue 13).

A recording core stands in for a DHT core; datagrams travel over real UDP sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.aio.transport.udx import UDXSocket, splice
from peerdht.relay.pairing import TokenBucket
from peerdht.udx.packet import HEADER


class RecordingCore:
    """A core that answers every datagram b'q...' with b'r...' and emits an event for b'q!...' ones."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.events: list[object] = []
        self.out: list[tuple[bytes, tuple[str, int]]] = []
        self.timer: float | None = None
        self.timer_runs: list[float] = []

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float, **_: Any) -> None:
        self.fed.append(bytes(data))
        self.out.append((b"r" + bytes(data[1:]), addr))
        if data[:2] == b"q!":
            self.events.append(("found", bytes(data)))

    def handle_timer(self, now: float) -> None:
        if self.timer is not None and now >= self.timer:
            self.timer = None
            self.timer_runs.append(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return self.timer

    def next_event(self) -> object | None:
        return self.events.pop(0) if self.events else None


async def wait_for(cond: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_event_reaches_the_waiting_task_before_the_rest_of_the_batch() -> None:
    core = RecordingCore()
    found: asyncio.Queue[object] = asyncio.Queue()
    driver = await DatagramDriver.create(core, "127.0.0.1", 0, on_event=found.put_nowait)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    try:
        batch = [b"q1", b"q!2", b"q3", b"q4"]
        for d in batch:  # all queued in the kernel before the loop reads any: one read batch
            peer.sendto(d, driver.address())
        fed_when_found: list[int] = []

        async def waiter() -> None:
            await found.get()
            fed_when_found.append(len(core.fed))

        task = asyncio.create_task(waiter())
        await wait_for(lambda: len(core.fed) == len(batch) and task.done())
        assert core.fed == batch  # every datagram, in order
        assert fed_when_found == [2]  # the task ran right after the datagram with the event
        replies = set()
        await wait_for(lambda: _drain(peer, replies) >= len(batch))
        assert replies == {b"r1", b"r!2", b"r3", b"r4"}  # and every reply left
    finally:
        peer.close()
        driver.close()


async def test_shared_udx_socket_flushes_the_core_once_per_read_batch() -> None:
    flushes = 0

    class CountingCore(RecordingCore):
        def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
            nonlocal flushes
            out = super().datagrams_to_send(now)
            if out:
                flushes += 1
            return out

    core = CountingCore()
    driver = await DatagramDriver.create_udx(core, "127.0.0.1", 0)
    peer = await UDXSocket.bind("127.0.0.1", 0)
    got: list[bytes] = []
    peer.on_datagram = lambda data, addr: got.append(bytes(data))
    try:
        # dht-rpc datagrams start with 0x03/0x13; the recording core echoes them with 'r' in front
        batch = [b"\x03" + bytes([i]) * 20 for i in range(8)]
        peer.send_datagrams([(d, driver.address()) for d in batch])
        await wait_for(lambda: len(got) == len(batch))
        assert core.fed == batch
        assert sorted(got) == sorted(b"r" + d[1:] for d in batch)
        assert flushes < len(batch)  # the replies to one read batch left in one flush, not one per datagram
    finally:
        peer.close()
        driver.close()


async def test_shared_socket_splits_datagrams_by_first_byte() -> None:
    core = RecordingCore()
    driver = await DatagramDriver.create_udx(core, "127.0.0.1", 0)
    other: list[tuple[bytes, int]] = []
    assert driver.set_other_handler(lambda data, addr, index: other.append((bytes(data), index))) is None
    udx = driver.udx_sockets[0]
    stream = udx.create_stream(7)
    await stream.connect(9, ("127.0.0.1", 9))  # a stream, so that a UDX packet for id 7 is its own
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    try:
        unknown = HEADER.pack(255, 1, 0, 0, 12345, 0, 0, 0)  # UDX, but no stream 12345
        known = HEADER.pack(255, 1, 0, 0, 7, 0, 0, 0)  # UDX for stream 7 (an empty ack)
        for d in (b"\x03dht request", b"\x13dht reply", b"\x00", b"\x03", unknown, known, b"d1:ae"):
            peer.sendto(d, driver.address())
        await wait_for(lambda: len(core.fed) == 2 and len(other) == 4)
        assert core.fed == [b"\x03dht request", b"\x13dht reply"]  # dht-rpc messages, and only those
        # a probe, a 1-byte datagram that starts like dht-rpc, a UDX packet of no stream (handed on by the
        # UDX core when the batch is flushed), anything else
        assert sorted(other) == sorted([(b"\x00", 0), (b"\x03", 0), (unknown, 0), (b"d1:ae", 0)])
        assert udx.core.stream_stats(7)["packets_rx"] == 1  # the packet for stream 7 went to its stream
    finally:
        peer.close()
        driver.close()


async def test_one_timer_runs_the_dht_core_and_the_udx_cores() -> None:
    core = RecordingCore()
    driver = await DatagramDriver.create_udx(core, "127.0.0.1", 0, sockets=2)
    peer = await UDXSocket.bind("127.0.0.1", 0)
    try:
        # a UDX stream with a keepalive on the second socket: its HEARTBEAT leaves only if the
        # driver's timer runs that UDX core; the DHT core's own deadline is served by the same timer
        sa = driver.udx_sockets[1].create_stream(1)
        sb = peer.create_stream(2)
        await sa.connect(2, peer.address)
        await sb.connect(1, driver.address(1))
        sa.set_keepalive(0.05)
        core.timer = driver.now() + 0.05
        driver.kick()
        await wait_for(lambda: bool(core.timer_runs))
        # nothing was written: every packet the peer gets is a HEARTBEAT sent from the driver's timer
        await wait_for(lambda: peer.core.stream_stats(2)["packets_rx"] >= 2)
        sa.write(b"x")
        assert await asyncio.wait_for(sb.readexactly(1), 10) == b"x"
    finally:
        peer.close()
        driver.close()


async def test_splice_relays_between_sockets_of_two_reactors() -> None:
    a, b = await UDXSocket.bind("127.0.0.1", 0), await UDXSocket.bind("127.0.0.1", 0)
    r1, r2 = await UDXSocket.bind("127.0.0.1", 0), await UDXSocket.bind("127.0.0.1", 0)
    try:
        sa, sb = a.create_stream(1), b.create_stream(2)
        ra, rb = r1.create_stream(10), r2.create_stream(20)
        ra.connect_nowait(1, a.address)
        rb.connect_nowait(2, b.address)
        splice(ra, rb, limiters=(TokenBucket(1 << 30), None))
        await sa.connect(10, r1.address)
        await sb.connect(20, r2.address)
        payload = bytes(range(256)) * 400  # ~100 KB: many packets, acks back through the splice
        sa.write(payload)
        sa.write_eof()
        assert await asyncio.wait_for(sb.read(), 20) == payload
        sb.write(b"back")
        assert await asyncio.wait_for(sa.readexactly(4), 10) == b"back"
    finally:
        for s in (a, b, r1, r2):
            s.close()


def _drain(sock: socket.socket, into: set[bytes]) -> int:
    while True:
        try:
            data, _ = sock.recvfrom(2048)
        except BlockingIOError:
            return len(into)
        into.add(data)
