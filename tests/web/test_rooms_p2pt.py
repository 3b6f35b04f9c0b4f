"""P2PT rooms against the real thing: the JS p2pt 1.6.2 browser bundle in Debian chromium, our tracker and npm
bittorrent-tracker 11.2.3's Server in node, and :class:`peerdht.rooms.Room`.

(a) two p2pt pages through our tracker; (b) a p2pt page <-> a Python room through our tracker and through the
npm tracker: 1 MB each way with its response intact (surrogate pairs cut at chunk edges), send/respond chains
of 3 round trips started from either side, JSON messages, a message from Python shown in the page; (c) two
trackers at once, one destroyed and one channel dropped, messages still delivered; (d) a dead tracker URL gives
a tracker warning on both sides and nothing hangs. Runs inside the test network namespace
(``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.web.browser import chromium
from tests.web.roomkit import PyPeer, npm_tracker, page_python_exchange, static_server

from peerdht.aio.rooms.tracker import TrackerServer
from peerdht.rooms import Room

T = 60_000  # ms, page waits


@contextlib.asynccontextmanager
async def tracker(kind: str) -> AsyncIterator[str]:
    if kind == "ours":
        async with TrackerServer(host="127.0.0.1") as server:
            yield server.url
    else:
        async with npm_tracker() as (url, _proc):
            yield url


async def open_page(browser: Any, base: str, trackers: list[str], room: str, path: str = "/p2pt.html") -> tuple[Any, str]:
    page = await browser.new_page()
    page.on("pageerror", lambda e: print("pageerror:", e))
    await page.goto(base + path)
    peer_id = await page.evaluate("([t, r]) => window.start(t, r)", [trackers, room])
    return page, peer_id


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"  # nothing listens there once the socket is closed


async def test_two_p2pt_pages_through_our_tracker() -> None:
    async with TrackerServer(host="127.0.0.1") as server, static_server() as base, chromium() as browser:
        a, a_id = await open_page(browser, base, [server.url], "pages")
        b, b_id = await open_page(browser, base, [server.url], "pages")
        await a.wait_for_function(f"() => window.st.peers['{b_id}']", timeout=T)
        await b.wait_for_function(f"() => window.st.peers['{a_id}']", timeout=T)
        assert await a.evaluate(f"() => window.chain('{b_id}')") == ["hi", "fine", "bye!"]
        assert await b.evaluate(f"() => window.sendJSON('{a_id}', {{n: [1, 2, {{x: null}}]}})") == {
            "echo": {"n": [1, 2, {"x": None}]}}
        stats = server.stats()
        assert stats["peersAll"] == 2 and stats["counters"]["answers_relayed"] >= 1
        await a.close()  # the page goes away: its peer connections close
        await b.wait_for_function(f"() => window.st.closes.includes('{a_id}')", timeout=T)


@pytest.mark.parametrize("kind", ["ours", "npm"])
async def test_p2pt_page_and_python_room(kind: str) -> None:
    async with tracker(kind) as url, static_server() as base, chromium() as browser, Room("p2pt-interop", [url]) as room:
        py = PyPeer(room)
        page, page_id = await open_page(browser, base, [url], "p2pt-interop")
        await py.peer(peer_id=page_id)
        await page.wait_for_function(f"() => window.st.peers['{room.id}']", timeout=T)

        await page_python_exchange(page, page_id, room, py)
        await page.evaluate("() => window.stop()")
        await py.wait(lambda: page_id in py.closed)
        assert page_id not in room.peers
        await py.stop()


async def test_two_trackers_one_destroyed() -> None:
    async with static_server() as base, chromium() as browser, npm_tracker() as (npm_url, npm_proc):
        ours = TrackerServer(host="127.0.0.1")
        await ours.start()
        try:
            urls = [ours.url, npm_url]
            async with Room("two-trackers", urls) as room:
                py = PyPeer(room)
                page, page_id = await open_page(browser, base, urls, "two-trackers")
                peer = await py.peer(peer_id=page_id)
                # one logical peer, a channel through each tracker
                await py.wait(lambda: peer.channels >= 2)
                await page.wait_for_function(f"() => window.channels('{room.id}') >= 2", timeout=T)
                assert len(py.connected_events()) == 1
                await npm_proc.close()  # the npm tracker is gone
                await py.wait(lambda: any("closed" in w for w in py.warnings))
                await page.evaluate(f"() => window.dropChannel('{room.id}')")  # and one data channel with it
                await py.wait(lambda: peer.channels == 1)
                assert (await room.send(peer, "still there?")).msg == "echo:still there?"
                assert await page.evaluate(f"() => window.sendJSON('{room.id}', {{still: 1}})") == {"echo": {"still": 1}}
                assert py.closed == [] and peer.connected
                assert await page.evaluate("() => window.st.closes.length") == 0
                await py.stop()
        finally:
            await ours.close()


async def test_dead_tracker_gives_a_warning() -> None:
    dead = dead_url()
    async with static_server() as base, chromium() as browser:
        async with asyncio.timeout(30), Room("dead", [dead], reconnect_min=60) as room:
            py = PyPeer(room)
            await py.wait(lambda: py.warnings, timeout=20)
            assert dead in py.warnings[0] and room.tracker_stats() == (0, 1)
            await py.stop()
        page, _ = await open_page(browser, base, [dead], "dead")
        await page.wait_for_function("() => window.st.warnings.length > 0", timeout=T)
        assert dead.split("//")[1] in (await page.evaluate("() => window.st.warnings[0]"))
