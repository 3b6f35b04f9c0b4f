"""The page and UDP Mainline through the bridge (issue 10 tests, the page's part): a value put with the page's
own controls is read over UDP by a separate ``peerdht mainline get`` process and by libtorrent; a value put over
UDP is read in the page; a mutable item signed in the page is read by a UDP node; announces cross both ways.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from tests.web.browser import chromium
from tests.web.test_page import submit
from tests.web.webnet import libtorrent_session, lt_get_immutable, open_page, until, web_testnet

from peerdht.keys import KeyPair


def _cli_get(boot: tuple[str, int], target: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "peerdht", "mainline", "get", "--bootstrap", f"{boot[0]}:{boot[1]}", "--json", target],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[0])
    return result


async def test_page_and_udp_mainline_through_the_bridge() -> None:
    errors: list[str] = []
    async with web_testnet(size=6) as (testnet, node), chromium() as browser:
        page = await open_page(browser, node.url, errors)
        loop = asyncio.get_running_loop()
        # the page's put is stored on UDP Mainline: a separate process reads it over UDP
        t0 = loop.time()
        target = await submit(page, {"#put-value": "put in the page"}, "#put", "#put-result")
        await until(lambda: node.stats.get("bridge_write_stored", 0) >= 1)
        put_ms = (loop.time() - t0) * 1000
        got = await loop.run_in_executor(None, _cli_get, testnet.bootstrap[0], target)
        assert bytes.fromhex(got["valueHex"]) == b"put in the page"

        # a value put over UDP by another node is read with the page's controls (the web node looks on UDP)
        udp_target = await testnet.nodes[3].put(b"put over UDP")
        node.dht.core.items.delete(udp_target)
        node.overlay.node.items.delete(udp_target)
        t0 = loop.time()
        assert await submit(page, {"#get-key": udp_target.hex()}, "#get", "#get-result") == "put over UDP"
        get_ms = (loop.time() - t0) * 1000

        # a mutable item signed in the page is read by a UDP node
        out = await submit(page, {"#mput-value": "signed in the page"}, "#mput", "#mput-result")
        key = bytes.fromhex(out.split()[2])
        await until(lambda: node.stats.get("bridge_write_stored", 0) >= 2)
        item = await testnet.nodes[4].get_mutable(key)
        assert item is not None and item.v == b"signed in the page"

        # and a salt-less mutable item put over UDP is read with #mget
        pair = KeyPair.from_seed(bytes(range(32)))
        await testnet.nodes[2].put_mutable(pair, b"signed over UDP", seq=3)
        got_m = await submit(page, {"#mget-key": pair.public_key.hex(), "#mget-salt": ""}, "#mget", "#mget-result")
        assert got_m == "signed over UDP\n(seq 3)", got_m

        # announces: the page's is found over UDP (at the web node's own address), a UDP one in the page
        await page.fill("#announce-port", "6882")
        await submit(page, {"#announce-ih": "07" * 20}, "#announce", "#announce-result")
        await until(lambda: node.stats.get("bridge_writes", 0) >= 3)
        found = [p async for p in testnet.nodes[2].get_peers(b"\x07" * 20)]
        assert (node.udp_address()[0], 6882) in found, found
        assert await testnet.nodes[1].announce_peer(b"\x08" * 20, 7001) >= 1
        lines = (await submit(page, {"#lookup-ih": "08" * 20}, "#lookup", "#lookup-result")).splitlines()
        assert "127.0.0.1:7001" in lines, lines
        print(f"bridge from the page: put -> stored on UDP {put_ms:.0f} ms, get of a UDP value {get_ms:.0f} ms")
    assert not errors, errors


async def test_libtorrent_reads_a_page_put() -> None:
    lt = pytest.importorskip("libtorrent")
    errors: list[str] = []
    async with web_testnet(size=6) as (testnet, node), chromium() as browser:
        page = await open_page(browser, node.url, errors)
        target = await page.evaluate("() => window.dht.put('for libtorrent, from the page')")
        await until(lambda: node.stats.get("bridge_write_stored", 0) >= 1)
        ses = libtorrent_session(lt, testnet.bootstrap[0])
        try:
            got = await asyncio.get_running_loop().run_in_executor(None, lt_get_immutable, lt, ses, bytes.fromhex(target))
            assert got == b"for libtorrent, from the page"
        finally:
            ses.pause()
    assert not errors, errors

