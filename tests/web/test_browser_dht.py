"""Browsers as Mainline-DHT peers (issue 9 item 7a): three chromium pages running ``peerdht.js`` and a Python
testnet (a UDP Mainline testnet behind a :class:`~peerdht.aio.web.node.WebNode` that serves the page).

* a value put in page 1 is read in page 3 (immutable and mutable BEP 44 items);
* an info hash announced by one page is found by another;
* two pages hold a direct WebRTC link negotiated through the DHT (``signals`` / ``peer_connection``);
* a page keeps working when its first WebSocket peer goes away.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from tests.web.browser import chromium
from tests.web.webnet import open_page, stats, web_testnet


async def _pages(browser: Any, url: str, n: int, errors: list[str]) -> list[Any]:
    return [await open_page(browser, url, errors) for _ in range(n)]


async def _link(a: Any, b: Any) -> None:
    """Make page ``a`` look up page ``b``'s id (find_node with signals) until they share a WebRTC link."""
    b_id = (await stats(b))["nodeId"]
    for _ in range(3):
        await a.evaluate("async (id) => { await window.dht.node._lookup(Uint8Array.from(id.match(/../g), (h) => parseInt(h, 16)), 'find_node'); }", b_id)
        peers = (await stats(a))["peers"]
        if any(p["id"] == b_id and p["transport"] == "webrtc" for p in peers):
            return
    raise AssertionError(f"no WebRTC link to {b_id}: {await stats(a)}")


async def test_value_put_in_page1_is_read_in_page3() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        p1, p2, p3 = await _pages(browser, node.url, 3, errors)
        target = await p1.evaluate("() => window.dht.put('hello from page 1')")
        assert re.fullmatch(r"[0-9a-f]{40}", target)
        assert await p3.evaluate("(t) => window.dht.get(t)", target) == "hello from page 1"
        assert await p2.evaluate("() => window.dht.get('00'.repeat(20))") is None
        # mutable: page 2 signs, page 3 reads; a newer seq wins; a salt makes another item
        r1 = await p2.evaluate("() => window.dht.putMutable('v1')")
        r2 = await p2.evaluate("() => window.dht.putMutable('v2')")
        assert r2["publicKey"] == r1["publicKey"] and r2["seq"] == r1["seq"] + 1
        assert await p3.evaluate("(k) => window.dht.getMutable(k)", r1["publicKey"]) == {"value": "v2", "seq": r2["seq"]}
        await p2.evaluate("() => window.dht.putMutable('salted', {salt: 'x', seq: 5})")
        assert await p1.evaluate("(k) => window.dht.getMutable(k, {salt: 'x'})", r1["publicKey"]) == {"value": "salted", "seq": 5}
        # the Python node holds the browser's item too (it answered the put)
        assert await node.get(bytes.fromhex(target)) == b"hello from page 1"
        s = await stats(p3)
        assert re.fullmatch(r"[0-9a-f]{40}", s["nodeId"])
        assert any(p["transport"] == "websocket" and p["id"] == node.node_id.hex() for p in s["peers"])
    assert not errors, errors


async def test_announced_info_hash_is_found_by_another_page() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        p1, p2 = await _pages(browser, node.url, 2, errors)
        ih = "ab" * 20
        assert await p1.evaluate("(ih) => window.dht.announce(ih, 6881)", ih) is True
        peers = await p2.evaluate("(ih) => window.dht.lookup(ih)", ih)
        assert peers and all(re.fullmatch(r"[0-9a-f.:\[\]]+:6881", p) for p in peers), peers
        assert await p2.evaluate("() => window.dht.lookup('cd'.repeat(20))") == []
    assert not errors, errors


async def test_two_pages_link_over_webrtc_through_the_dht() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        p1, _p2, p3 = await _pages(browser, node.url, 3, errors)
        await _link(p3, p1)
        s1, s3 = await stats(p1), await stats(p3)
        assert any(p["id"] == s1["nodeId"] and p["transport"] == "webrtc" for p in s3["peers"])
        assert any(p["id"] == s3["nodeId"] and p["transport"] == "webrtc" for p in s1["peers"])
        # the link carries KRPC both ways: p1 answers p3's queries over it
        rtc = next(p for p in s3["peers"] if p["id"] == s1["nodeId"])
        assert rtc["msgsIn"] > 0 and rtc["msgsOut"] > 0
        assert s3["signalsSent"] >= 2 and s1["signalsAnswered"] >= 1
    assert not errors, errors


async def test_page_keeps_working_when_its_first_websocket_peer_goes_away() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        p1, p2, p3 = await _pages(browser, node.url, 3, errors)
        await _link(p1, p2)
        await _link(p1, p3)
        await _link(p2, p3)
        await node.close()
        for p in (p1, p2, p3):
            await p.wait_for_function("() => !window.dht.stats().peers.some((p) => p.transport === 'websocket')", timeout=30000)
        target = await p1.evaluate("() => window.dht.put('after the server left')")
        assert await p2.evaluate("(t) => window.dht.get(t)", target) == "after the server left"
        await p2.evaluate("() => window.dht.announce('ef'.repeat(20), 7000)")
        assert any(p.endswith(":7000") for p in await p3.evaluate("() => window.dht.lookup('ef'.repeat(20))"))
        assert [(await stats(p))["ready"] for p in (p1, p2, p3)] == [True, True, True]
    assert not errors, errors


async def test_peerdht_web_cli_opened_in_chromium_gets_and_puts() -> None:
    """`peerdht web --size 4 --json` as a subprocess (inside the namespace): its printed URL opened in two pages."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerdht", "web", "--host", "127.0.0.1", "--port", "0", "--size", "4", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    errors: list[str] = []
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert first["url"].startswith("http://127.0.0.1:") and first["ws"].endswith("/ws") and first["bootstrap"]
        async with chromium() as browser:
            p1, p2 = await _pages(browser, first["url"], 2, errors)
            target = await p1.evaluate("() => window.dht.put('through the CLI')")
            assert await p2.evaluate("(t) => window.dht.get(t)", target) == "through the CLI"
            r = await p1.evaluate("() => window.dht.putMutable('mutable through the CLI')")
            assert (await p2.evaluate("(k) => window.dht.getMutable(k)", r["publicKey"]))["value"] == "mutable through the CLI"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert not errors, errors
