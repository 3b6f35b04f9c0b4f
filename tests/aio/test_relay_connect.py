"""connect() through blind relays, Python <-> Python on a Python testnet: ``relay_through`` (hyperdht's
``relayThrough``), and the automatic fallback when punching fails, through a ``HyperDHT(relay=True)``
node found by lookup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import cast

import pytest

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht import relay_upgrade as relay_mod
from peerdht.aio.hyperdht.relay import RelayServer
from peerdht.aio.hyperdht.secretstream import SecretStream
from peerdht.aio.hyperdht.server import Server
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.aio.transport.udx import UDXStream
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.handshake import HolepunchDoubleRandomized

T = 20


async def _echo(stream: SecretStream) -> None:
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def _roundtrip(stream: SecretStream, data: bytes) -> bytes:
    stream.write(data)
    stream.write_eof()
    got = await asyncio.wait_for(stream.read(), T)
    stream.close()
    return got


@contextlib.asynccontextmanager
async def _relay_net() -> AsyncIterator[
    tuple[RelayServer, HyperDHT, Server, KeyPair, asyncio.Queue[SecretStream]]
]:
    """A testnet with a relay node, a firewalled server node ``a`` listening (echo; accepted streams
    also go to the queue) and a firewalled client node ``b`` -- both firewalled as behind a NAT: no
    direct path, no OPEN shortcut. Yields (relay, b, server, key pair, queue)."""
    accepted: asyncio.Queue[SecretStream] = asyncio.Queue()

    async def keep(stream: SecretStream) -> None:
        await accepted.put(stream)
        await _echo(stream)

    async with (
        await Testnet.create(4) as tn,
        tn.node(relay=True, ephemeral=False, firewalled=False) as r,
        tn.node() as a,
        tn.node() as b,
    ):
        relay = await asyncio.wait_for(r.relay_ready(), T)
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        a.core.firewalled = True
        b.core.firewalled = True
        server = a.create_server(keep)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        assert relay.public_key is not None
        yield relay, b, server, kp, accepted


async def test_connect_relay_through() -> None:
    async with _relay_net() as (relay, b, server, kp, _):
        stream = await asyncio.wait_for(b.connect(kp.public_key, relay_through=relay.public_key), T)
        data = bytes(range(256)) * 1000
        assert await _roundtrip(stream, data) == data
        assert relay.stats["links"] == 1
        assert server.stats.get("relayed") == 1
        assert stream.path == "relay"
        await server.close()


@pytest.mark.usefixtures("punching_fails")
async def test_connect_falls_back_to_a_relay_when_punching_fails() -> None:
    async with _relay_net() as (relay, b, _server, kp, _):
        stream = await asyncio.wait_for(b.connect(kp.public_key), T)
        assert await _roundtrip(stream, b"through the relay") == b"through the relay"
        assert relay.stats["links"] == 1


@pytest.mark.usefixtures("punching_fails")
async def test_no_relay_no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("peerdht.aio.hyperdht.relay.FIND_TIMEOUT", 2.0)
    async with await Testnet.create(3) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        a.core.firewalled = True  # as behind a NAT: no direct path, no OPEN shortcut
        b.core.firewalled = True
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        with pytest.raises(HolepunchDoubleRandomized):
            await asyncio.wait_for(b.connect(kp.public_key), T)


async def test_relayed_connection_upgrades_when_the_peer_moves_to_a_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client moves its stream to the server's direct address (as a JS peer does after a late
    punch: ``changeRemote``); the server sees it, follows, and closes its relay connection; the
    connection survives the relay going away."""
    monkeypatch.setattr(relay_mod, "RELAY_LINGER", 0.1)
    async with _relay_net() as (relay, b, server, kp, accepted):
        before = relay_mod.UPGRADES["upgraded"]
        stream = await asyncio.wait_for(
            b.connect(kp.public_key, relay_through=relay.public_key, upgrade=False), T
        )
        srv = await asyncio.wait_for(accepted.get(), T)
        stream.write(b"via relay;")
        assert await asyncio.wait_for(stream.readexactly(10), T) == b"via relay;"
        client_raw, server_raw = cast(UDXStream, stream.raw), cast(UDXStream, srv.raw)
        assert client_raw.remote_addr == server_raw.remote_addr  # both talk to the relay
        await asyncio.wait_for(client_raw.change_remote(server_raw.id, server_raw.socket.address), T)
        stream.write(b"direct!")
        assert await asyncio.wait_for(stream.readexactly(7), T) == b"direct!"
        for _ in range(100):
            if relay_mod.UPGRADES["upgraded"] > before and relay.pairings.active == 0:
                break
            await asyncio.sleep(0.05)
        assert relay_mod.UPGRADES["upgraded"] >= before + 1  # the server (and our stream, seeing it)
        assert server_raw.remote_addr == client_raw.socket.address
        assert relay.pairings.active == 0  # the server closed its relay connection
        await relay.close()  # every relay session and splice ends
        stream.write(b"still here")
        assert await asyncio.wait_for(stream.readexactly(10), T) == b"still here"
        stream.close()
        await server.close()


