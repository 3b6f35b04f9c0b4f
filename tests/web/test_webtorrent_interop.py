"""Interop with npm webtorrent-dht 0.18.6 in Node (``tests/js/webtorrent-peer.js``), and Python<->Python WebRTC.

* The JS node bootstraps from a Python :class:`WebNode` through webtorrent-dht's HTTP POST (its https://
  attempt is refused at once by the plain-HTTP port), then KRPC runs over the aiortc<->libwebrtc data channel.
* ``signals`` / ``peer_connection`` both ways: a second Python node, linked to the hub by WebSocket, looks up
  the JS node; the hub forwards its offers to the JS node with ``peer_connection``, the JS node answers, and
  the Python node opens a direct WebRTC link to it. The JS node's own signalled lookups make the hub forward
  its offers to the Python node (aiortc answers).
* BEP 44 immutable items: put in JS, read in Python; put in Python (stored on the JS node), read in JS.

webtorrent-dht's own k-rpc timeout is 2 s; it is raised to 10 s here (``timeout`` option) because aiortc's
answer plus ICE/DTLS/SCTP set-up on a busy 2-core machine can take longer than that.
Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.web.webnet import until

from peerdht import WebNode
from peerdht.mainline.events import Item

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "js" / "webtorrent-peer.js"
JS_TIMEOUT_MS = 10000

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "webtorrent-dht").exists(),
                                reason="needs node and npm ci (webtorrent-dht)")


class JSPeer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.id = ""
        self.port = 0

    async def line(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert raw, "the JS peer exited"
            obj: dict[str, Any] = json.loads(raw)
            if "event" in obj:
                self.events.append(obj)
                assert obj["event"] not in ("uncaught", "fatal"), obj
                continue
            return obj

    async def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.line(timeout)


@contextlib.asynccontextmanager
async def js_peer(**opts: Any) -> AsyncIterator[JSPeer]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(PEER), json.dumps({"timeout": JS_TIMEOUT_MS, **opts}),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    peer = JSPeer(proc)
    try:
        ready = await peer.line(90)
        assert ready.get("ready"), ready
        peer.id = ready["id"]
        peer.port = ready["port"] or 0
        yield peer
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def target_of(text: str) -> str:
    data = text.encode()
    return hashlib.sha1(str(len(data)).encode() + b":" + data).hexdigest()


async def test_python_to_python_webrtc_through_signals() -> None:
    """B and C know only the hub A (WebSocket); B's signalled lookup makes A forward B's offers to C: B and C
    then share a direct aiortc data channel, which keeps working without A."""
    async with WebNode(host="127.0.0.1") as a, WebNode(host="127.0.0.1") as b, WebNode(host="127.0.0.1") as c:
        await b.connect(a.ws_url)
        await c.connect(a.ws_url)
        await until(lambda: len(a.overlay.node.table) == 2, what="hub knows both")
        await until(lambda: a.overlay.snapshot()["offers_pooled"] > 0 and b.overlay.snapshot()["offers_pooled"] > 0,
                     what="offers ready")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await b.find_node(c.node_id)
        await until(lambda: b.overlay.link_of(c.node_id) is not None and c.overlay.link_of(b.node_id) is not None,
                     what="B-C WebRTC link")
        link_time = loop.time() - start
        assert {lk["transport"] for lk in b.links() if lk["id"] == c.node_id.hex()} == {"webrtc"}
        assert a.stats["peer_connections_sent"] >= 1 and c.stats["offers_answered"] >= 1
        target = hashlib.sha1(b"9:kept on C").digest()
        c.overlay.node.items.put(target, Item(v=b"kept on C"), loop.time())  # on C only
        await a.close()
        await until(lambda: b.overlay.link_of(a.node_id) is None, what="hub gone")
        start = loop.time()
        assert await b.get(target) == b"kept on C"
        rtt = loop.time() - start
        print(f"python<->python WebRTC via signals: link {link_time:.2f} s, get over the data channel {rtt * 1000:.0f} ms")


async def test_relay_when_webrtc_fails() -> None:
    """Issue 10: B and C cannot open a WebRTC link (test hook: it fails as ICE would); B still reads a value held
    only by C, through the hub's relay, and sees C as a ``relay`` peer."""
    async with WebNode(host="127.0.0.1") as a, WebNode(host="127.0.0.1") as b, WebNode(host="127.0.0.1") as c:
        b.fail_webrtc = c.fail_webrtc = True
        await b.connect(a.ws_url)
        await c.connect(a.ws_url)
        await until(lambda: len(a.overlay.node.table) == 2, what="hub knows both")
        await until(lambda: b.overlay.snapshot()["offers_pooled"] > 0, what="offers ready")
        loop = asyncio.get_running_loop()
        target = hashlib.sha1(b"9:kept on C").digest()
        c.overlay.node.items.put(target, Item(v=b"kept on C"), loop.time())
        await b.find_node(c.node_id)
        await until(lambda: b.overlay.link_of(c.node_id) is not None or
                     any(lk["id"] == c.node_id.hex() for lk in b.links()), what="B knows a way to C")
        start = loop.time()
        assert await b.get(target) == b"kept on C"
        relayed_get = loop.time() - start
        assert {lk["transport"] for lk in b.links() if lk["id"] == c.node_id.hex()} == {"relay"}
        assert a.stats["relay_forwarded"] >= 2 and c.stats["relay_delivered"] >= 1
        assert b.stats.get("relay_hops_2", 0) >= 1
        print(f"relay fallback: get through the hub {relayed_get * 1000:.0f} ms, "
              f"hub forwarded {a.stats['relay_forwarded']} relayed messages")


