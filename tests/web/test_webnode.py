"""WebNode's HTTP side: the static page, KRPC over WebSocket (a client acting as a browser), two nodes linked
by WebSocket, bad input on the WebSocket, a TLS ClientHello on the HTTP port, and ``peerdht web --json``.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest
from tests.web.webnet import until

from peerdht import WebNode
from peerdht.encoding.bencode import decode, encode
from peerdht.mainline.crypto import immutable_target


async def _raw_http(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), timeout)
    finally:
        writer.close()


async def test_static_files_and_no_traversal() -> None:
    async with WebNode(host="127.0.0.1", webrtc=False) as node, aiohttp.ClientSession() as http:
        async with http.get(node.url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/html")
        async with http.get(node.url + "peerdht.js") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/javascript")
        async with http.get(node.url + "no-such-file.js") as resp:
            assert resp.status == 404
        async with http.get(node.url + "config.json") as resp:
            assert resp.status == 200 and await resp.json() == {"iceServers": [], "trackers": ["/tracker"]}
        port = node.http_address[1]
        for path in ("/../pyproject.toml", "/..%2f..%2fpyproject.toml", "/.hidden", "/%2e%2e/__init__.py",
                     "/static/../../aio/web/node.py"):
            reply = await _raw_http(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert reply.split(b"\r\n")[0].split()[1] in (b"404", b"400"), (path, reply[:80])


async def test_tls_client_hello_is_refused_at_once() -> None:
    """webtorrent-dht tries https:// first; the plain-HTTP port must fail that attempt fast (research §7.1)."""
    hello = bytes.fromhex("16030100c4010000c00303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00" + bytes(150)
    async with WebNode(host="127.0.0.1", webrtc=False) as node:
        start = asyncio.get_running_loop().time()
        reply = await _raw_http(node.http_address[1], hello, timeout=5.0)
        assert asyncio.get_running_loop().time() - start < 2.0
        assert reply == b"" or b" 400 " in reply.split(b"\r\n")[0]  # aiohttp: "Received HTTPS traffic on an HTTP port"


async def test_websocket_peer_is_a_full_member() -> None:
    """A WebSocket client speaks KRPC both ways: the node pings it back, serves its get, stores its put."""
    async with WebNode(host="127.0.0.1", webrtc=False) as node, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(node.ws_url)
        me = b"B" * 20
        await ws.send_bytes(encode({b"t": b"q1", b"y": b"q", b"q": b"get", b"a": {b"id": me, b"target": b"T" * 20}}))
        token = None
        pinged = False
        while token is None or not pinged:
            msg = decode((await ws.receive(timeout=10)).data)
            assert isinstance(msg, dict)
            if msg[b"y"] == b"q":  # the node verifies us with a ping before adding us (BEP 5)
                assert msg[b"q"] == b"ping"
                await ws.send_bytes(encode({b"t": msg[b"t"], b"y": b"r", b"r": {b"id": me}}))
                pinged = True
            else:
                assert msg[b"t"] == b"q1"
                token = msg[b"r"][b"token"]
        value = b"12:hello from B"
        target = immutable_target(value)
        await ws.send_bytes(encode({b"t": b"q2", b"y": b"q", b"q": b"put",
                                    b"a": {b"id": me, b"token": token, b"v": b"hello from B"}}))
        reply = decode((await ws.receive(timeout=10)).data)
        assert isinstance(reply, dict) and reply[b"y"] == b"r", reply
        assert await node.dht.get(target) == b"hello from B"  # one BEP 44 store for both worlds
        await until(lambda: len(node.overlay.node.table) == 1)
        assert node.links()[0]["transport"] == "websocket" and node.links()[0]["id"] == me.hex()
        await ws.close()
        await until(lambda: len(node.overlay.node.table) == 0)  # dropped the moment the link closes


async def test_two_nodes_linked_by_websocket() -> None:
    async with WebNode(host="127.0.0.1", webrtc=False) as a, WebNode(host="127.0.0.1", webrtc=False) as b:
        await b.connect(a.ws_url)
        await until(lambda: len(a.overlay.node.table) == 1 and len(b.overlay.node.table) == 1)
        target = await b.put(b"over the overlay")
        assert a.overlay.node.items.get(target, asyncio.get_running_loop().time()) is not None
        assert await a.get(target) == b"over the overlay"


async def test_bad_websocket_input_is_dropped_and_counted() -> None:
    async with WebNode(host="127.0.0.1", webrtc=False) as node, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(node.ws_url, max_msg_size=0)
        for junk in (b"", b"not bencode", b"d1:y1:qe", b"l" * 40 + b"e" * 40, b"i1e", b"d1:t2:aa1:y1:q1:q4:ping1:ai1ee"):
            await ws.send_bytes(junk)
        await ws.send_str("d1:t2:zz1:y1:q1:q4:ping1:ad2:id20:AAAAAAAAAAAAAAAAAAAAee")
        msg = await ws.receive(timeout=10)
        found = decode(msg.data)
        while not (isinstance(found, dict) and found.get(b"t") == b"zz"):
            found = decode((await ws.receive(timeout=10)).data)
        assert node.stats["dropped_malformed"] >= 4
        await ws.send_bytes(b"d" + b"x" * (node.overlay.limits.max_message + 10))  # over the frame limit
        closed = await ws.receive(timeout=10)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        await until(lambda: node.stats["links"] == 0)
        assert node.stats["ws_closed_abnormally"] >= 1


async def test_bootstrap_post_is_rate_limited_per_ip() -> None:
    """Each webtorrent-dht bootstrap POST costs an aiortc peer connection: one IP gets 5, then 429."""
    async with WebNode(host="127.0.0.1") as node, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(8):
            async with http.post(node.url, data=json.dumps({"type": "offer", "sdp": "v=0\r\nnot sdp"})) as r:
                statuses.append(r.status)
                assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert statuses[:5] == [400] * 5 and statuses[5:] == [429] * 3
        async with http.post(node.url, data=b"{not json") as r:
            assert r.status == 400


async def test_ice_servers_reach_the_page_config() -> None:
    async with WebNode(host="127.0.0.1", webrtc=False, ice_servers=["stun:stun.example.org:3478"]) as node, \
            aiohttp.ClientSession() as http, http.get(node.url + "config.json") as resp:
        assert await resp.json() == {"iceServers": ["stun:stun.example.org:3478"], "trackers": ["/tracker"]}


def test_cli_prints_urls_first() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peerdht", "web", "--host", "127.0.0.1", "--port", "0", "--size", "3", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["url"].startswith("http://127.0.0.1:") and not line["url"].endswith(":0/")
        assert line["ws"] == "ws" + line["url"][4:] + "ws"
        assert len(line["bootstrap"]) == 2 and all(":" in b for b in line["bootstrap"])
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_mainline_node_with_web() -> None:
    """``peerdht mainline node --web HOST:PORT``: the UDP node's line gains the page and WebSocket URLs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "peerdht", "mainline", "node", "--host", "127.0.0.1", "--web", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["port"] > 0 and line["url"].startswith("http://127.0.0.1:") and line["ws"].endswith("/ws")

        async def fetch() -> int:
            async with aiohttp.ClientSession() as http, http.get(line["url"]) as resp:
                return resp.status

        assert asyncio.run(fetch()) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_cli_without_the_web_extra_says_how_to_install_it() -> None:
    code = "import sys; sys.modules['aiohttp'] = None; from peerdht.cli.main import main; sys.exit(main(['web']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "pip install 'peerdht[web]'" in out.stderr, out.stderr


@pytest.mark.parametrize("size", [0])
def test_cli_refuses_size_zero(size: int) -> None:
    out = subprocess.run([sys.executable, "-m", "peerdht", "web", "--size", str(size)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
