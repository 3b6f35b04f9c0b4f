"""Blind relay over HyperDHT, Python <-> Python on a Python testnet (loopback): pairing, splice,
end-to-end encryption through the relay, token binding, unpair and close propagation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.relay import (
    RelayAborted,
    RelayServer,
    find_relays,
    pick_relays,
    relay_stream,
    start_relay,
    token,
)
from peerdht.aio.hyperdht.secretstream import open_secret_stream
from peerdht.aio.hyperdht.testnet import Testnet

T = 15


@asynccontextmanager
async def relay_net(**relay_opts: Any) -> AsyncIterator[tuple[Testnet, RelayServer, HyperDHT, HyperDHT]]:
    async with await Testnet.create(4) as tn, tn.node(ephemeral=False, firewalled=False) as r, tn.node() as a, tn.node() as b:
        for n in (r, a, b):
            await n.fully_bootstrapped()
        relay = RelayServer(r, **relay_opts)
        await relay.listen(HyperDHT.key_pair())
        try:
            yield tn, relay, a, b
        finally:
            await relay.close()


def record_relay_traffic(relay: RelayServer) -> list[bytes]:
    seen: list[bytes] = []
    driver = relay.dht.require_open()
    for sock in driver.udx_sockets:
        orig = sock.transport.handler(0xFF)  # where the socket hands UDX packets

        def spy(data: Any, addr: Any, now: float, orig: Any = orig) -> object:
            seen.append(bytes(data))
            return orig(data, addr, now)

        sock.transport.register((0xFF,), spy)
    return seen


async def test_relay_splices_end_to_end_encrypted_streams() -> None:
    async with relay_net() as (_tn, relay, a, b):
        assert relay.public_key is not None
        seen = record_relay_traffic(relay)
        tok = token()
        ra, rb = await asyncio.wait_for(
            asyncio.gather(
                relay_stream(a, relay.public_key, True, tok), relay_stream(b, relay.public_key, False, tok)
            ),
            T,
        )
        assert relay.pairings.active == 1
        sa, sb = await asyncio.wait_for(
            asyncio.gather(
                open_secret_stream(ra.stream, initiator=True, key_pair=a.default_key_pair),
                open_secret_stream(rb.stream, initiator=False, key_pair=b.default_key_pair),
            ),
            T,
        )
        assert sb.remote_public_key == a.default_key_pair.public_key
        secret = b"attack at dawn, " * 4096
        sa.write(secret)
        sa.write_eof()
        got = await asyncio.wait_for(sb.readexactly(len(secret)), T)
        assert got == secret
        sb.write(b"ack")
        sb.write_eof()
        assert await asyncio.wait_for(sa.read(), T) == b"ack"
        assert not any(b"attack at dawn" in d for d in seen)  # the relay never saw plaintext
        assert sum(len(d) for d in seen) > len(secret)
        assert relay.relayed_bytes > len(secret)
        await asyncio.wait_for(asyncio.gather(sa.wait_closed(), sb.wait_closed()), T)
        ra.close()
        rb.close()


async def test_relay_never_splices_different_tokens() -> None:
    async with relay_net() as (_tn, relay, a, b):
        assert relay.public_key is not None
        with pytest.raises(RelayAborted):
            await asyncio.gather(
                relay_stream(a, relay.public_key, True, token(), timeout=1.5),
                relay_stream(b, relay.public_key, False, token(), timeout=1.5),
            )
        assert relay.pairings.active == 0 and relay.stats["links"] == 0


async def test_relay_same_role_twice_does_not_pair() -> None:
    async with relay_net() as (_tn, relay, a, b):
        assert relay.public_key is not None
        tok = token()
        with pytest.raises(RelayAborted):
            await asyncio.gather(
                relay_stream(a, relay.public_key, True, tok, timeout=1.5),
                relay_stream(b, relay.public_key, True, tok, timeout=1.5),
            )
        assert relay.stats["links"] == 0


async def test_relay_teardown_when_one_side_goes() -> None:
    async with relay_net() as (_tn, relay, a, b):
        assert relay.public_key is not None
        tok = token()
        ra, rb = await asyncio.wait_for(
            asyncio.gather(
                relay_stream(a, relay.public_key, True, tok), relay_stream(b, relay.public_key, False, tok)
            ),
            T,
        )
        assert relay.pairings.active == 1
        ra.stream.destroy()  # DESTROY passes through the relay and closes both of its streams
        await asyncio.wait_for(rb.stream.wait_closed(), T)
        for _ in range(100):
            if relay.pairings.active == 0:
                break
            await asyncio.sleep(0.05)
        assert relay.pairings.active == 0
        ra.close()  # the relay session ends too
        for _ in range(100):
            if len(relay.sessions) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(relay.sessions) == 1
        rb.close()


async def test_relay_capacity_bounds_sessions() -> None:
    async with relay_net(max_sessions=1) as (_tn, relay, a, b):
        assert relay.public_key is not None
        tok = token()
        with pytest.raises((RelayAborted, Exception)):
            await asyncio.gather(
                relay_stream(a, relay.public_key, True, tok, timeout=2),
                relay_stream(b, relay.public_key, False, tok, timeout=2),
            )
        assert relay.stats["refused_sessions"] >= 1 and relay.stats["links"] == 0


async def test_relay_discovery_topic() -> None:
    async with await Testnet.create(4) as tn, tn.node() as r, tn.node() as a:
        await r.fully_bootstrapped()
        await a.fully_bootstrapped()
        relay = await start_relay(r)
        try:
            assert await asyncio.wait_for(find_relays(a), T) == [relay.public_key]
            assert await pick_relays(a) == [relay.public_key]
            assert await pick_relays(a, exclude=[relay.public_key or b""]) == []
        finally:
            await relay.close()


async def test_relay_drops_sessions_that_send_garbage() -> None:
    async with relay_net() as (_tn, relay, a, b):
        assert relay.public_key is not None
        conn = await asyncio.wait_for(a.connect(relay.public_key), T)
        conn.write(b"\x00\x01\x07blind-r")  # an open whose protocol string runs past the end
        for _ in range(100):
            if relay.stats["bad_messages"] and not relay.sessions:
                break
            await asyncio.sleep(0.05)
        assert relay.stats["bad_messages"] == 1 and not relay.sessions
        conn.close()
        tok = token()  # the relay still serves others
        ra, rb = await asyncio.wait_for(
            asyncio.gather(
                relay_stream(a, relay.public_key, True, tok), relay_stream(b, relay.public_key, False, tok)
            ),
            T,
        )
        assert relay.pairings.active == 1
        ra.close()
        rb.close()


async def test_relay_bounds_sessions_per_peer() -> None:
    async with relay_net(max_sessions_per_peer=1) as (_tn, relay, a, b):
        assert relay.public_key is not None
        first = await asyncio.wait_for(a.connect(relay.public_key), T)
        for _ in range(100):
            if relay.sessions:
                break
            await asyncio.sleep(0.02)
        second = await asyncio.wait_for(a.connect(relay.public_key), T)
        for _ in range(100):
            if relay.stats["refused_sessions"]:
                break
            await asyncio.sleep(0.02)
        assert relay.stats["refused_sessions"] == 1 and len(relay.sessions) == 1
        other = await asyncio.wait_for(b.connect(relay.public_key), T)  # another peer is served
        for _ in range(100):
            if len(relay.sessions) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(relay.sessions) == 2
        for c in (first, second, other):
            c.close()
