"""Connect by public key between Python and real JS ``hyperdht`` 6.34 peers, on a JS and on a Python testnet.

Connection protocol (tests/js/connect-peer.js): each side sends ``n`` bytes of a fixed pattern and ends;
the server, once the client ended, first writes the sha256 of what it received, then its pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.secretstream import SecretStream
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.hyper.handshake import ConnectError, PeerConnectionFailed, PeerNotFound

pytestmark = pytest.mark.interop

TIMEOUT = 30
BLOCK = bytes((i * 7 + 3) & 255 for i in range(65536))
SMALL = 256 * 1024
BIG = 64 * 1024 * 1024


def pattern(n: int) -> bytes:
    return (BLOCK * (n // len(BLOCK) + 1))[:n]


def pattern_sha(n: int) -> str:
    h = hashlib.sha256()
    for k in range(0, n, len(BLOCK)):
        h.update(BLOCK[: min(len(BLOCK), n - k)])
    return h.hexdigest()


async def write_pattern(stream: SecretStream, n: int) -> None:
    for k in range(0, n, len(BLOCK)):
        stream.write(BLOCK[: min(len(BLOCK), n - k)])
        await stream.drain()


async def read_all(stream: SecretStream) -> tuple[int, str, bytes]:
    h = hashlib.sha256()
    n = 0
    first = b""
    while chunk := await stream.read(1 << 20):
        if len(first) < 32:
            first += chunk[: 32 - len(first)]
        h.update(chunk)
        n += len(chunk)
    return n, h.hexdigest(), first


def py_handler(send: int, seen: list[dict[str, Any]]) -> Any:
    async def handler(stream: SecretStream) -> None:
        n, sha, _ = await read_all(stream)
        seen.append({"received": n, "sha256": sha, "remote": stream.remote_public_key})
        stream.write(bytes.fromhex(sha))
        await write_pattern(stream, send)
        stream.write_eof()
        await stream.drain()

    return handler


async def py_connect(dht: HyperDHT, public_key: bytes, send: int) -> tuple[int, str, bytes]:
    stream = await asyncio.wait_for(dht.connect(public_key), TIMEOUT)
    try:
        reading = asyncio.ensure_future(read_all(stream))
        await write_pattern(stream, send)
        stream.write_eof()
        return await asyncio.wait_for(reading, 120)
    finally:
        stream.close()


class JSPeer:
    def __init__(self, proc: JSProcess, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.bootstrap = [_parse(b) for b in ready["bootstrap"]]
        self.public_key = bytes.fromhex(ready["publicKey"])
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, op: str, timeout: float = TIMEOUT, **kw: Any) -> dict[str, Any]:
        cmd_id = next(self._ids)
        await self.proc.send({"id": cmd_id, "op": op, **kw})
        while True:
            reply = await self.proc.line(timeout)
            if "event" in reply:
                self.events.append(reply)
                continue
            assert reply.get("id") == cmd_id, reply
            assert "error" not in reply, reply
            return reply

    async def event(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.events:
            return self.events.pop(0)
        reply = await self.proc.line(timeout)
        assert "event" in reply, reply
        return reply


def _parse(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


async def _js_peer(*args: str) -> JSPeer:
    proc = await start_js("connect-peer.js", *args)
    ready = await proc.line(TIMEOUT)
    assert ready.get("ready"), ready
    return JSPeer(proc, ready)


class Net:
    """A loopback network (JS or Python testnet) with one JS peer and two Python nodes on it."""

    def __init__(self, js: JSPeer, py: HyperDHT, py2: HyperDHT) -> None:
        self.js = js
        self.py = py
        self.py2 = py2


@pytest.fixture(params=["js-testnet", "py-testnet"])
async def net(request: pytest.FixtureRequest) -> AsyncIterator[Net]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "js-testnet":
            js = await _js_peer("--testnet", "5")
            bootstrap = js.bootstrap
        else:
            tn = await Testnet.create(5)
            stack.push_async_callback(tn.destroy)
            bootstrap = tn.bootstrap
            js = await _js_peer(*[a for b in bootstrap for a in ("--bootstrap", f"{b[0]}:{b[1]}")])
        stack.push_async_callback(js.proc.close)
        py = await stack.enter_async_context(HyperDHT(bootstrap=bootstrap, host="127.0.0.1"))
        py2 = await stack.enter_async_context(HyperDHT(bootstrap=bootstrap, host="127.0.0.1"))
        await py.fully_bootstrapped()
        await py2.fully_bootstrapped()
        yield Net(js, py, py2)


async def test_py_client_js_server(net: Net) -> None:
    info = await net.js.call("serve", seed="11" * 32, send=SMALL)
    pk = bytes.fromhex(info["publicKey"])
    n, sha, first = await py_connect(net.py, pk, SMALL)
    assert first == bytes.fromhex(pattern_sha(SMALL))  # the server got our bytes intact
    assert sha == hashlib.sha256(first + pattern(SMALL)).hexdigest()  # and we got its bytes intact
    ev = await net.js.event()
    assert ev["remotePublicKey"] == net.py.default_key_pair.public_key.hex()
    assert ev["received"] == SMALL
    assert n == 32 + SMALL
    await net.js.call("closeServer")


async def test_js_client_py_server(net: Net) -> None:
    seen: list[dict[str, Any]] = []
    server = net.py.create_server(py_handler(SMALL, seen))
    kp = HyperDHT.key_pair(b"\x22" * 32)
    await server.listen(kp)
    res = await net.js.call("connect", publicKey=kp.public_key.hex(), send=SMALL)
    assert "code" not in res, res
    assert res["received"] == 32 + SMALL
    assert res["sha256"] == hashlib.sha256(bytes.fromhex(pattern_sha(SMALL)) + pattern(SMALL)).hexdigest()
    assert seen and seen[0]["sha256"] == pattern_sha(SMALL)
    assert seen[0]["remote"] == net.js.public_key
    await server.close()


async def test_py_py(net: Net) -> None:
    seen: list[dict[str, Any]] = []
    server = net.py.create_server(py_handler(SMALL, seen))
    kp = HyperDHT.key_pair()
    await server.listen(kp)
    n, _sha, first = await py_connect(net.py2, kp.public_key, SMALL)
    assert n == 32 + SMALL and first == bytes.fromhex(pattern_sha(SMALL))
    await server.close()


async def test_firewall_js_rejects_py(net: Net) -> None:
    info = await net.js.call("serve", seed="33" * 32, send=0, reject=True)
    with pytest.raises(PeerConnectionFailed):
        await asyncio.wait_for(net.py.connect(bytes.fromhex(info["publicKey"])), TIMEOUT)
    ev = await net.js.event()
    assert ev["event"] == "firewall"
    assert ev["remotePublicKey"] == net.py.default_key_pair.public_key.hex()
    await net.js.call("closeServer")


async def test_firewall_py_rejects_js(net: Net) -> None:
    rejected: list[bytes] = []

    def firewall(pk: bytes, payload: Any, addr: tuple[str, int]) -> bool:
        rejected.append(pk)
        return True

    server = net.py.create_server(py_handler(0, []), firewall=firewall)
    kp = HyperDHT.key_pair()
    await server.listen(kp)
    res = await net.js.call("connect", publicKey=kp.public_key.hex(), send=0, timeout=60)
    assert res.get("code") == "PEER_CONNECTION_FAILED", res
    assert rejected and rejected[0] == net.js.public_key
    await server.close()


async def test_closed_servers_are_not_found(net: Net) -> None:
    info = await net.js.call("serve", seed="44" * 32, send=0)
    await net.js.call("closeServer")
    with pytest.raises(PeerNotFound) as err:
        await asyncio.wait_for(net.py.connect(bytes.fromhex(info["publicKey"])), TIMEOUT)
    assert err.value.code == "PEER_NOT_FOUND"

    server = net.py.create_server(py_handler(0, []))
    kp = HyperDHT.key_pair()
    await server.listen(kp)
    await server.close()
    res = await net.js.call("connect", publicKey=kp.public_key.hex(), send=0, timeout=60)
    assert res.get("code") == "PEER_NOT_FOUND", res


async def test_64mib_each_way(net: Net) -> None:
    info = await net.js.call("serve", seed="55" * 32, send=BIG)
    n, sha, first = await py_connect(net.py, bytes.fromhex(info["publicKey"]), BIG)
    assert first == bytes.fromhex(pattern_sha(BIG)) and n == 32 + BIG
    assert sha == hashlib.sha256(first + pattern(BIG)).hexdigest()
    await net.js.call("closeServer")

    seen: list[dict[str, Any]] = []
    server = net.py.create_server(py_handler(BIG, seen))
    kp = HyperDHT.key_pair()
    await server.listen(kp)
    res = await net.js.call("connect", publicKey=kp.public_key.hex(), send=BIG, timeout=180)
    assert res["received"] == 32 + BIG, res
    assert res["sha256"] == hashlib.sha256(bytes.fromhex(pattern_sha(BIG)) + pattern(BIG)).hexdigest()
    assert seen[0]["sha256"] == pattern_sha(BIG)
    await server.close()


def test_error_codes() -> None:
    assert issubclass(PeerNotFound, ConnectError)
    assert PeerNotFound().code == "PEER_NOT_FOUND"


async def test_holepunch_js_client_firewalled_py_server(net: Net) -> None:
    """Our server is firewalled: it offers holepunch relays and the JS client punches to it."""
    net.py.core.firewalled = True
    seen: list[dict[str, Any]] = []
    server = net.py.create_server(py_handler(SMALL, seen))
    kp = HyperDHT.key_pair()
    await server.listen(kp)
    assert server.relay_infos
    res = await net.js.call("connect", publicKey=kp.public_key.hex(), send=SMALL)
    assert "code" not in res, res
    assert res["received"] == 32 + SMALL
    assert seen and seen[0]["sha256"] == pattern_sha(SMALL)
    # (the JS client may already be unfirewalled, OPEN: then we connect to it without punching)
    await server.close()


async def test_holepunch_firewalled_py_client_js_server(net: Net) -> None:
    net.py.core.firewalled = True
    info = await net.js.call("serve", seed="66" * 32, send=SMALL)
    n, _sha, first = await py_connect(net.py, bytes.fromhex(info["publicKey"]), SMALL)
    assert n == 32 + SMALL and first == bytes.fromhex(pattern_sha(SMALL))
    await net.js.call("closeServer")


CLI = [sys.executable, "-m", "peerdht.cli.main"]
FILE_MIB = 128


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("big") / "in"
    with open(p, "wb") as f:
        for _ in range(FILE_MIB):
            f.write(os.urandom(1 << 20))
    return p


def _file_sha(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("net", ["py-testnet"], indirect=True)
async def test_cli_connect_to_js_server_128mib(net: Net, big_file: Path, tmp_path: Path) -> None:
    """``peerdht connect KEY < 128 MiB > out`` against a JS server that sends 128 MiB back."""
    info = await net.js.call("serve", seed="77" * 32, send=FILE_MIB << 20)
    boot = net.js.bootstrap[0]
    out = tmp_path / "out"
    with open(big_file, "rb") as fin, open(out, "wb") as fout:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "connect", info["publicKey"], "--bootstrap", f"{boot[0]}:{boot[1]}", stdin=fin, stdout=fout
        )
    assert await asyncio.wait_for(proc.wait(), 180) == 0
    ev = await net.js.event(60)
    assert ev["received"] == FILE_MIB << 20 and ev["sha256"] == _file_sha(big_file)
    data = out.read_bytes()
    assert len(data) == 32 + (FILE_MIB << 20)
    assert data[:32] == bytes.fromhex(_file_sha(big_file))
    assert hashlib.sha256(data[32:]).hexdigest() == pattern_sha(FILE_MIB << 20)
    await net.js.call("closeServer")


@pytest.mark.parametrize("net", ["py-testnet"], indirect=True)
async def test_js_client_to_cli_serve_128mib(net: Net, big_file: Path, tmp_path: Path) -> None:
    """A JS client sends 128 MiB to ``peerdht serve --once < 128 MiB > out`` and gets the file back."""
    boot = net.js.bootstrap[0]
    out = tmp_path / "out"
    seed = "88" * 32
    with open(big_file, "rb") as fin, open(out, "wb") as fout:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "--seed",
            seed,
            "--once",
            "--bootstrap",
            f"{boot[0]}:{boot[1]}",
            stdin=fin,
            stdout=fout,
            stderr=asyncio.subprocess.PIPE,
        )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
    key = line.split(b": ")[1].strip().decode()
    res = await net.js.call("connect", publicKey=key, send=FILE_MIB << 20, timeout=180)
    assert "code" not in res, res
    assert res["received"] == FILE_MIB << 20 and res["sha256"] == _file_sha(big_file)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert _file_sha(out) == pattern_sha(FILE_MIB << 20)
