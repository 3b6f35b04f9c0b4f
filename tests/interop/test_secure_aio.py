"""asyncio SecretStream, Python <-> Python over TCP on 127.0.0.1: stream semantics, backpressure, errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from peerdht.aio.hyperdht.secretstream import SecretStream, TCPRawStream, open_secret_stream
from peerdht.errors import LocalProtocolError, RemoteProtocolError, StreamClosed, StreamReset
from peerdht.secure import NS_PEER_HANDSHAKE, KeyPair, NoiseState

TIMEOUT = 10.0
A, B = KeyPair.from_seed(hashlib.sha256(b"a").digest()), KeyPair.from_seed(hashlib.sha256(b"b").digest())


async def tcp_pair() -> tuple[TCPRawStream, TCPRawStream]:
    accepted: asyncio.Queue[TCPRawStream] = asyncio.Queue()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put(TCPRawStream(r, w))

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    other = await asyncio.wait_for(accepted.get(), TIMEOUT)
    server.close()
    return TCPRawStream(r, w), other


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SecretStream, SecretStream]]:
    ra, rb = await tcp_pair()
    sa, sb = await asyncio.wait_for(
        asyncio.gather(
            open_secret_stream(
                ra, initiator=True, key_pair=A, remote_public_key=B.public_key, keep_alive=0.02
            ),
            open_secret_stream(rb, initiator=False, key_pair=B),
        ),
        TIMEOUT,
    )
    yield sa, sb
    for s in (sa, sb):
        s.close()
        await asyncio.wait_for(s.wait_closed(), TIMEOUT)


async def test_stream_semantics(pair: tuple[SecretStream, SecretStream]) -> None:
    a, b = pair
    assert a.remote_public_key == B.public_key and b.remote_public_key == A.public_key
    assert a.public_key == A.public_key
    with pytest.raises(LocalProtocolError):
        a.send(b"TCP carries no datagrams")
    assert a.handshake_hash == b.handshake_hash and a.handshake_hash is not None
    a.write(b"line one\nline two\npartial")
    await a.drain()
    assert await asyncio.wait_for(b.readline(), TIMEOUT) == b"line one\n"
    assert await asyncio.wait_for(b.readexactly(9), TIMEOUT) == b"line two\n"
    assert await asyncio.wait_for(b.readexactly(7), TIMEOUT) == b"partial"
    # keep-alives (every 20 ms from a) never show up as data
    b.write(b"x")
    assert await asyncio.wait_for(a.read(10), TIMEOUT) == b"x"
    a.write(b"tail")
    a.write_eof()
    with pytest.raises(StreamClosed):
        a.write(b"after eof")
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await asyncio.wait_for(b.readexactly(10), TIMEOUT)
    assert info.value.partial == b"tail"
    assert await b.read() == b"" and b.at_eof()
    # the other direction still works after a's half-close
    b.write(b"z" * 300_000)
    b.write_eof()
    chunks = [c async for c in a]
    assert b"".join(chunks) == b"z" * 300_000


async def test_read_all_and_close(pair: tuple[SecretStream, SecretStream]) -> None:
    a, b = pair
    data = os.urandom(3 * 1024 * 1024 + 1)
    a.write(data)
    a.write_eof()
    assert await asyncio.wait_for(b.read(), TIMEOUT) == data
    b.close()
    with pytest.raises(StreamClosed):
        await b.read()
    assert b.is_closing()


async def test_backpressure_bounds_memory(pair: tuple[SecretStream, SecretStream]) -> None:
    a, b = pair
    block = os.urandom(1 << 20)
    written = 0
    with pytest.raises(TimeoutError):
        for _ in range(256):
            a.write(block)
            written += 1
            await asyncio.wait_for(a.drain(), 0.5)  # blocks once b stops reading
    assert 1 < written < 64, written  # socket buffers + b's read limit, not the whole 256 MiB
    got = 0
    while got < (written - 1) * len(block):
        got += len(await asyncio.wait_for(b.read(1 << 20), TIMEOUT))


async def test_handshake_errors() -> None:
    ra, rb = await tcp_pair()
    results = await asyncio.wait_for(
        asyncio.gather(
            open_secret_stream(ra, initiator=True, key_pair=A, remote_public_key=A.public_key),
            open_secret_stream(rb, initiator=False, key_pair=B),
            return_exceptions=True,
        ),
        TIMEOUT,
    )
    assert isinstance(results[0], RemoteProtocolError)
    if isinstance(results[1], SecretStream):  # b finished first; it then sees a's side go away
        with pytest.raises((StreamReset, RemoteProtocolError)):
            assert await asyncio.wait_for(results[1].read(), TIMEOUT) == b""
            raise StreamReset("clean EOF")
        results[1].close()
    ra, rb = await tcp_pair()
    rb.close()
    with pytest.raises((StreamReset, RemoteProtocolError)):
        await asyncio.wait_for(open_secret_stream(ra, initiator=True, key_pair=A), TIMEOUT)
    i = NoiseState(
        "IK",
        initiator=True,
        static_key_pair=A,
        remote_static=B.public_key,
        prologue=NS_PEER_HANDSHAKE,
        ephemeral_seed=os.urandom(32),
    )
    r = NoiseState(
        "IK", initiator=False, static_key_pair=B, prologue=NS_PEER_HANDSHAKE, ephemeral_seed=os.urandom(32)
    )
    r.recv(i.send())
    i.recv(r.send())
    ra, rb = await tcp_pair()
    with pytest.raises(LocalProtocolError):
        await open_secret_stream(ra, initiator=False, handshake=i.result())
    sa = await open_secret_stream(ra, initiator=True, handshake=i.result())
    sb = await open_secret_stream(rb, initiator=False, handshake=r.result())
    sa.write(b"ik keys")
    assert await asyncio.wait_for(sb.readexactly(7), TIMEOUT) == b"ik keys"
    for s in (sa, sb):
        s.close()
        await s.wait_closed()
