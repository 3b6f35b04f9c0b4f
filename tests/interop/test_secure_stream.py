"""secret-stream against the real @hyperswarm/secret-stream on 127.0.0.1, both directions: over TCP,
and over UDX (our UDX streams vs udx-native, the HyperDHT transport).

In-band Noise XX (secret-stream's own handshake) and a Noise IK handshake passed in (the HyperDHT
case; keys from our NoiseState on one side and JS noise-handshake on the other).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.hyperdht.secretstream import SecretStream, TCPRawStream, open_secret_stream
from peerdht.aio.transport.udx import UDXSocket
from peerdht.errors import RemoteProtocolError
from peerdht.secure import NS_PEER_HANDSHAKE, HandshakeResult, KeyPair, NoiseState, peer_handshake

pytestmark = pytest.mark.interop

MIB = 1 << 20
TIMEOUT = 30.0
UDX_TIMEOUT = 60.0


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


PY, JSK = KeyPair.from_seed(seed("py")), KeyPair.from_seed(seed("js"))


@pytest.fixture
async def js() -> AsyncIterator[JSProcess]:
    p = await start_js("secure-stream.js")
    assert (await p.line()) == {"ready": True}
    try:
        yield p
    finally:
        _backlog.pop(id(p), None)
        await p.close()


async def call(js: JSProcess, **cmd: Any) -> dict[str, Any]:
    await js.send(cmd)
    reply = await js.line()
    assert "error" not in reply, reply
    return reply


_backlog: dict[int, list[dict[str, Any]]] = {}


async def event(js: JSProcess, name: str, conn: int | None = None) -> dict[str, Any]:
    """The first JS event called ``name`` (for ``conn``) not yet taken; an error event fails the test."""
    backlog = _backlog.setdefault(id(js), [])
    while True:
        for i, line in enumerate(backlog):
            if line.get("event") == name and (conn is None or line.get("conn") == conn):
                return backlog.pop(i)
        try:
            line = await js.line(TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no JS {name!r} event; unclaimed: {backlog}") from None
        if line.get("event") == "error" and name != "error":
            raise AssertionError(f"JS stream error: {line}")
        backlog.append(line)


async def ik_handshake(js: JSProcess, py_initiator: bool, name: str) -> HandshakeResult:
    """A Noise IK handshake between our NoiseState and JS noise-handshake; JS keeps its keys as ``name``."""
    if py_initiator:
        hs = NoiseState(
            "IK",
            initiator=True,
            static_key_pair=PY,
            remote_static=JSK.public_key,
            prologue=NS_PEER_HANDSHAKE,
            ephemeral_seed=os.urandom(32),
        )
        reply = await call(js, op="ik-respond", name=name, seed=seed("js").hex(), msg=hs.send(b"").hex())
        hs.recv(bytes.fromhex(reply["msg"]))
    else:
        hs = NoiseState(
            "IK",
            initiator=False,
            static_key_pair=PY,
            prologue=NS_PEER_HANDSHAKE,
            ephemeral_seed=os.urandom(32),
        )
        first = await call(js, op="ik-initiate", name=name, seed=seed("js").hex(), remote=PY.public_key.hex())
        hs.recv(bytes.fromhex(first["msg"]))
        reply = await call(js, op="ik-finish", name=name, msg=hs.send(b"").hex())
    assert reply["hash"] == hs.handshake_hash.hex()
    return hs.result()


async def py_raw(
    js: JSProcess, py_listens: bool, js_cmd: dict[str, Any]
) -> tuple[TCPRawStream, asyncio.Server | None]:
    """Connect a TCP socket between us and the JS fixture (either side listening)."""
    if py_listens:
        accepted: asyncio.Queue[TCPRawStream] = asyncio.Queue()

        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await accepted.put(TCPRawStream(r, w))

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await call(js, op="connect", port=port, **js_cmd)
        return await asyncio.wait_for(accepted.get(), TIMEOUT), server
    reply = await call(js, op="listen", **js_cmd)
    r, w = await asyncio.open_connection("127.0.0.1", reply["port"])
    return TCPRawStream(r, w), None


async def send_all(stream: SecretStream, n: int) -> str:
    sha = hashlib.sha256()
    block = os.urandom(MIB)
    for i in range(n // MIB):
        chunk = block[i:] + block[:i]
        sha.update(chunk)
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()
    return sha.hexdigest()


async def read_all(stream: SecretStream) -> tuple[int, str]:
    sha = hashlib.sha256()
    n = 0
    async for chunk in stream:
        sha.update(chunk)
        n += len(chunk)
    return n, sha.hexdigest()


@pytest.mark.parametrize(
    ("mode", "py_initiator", "py_listens"),
    [
        ("xx", True, False),
        ("xx", False, True),
        ("ik", True, True),
        ("ik", False, False),
        ("in-band-ik", True, False),
        ("in-band-ik", False, True),
    ],
)
async def test_16mib_both_ways_with_half_close(
    js: JSProcess, mode: str, py_initiator: bool, py_listens: bool
) -> None:
    size = 16 * MIB
    js_cmd: dict[str, Any] = {"initiator": not py_initiator, "send": size}
    handshake = None
    if mode == "ik":
        handshake = await ik_handshake(js, py_initiator, "h")
        js_cmd["handshake"] = "h"
    else:
        js_cmd["seed"] = seed("js").hex()
    pattern = "IK" if mode == "in-band-ik" else "XX"
    if pattern == "IK":
        js_cmd["pattern"] = "IK"
        if not py_initiator:
            js_cmd["remote"] = PY.public_key.hex()
    raw, server = await py_raw(js, py_listens, js_cmd)
    try:
        stream = await asyncio.wait_for(
            open_secret_stream(
                raw,
                initiator=py_initiator,
                handshake=handshake,
                key_pair=PY,
                pattern=pattern,
                remote_public_key=JSK.public_key,
            ),
            TIMEOUT,
        )
        opened = await event(js, "open")
        assert opened["remotePublicKey"] == PY.public_key.hex()
        assert opened["hash"] == stream.handshake_hash.hex()  # type: ignore[union-attr]
        assert stream.remote_public_key == JSK.public_key
        sent_sha, (n, got_sha) = await asyncio.wait_for(
            asyncio.gather(send_all(stream, size), read_all(stream)), TIMEOUT
        )
        # we half-closed first or last: either way both directions completed
        js_end = await event(js, "end")
        js_sent = await event(js, "sent")
        assert (js_end["received"], js_end["sha256"]) == (size, sent_sha)
        assert (n, got_sha) == (size, js_sent["sha256"])
        stream.close()
        await asyncio.wait_for(stream.wait_closed(), TIMEOUT)
    finally:
        if server is not None:
            server.close()


async def test_half_close_then_echo_and_keep_alive(js: JSProcess) -> None:
    """We write, half-close, and still read the whole echo; our keep-alives reach JS and are empty."""
    raw, _ = await py_raw(js, False, {"initiator": False, "seed": seed("js").hex(), "echo": True})
    stream = await asyncio.wait_for(
        open_secret_stream(raw, initiator=True, key_pair=PY, keep_alive=0.05), TIMEOUT
    )
    await event(js, "keepalive")  # sent after 50 ms of silence
    data = os.urandom(MIB + 12345)
    stream.write(data)
    stream.write(b"last line\n")
    stream.write_eof()
    echoed = await asyncio.wait_for(stream.readexactly(len(data)), TIMEOUT)
    assert echoed == data
    assert await asyncio.wait_for(stream.readline(), TIMEOUT) == b"last line\n"
    assert await asyncio.wait_for(stream.read(), TIMEOUT) == b""
    end = await event(js, "end")
    assert end["received"] == len(data) + 10
    stream.close()
    await stream.wait_closed()


async def test_tampered_frames_fail_only_their_stream(js: JSProcess) -> None:
    js_cmd = {"initiator": False, "seed": seed("js").hex()}
    reply = await call(js, op="listen", **js_cmd)

    async def connect() -> tuple[SecretStream, asyncio.StreamWriter, int]:
        r, w = await asyncio.open_connection("127.0.0.1", reply["port"])
        s = await asyncio.wait_for(
            open_secret_stream(TCPRawStream(r, w), initiator=True, key_pair=PY), TIMEOUT
        )
        opened = await event(js, "open")
        return s, w, opened["conn"]

    s1, w1, c1 = await connect()
    s2, _w2, c2 = await connect()
    # JS -> us: a forged frame fails our stream 1 with a typed error; stream 2 carries on
    await call(js, op="corrupt", conn=c1)
    with pytest.raises(RemoteProtocolError):
        await asyncio.wait_for(s1.read(), TIMEOUT)
    await call(js, op="write", conn=c2, data=b"still fine".hex())
    assert await asyncio.wait_for(s2.readexactly(10), TIMEOUT) == b"still fine"
    # us -> JS: a forged frame on the raw socket makes JS destroy that stream only
    s3, w3, c3 = await connect()
    w3.write(bytes([40, 0, 0]) + os.urandom(40))
    failed = await event(js, "error", c3)
    assert failed["conn"] == c3
    s2.write(b"ping")
    s2.write_eof()
    end = await event(js, "end", c2)
    assert end["received"] == 4
    for s in (s1, s2, s3):
        s.close()
        await s.wait_closed()
    del w1


@pytest.mark.parametrize("py_initiator", [True, False])
async def test_unordered_datagrams(js: JSProcess, py_initiator: bool) -> None:
    """secretbox datagrams (UDX MESSAGE payloads) open on the other side, both ways."""
    handshake = await ik_handshake(js, py_initiator, "d")
    raw, _ = await py_raw(js, False, {"initiator": not py_initiator, "handshake": "d"})
    stream = await asyncio.wait_for(
        open_secret_stream(raw, initiator=py_initiator, handshake=handshake), TIMEOUT
    )
    conn = (await event(js, "open"))["conn"]
    box = stream.core.encrypt_datagram(b"from python")
    assert (await call(js, op="unbox", conn=conn, data=box.hex()))["data"] == b"from python".hex()
    bad = box[:-1] + bytes([box[-1] ^ 1])
    assert (await call(js, op="unbox", conn=conn, data=bad.hex()))["data"] is None
    theirs = bytes.fromhex((await call(js, op="box", conn=conn, data=b"from js".hex()))["box"])
    assert stream.core.decrypt_datagram(theirs) == b"from js"
    stream.close()
    await stream.wait_closed()


@pytest.mark.parametrize("py_initiator", [True, False])
async def test_16mib_both_ways_against_js_udx(js: JSProcess, py_initiator: bool) -> None:
    size = 16 * MIB
    handshake = await ik_handshake(js, py_initiator, "u")
    js_port = (await call(js, op="udx-bind"))["port"]
    sock = await UDXSocket.bind("127.0.0.1", 0)
    try:
        raw = sock.create_stream(7)
        await raw.connect(9, ("127.0.0.1", js_port))
        cmd: dict[str, Any] = {"id": 9, "remoteId": 7, "port": sock.address[1]}
        await call(js, op="udx-connect", initiator=not py_initiator, handshake="u", send=size, **cmd)
        stream = await asyncio.wait_for(
            open_secret_stream(raw, initiator=py_initiator, handshake=handshake), UDX_TIMEOUT
        )
        opened = await event(js, "open")
        assert opened["remotePublicKey"] == PY.public_key.hex()
        assert stream.remote_public_key == JSK.public_key
        # unordered datagrams both ways (UDX MESSAGE packets, secretbox-encrypted)
        stream.send(b"datagram from python")
        assert (await event(js, "message"))["data"] == b"datagram from python".hex()
        await call(js, op="send-message", conn=opened["conn"], data=b"datagram from js".hex())
        assert await asyncio.wait_for(stream.receive_message(), UDX_TIMEOUT) == b"datagram from js"
        sent_sha, (n, got_sha) = await asyncio.wait_for(
            asyncio.gather(send_all(stream, size), read_all(stream)), UDX_TIMEOUT
        )
        js_end = await event(js, "end")
        js_sent = await event(js, "sent")
        assert (js_end["received"], js_end["sha256"]) == (size, sent_sha)
        assert (n, got_sha) == (size, js_sent["sha256"])
        stream.close()
        await asyncio.wait_for(stream.wait_closed(), UDX_TIMEOUT)
    finally:
        sock.close()


async def test_python_to_python_over_udx() -> None:
    a_kp, b_kp = (
        KeyPair.from_seed(hashlib.sha256(b"ua").digest()),
        KeyPair.from_seed(hashlib.sha256(b"ub").digest()),
    )
    client = peer_handshake(a_kp, b_kp.public_key, os.urandom(32))
    server = peer_handshake(b_kp, None, os.urandom(32))
    server.recv(client.send(b""))
    client.recv(server.send(b""))
    sa, sb = await UDXSocket.bind("127.0.0.1", 0), await UDXSocket.bind("127.0.0.1", 0)
    try:
        ra, rb = sa.create_stream(1), sb.create_stream(2)
        await ra.connect(2, ("127.0.0.1", sb.address[1]))
        await rb.connect(1, ("127.0.0.1", sa.address[1]))
        a = await open_secret_stream(ra, initiator=True, handshake=client.result())
        b = await open_secret_stream(rb, initiator=False, handshake=server.result())
        size = 8 * MIB
        (sha_a, (nb, got_b)), (sha_b, (na, got_a)) = await asyncio.wait_for(
            asyncio.gather(
                asyncio.gather(send_all(a, size), read_all(b)),
                asyncio.gather(send_all(b, size), read_all(a)),
            ),
            UDX_TIMEOUT,
        )
        assert (nb, got_b) == (size, sha_a) and (na, got_a) == (size, sha_b)
        for s in (a, b):
            s.close()
        await asyncio.wait_for(asyncio.gather(a.wait_closed(), b.wait_closed()), UDX_TIMEOUT)
    finally:
        sa.close()
        sb.close()
