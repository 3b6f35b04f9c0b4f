"""A client that is kill -9ed never says goodbye (issue 15 item 2): the server notices on every stream,
also those it had already half-closed, and the stream fails with a typed timeout."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from peerdht.aio.testnet import Testnet

from .conftest import Proc, attack_tool

pytestmark = pytest.mark.attack


async def test_half_closed_streams_of_a_killed_client_are_reclaimed(
    served: tuple[Testnet, Proc, dict[str, Any]],
) -> None:
    testnet, server, ready = served
    boot = "{}:{}".format(*testnet.bootstrap[0])
    clients = await attack_tool(
        "clients", "--bootstrap", boot, "--public-key", ready["publicKey"], "--count", "5"
    )
    try:
        assert (await clients.reply(60))["connected"] == 5
        for _ in range(100):  # the last headers may still be on their way
            stats = await server.ask({"op": "stats"})
            if stats["connections"] == 5:
                break
            await asyncio.sleep(0.1)
        assert stats["connections"] == 5  # each half-closed by the server at once, the client silent
        clients.proc.send_signal(signal.SIGKILL)  # no DESTROY, no END: the peer just vanishes
        await clients.proc.wait()
        events = await server.wait_events(5, timeout=45)  # the default timeout is 15 s
    finally:
        await clients.stop()
    assert [e["error"] for e in events] == ["StreamTimeout"] * 5
    assert (await server.ask({"op": "stats"}))["connections"] == 0
