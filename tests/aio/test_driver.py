"""peerdht.aio.transport.driver: how a read batch reaches the core and its events reach the application (issue 14).

A recording core stands in for a DHT core; datagrams travel over real UDP sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.aio.transport.udx import UDXSocket


class RecordingCore:
    """A core that answers every datagram b'q...' with b'r...' and emits an event for b'q!...' ones."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.events: list[object] = []
        self.out: list[tuple[bytes, tuple[str, int]]] = []

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float, **_: Any) -> None:
        self.fed.append(bytes(data))
        self.out.append((b"r" + bytes(data[1:]), addr))
        if data[:2] == b"q!":
            self.events.append(("found", bytes(data)))

    def handle_timer(self, now: float) -> None:
        pass

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return None

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


def _drain(sock: socket.socket, into: set[bytes]) -> int:
    while True:
        try:
            data, _ = sock.recvfrom(2048)
        except BlockingIOError:
            return len(into)
        into.add(data)