async def test_relayed_connection_punches_on_and_moves_to_a_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """relay_through with punchable peers (both firewalled, CONSISTENT on loopback): the stream opens
    through the relay, the client punches on in the background, and once the server answers its probes
    the client moves the stream to the server's direct address; the server follows and both close
    their relay connections. Data written before, during and after the move arrives in order."""
    monkeypatch.setattr(relay_mod, "RELAY_LINGER", 0.1)
    async with _relay_net() as (relay, b, server, kp, accepted):
        stream = await asyncio.wait_for(b.connect(kp.public_key, relay_through=relay.public_key), T)
        srv = await asyncio.wait_for(accepted.get(), T)
        assert stream.path == "relay"
        client_raw, server_raw = cast(UDXStream, stream.raw), cast(UDXStream, srv.raw)
        # (the punch may already have moved the stream: on loopback the server's echo of the client's
        # first probe comes back within a millisecond, so no assertion on the relayed state here)
        sent = bytearray()
        got = bytearray()
        n = 0
        deadline = asyncio.get_running_loop().time() + T
        while n < 3 or relay.pairings.active or relay_mod.is_relayed(client_raw) or relay_mod.is_relayed(server_raw):
            n += 1
            assert asyncio.get_running_loop().time() < deadline, f"no direct path after {n} round trips"
            chunk = n.to_bytes(4, "big") * 256
            stream.write(chunk)
            sent += chunk
            got += await asyncio.wait_for(stream.readexactly(len(chunk)), T)
        assert got == sent
        connects = b.stats["connects"]  # plus our connection to the relay node itself
        assert connects["relay"] == 1 and connects["upgraded"] == 1
        assert server.stats.get("upgraded") == 1
        assert client_raw.remote_addr == server_raw.socket.address
        assert server_raw.remote_addr == client_raw.socket.address
        await relay.close()
        assert await _roundtrip(stream, b"direct" * 1000) == b"direct" * 1000
        await server.close()


async def test_many_quick_relayed_connects_from_one_peer() -> None:
    """Each relayed connection opens its own relay session; closed ones linger a moment: a burst
    of connects from one peer stays within the per-peer bounds."""
    async with _relay_net() as (relay, b, server, kp, _):
        for i in range(8):
            stream = await asyncio.wait_for(b.connect(kp.public_key, relay_through=relay.public_key), T)
            assert await _roundtrip(stream, b"n%d" % i) == b"n%d" % i
        assert relay.stats["links"] == 8 and relay.stats["refused_sessions"] == 0
        await server.close()


@pytest.mark.usefixtures("punching_fails")
async def test_a_move_to_a_dead_direct_path_falls_back_to_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "stall after the move": the stream moves to a direct address that swallows every packet
    (a punched path that died). Nothing is acknowledged there within MOVE_TIMEOUT, so the stream moves
    back to the relay, which is still connected, and what was written meanwhile arrives in order."""
    monkeypatch.setattr("peerdht.holepunch.upgrade.DirectMove.__init__.__defaults__", (0.5,))
    loop = asyncio.get_running_loop()
    sink, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    dead = sink.get_extra_info("sockname")[:2]
    try:
        async with _relay_net() as (relay, b, server, kp, accepted):
            before = dict(relay_mod.UPGRADES)
            stream = await asyncio.wait_for(b.connect(kp.public_key, relay_through=relay.public_key), T)
            await asyncio.wait_for(accepted.get(), T)
            client_raw = cast(UDXStream, stream.raw)
            relay_addr = client_raw.remote_addr
            assert relay_mod.is_relayed(client_raw)  # punching is disabled: it stays relayed
            assert relay_mod.upgrade_relayed(client_raw, dead)
            data = b"".join(i.to_bytes(4, "big") for i in range(20_000))  # 80 KB, written during the move
            stream.write(data)
            assert await asyncio.wait_for(stream.readexactly(len(data)), T) == data
            assert relay_mod.UPGRADES["fell_back"] == before["fell_back"] + 1
            assert relay_mod.UPGRADES["upgraded"] == before["upgraded"]
            assert client_raw.remote_addr == relay_addr
            assert relay.pairings.active == 1  # the relay connection stayed up
            assert await _roundtrip(stream, b"after") == b"after"
            await server.close()
    finally:
        sink.close()
