"""Relay lockout (issue 15 item 3): sessions from fresh keys on many source addresses fill a blind
relay; a legitimate pair is still served, the attacker's unpaired sessions expire, and per-host limits
hold. Attackers are HyperDHT nodes on their own 127.1.x.1 addresses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.relay import RelayServer
from peerdht.aio.hyperdht.secretstream import SecretStream
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.hyper.crypto import KeyPair

pytestmark = pytest.mark.attack

T = 20.0


async def _until(cond: Callable[[], bool], timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def _echo(stream: SecretStream) -> None:
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def test_legit_pair_served_while_attackers_hold_the_relay() -> None:
    async with (
        await Testnet.create(4) as tn,
        tn.node(ephemeral=False, firewalled=False) as r,
        tn.node() as a,
        tn.node() as b,
    ):
        relay = RelayServer(
            r, max_sessions=16, max_sessions_per_host=4, evict_grace=1.0, unpaired_timeout=4.0
        )
        await relay.listen(HyperDHT.key_pair())
        assert relay.public_key is not None
        attackers = [HyperDHT(bootstrap=tn.bootstrap, host=f"127.1.{i}.1") for i in range(4)]
        held: list[SecretStream] = []
        try:
            for node in attackers:
                await node.open()
                await node.fully_bootstrapped()
            # 5 sessions per attacker host, each from a fresh key pair: 4 fit per host, 16 in all (full)
            for node in attackers:
                for _ in range(5):
                    held.append(
                        await asyncio.wait_for(node.connect(relay.public_key, key_pair=KeyPair.generate()), T)
                    )
            await _until(lambda: len(relay.sessions) == 16 and relay.dropped.get("host", 0) == 4)
            stamp = asyncio.get_running_loop().time()
            await _until(lambda: asyncio.get_running_loop().time() - stamp > 1.2)  # past the grace

            # a legitimate pair through the full relay: both firewalled, so the relay is the only path
            await a.fully_bootstrapped()
            await b.fully_bootstrapped()
            a.core.firewalled = True
            b.core.firewalled = True
            server = a.create_server(_echo)
            kp = HyperDHT.key_pair()
            await server.listen(kp)
            stream = await asyncio.wait_for(
                b.connect(kp.public_key, relay_through=relay.public_key, upgrade=False), T
            )
            assert stream.path == "relay"
            stream.write(b"served despite the lockout")
            stream.write_eof()
            assert await asyncio.wait_for(stream.read(), T) == b"served despite the lockout"
            assert relay.stats["evicted_sessions"] >= 2 and relay.stats["links"] == 1

            # the attackers' sessions never pair: they are closed after the unpaired timeout
            await _until(lambda: relay.dropped.get("unpaired", 0) >= 16 - relay.stats["evicted_sessions"])
            assert all(s.links for s in relay.sessions)  # only the legitimate pair is left
            stream.close()
            await server.close()
        finally:
            for s in held:
                s.close()
            for node in attackers:
                await node.close()
            await relay.close()
