"""Blind relays between Python and JS (npm ``blind-relay`` 1.6.1 + ``hyperdht`` 6.34) on a JS testnet:
a JS relay serving Python clients, and our relay serving a JS hyperdht client and server that use
``relayThrough`` with holepunching disabled (``holepunch: () => false``, as hyperdht's
``test/relaying.js``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.relay import RelayServer, relay_stream, token
from peerdht.aio.secretstream import open_secret_stream

pytestmark = pytest.mark.interop

T = 30


class JS:
    def __init__(self, proc: JSProcess, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.bootstrap = [(h, int(p)) for h, _, p in (b.rpartition(":") for b in ready["bootstrap"])]
        self.relay_key = bytes.fromhex(ready["relayKey"]) if ready.get("relayKey") else None
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, op: str, timeout: float = T, **kw: Any) -> dict[str, Any]:
        cid = next(self._ids)
        await self.proc.send({"id": cid, "op": op, **kw})
        while True:
            reply = await self.proc.line(timeout)
            if "event" in reply:
                self.events.append(reply)
                continue
            assert reply.get("id") == cid and "error" not in reply, reply
            return reply


@contextlib.asynccontextmanager
async def js_net(*args: str) -> AsyncIterator[JS]:
    proc = await start_js("relay-peer.js", "--testnet", "4", *args)
    try:
        ready = await proc.line(T)
        assert ready.get("ready"), ready
        yield JS(proc, ready)
    finally:
        await proc.close()


async def test_python_clients_through_js_relay() -> None:
    async with js_net("--relay") as js:
        assert js.relay_key is not None
        async with HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1") as a, HyperDHT(
            bootstrap=js.bootstrap, host="127.0.0.1"
        ) as b:
            await a.fully_bootstrapped()
            await b.fully_bootstrapped()
            tok = token()
            ra, rb = await asyncio.wait_for(
                asyncio.gather(relay_stream(a, js.relay_key, True, tok), relay_stream(b, js.relay_key, False, tok)), T
            )
            sa, sb = await asyncio.wait_for(
                asyncio.gather(
                    open_secret_stream(ra.stream, initiator=True, key_pair=a.default_key_pair),
                    open_secret_stream(rb.stream, initiator=False, key_pair=b.default_key_pair),
                ),
                T,
            )
            data = bytes(range(256)) * 2048
            sa.write(data)
            sa.write_eof()
            assert await asyncio.wait_for(sb.readexactly(len(data)), T) == data
            sb.write(b"done")
            sb.write_eof()
            assert await asyncio.wait_for(sa.read(), T) == b"done"
            stats = await js.call("stats")
            assert stats["relay"]["pairings"]["matched"] == 1
            sa.close()
            sb.close()
            ra.close()
            rb.close()


@pytest.mark.parametrize("side", ["client", "server"])
async def test_js_client_and_server_through_python_relay(side: str) -> None:
    """``side`` picks the relay (``relayThrough``); the other follows the Noise payload."""
    async with js_net() as js, HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1") as r:
        await r.fully_bootstrapped()
        relay = RelayServer(r)
        await relay.listen(HyperDHT.key_pair())
        try:
            assert relay.public_key is not None
            key = relay.public_key.hex()
            server = await js.call("serve", relayThrough=key if side == "server" else None)
            text = "hello relay " * 1000
            reply = await js.call(
                "connect", publicKey=server["publicKey"], relayThrough=key if side == "client" else None, text=text
            )
            assert reply.get("text") == text, reply
            assert relay.stats["links"] == 1, (relay.stats, relay.pairings.stats)
            assert relay.pairings.stats["matched"] == 1
            assert [e["relayed"] for e in js.events if e.get("event") == "connection"] == [True]
        finally:
            await relay.close()
