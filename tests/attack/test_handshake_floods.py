"""Handshake floods at a server's own port (issue 15 items 1 and 4): legitimate connects get through,
memory stays bounded, and what was shed is counted by reason. Outcomes, not timings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peerdht.aio.hyperdht.testnet import Testnet

from .conftest import Proc, attack_tool, legit_connect

pytestmark = pytest.mark.attack


async def test_legit_connect_during_garbage_flood(served: tuple[Testnet, Proc, dict[str, Any]]) -> None:
    testnet, server, ready = served
    to, pk = f"127.0.0.1:{ready['port']}", ready["publicKey"]
    # one socket at 2,000/s (shed by the per-address rate) and 1,000/s spread over 50 hosts (each under
    # every limit, so each datagram costs the server a Diffie-Hellman) for 8 s
    floods = [
        await attack_tool("flood", "garbage", "--to", to, "--public-key", pk, "--rate", "2000", "--duration", "8"),
        await attack_tool(
            "flood", "garbage", "--to", to, "--public-key", pk, "--rate", "1000", "--duration", "8",
            "--hosts", "50",
        ),
    ]
    try:
        await asyncio.sleep(2)  # the flood is on
        path = await legit_connect(testnet, bytes.fromhex(pk))
        assert path is not None
        sent = [(await f.reply(60))["sent"] for f in floods]
        assert sum(sent) > 15_000
    finally:
        for f in floods:
            await f.stop()
    stats = await server.ask({"op": "stats"})
    assert stats["dropped"].get("handshake_rate", 0) > 1_000  # the single source was shed before any crypto
    assert stats["dropped"].get("handshake_invalid", 0) > 1_000  # the spread one reached the handshake and failed
    assert stats["connections"] == 0 and stats["pending"] == 0  # garbage holds nothing
    assert await legit_connect(testnet, bytes.fromhex(pk)) is not None  # and the server is fine after


async def test_valid_handshake_floods_keep_memory_bounded(
    served: tuple[Testnet, Proc, dict[str, Any]],
) -> None:
    testnet, server, ready = served
    to, pk = f"127.0.0.1:{ready['port']}", ready["publicKey"]
    start = server.rss_mib()
    peak = start
    after: list[float] = []
    for _ in range(3):
        # 2,000 fresh valid Noise handshakes at 500/s from 20 hosts, each fake client claiming to be
        # reachable: every one that is admitted reserves a UDX stream, and none ever follows up
        flood = await attack_tool(
            "flood", "valid", "--claim-open", "--to", to, "--public-key", pk, "--rate", "500",
            "--count", "2000", "--hosts", "20",
        )
        try:
            await flood.reply(120)  # prepared
            done = asyncio.ensure_future(flood.reply(120))
            while not done.done():
                peak = max(peak, server.rss_mib())
                stats = await server.ask({"op": "stats"})
                assert stats["pending"] <= 512
                await asyncio.sleep(0.2)
            assert done.result()["sent"] == 2000
        finally:
            await flood.stop()
        after.append(server.rss_mib())
    for _ in range(150):  # the fakes are released within the accept timeout (10 s)
        stats = await server.ask({"op": "stats"})
        if stats["pending"] == 0:
            break
        await asyncio.sleep(0.2)
    assert stats["pending"] == 0 and stats["connections"] == 0  # no fake became a connection
    assert stats["dropped"].get("handshake_evicted", 0) > 0  # the pending slots were full and made room
    assert peak - start < 100, (start, peak, after)
    assert after[2] - after[0] < 15, after  # three floods in a row do not grow it
    assert await legit_connect(testnet, bytes.fromhex(pk)) is not None
