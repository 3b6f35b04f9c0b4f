"""Connect by public key between Python peers on a Python testnet (loopback)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.errors import LocalProtocolError
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
        # both ends reachable: the server may open the stream to us before we open it to the server
        assert stream.path in ("direct", "reverse")
        assert b.stats["connects"] == {stream.path: 1}
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


async def test_connect_to_an_invalid_public_key_is_a_local_error() -> None:
    async with await Testnet.create(2) as tn, tn.node() as b:
        await b.fully_bootstrapped()
        for bad in (bytes.fromhex("ab" * 32), bytes(31)):  # not a curve point / wrong length
            with pytest.raises(LocalProtocolError):
                await asyncio.wait_for(b.connect(bad), 15)


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
        # the server answers the probe round's opening probe at once ("fast open"), so the stream
        # usually opens before a punch round is needed
        assert server.stats["holepunch_rounds"] >= 1 and server.stats["punches"] <= 1
        assert stream.path == "consistent"
        assert b.stats["connects"] == {"consistent": 1}
        stream.close()
        await server.close()


async def test_forged_handshakes_and_holepunches_are_dropped() -> None:
    """Garbage Noise, replayed handshakes and undecryptable holepunch rounds: dropped, counted, and
    the server keeps serving real clients."""
    from peerdht.errors import RequestTimeout
    from peerdht.hyper.constants import Command
    from peerdht.hyper.records import Handshake, Holepunch, encode_handshake, encode_holepunch
    from peerdht.hyper.router import FROM_CLIENT, FROM_RELAY

    async with await Testnet.create(4) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        target = HyperDHT.hash(kp.public_key)
        to = a.local_address()

        async def request(command: int, value: bytes) -> object:
            return await b.run_op(
                lambda now: b.core.request(to, command, now, target=target, value=value, retries=0)
            )

        forged = encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"\x01" * 96))
        with pytest.raises(RequestTimeout):
            await request(Command.PEER_HANDSHAKE, forged)
        bad_round = encode_holepunch(Holepunch(mode=FROM_RELAY, id=0, payload=b"\x02" * 80, peer_address=to))
        with pytest.raises(RequestTimeout):
            await request(Command.PEER_HOLEPUNCH, bad_round)
        assert a.core.router.stats["dropped"] >= 1
        assert server.stats["unknown_rounds"] + server.stats["bad_payloads"] >= 1
        stream = await asyncio.wait_for(b.connect(kp.public_key), 10)
        stream.write(b"still here")
        stream.write_eof()
        await stream.drain()
        assert await asyncio.wait_for(stream.read(), 10) == b"still here"
        stream.close()
        await server.close()


async def test_replayed_handshake_gets_the_same_reply() -> None:
    from peerdht.hyper.handshake import make_payload, noise_key_pair
    from peerdht.hyper.records import encode_noise_payload
    from peerdht.secure.noise import peer_handshake

    async with await Testnet.create(3) as tn, tn.node() as a:
        await a.fully_bootstrapped()
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        client = peer_handshake(noise_key_pair(HyperDHT.key_pair()), kp.public_key, b"\x03" * 32)
        msg1 = client.send(encode_noise_payload(make_payload(remote_address=None, udx_id=5)))
        first = server.on_peer_handshake(msg1, ("127.0.0.1", 9), ("127.0.0.1", 10), 0, 1.0)
        again = server.on_peer_handshake(msg1, ("127.0.0.1", 9), ("127.0.0.1", 10), 0, 2.0)
        assert first is not None and again is first  # one pending connection, not two
        assert server.on_peer_handshake(b"\x00" * 48, None, ("127.0.0.1", 10), 0, 3.0) is None
        await server.close()


@pytest.mark.slow
async def test_reannounce_when_relays_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    import peerdht.aio.hyperdht.server as server_mod

    monkeypatch.setattr(server_mod, "RELAY_CHECK_INTERVAL", 0.05)
    async with await Testnet.create(25) as tn, tn.node() as a, tn.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        server = a.create_server(_echo)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        before = {r.relay_address for r in server.relay_infos}
        assert len(before) >= 3
        doomed = [n for n in tn.nodes if n.local_address() in before][:-2]  # keep 2: fewer than 3
        for node in doomed:
            await node.destroy()
        for _ in range(400):
            if server.stats["relays_lost"] and {r.relay_address for r in server.relay_infos} - before:
                break
            await asyncio.sleep(0.05)
        assert server.stats["relays_lost"] >= 1
        assert {r.relay_address for r in server.relay_infos} - before  # announced to the survivors
        stream = await asyncio.wait_for(b.connect(kp.public_key), 15)
        stream.close()
        await server.close()
