"""The Pkarr-compatible HTTP relay on WebNode (issue 10 item 4, pubky/pkarr ``design/relays.md``).

The real npm ``pkarr`` 1.3.0 client (``tests/js/pkarr-client.mjs``) publishes a signed DNS packet through the
relay and resolves it back; the record is on UDP Mainline (read with our BEP 44 client from another node);
the status codes of the spec for bad keys, bad signatures, old timestamps, If-Match, sizes and rate limits.
Runs inside the test network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from peerdht import WebNode
from peerdht.aio.mainline import MainlineTestnet
from peerdht.encoding.bencode import encode
from peerdht.mainline.crypto import KeyPair, sign_mutable
from peerdht.web.pkarr import encode_key

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "js" / "pkarr-client.mjs"
needs_node = pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "pkarr").exists(),
                                reason="needs node and npm ci (pkarr)")

DNS = bytes.fromhex("000084000000000100000000") + b"\x05_text\x00\x00\x10\x00\x01\x00\x00\x00\x1e\x00\x03\x02hi"


@contextlib.asynccontextmanager
async def relay() -> AsyncIterator[tuple[MainlineTestnet, WebNode]]:
    testnet = await MainlineTestnet.create(6, host="127.0.0.1")
    try:
        async with WebNode(host="127.0.0.1", bootstrap=testnet.bootstrap, webrtc=False) as node:
            yield testnet, node
    finally:
        await testnet.close()


async def _node(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec("node", str(CLIENT), *args, stdout=asyncio.subprocess.PIPE,
                                                cwd=str(ROOT))
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    result: dict[str, Any] = json.loads(out.decode().splitlines()[0])
    return result


def _body(kp: KeyPair, seq: int, v: bytes = DNS) -> bytes:
    return sign_mutable(kp, encode(v), seq) + seq.to_bytes(8, "big") + v


@needs_node
async def test_pkarr_client_publishes_and_resolves_through_the_relay() -> None:
    async with relay() as (testnet, node):
        seed = bytes(range(32))
        loop = asyncio.get_running_loop()
        start = loop.time()
        put = await _node("publish", node.url, seed.hex(), "hello pkarr")
        put_ms = (loop.time() - start) * 1000
        assert put["status"] == 204, put
        assert int(put["stored"]) >= 1 and put["cors"] == "*"
        pub = bytes.fromhex(put["publicKey"])
        assert put["key"] == encode_key(pub)
        # the record is on UDP Mainline: another node reads it with BEP 44
        item = await testnet.nodes[4].get_mutable(pub)
        assert item is not None and item.seq == put["timestamp"]
        got = await _node("resolve", node.url, pub.hex())
        assert got == {"texts": ["hello pkarr"], "timestamp": put["timestamp"]}, got
        # an older timestamp is refused (409); a newer one replaces it
        old = await _node("publish", node.url, seed.hex(), "older", str(put["timestamp"] - 10))
        assert old["status"] == 409
        new = await _node("publish", node.url, seed.hex(), "newer", str(put["timestamp"] + 10))
        assert new["status"] == 204
        assert (await _node("resolve", node.url, pub.hex()))["texts"] == ["newer"]
        print(f"pkarr relay: npm pkarr publish (process start included) {put_ms:.0f} ms, stored on {put['stored']}")


async def test_relay_status_codes() -> None:
    async with relay() as (_, node), aiohttp.ClientSession() as http:
        kp = KeyPair.from_seed(b"\x09" * 32)
        key = encode_key(kp.public_key)
        url = node.url + key
        async with http.put(node.url + "not-a-key-" + "y" * 42, data=_body(kp, 5)) as r:
            assert r.status == 400
        async with http.put(url, data=b"\x00" * 64 + (5).to_bytes(8, "big") + DNS) as r:
            assert r.status == 400  # bad signature
        async with http.put(url, data=_body(kp, 5, b"\x00" * 1001)) as r:
            assert r.status == 413
        async with http.get(url) as r:
            assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with http.put(url, data=_body(kp, 1_700_000_000_000_000)) as r:
            assert r.status == 204 and int(r.headers["Pkarr-Dht-Stored-Nodes"]) >= 1
            assert "Pkarr-Dht-Stored-Nodes" in r.headers["Access-Control-Expose-Headers"]
        async with http.get(url) as r:
            assert r.status == 200 and await r.read() == _body(kp, 1_700_000_000_000_000)
            assert r.headers["Content-Type"] == "application/pkarr.org/relays#payload"
            assert r.headers["Cache-Control"] == "public, max-age=300"
            modified = r.headers["Last-Modified"]
        async with http.get(url, headers={"If-Modified-Since": modified}) as r:
            assert r.status == 304
        async with http.put(url, data=_body(kp, 1_700_000_000_000_001), headers={"If-Match": "42"}) as r:
            assert r.status == 412
        async with http.put(url, data=_body(kp, 1_700_000_000_000_002),
                            headers={"If-Match": "1700000000000000"}) as r:
            assert r.status == 204
        async with http.put(url, data=_body(kp, 1_600_000_000_000_000)) as r:
            assert r.status == 409
        async with http.options(url) as r:
            assert r.status == 204 and "PUT" in r.headers["Access-Control-Allow-Methods"]
        statuses = []
        for n in range(20):  # one IP hammering the relay
            async with http.put(url, data=_body(kp, 1_800_000_000_000_000 + n)) as r:
                statuses.append(r.status)
        assert 429 in statuses
