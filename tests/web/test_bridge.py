"""The bridge (issue 10 item 3): a WebNode answers a link's get/get_peers by also looking on UDP Mainline and
stores its put/announce_peer there too. The "browser" is a KRPC client on the WebSocket (the page's own
tests are the browser engineer's); the UDP side is read with ``peerdht mainline get`` (a separate process)
and with libtorrent. Bridged writes are rate-limited per link. Runs inside the test network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.web.webnet import libtorrent_session, lt_get_immutable, until

from peerdht import WebNode
from peerdht.aio.mainline import MainlineTestnet
from peerdht.encoding.bencode import Value, decode, encode
from peerdht.mainline.crypto import KeyPair, immutable_target, verify_mutable


class WSPeer:
    """A browser-like KRPC peer on the WebSocket: answers pings, sends queries, waits for their replies."""

    def __init__(self, ws: Any, node_id: bytes) -> None:
        self.ws = ws
        self.id = node_id
        self.replies: dict[bytes, asyncio.Future[dict[bytes, Value]]] = {}
        self.n = 0
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            m = decode(msg.data)
            assert isinstance(m, dict)
            if m.get(b"y") == b"q":
                await self.ws.send_bytes(encode({b"t": m[b"t"], b"y": b"r", b"r": {b"id": self.id}}))
            else:
                fut = self.replies.pop(m[b"t"], None)  # type: ignore[arg-type]
                if fut is not None and not fut.done():
                    fut.set_result(m)

    async def query(self, q: bytes, a: dict[bytes, Value], timeout: float = 20.0) -> dict[bytes, Value]:
        self.n += 1
        t = self.n.to_bytes(2, "big")
        fut: asyncio.Future[dict[bytes, Value]] = asyncio.get_running_loop().create_future()
        self.replies[t] = fut
        await self.ws.send_bytes(encode({b"t": t, b"y": b"q", b"q": q, b"a": {b"id": self.id, **a}}))
        return await asyncio.wait_for(fut, timeout)


@contextlib.asynccontextmanager
async def bridged(size: int = 6) -> AsyncIterator[tuple[MainlineTestnet, WebNode, WSPeer]]:
    testnet = await MainlineTestnet.create(size, host="127.0.0.1")
    try:
        async with WebNode(host="127.0.0.1", udp_host="127.0.0.1", bootstrap=testnet.bootstrap, webrtc=False) as node, \
                aiohttp.ClientSession() as http:
            ws = await http.ws_connect(node.ws_url)
            peer = WSPeer(ws, b"\x42" * 20)
            try:
                yield testnet, node, peer
            finally:
                await ws.close()
    finally:
        await testnet.close()


def _cli_get(boot: tuple[str, int], target: bytes) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "peerdht", "mainline", "get", "--bootstrap", f"{boot[0]}:{boot[1]}", "--json", target.hex()],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[0])
    return result


async def test_udp_put_is_read_by_a_link_and_link_put_is_read_over_udp() -> None:
    async with bridged() as (testnet, node, peer):
        loop = asyncio.get_running_loop()
        # a value put over UDP by another node: the link's first get returns it (bridged lookup)
        udp_target = await testnet.nodes[3].put(b"put over UDP")
        node.dht.core.items.delete(udp_target)  # make sure the web node does not simply hold it
        start = loop.time()
        r = await peer.query(b"get", {b"target": udp_target})
        bridged_get = loop.time() - start
        assert r[b"r"][b"v"] == b"put over UDP"  # type: ignore[index]
        assert node.stats["bridge_lookups"] == 1

        # a link's put is stored on UDP Mainline: a separate `peerdht mainline get` process reads it
        target = immutable_target(encode(b"put by a browser"))
        r = await peer.query(b"get", {b"target": target})
        token = r[b"r"][b"token"]  # type: ignore[index]
        start = loop.time()
        await peer.query(b"put", {b"token": token, b"v": b"put by a browser"})
        await until(lambda: node.stats.get("bridge_writes", 0) >= 1)
        bridged_put = loop.time() - start
        assert node.stats["bridge_write_stored"] >= 1
        got = await asyncio.get_running_loop().run_in_executor(None, _cli_get, testnet.bootstrap[0], target)
        assert got["valueHex"] == b"put by a browser".hex()
        print(f"bridge: get of a UDP value {bridged_get * 1000:.0f} ms, put to UDP {bridged_put * 1000:.0f} ms "
              f"(stored on {node.stats['bridge_write_stored']})")


async def test_udp_mutable_item_is_read_by_a_link() -> None:
    """A salt-less mutable item put over UDP (target SHA1(k)) reaches a link's get through the bridge, with its
    k/seq/sig so the page can verify it; get_item over UDP finds it too."""
    async with bridged() as (testnet, node, peer):
        kp = KeyPair.from_seed(b"\x05" * 32)
        res = await testnet.nodes[2].put_mutable(kp, b"mutable over UDP", seq=7)
        assert res.stored >= 1
        node.dht.core.items.delete(res.target)
        r = await peer.query(b"get", {b"target": res.target})
        body = r[b"r"]
        assert body[b"v"] == b"mutable over UDP" and body[b"seq"] == 7 and body[b"k"] == kp.public_key  # type: ignore[index]
        assert verify_mutable(kp.public_key, body[b"sig"], encode(b"mutable over UDP"), 7)  # type: ignore[index, arg-type]
        item = await testnet.nodes[5].get_item(res.target)
        assert item is not None and item.seq == 7
        assert await testnet.nodes[5].get_item(b"\x00" * 20) is None


async def test_announce_is_bridged_from_our_own_address() -> None:
    async with bridged() as (testnet, node, peer):
        ih = b"\x07" * 20
        r = await peer.query(b"get_peers", {b"info_hash": ih})
        token = r[b"r"][b"token"]  # type: ignore[index]
        await peer.query(b"announce_peer", {b"info_hash": ih, b"port": 6881, b"token": token})
        await until(lambda: node.stats.get("bridge_writes", 0) >= 1)
        found = [p async for p in testnet.nodes[4].get_peers(ih)]
        assert (node.udp_address()[0], 6881) in found  # the web node's own IP: never one the link chose
        # and a UDP announce is found by the link
        ih2 = b"\x08" * 20
        assert await testnet.nodes[2].announce_peer(ih2, 7000) >= 1
        r = await peer.query(b"get_peers", {b"info_hash": ih2})
        values = r[b"r"].get(b"values", [])  # type: ignore[union-attr]
        assert any(v[-2:] == (7000).to_bytes(2, "big") for v in values), r  # type: ignore[union-attr, index]


async def test_bridge_reads_are_rate_limited_per_link() -> None:
    async with bridged(size=3) as (_, node, peer):
        replies = await asyncio.gather(*(peer.query(b"get", {b"target": bytes([n]) * 20}, timeout=30) for n in range(30)))
        assert all(r[b"y"] == b"r" for r in replies)  # every query answered, bridged or not
        assert node.stats["bridge_lookups"] <= 10 and node.stats["dropped_bridge_rate"] >= 20


async def test_libtorrent_reads_a_link_put_through_the_bridge() -> None:
    lt = pytest.importorskip("libtorrent")

    async with bridged() as (testnet, node, peer):
        value = b"for libtorrent"
        target = immutable_target(encode(value))
        r = await peer.query(b"get", {b"target": target})
        await peer.query(b"put", {b"token": r[b"r"][b"token"], b"v": value})  # type: ignore[index]
        await until(lambda: node.stats.get("bridge_writes", 0) >= 1)
        ses = libtorrent_session(lt, testnet.bootstrap[0])
        try:
            got = await asyncio.get_running_loop().run_in_executor(None, lt_get_immutable, lt, ses, target)
            assert got == value
        finally:
            ses.pause()


async def test_a_link_cannot_aim_udp_traffic() -> None:
    """A link names an address (a UDP socket we watch) in every reply, announce and put it can: the node never
    sends a UDP datagram there (only BEP 5-verified nodes of its own UDP table are contacted)."""
    loop = asyncio.get_running_loop()
    hits: list[bytes] = []

    class Trap(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            hits.append(data)

    trap, _ = await loop.create_datagram_endpoint(Trap, local_addr=("127.0.0.1", 0))
    tport = trap.get_extra_info("sockname")[1]
    compact = b"\x7f\x00\x00\x01" + tport.to_bytes(2, "big")
    try:
        async with bridged(size=4) as (_, node, peer):
            evil_nodes = b"".join(bytes([n]) * 20 + compact for n in range(1, 9))

            peer.task.cancel()

            async def answer() -> None:
                async for msg in peer.ws:
                    m = decode(msg.data)
                    assert isinstance(m, dict)
                    if m.get(b"y") == b"q":
                        r = {b"id": peer.id, b"nodes": evil_nodes, b"values": [compact], b"token": b"tk"}
                        await peer.ws.send_bytes(encode({b"t": m[b"t"], b"y": b"r", b"r": r}))
                    else:
                        fut = peer.replies.pop(m[b"t"], None)  # type: ignore[arg-type]
                        if fut is not None and not fut.done():
                            fut.set_result(m)

            peer.task = asyncio.ensure_future(answer())
            for n in range(5):
                r = await peer.query(b"get_peers", {b"info_hash": bytes([n + 1]) * 20})
                token = r[b"r"][b"token"]  # type: ignore[index]
                await peer.query(b"announce_peer", {b"info_hash": bytes([n + 1]) * 20, b"port": tport,
                                                    b"token": token})
            await node.put(b"make the overlay look around")  # lookups in the web overlay meet the evil replies
            await node.bootstrap()
            await until(lambda: node.stats.get("bridge_writes", 0) >= 5)  # every announce went out on UDP
            assert not [a for a in node.dht.core.table if a.port == tport]
            assert hits == [], f"{len(hits)} datagrams reached the address the link chose"
    finally:
        trap.close()
