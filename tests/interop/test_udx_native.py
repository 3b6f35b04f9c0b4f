"""Python UDX streams against real udx-native 1.21.3 streams on 127.0.0.1 (tests/js/udx-peer.js)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
from collections.abc import AsyncIterator

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.transport.udx import UDXSocket, UDXStream
from peerdht.errors import StreamReset, StreamTimeout
from peerdht.udx.packet import DATA, END, decode_packet

pytestmark = pytest.mark.interop

T = 60.0


@pytest.fixture
async def js() -> AsyncIterator[tuple[JSProcess, int]]:
    proc = await start_js("udx-peer.js")
    try:
        ready = await proc.line()
        assert ready["ready"]
        yield proc, ready["port"]
    finally:
        await proc.close()


async def connect(js: tuple[JSProcess, int], mode: str = "") -> tuple[UDXSocket, UDXStream, JSProcess]:
    proc, port = js
    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream = sock.create_stream(7)
    await stream.connect(9, ("127.0.0.1", port))
    await proc.send({"cmd": "stream", "id": 9, "remoteId": 7, "port": sock.address[1], "mode": mode})
    assert (await proc.line())["connected"]
    return sock, stream, proc


async def py_to_js(js: tuple[JSProcess, int], size: int, loss: float = 0.0) -> None:
    sock, stream, proc = await connect(js, "sink")
    if loss:
        sock.set_test_loss(random.Random(1), loss)
    data = os.urandom(size)
    view = memoryview(data)
    for i in range(0, size, 65536):
        stream.write(view[i : i + 65536])
        await asyncio.wait_for(stream.drain(), T)
    stream.write_eof()
    got = await proc.line(timeout=T)
    while "event" in got:
        got = await proc.line(timeout=T)
    assert got == {"received": size, "sha256": hashlib.sha256(data).hexdigest(), "ms": got["ms"]}
    await proc.send({"cmd": "end"})
    assert await asyncio.wait_for(stream.read(), T) == b""
    await asyncio.wait_for(stream.wait_closed(), T)
    assert stream._error is None
    while (await proc.line(timeout=T)) != {"event": "close"}:
        pass
    sock.close()


async def js_to_py(js: tuple[JSProcess, int], size: int, loss: float = 0.0) -> None:
    sock, stream, proc = await connect(js)
    if loss:
        sock.set_test_loss(random.Random(2), loss)
    await proc.send({"cmd": "source", "bytes": size})
    h = hashlib.sha256()
    n = 0
    while chunk := await asyncio.wait_for(stream.read(1 << 20), T):
        h.update(chunk)
        n += len(chunk)
    sent = await proc.line(timeout=T)
    assert sent == {"sent": size, "sha256": h.hexdigest()} and n == size
    assert stream.at_eof()
    stream.write_eof()
    await asyncio.wait_for(stream.wait_closed(), T)
    assert stream._error is None
    sock.close()


async def test_py_to_js_1mib(js: tuple[JSProcess, int]) -> None:
    await py_to_js(js, 1 << 20)


async def test_js_to_py_1mib(js: tuple[JSProcess, int]) -> None:
    await js_to_py(js, 1 << 20)


@pytest.mark.slow
async def test_py_to_js_64mib(js: tuple[JSProcess, int]) -> None:
    await py_to_js(js, 64 << 20)


@pytest.mark.slow
async def test_js_to_py_64mib(js: tuple[JSProcess, int]) -> None:
    await js_to_py(js, 64 << 20)


async def test_js_destroy_resets_python_stream(js: tuple[JSProcess, int]) -> None:
    sock, stream, proc = await connect(js, "echo-events")
    stream.write(b"hello")
    assert await proc.line() == {"event": "data", "hex": b"hello".hex()}
    await proc.send({"cmd": "destroy"})
    with pytest.raises(StreamReset):
        await asyncio.wait_for(stream.read(10), T)
    await asyncio.wait_for(stream.wait_closed(), T)
    sock.close()


async def test_python_destroy_resets_js_stream(js: tuple[JSProcess, int]) -> None:
    sock, stream, proc = await connect(js)
    await proc.send({"cmd": "write", "hex": b"hi".hex()})
    assert await asyncio.wait_for(stream.readexactly(2), T) == b"hi"
    stream.destroy()
    events = [await proc.line(), await proc.line()]
    assert {"event": "error", "error": "ECONNRESET"} in events and {"event": "close"} in events
    sock.close()


async def test_half_close_both_orders(js: tuple[JSProcess, int]) -> None:
    sock, stream, proc = await connect(js, "echo-events")
    await proc.send({"cmd": "end"})
    assert await asyncio.wait_for(stream.read(), T) == b""
    stream.write(b"after their end")  # our direction is still open
    assert await proc.line() == {"event": "data", "hex": b"after their end".hex()}
    stream.write_eof()
    events = [await proc.line(), await proc.line()]
    assert events == [{"event": "end"}, {"event": "close"}]
    await asyncio.wait_for(stream.wait_closed(), T)
    sock.close()


async def test_messages_both_ways(js: tuple[JSProcess, int]) -> None:
    sock, stream, proc = await connect(js)
    await proc.send({"cmd": "message", "hex": b"from js".hex()})
    assert await asyncio.wait_for(stream.receive_message(), T) == b"from js"
    stream.send_message(b"from py")
    assert await proc.line() == {"event": "message", "hex": b"from py".hex()}
    stream.destroy()
    sock.close()


async def test_non_udx_datagrams_reach_on_datagram(js: tuple[JSProcess, int]) -> None:
    proc, _ = js
    sock = await UDXSocket.bind("127.0.0.1", 0)
    got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
    sock.on_datagram = lambda data, addr: got.put_nowait((data, addr))
    await proc.send({"cmd": "raw", "hex": b"\x03dht".hex(), "port": sock.address[1]})
    data, addr = await asyncio.wait_for(got.get(), T)
    assert data == b"\x03dht" and addr[0] == "127.0.0.1"
    sock.send_datagram(b"\x00", (addr[0], js[1]))
    assert await proc.line() == {"event": "socket-message", "hex": "00"}
    sock.close()


async def test_udx_native_packets_decode_byte_for_byte(js: tuple[JSProcess, int]) -> None:
    """A raw UDP socket plays the peer: udx-native's DATA and END packets decode with our codec."""
    proc, _ = js
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await proc.send({"cmd": "stream", "id": 9, "remoteId": 1234, "port": raw.getsockname()[1]})
        assert (await proc.line())["connected"]
        await proc.send({"cmd": "write", "hex": b"hello".hex()})
        data = await asyncio.wait_for(loop.sock_recv(raw, 2048), T)
        p = decode_packet(data)
        assert data[:4] == bytes([0xFF, 1, DATA, 0])
        assert (p.type, p.stream_id, p.seq, p.ack, p.payload) == (DATA, 1234, 0, 0, b"hello")
        assert p.recv_window == 4 * 1024 * 1024
        await proc.send({"cmd": "end"})
        while True:  # skip retransmissions of seq 0 (we never ack)
            p = decode_packet(await asyncio.wait_for(loop.sock_recv(raw, 2048), T))
            if p.seq == 1:
                break
        assert (p.type, p.payload) == (END, b"")
    finally:
        raw.close()


