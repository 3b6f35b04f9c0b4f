"""The asyncio UDX layer, Python to Python over real UDP sockets on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator

import pytest

from peerdht.aio.transport import udx as aio_udx
from peerdht.aio.transport.udx import UDXSocket, UDXStream
from peerdht.errors import StreamClosed, StreamReset

T = 30.0


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UDXStream, UDXStream]]:
    a = await UDXSocket.bind("127.0.0.1", 0)
    b = await UDXSocket.bind("127.0.0.1", 0)
    sa, sb = a.create_stream(1), b.create_stream(2)
    await sa.connect(2, b.address)
    await sb.connect(1, a.address)
    try:
        yield sa, sb
    finally:
        a.close()
        b.close()


async def test_transfer_and_clean_close(pair: tuple[UDXStream, UDXStream]) -> None:
    sa, sb = pair
    data = os.urandom(8 << 20)
    sa.write(data)
    sa.write_eof()
    got = await asyncio.wait_for(sb.read(), T)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert sb.at_eof()
    sb.write(b"bye")
    sb.write_eof()
    assert await asyncio.wait_for(sa.read(), T) == b"bye"
    await asyncio.wait_for(asyncio.gather(sa.wait_closed(), sb.wait_closed()), T)
    assert sa._error is None and sb._error is None
    with pytest.raises(StreamClosed):
        sa.write(b"x")


async def test_drain_bounds_memory(pair: tuple[UDXStream, UDXStream]) -> None:
    """A fast writer that awaits drain() never has more than the high-water mark plus the window queued."""
    sa, sb = pair
    peak = 0
    chunk = bytes(65536)

    async def writer() -> None:
        nonlocal peak
        for _ in range(512):  # 32 MiB
            sa.write(chunk)
            peak = max(peak, sa._core.write_buffer_size(sa.id))
            await sa.drain()
        sa.write_eof()

    async def slow_reader() -> int:
        n = 0
        while data := await sb.read(65536):
            n += len(data)
            if n % (1 << 20) < 65536:
                await asyncio.sleep(0)  # let the writer run
        return n

    w = asyncio.create_task(writer())
    assert await asyncio.wait_for(slow_reader(), T) == 512 * 65536
    await w
    assert peak < 16 << 20  # 256 KiB + at most the 4 MiB receive window + one write, with room


async def test_readexactly_and_incomplete(pair: tuple[UDXStream, UDXStream]) -> None:
    sa, sb = pair
    sa.write(b"abcdef")
    assert await asyncio.wait_for(sb.readexactly(4), T) == b"abcd"
    sa.write_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await asyncio.wait_for(sb.readexactly(4), T)
    assert info.value.partial == b"ef"


async def test_destroy_resets_the_peer(pair: tuple[UDXStream, UDXStream]) -> None:
    sa, sb = pair
    sa.write(b"x")
    assert await asyncio.wait_for(sb.read(1), T) == b"x"
    sa.destroy()
    with pytest.raises(StreamReset):
        await asyncio.wait_for(sb.read(1), T)
    with pytest.raises(StreamReset):
        sb.write(b"y")


async def test_close_lingers_then_destroys(
    pair: tuple[UDXStream, UDXStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio_udx, "CLOSE_LINGER", 0.2)
    sa, sb = pair
    sa.close()  # the peer never ends its side
    assert await asyncio.wait_for(sb.read(), T) == b""
    await asyncio.wait_for(sa.wait_closed(), T)
    with pytest.raises(StreamReset):
        await asyncio.wait_for(sb.read(1), T)


async def test_messages(pair: tuple[UDXStream, UDXStream]) -> None:
    sa, sb = pair
    sa.send_message(b"unordered")
    assert await asyncio.wait_for(sb.receive_message(), T) == b"unordered"


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        a = await UDXSocket.bind("::1", 0)
    except OSError:
        pytest.skip("no ::1")
    b = await UDXSocket.bind("::1", 0)
    try:
        sa, sb = a.create_stream(1), b.create_stream(2)
        await sa.connect(2, b.address)
        await sb.connect(1, a.address)
        data = os.urandom(1 << 20)
        sa.write(data)
        sa.write_eof()
        assert await asyncio.wait_for(sb.read(), T) == data
    finally:
        a.close()
        b.close()


async def test_change_remote_to_another_socket_address() -> None:
    """The peer's traffic moves to a new address (relay -> direct): data keeps flowing in order."""
    a = await UDXSocket.bind("127.0.0.1", 0)
    b = await UDXSocket.bind("127.0.0.1", 0)
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a dumb forwarder B -> A
    relay.bind(("127.0.0.1", 0))
    relay.setblocking(False)
    loop = asyncio.get_running_loop()

    async def forward() -> None:
        while True:
            data = await loop.sock_recv(relay, 4096)
            relay.sendto(data, a.address)

    fwd = asyncio.create_task(forward())
    try:
        sa, sb = a.create_stream(1), b.create_stream(2)
        await sa.connect(2, b.address)
        await sb.connect(1, relay.getsockname())  # via the relay first
        sb.write(b"via relay;")
        assert await asyncio.wait_for(sa.readexactly(10), T) == b"via relay;"
        await asyncio.wait_for(sb.change_remote(1, a.address), T)
        sb.write(b"direct")
        assert await asyncio.wait_for(sa.readexactly(6), T) == b"direct"
    finally:
        fwd.cancel()
        relay.close()
        a.close()
        b.close()


async def test_dht_datagrams_share_the_socket(pair: tuple[UDXStream, UDXStream]) -> None:
    sa, sb = pair
    got: asyncio.Queue[bytes] = asyncio.Queue()
    sb.socket.on_datagram = lambda data, addr: got.put_nowait(data)
    sa.socket.send_datagram(b"\x03not udx", sb.socket.address)
    assert await asyncio.wait_for(got.get(), T) == b"\x03not udx"


async def test_close_unconnected_stream() -> None:
    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream = sock.create_stream()
    stream.close()
    await asyncio.wait_for(stream.wait_closed(), T)
    assert stream.at_eof()
    sock.close()
