"""Python HyperDHT nodes and real JS ``hyperdht`` 6.34 nodes in one loopback network, both directions."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jsproc import JSProcess, start_js
from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

pytestmark = pytest.mark.interop

TIMEOUT = 30


class JSPeer:
    """A JS hyperdht client node (optionally with its own JS testnet) driven over stdin/stdout."""

    def __init__(self, proc: JSProcess, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.bootstrap = [_parse(b) for b in ready["bootstrap"]]
        self._ids = itertools.count(1)

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        cmd_id = next(self._ids)
        await self.proc.send({"id": cmd_id, "op": op, **kw})
        reply = await self.proc.line(TIMEOUT)
        assert reply.get("id") == cmd_id, reply
        assert "error" not in reply, reply
        return reply


def _parse(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


async def _js_peer(*args: str) -> JSPeer:
    proc = await start_js("hyper-peer.js", *args)
    ready = await proc.line(TIMEOUT)
    assert ready.get("ready"), ready
    return JSPeer(proc, ready)


@pytest.fixture
async def js_testnet() -> AsyncIterator[JSPeer]:
    """10 persistent JS nodes + one JS client node."""
    peer = await _js_peer("--testnet", "10")
    yield peer
    await peer.proc.close()


@pytest.fixture
async def py_testnet() -> AsyncIterator[Testnet]:
    testnet = await asyncio.wait_for(Testnet.create(10), TIMEOUT)
    yield testnet
    await testnet.destroy()


async def _py_client(bootstrap: list[tuple[str, int]]) -> HyperDHT:
    dht = HyperDHT(bootstrap=bootstrap, host="127.0.0.1", ephemeral=True)
    await dht.open()
    await asyncio.wait_for(dht.fully_bootstrapped(), TIMEOUT)
    return dht


async def _py_lookup(dht: HyperDHT, topic: bytes) -> set[bytes]:
    found: set[bytes] = set()

    async def run() -> None:
        async for reply in dht.lookup(topic):
            found.update(p.public_key for p in reply.peers)

    await asyncio.wait_for(run(), TIMEOUT)
    return found


async def test_key_pairs_from_seed_equal_js(js_testnet: JSPeer) -> None:
    for seed in (bytes(32), bytes(range(32)), os.urandom(32)):
        js = await js_testnet.call("keyPair", seed=seed.hex())
        kp = KeyPair.from_seed(seed)
        assert kp.public_key.hex() == js["publicKey"]
        assert kp.secret_key.hex() == js["secretKey"]


async def test_python_announce_js_lookup(js_testnet: JSPeer) -> None:
    dht = await _py_client(js_testnet.bootstrap)
    try:
        seed = os.urandom(32)
        kp = KeyPair.from_seed(seed)
        topic = blake2b256(b"py announces " + seed)
        stored = await asyncio.wait_for(dht.announce(topic, kp), TIMEOUT)
        assert stored >= 1
        reply = await js_testnet.call("lookup", topic=topic.hex())
        assert kp.public_key.hex() in [p["publicKey"] for p in reply["peers"]]

        await asyncio.wait_for(dht.unannounce(topic, kp), TIMEOUT)
        reply = await js_testnet.call("lookup", topic=topic.hex())
        assert kp.public_key.hex() not in [p["publicKey"] for p in reply["peers"]]
    finally:
        await dht.destroy()


async def test_js_announce_python_lookup(js_testnet: JSPeer) -> None:
    dht = await _py_client(js_testnet.bootstrap)
    try:
        seed = os.urandom(32)
        topic = blake2b256(b"js announces " + seed)
        await js_testnet.call("announce", topic=topic.hex(), seed=seed.hex())
        assert KeyPair.from_seed(seed).public_key in await _py_lookup(dht, topic)
    finally:
        await dht.destroy()


async def test_records_across_languages_on_js_testnet(js_testnet: JSPeer) -> None:
    dht = await _py_client(js_testnet.bootstrap)
    try:
        # immutable: Python put -> JS get, JS put -> Python get
        value = b"from python " + os.urandom(8)
        digest = await asyncio.wait_for(dht.immutable_put(value), TIMEOUT)
        assert digest == blake2b256(value)
        assert (await js_testnet.call("immutableGet", hash=digest.hex()))["value"] == value.hex()

        value2 = b"from js " + os.urandom(8)
        js_hash = (await js_testnet.call("immutablePut", value=value2.hex()))["hash"]
        assert await asyncio.wait_for(dht.immutable_get(bytes.fromhex(js_hash)), TIMEOUT) == value2

        # mutable: Python put seq 1 -> JS get; JS put seq 2 (same key) -> Python get
        seed = os.urandom(32)
        kp = KeyPair.from_seed(seed)
        await asyncio.wait_for(dht.mutable_put(kp, b"py v1", seq=1), TIMEOUT)
        got = await js_testnet.call("mutableGet", publicKey=kp.public_key.hex())
        assert (got["value"], got["seq"]) == (b"py v1".hex(), 1)

        await js_testnet.call("mutablePut", seed=seed.hex(), value=b"js v2".hex(), seq=2)
        rec = await asyncio.wait_for(dht.mutable_get(kp.public_key), TIMEOUT)
        assert rec is not None and (rec.value, rec.seq) == (b"js v2", 2)
    finally:
        await dht.destroy()


async def test_js_nodes_use_a_python_testnet(py_testnet: Testnet) -> None:
    """A JS client bootstraps from a Python testnet; announces, lookups and records flow both ways."""
    bootstrap = [f"{h}:{p}" for h, p in py_testnet.bootstrap]
    js = await _js_peer(*itertools.chain.from_iterable(("--bootstrap", b) for b in bootstrap))
    dht = await _py_client(py_testnet.bootstrap)
    try:
        found = await js.call("findNode", target=os.urandom(32).hex())
        py_ports = {n.local_address()[1] for n in py_testnet.nodes}
        assert {_parse(n)[1] for n in found["nodes"]} & py_ports

        seed = os.urandom(32)
        topic = blake2b256(b"on a python testnet " + seed)
        await js.call("announce", topic=topic.hex(), seed=seed.hex())
        assert KeyPair.from_seed(seed).public_key in await _py_lookup(dht, topic)

        kp = KeyPair.from_seed(os.urandom(32))
        topic2 = blake2b256(b"python side " + seed)
        await asyncio.wait_for(dht.announce(topic2, kp), TIMEOUT)
        reply = await js.call("lookup", topic=topic2.hex())
        assert kp.public_key.hex() in [p["publicKey"] for p in reply["peers"]]

        js_hash = (await js.call("immutablePut", value=b"js on py".hex()))["hash"]
        assert await asyncio.wait_for(dht.immutable_get(bytes.fromhex(js_hash)), TIMEOUT) == b"js on py"

        await asyncio.wait_for(dht.mutable_put(kp, b"py on py", seq=5), TIMEOUT)
        got = await js.call("mutableGet", publicKey=kp.public_key.hex())
        assert (got["value"], got["seq"]) == (b"py on py".hex(), 5)
    finally:
        await dht.destroy()
        await js.proc.close()


async def test_python_persistent_nodes_join_a_js_testnet(js_testnet: JSPeer) -> None:
    """Persistent Python nodes join a JS network and serve records to JS clients."""
    testnet = await asyncio.wait_for(Testnet.create(5, bootstrap=js_testnet.bootstrap), TIMEOUT)
    try:
        for node in testnet.nodes:
            assert node.id is not None and not node.ephemeral
        seed = os.urandom(32)
        topic = blake2b256(b"mixed network " + seed)
        await js_testnet.call("announce", topic=topic.hex(), seed=seed.hex())
        assert KeyPair.from_seed(seed).public_key in await _py_lookup(testnet.nodes[-1], topic)
    finally:
        await testnet.destroy()