@pytest.mark.parametrize("direction", ["py-js", "js-py"])
async def test_lossy_link_4mib(js: tuple[JSProcess, int], direction: str) -> None:
    """5 % of the datagrams the Python socket sends and receives are dropped: both SACK paths and both
    retransmission paths (ours and libudx's RACK/RTO) run against each other."""
    if direction == "py-js":
        await py_to_js(js, 4 << 20, loss=0.05)
    else:
        await js_to_py(js, 4 << 20, loss=0.05)


async def test_js_sends_first_python_connects_on_first_packet(js: tuple[JSProcess, int]) -> None:
    """hyperdht's client side: an unconnected, un-firewalled stream learns the peer's address from its
    first packet and connects to it; nothing is lost."""
    proc, port = js
    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream = sock.create_stream(7, firewall=False)
    seen: list[tuple[str, int]] = []
    tasks: list[asyncio.Task[None]] = []

    def preconnect(addr: tuple[str, int]) -> None:
        seen.append(addr)
        tasks.append(asyncio.ensure_future(stream.connect(9, addr)))

    stream.on_preconnect = preconnect
    await proc.send({"cmd": "stream", "id": 9, "remoteId": 7, "port": sock.address[1]})
    assert (await proc.line())["connected"]
    await proc.send({"cmd": "write", "hex": b"server speaks first".hex()})
    assert await asyncio.wait_for(stream.readexactly(19), T) == b"server speaks first"
    assert seen == [("127.0.0.1", port)]
    stream.write(b"ok")
    await proc.send({"cmd": "end"})
    assert await asyncio.wait_for(stream.read(), T) == b""
    sock.close()


async def test_receive_window_stops_udx_native_until_we_read(js: tuple[JSProcess, int]) -> None:
    """Flow control: a Python reader that stops reading advertises a shrinking window; udx-native stops
    at it (zero-window probes meanwhile) and resumes on our window update."""
    sock, stream, proc = await connect(js)
    await proc.send({"cmd": "source", "bytes": 16 << 20})
    core_stream = sock.core._streams[7]
    for _ in range(100):  # until the window is exhausted
        await asyncio.sleep(0.02)
        if core_stream.unread >= core_stream.recv_window_max - 65536:
            break
    await asyncio.sleep(0.3)
    assert core_stream.recv_window_max - 65536 <= core_stream.unread <= core_stream.recv_window_max + 65536
    h = hashlib.sha256()
    n = 0
    while chunk := await asyncio.wait_for(stream.read(1 << 20), T):
        h.update(chunk)
        n += len(chunk)
    sent = await proc.line(timeout=T)
    assert sent == {"sent": 16 << 20, "sha256": h.hexdigest()} and n == 16 << 20
    sock.close()


async def test_heartbeats_keep_a_half_closed_stream_alive_until_the_peer_is_killed(
    js: tuple[JSProcess, int],
) -> None:
    """udx-native ACKs our heartbeats, so an idle half-closed stream to a live peer stays open past
    the timeout; once the peer is kill -9ed (no DESTROY) the stream fails with StreamTimeout."""
    sock, stream, proc = await connect(js, "echo-events")
    stream.write(b"bye")
    assert await proc.line() == {"event": "data", "hex": b"bye".hex()}
    stream.write_eof()
    assert await proc.line() == {"event": "end"}
    stream.set_keepalive(0.2, timeout=1.0)
    loop = asyncio.get_running_loop()
    until = loop.time() + 3.0
    while loop.time() < until:  # three timeouts of silence from the application: still open
        assert not stream.is_closing()
        await asyncio.sleep(0.25)
    proc.proc.kill()
    await proc.proc.wait()
    with pytest.raises(StreamTimeout):
        await asyncio.wait_for(stream.read(10), T)
    sock.close()
