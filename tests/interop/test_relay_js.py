"""Blind relays between Python and JS (npm ``blind-relay`` 1.6.1 + ``hyperdht`` 6.34) on a JS testnet:
a JS relay serving Python clients; our relay serving a JS hyperdht client and server that use
``relayThrough`` with holepunching disabled (``holepunch: () => false``, as hyperdht's
``test/relaying.js``); and connect-by-key between Python and JS with ``relayThrough`` on the client,
through a JS relay and through ours."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.relay import RelayServer, relay_stream, token
from peerdht.aio.hyperdht.secretstream import SecretStream, open_secret_stream

pytestmark = pytest.mark.interop

T = 30
RELAY_NODE: dict[str, Any] = {"ephemeral": False, "firewalled": False}
"""A relay node is a reachable, persistent node (``peerdht node --relay --persistent``): clients
connect to it directly instead of punching (which can time out on a loaded machine)."""


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
    async with js_net() as js, HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1", **RELAY_NODE) as r:
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


# -- connect() with relayThrough between Python and JS (the side that did not choose follows)


async def _echo(stream: SecretStream) -> None:
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def _pick_relay(relay_impl: str, js: Any, node: HyperDHT) -> tuple[bytes, RelayServer | None]:
    """The relay to use: the JS blind-relay of ``js_net("--relay")`` (``"js"``), or a fresh
    :class:`RelayServer` of ours on ``node`` (``"py"``, returned too so the test can check and close it)."""
    if relay_impl == "js":
        assert js.relay_key is not None
        return js.relay_key, None
    relay = RelayServer(node)
    await relay.listen(HyperDHT.key_pair())
    assert relay.public_key is not None
    return relay.public_key, relay


@pytest.mark.parametrize("relay_impl", ["js", "py"])
async def test_js_client_relays_to_python_server(relay_impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On loopback the probe round punches at once; like hyperdht's test/relaying.js (server
    ``holepunch: false``) our server aborts every round so only the relay can connect."""
    import peerdht.aio.hyperdht.server as server_mod
    from peerdht.holepunch.server import ServerPunch

    def abort_round(self: Any, r: Any, now: float) -> None:
        self._answer_abort(r.request_id, now)

    monkeypatch.setattr(ServerPunch, "_answer", abort_round)
    monkeypatch.setattr(server_mod.Server, "_on_probe", lambda self, addr, socket: None)
    monkeypatch.setattr(server_mod, "local_addresses", lambda bound: ())  # shareLocalAddress: false
    async with js_net("--relay") as js, HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1") as a, HyperDHT(
        bootstrap=js.bootstrap, host="127.0.0.1", **RELAY_NODE
    ) as r:
        await a.fully_bootstrapped()
        await r.fully_bootstrapped()
        a.core.firewalled = True
        key, relay = await _pick_relay(relay_impl, js, r)
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        text = "js to py via relay " * 500
        reply = await js.call("connect", publicKey=kp.public_key.hex(), relayThrough=key.hex(), text=text)
        assert reply.get("text") == text, reply
        assert server.stats.get("relayed") == 1, (server.stats, a.raw_streams().stats, reply)
        await server.close()
        if relay is not None:
            assert relay.stats["links"] == 1
            await relay.close()


@pytest.mark.parametrize("relay_impl", ["js", "py"])
async def test_python_client_relays_to_js_server(relay_impl: str) -> None:
    async with js_net("--relay") as js, HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1") as b, HyperDHT(
        bootstrap=js.bootstrap, host="127.0.0.1", **RELAY_NODE
    ) as r:
        await b.fully_bootstrapped()
        await r.fully_bootstrapped()
        b.core.firewalled = True
        key, relay = await _pick_relay(relay_impl, js, r)
        server = await js.call("serve")
        stream = await asyncio.wait_for(b.connect(bytes.fromhex(server["publicKey"]), relay_through=key), T)
        stream.write(b"py to js via relay")
        assert await asyncio.wait_for(stream.readexactly(18), T) == b"py to js via relay"
        stream.close()
        await js.call("stats")  # collects the server's connection event
        assert [e["relayed"] for e in js.events if e.get("event") == "connection"] == [True]
        if relay is not None:
            assert relay.stats["links"] == 1
            await relay.close()


@pytest.mark.usefixtures("punching_fails")
async def test_automatic_fallback_through_a_js_relay() -> None:
    """A JS blind-relay announced under peerdht's relay topic serves the automatic fallback of a
    Python client whose punch failed; the Python server follows the relayThrough."""
    async with js_net("--relay", "--announce") as js, HyperDHT(bootstrap=js.bootstrap, host="127.0.0.1") as a, HyperDHT(
        bootstrap=js.bootstrap, host="127.0.0.1"
    ) as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        a.core.firewalled = True
        b.core.firewalled = True
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        stream = await asyncio.wait_for(b.connect(kp.public_key), T)
        stream.write(b"fallback via a JS relay")
        assert await asyncio.wait_for(stream.readexactly(23), T) == b"fallback via a JS relay"
        stream.close()
        assert server.stats.get("relayed") == 1
        stats = await js.call("stats")
        assert stats["relay"]["pairings"]["matched"] == 1
        await server.close()
