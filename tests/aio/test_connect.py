"""Connect by public key between Python peers on a Python testnet (loopback)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.testnet import Testnet
from peerdht.hyper.handshake import PeerConnectionFailed, PeerNotFound


async def _echo(stream) -> None:  # type: ignore[no-untyped-def]
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def test_connect_py_py_echo() -> None:
    async with await Testnet.create(5) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair(b"\x01" * 32)
        await server.listen(kp)
        assert server.relays > 0
        stream = await asyncio.wait_for(b.connect(kp.public_key), 10)
        assert stream.remote_public_key == kp.public_key
        stream.write(b"hello")
        await stream.drain()
        assert await asyncio.wait_for(stream.readexactly(5), 5) == b"hello"
        stream.write_eof()
        assert await asyncio.wait_for(stream.read(), 5) == b""
        stream.close()
        await server.close()


async def test_connect_unknown_key_peer_not_found() -> None:
    async with await Testnet.create(3) as tn, tn.node() as b:
        await b.fully_bootstrapped()
        with pytest.raises(PeerNotFound) as info:
            await asyncio.wait_for(b.connect(HyperDHT.key_pair().public_key), 15)
        assert info.value.code == "PEER_NOT_FOUND"


async def test_firewall_rejects() -> None:
    seen = []

    def firewall(pk, payload, addr):  # type: ignore[no-untyped-def]
        seen.append((pk, addr))
        return True

    async with await Testnet.create(3) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        server = a.create_server(_echo, firewall=firewall)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        with pytest.raises(PeerConnectionFailed):
            await asyncio.wait_for(b.connect(kp.public_key), 30)
        assert seen and seen[0][0] == b.default_key_pair.public_key
        await server.close()


async def test_transfer_sha256_both_ways() -> None:
    data = bytes(range(256)) * 4096 * 4  # 4 MiB

    async def handler(stream) -> None:  # type: ignore[no-untyped-def]
        h = hashlib.sha256()
        n = 0
        while chunk := await stream.read(65536):
            h.update(chunk)
            n += len(chunk)
        stream.write(h.digest())
        stream.write(data)
        await stream.drain()
        stream.write_eof()

    async with await Testnet.create(3) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        server = a.create_server(handler)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        stream = await asyncio.wait_for(b.connect(kp.public_key), 10)
        stream.write(data)
        await stream.drain()
        stream.write_eof()
        got = await asyncio.wait_for(stream.read(), 30)
        assert got[:32] == hashlib.sha256(data).digest()
        assert hashlib.sha256(got[32:]).digest() == hashlib.sha256(data).digest()
        stream.close()
        await server.close()


async def test_holepunch_py_py_firewalled() -> None:
    """Both nodes firewalled: the server offers holepunch relays; consistent punch on loopback."""
    async with await Testnet.create(6) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        a.core.firewalled = True
        b.core.firewalled = True
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        assert server.relay_infos
        stream = await asyncio.wait_for(b.connect(kp.public_key), 20)
        stream.write(b"punched")
        stream.write_eof()
        await stream.drain()
        assert await asyncio.wait_for(stream.read(), 10) == b"punched"
        assert server.stats["punches"] == 1
        stream.close()
        await server.close()