async def test_webtorrent_dht_interop() -> None:
    async with WebNode(host="127.0.0.1") as hub, WebNode(host="127.0.0.1") as b:
        loop = asyncio.get_running_loop()
        host, port = hub.http_address
        start = loop.time()
        async with js_peer(bootstrap=[{"host": host, "port": port}]) as js:
            join = loop.time() - start
            jid = bytes.fromhex(js.id)
            await until(lambda: hub.overlay.link_of(jid) is not None, what="JS node linked to the hub")
            assert {lk["transport"] for lk in hub.links() if lk["id"] == js.id} == {"webrtc"}
            assert hub.stats["http_bootstrap"] >= 1

            # BEP 44: put in JS, read in Python (the hub is the only node the JS node knows)
            put = await js.call("put", value="hello from JS")
            assert put["error"] is None and put["target"] == target_of("hello from JS"), put
            assert await hub.get(bytes.fromhex(put["target"])) == b"hello from JS"

            # signals/peer_connection: B (WebSocket to the hub) looks up the JS node and gets a direct link
            await b.connect(hub.ws_url)
            await until(lambda: b.overlay.snapshot()["offers_pooled"] >= 2, what="B has offers")
            start = loop.time()
            for _ in range(5):
                await b.find_node(jid)
                if b.overlay.link_of(jid) is not None:
                    break
            await until(lambda: b.overlay.link_of(jid) is not None, what="B <-> JS WebRTC link")
            signalled = loop.time() - start
            assert hub.stats["peer_connections_sent"] >= 1
            assert {lk["transport"] for lk in b.links() if lk["id"] == js.id} == {"webrtc"}

            # put in Python (B puts over the overlay: the JS node stores it), read in JS
            value = "hello from Python"
            target = await b.put(value.encode())
            assert target.hex() == target_of(value)
            await until(lambda: js_has(js, target.hex()), what="JS stored B's put")
            got = await js.call("get", target=target.hex())
            assert got["value"] == value, got

            # the JS node's own signalled lookups reach B through the hub's peer_connection
            stats = await js.call("find", target=b.node_id.hex())
            assert stats["error"] is None
            assert b.node_id.hex() in (await js.call("stats"))["links"]
            print(f"webtorrent-dht interop: JS join via POST {join:.2f} s, B->JS link via signals {signalled:.2f} s")
            assert not [e for e in js.events if e["event"] in ("uncaught", "fatal")]


async def js_has(js: JSPeer, target: str) -> bool:
    return bool((await js.call("has", target=target))["stored"])


async def test_python_bootstraps_from_a_webtorrent_dht_http_server() -> None:
    """The other direction of the 0.18 bootstrap: the JS node listens (its HTTP server), WebNode.connect_http
    POSTs our offer to it, skips its {"http_server": ...} hello and joins; BEP 44 both ways over that link."""
    with socket.socket() as probe:  # webtorrent-dht's listen() refuses port 0: pick a free one
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    async with js_peer(listen=free) as js, WebNode(host="127.0.0.1") as node:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await node.connect_http("127.0.0.1", js.port)
        join = loop.time() - start
        jid = bytes.fromhex(js.id)
        assert node.overlay.link_of(jid) is not None
        await until(lambda: node.stats.get("skipped_json_hello", 0) == 1, what="http_server hello skipped")
        target = await node.put(b"from python via POST")
        await until(lambda: js_has(js, target.hex()), what="JS stored it")
        put = await js.call("put", value="from JS to python")
        assert put["error"] is None, put
        assert await node.get(bytes.fromhex(put["target"])) == b"from JS to python"
        print(f"python joins a webtorrent-dht HTTP server: {join:.2f} s")


async def test_a_message_right_behind_the_channel_open_is_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race behind the flaky test above, made deterministic. webtorrent-dht's HTTP server sends its
    {"http_server": ...} hello as soon as its channel opens; under load it reaches us in the same SCTP packet
    (or loop iteration) as the DCEP ACK that opens our channel, so aiortc delivers it before the task in
    connect_http that waits for the open has resumed. The link must be open for it by then, or the overlay
    drops it (dropped_no_link) and never counts the hello. Here wait_open returns only once the hello has
    arrived, which is that order every time."""
    from peerdht.aio.web.webrtc import DataChannelPeer

    wait_open = DataChannelPeer.wait_open

    async def open_after_the_first_message(self: DataChannelPeer, timeout: float) -> None:
        await wait_open(self, timeout)
        await until(lambda: self.bytes_received > 0, what="the server's first message")

    monkeypatch.setattr(DataChannelPeer, "wait_open", open_after_the_first_message)
    with socket.socket() as probe:  # webtorrent-dht's listen() refuses port 0: pick a free one
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    async with js_peer(listen=free) as js, WebNode(host="127.0.0.1") as node:
        await node.connect_http("127.0.0.1", js.port)
        assert node.overlay.link_of(bytes.fromhex(js.id)) is not None
        assert node.stats.get("dropped_no_link", 0) == 0
        assert node.stats.get("skipped_json_hello", 0) == 1
