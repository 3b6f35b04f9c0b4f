"""Interop with npm ``bittorrent-dht`` 11.0.12 on 127.0.0.1: announce/lookup and BEP 44 both ways.

The JS node bootstraps from a Python testnet (never from the public routers). Both directions:
JS stores and Python finds, Python stores and JS finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.mainline import MainlineDHT, MainlineTestnet
from peerdht.encoding.bencode import encode
from peerdht.mainline.crypto import KeyPair, immutable_target, mutable_target

pytestmark = pytest.mark.interop

SEED = bytes(range(32))


async def ask(js: JSProcess, cmd: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    await js.send(cmd)
    while True:
        line = await js.line(timeout)
        assert "uncaught" not in line.get("event", ""), line
        if line.get("cmd") == cmd["cmd"]:
            return line


@pytest.fixture
async def net() -> AsyncIterator[tuple[MainlineTestnet, JSProcess, dict[str, Any]]]:
    testnet = await MainlineTestnet.create(8)
    js = await start_js("mainline-peer.js", *(f"{h}:{p}" for h, p in testnet.bootstrap))
    try:
        ready = await js.line(30)
        assert ready.get("ready"), ready
        yield testnet, js, ready
    finally:
        status = None
        try:
            status = await ask(js, {"cmd": "status"}, 5)
        finally:
            await js.close()
            await testnet.close()
        assert status is not None and not status["crashed"]


async def test_js_announces_python_finds(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    testnet, js, _ = net
    ih = random.Random(1).randbytes(20)
    res = await ask(js, {"cmd": "announce", "infoHash": ih.hex(), "port": 7001})
    assert res["error"] is None
    async with contextlib.nullcontext(testnet.nodes[3]) as dht:
        peers = [p async for p in dht.get_peers(ih)]
    assert ("127.0.0.1", 7001) in peers


async def test_python_announces_js_finds(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    testnet, js, _ = net
    ih = random.Random(2).randbytes(20)
    async with contextlib.nullcontext(testnet.nodes[3]) as dht:
        assert await dht.announce_peer(ih, 7002) >= 4
        res = await ask(js, {"cmd": "lookup", "infoHash": ih.hex()})
    assert res["error"] is None
    assert "127.0.0.1:7002" in res["peers"]


async def test_python_node_in_js_table(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    testnet, js, ready = net
    res = await ask(js, {"cmd": "nodes"})
    ours = {f"{h}:{p}" for n in testnet.nodes for h, p in [n.address()]}
    assert ours & set(res["nodes"])
    # and the JS node entered our routing tables (it answered our verification ping)
    js_id = bytes.fromhex(ready["id"])
    assert any(js_id in n.core.table for n in testnet.nodes)
    assert await testnet.nodes[0].ping(("127.0.0.1", ready["port"])) == js_id


async def test_immutable_both_ways(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    testnet, js, _ = net
    res = await ask(js, {"cmd": "put", "v": b"Hello World!".hex()})
    assert res["error"] is None
    assert res["target"] == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    assert res["n"] >= 1
    async with contextlib.nullcontext(testnet.nodes[3]) as dht:
        assert await dht.get(bytes.fromhex(res["target"])) == b"Hello World!"
        value = b"from python " + random.Random(3).randbytes(8).hex().encode()
        target = await dht.put(value)
    assert target == immutable_target(encode(value))
    got = await ask(js, {"cmd": "get", "target": target.hex()})
    assert got["error"] is None
    assert bytes.fromhex(got["v"]) == value


async def test_mutable_salted_both_ways(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    testnet, js, _ = net
    kp = KeyPair.from_seed(SEED)
    salt = b"foobar"
    res = await ask(
        js, {"cmd": "putMutable", "seed": SEED.hex(), "v": b"js v1".hex(), "salt": salt.hex(), "seq": 1}
    )
    assert res["error"] is None, res
    assert res["publicKey"] == kp.public_key.hex()
    assert res["target"] == mutable_target(kp.public_key, salt).hex()
    async with contextlib.nullcontext(testnet.nodes[3]) as dht:
        item = await dht.get_mutable(kp.public_key, salt)
        assert item is not None and item.v == b"js v1" and item.seq == 1
        put = await dht.put_mutable(kp, b"py v2", salt=salt)
        assert put.seq == 2 and put.stored >= 1, put
    got = await ask(js, {"cmd": "get", "target": put.target.hex(), "salt": salt.hex()})
    assert got["error"] is None
    assert bytes.fromhex(got["v"]) == b"py v2" and got["seq"] == 2
    # a second JS update with a stale seq is refused by our nodes (302), the value stays
    res = await ask(
        js, {"cmd": "putMutable", "seed": SEED.hex(), "v": b"stale".hex(), "salt": salt.hex(), "seq": 1}
    )
    async with contextlib.nullcontext(testnet.nodes[3]) as dht:
        item = await dht.get_mutable(kp.public_key, salt)
        assert item is not None and item.v == b"py v2"


async def test_js_node_as_bootstrap(net: tuple[MainlineTestnet, JSProcess, dict[str, Any]]) -> None:
    """A Python node joining through the JS node only (whole-table replies, no ``v``/``ip`` keys)."""
    _, _js, ready = net
    async with MainlineDHT(bootstrap=[("127.0.0.1", ready["port"])], host="127.0.0.1") as dht:
        assert len(dht.core.table) >= 4
        nodes = await asyncio.wait_for(dht.find_node(random.Random(4).randbytes(20)), 20)
        assert len(nodes) >= 4
