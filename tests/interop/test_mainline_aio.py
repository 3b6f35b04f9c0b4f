"""``MainlineDHT`` and ``MainlineTestnet`` on real UDP sockets (127.0.0.1 only, Python nodes only)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from peerdht.aio.mainline import MainlineDHT, MainlineTestnet
from peerdht.encoding.bencode import decode, encode
from peerdht.errors import LocalProtocolError, RequestError, RequestTimeout
from peerdht.mainline.crypto import KeyPair

IH = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")


async def test_testnet_announce_lookup_put_get(tmp_path: Path) -> None:
    async with await MainlineTestnet.create(12) as testnet:
        a = testnet.node()
        b = testnet.node(state_file=tmp_path / "b.dht")
        async with a, b:
            assert await asyncio.wait_for(a.announce_peer(IH, 4444), 10) >= 4
            peers = [p async for p in b.get_peers(IH)]
            assert ("127.0.0.1", 4444) in peers
            assert await a.announce_peer(IH, 0, implied_port=True) >= 4
            peers = [p async for p in b.get_peers(IH)]
            assert ("127.0.0.1", a.address()[1]) in peers

            target = await a.put(b"Hello World!")
            assert target.hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
            assert await b.get(target) == b"Hello World!"
            assert await b.get(bytes(20)) is None

            kp = KeyPair.from_seed(bytes(range(32)))
            r1 = await a.put_mutable(kp, b"v1", salt=b"salt")
            assert r1.seq == 1 and r1.stored >= 4
            r2 = await b.put_mutable(kp, b"v2", salt=b"salt")
            assert r2.seq == 2
            item = await a.get_mutable(kp.public_key, salt=b"salt")
            assert item is not None and item.v == b"v2" and item.seq == 2

            nodes = await a.find_node(testnet.nodes[5].node_id)
            assert nodes[0].id == testnet.nodes[5].node_id
            assert await a.ping(testnet.bootstrap[0]) == testnet.nodes[0].node_id
            sample = await a.sample_infohashes(testnet.nodes[0].address())
            assert sample.interval == 21600
            assert a.stats["table"] >= 8
            b_id = b.node_id
        # routing table saved and restored
        assert (tmp_path / "b.dht").exists()
        c = MainlineDHT(host="127.0.0.1", state_file=tmp_path / "b.dht")
        async with c:
            assert c.node_id == b_id
            assert len(c.core.table) >= 8
            assert await c.get(target) == b"Hello World!"


async def test_timeouts_and_misuse() -> None:
    # a port with nothing behind it
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()
    s.close()
    async with MainlineDHT(host="127.0.0.1", timeout=0.2, retries=0) as dht:
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(dht.ping(dead), 5)
        with pytest.raises(RequestTimeout):
            await dht.find_node(bytes(20))
        with pytest.raises(LocalProtocolError):
            await dht.put(b"x" * 2000)
    with pytest.raises(LocalProtocolError):
        await dht.ping(dead)


async def test_no_free_tid_raises_at_once() -> None:
    # a ping or sample whose send finds no transaction id free raises RequestError to the caller at once
    # (it used to wait forever); the requests in flight are unaffected
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()
    s.close()
    dht = MainlineDHT(host="127.0.0.1", timeout=30.0, retries=0)
    async with dht, MainlineDHT(host="127.0.0.1") as other:
        dht.core.requests.tid_space = 3  # two requests in flight use every id the node hands out
        busy = [asyncio.ensure_future(dht.ping(dead)) for _ in range(2)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(dht.core.requests) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert len(dht.core.requests) == 2
        with pytest.raises(RequestError, match="transaction id"):
            await asyncio.wait_for(dht.ping(other.address()), 10)
        with pytest.raises(RequestError, match="transaction id"):
            await asyncio.wait_for(dht.sample_infohashes(other.address()), 10)
        assert not any(task.done() for task in busy)
        assert len(dht.core._ops) == 2  # only the two pings in flight: the failed ops left the op table
        dht.core.requests.tid_space = 1 << 16
        assert await asyncio.wait_for(dht.ping(other.address()), 10) == other.node_id
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)


async def test_malformed_barrage_over_udp() -> None:
    async with MainlineDHT(host="127.0.0.1", rate_limit=None) as dht:
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                replies.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
        try:
            me = b"m" * 20
            junk = [
                b"",
                b"d" * 5000,
                b"l" * 20000,
                b"i" + b"9" * 300 + b"e",
                encode({b"t": b"aa", b"y": b"q", b"q": b"find_node", b"a": {b"id": me, b"target": 7}}),
                encode({b"t": b"aa", b"y": b"q", b"q": b"get_peers", b"a": {b"id": me, b"info_hash": 1}}),
                encode({b"t": b"aa", b"y": b"q", b"q": b"put", b"a": {b"id": me, b"token": 5, b"v": b"x"}}),
                encode({b"t": b"aa", b"y": b"q", b"a": {b"id": me}}),
                encode({b"t": b"aa", b"y": b"r", b"r": {b"id": me}}),
                encode({b"t": b"aa", b"y": b"q", b"q": b"nope", b"a": {b"id": me}}),
            ]
            for data in junk * 10:
                transport.sendto(data, dht.address())
            ping = encode({b"t": b"ok", b"y": b"q", b"q": b"ping", b"a": {b"id": me}})

            async def answered() -> bool:
                while True:
                    msg = decode(await replies.get(), sorted_keys=False)
                    assert isinstance(msg, dict)
                    if msg.get(b"t") == b"ok" and msg.get(b"y") == b"r":
                        return True

            # the socket buffer may have overflowed with junk: ask again until answered (at most 10 s)
            for _ in range(20):
                transport.sendto(ping, dht.address())
                try:
                    assert await asyncio.wait_for(answered(), 0.5)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("no answer to ping after the barrage")
            assert dht.stats["dropped_malformed"] >= 20  # some may be lost to the socket buffer
            assert dht.stats["dropped"]["malformed"] == dht.stats["dropped_malformed"]  # by reason, as HyperDHT
        finally:
            transport.close()


async def test_ipv6_testnet() -> None:
    """BEP 32 on ::1: nodes6 in replies, 18-byte peer values, IPv6 compact ``ip``."""
    try:
        testnet = await MainlineTestnet.create(8, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with testnet, testnet.node() as client:
        assert len(client.core.table) >= 6
        assert await client.announce_peer(IH, 4321) >= 4
        assert ("::1", 4321) in [p async for p in testnet.nodes[3].get_peers(IH)]
        target = await client.put(b"over IPv6")
        assert await testnet.nodes[5].get(target) == b"over IPv6"
        assert client.core.external_address == ("::1", client.address()[1])
