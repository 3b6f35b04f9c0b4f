"""The page (``peerdht.js`` in Debian chromium) and a webtorrent-dht 0.18.6 Node peer (libwebrtc via
``@roamhq/wrtc``, ``tests/js/webtorrent-peer.js``) in one overlay, with a :class:`WebNode` as the hub.

The JS node bootstraps from the hub by HTTP POST; the page joins over the WebSocket and, through the hub's
``peer_connection``, opens a direct chromium <-> libwebrtc data channel to the JS node; BEP 44 values cross
that link both ways, and the JS node's own signalled lookup reaches the page. webtorrent-dht's k-rpc timeout
is raised from 2 s to 10 s (its ``timeout`` option) for a busy machine, as in test_webtorrent_interop.py.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import shutil
import socket

import pytest
import tests.web.test_webtorrent_interop as wt
from tests.web.browser import chromium
from tests.web.static_server import static_server
from tests.web.test_browser_modules import module_page
from tests.web.webnet import open_page, stats, until

from peerdht.aio.web.node import WebNode

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not (wt.ROOT / "node_modules" / "webtorrent-dht").exists(),
                                reason="needs node and npm ci (webtorrent-dht)")

FIND = "async (id) => { await window.dht.node._lookup(Uint8Array.from(id.match(/../g), (h) => parseInt(h, 16)), 'find_node'); }"


async def test_page_and_webtorrent_dht_node() -> None:
    errors: list[str] = []
    async with WebNode(host="127.0.0.1") as hub, chromium() as browser:
        host, port = hub.http_address
        async with wt.js_peer(bootstrap=[{"host": host, "port": port}]) as js:
            jid = bytes.fromhex(js.id)
            await until(lambda: hub.overlay.link_of(jid) is not None, what="JS node linked to the hub")
            page = await open_page(browser, hub.url, errors)
            page_id = (await stats(page))["nodeId"]

            # the page looks the JS node up: the hub forwards the page's offer with peer_connection
            for _ in range(5):
                await page.evaluate(FIND, js.id)
                if any(p["id"] == js.id and p["transport"] == "webrtc" for p in (await stats(page))["peers"]):
                    break
            link = [p for p in (await stats(page))["peers"] if p["id"] == js.id]
            assert [p["transport"] for p in link] == ["webrtc"], await stats(page)

            # put in the page: the JS node stores it (it is one of the closest), and reads it
            target = await page.evaluate("() => window.dht.put('hello from the page')")
            assert target == wt.target_of("hello from the page")
            await until(lambda: wt.js_has(js, target), what="JS stored the page's put")
            got = await js.call("get", target=target)
            assert got["value"] == "hello from the page", got

            # put in JS, read in the page; the answer can come over the direct link
            put = await js.call("put", value="hello from JS")
            assert put["error"] is None, put
            assert await page.evaluate("(t) => window.dht.get(t)", put["target"]) == "hello from JS"
            rtc = next(p for p in (await stats(page))["peers"] if p["id"] == js.id)
            assert rtc["msgsIn"] >= 2 and rtc["msgsOut"] >= 2, rtc

            # the JS node's own lookup for the page's id goes over its links without errors; it knows the page
            found = await js.call("find", target=page_id)
            assert found["error"] is None, found
            assert page_id in (await js.call("stats"))["links"]
            assert not [e for e in js.events if e["event"] in ("uncaught", "fatal")]
    assert not errors, errors


async def test_page_bootstraps_from_a_webtorrent_dht_node_by_http() -> None:
    """No peerdht node at all: the page's node joins a webtorrent-dht node through its HTTP bootstrap (POST of a
    JSON offer, JSON answer, data channel), then BEP 44 values cross both ways over that one link."""
    errors: list[str] = []
    with socket.socket() as probe:  # webtorrent-dht's listen() refuses port 0: pick a free one
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    async with wt.js_peer(listen=free) as js, static_server() as base, chromium() as browser:
        assert js.port == free
        page = await module_page(browser, base)
        page.on("pageerror", lambda e: errors.append(str(e)))
        s = await page.evaluate(
            """async (url) => {
              window.node = new m.peerdht.DHTNode({ iceServers: [], maintainEvery: 3600000 });
              await window.node.join(url);
              return window.node.stats();
            }""", f"http://127.0.0.1:{js.port}")
        assert [(p["id"], p["transport"]) for p in s["peers"]] == [(js.id, "webrtc")], s
        target = await page.evaluate("async () => m.bencode.toHex(await node.putImmutable(m.bencode.bytes('page via POST')))")
        assert target == wt.target_of("page via POST")
        await until(lambda: wt.js_has(js, target), what="JS stored the page's put")
        assert (await js.call("get", target=target))["value"] == "page via POST"
        put = await js.call("put", value="JS to the page")
        assert put["error"] is None, put
        await page.evaluate("() => node.immutable.clear()")
        got = await page.evaluate("async (t) => m.bencode.text(await node.getImmutable(m.bencode.fromHex(t)))", put["target"])
        assert got == "JS to the page"
        await page.evaluate("() => node.close()")
        assert not [e for e in js.events if e["event"] in ("uncaught", "fatal")]
    assert not errors, errors
