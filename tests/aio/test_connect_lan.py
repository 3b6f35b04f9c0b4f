"""The LAN shortcut of connect, with the race that broke ``peerdht serve`` on a busy machine made deterministic.

A client whose payload says OPEN makes the server connect to it: the server opens the stream from its
own socket -- its *client* socket while it is firewalled (dht-rpc ``socket``). If the client also takes
the LAN shortcut (PING the server's LAN address, then open the stream towards it), that stream points
at the server's *server* socket, where the server has no such stream: the client's packets are dropped
there as unknown, the server never hears the client and resets the stream after ``ACCEPT_TIMEOUT``.
It only works when the server's first packet happens to reach the client before the PING answer, which
is what a quiet machine does and a loaded one sometimes does not. connect.js never takes the LAN
shortcut when the client is OPEN: it waits for the server (``passiveConnectTimeout``).

This is why ``tests/aio/test_connect_cli.py::test_long_running_serve_is_two_way_for_every_connection``
failed under load: ``connect`` said "connected (lan)", ``serve`` never printed "connection from" (its
handler was never called), and 10 s later the client got "StreamReset: stream destroyed by the peer".
"""

from __future__ import annotations

import asyncio

import pytest

import peerdht.aio.hyperdht.connect as connect_mod
from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.secretstream import SecretStream
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.aio.transport.udx import UDXStream

TIMEOUT = 30.0


async def _echo(stream: SecretStream) -> None:
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()
    stream.write_eof()


async def test_an_open_client_waits_for_a_firewalled_server_even_when_the_lan_answers_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # on loopback every address is reserved; let the server's 127.0.0.1 count as a LAN address so the
    # shortcut is on offer, as it is on a machine with a real interface
    monkeypatch.setattr(connect_mod, "is_reserved", lambda host: False)
    async with await Testnet.create(4) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        assert b.core.remote_address() is not None  # the client is OPEN
        a.core.firewalled = True  # the server is not (yet): it connects to clients from its client socket
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)

        # The race, forced: the server's first UDX packets reach the client only once the client has
        # chosen its path -- after its LAN PING was answered (the loaded-machine order), or once it
        # waits for the server to connect.
        raws = b.raw_streams()  # made on first use; it registers as the driver's other-datagram handler
        driver = b.require_open()
        deliver = driver.set_other_handler(None)  # taken out here, put back behind the gate below
        assert deliver is not None
        held: list[tuple[bytes, tuple[str, int], int]] = []
        gate = asyncio.Event()

        def hold(data: bytes, addr: tuple[str, int], index: int) -> None:
            if gate.is_set():
                deliver(data, addr, index)
            else:
                held.append((data, addr, index))

        def open_gate() -> None:
            gate.set()
            while held:
                deliver(*held.pop(0))

        driver.set_other_handler(hold)
        lan_shortcut = connect_mod._lan_shortcut

        async def lan_then_open_gate(*args: object) -> UDXStream | None:
            try:
                return await lan_shortcut(*args)  # type: ignore[arg-type]
            finally:
                open_gate()

        monkeypatch.setattr(connect_mod, "_lan_shortcut", lan_then_open_gate)
        wait = raws.wait

        async def open_gate_then_wait(sid: int, timeout: float) -> UDXStream:
            open_gate()
            return await wait(sid, timeout)

        monkeypatch.setattr(raws, "wait", open_gate_then_wait)

        stream = await asyncio.wait_for(b.connect(kp.public_key), TIMEOUT)
        try:
            stream.write(b"over the path the server opened")
            await stream.drain()
            got = await asyncio.wait_for(stream.readexactly(31), TIMEOUT)
            assert got == b"over the path the server opened"
            assert stream.path == "reverse"
        finally:
            stream.close()
            await server.close()
