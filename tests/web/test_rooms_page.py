"""Our browser room peer (``src/peerdht/web/static/rooms.js`` + ``room.html``) in Debian chromium, against a
Python :class:`peerdht.rooms.Room`, against the JS p2pt 1.6.2 bundle, and through the page's own UI.

The same checks as the p2pt page (tests/web/test_rooms_p2pt.py): 1 MB each way with its response, chains of 3
round trips from either side, JSON, a message from Python shown in the page, concurrent requests. Runs inside
the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

from typing import Any

from tests.web.browser import chromium
from tests.web.roomkit import OURS_ADAPTER, PyPeer, T, page_python_exchange, static_server

from peerdht.aio.rooms.tracker import TrackerServer
from peerdht.rooms import Room


async def our_page(browser: Any, base: str, trackers: list[str] | None = None, room: str = "") -> tuple[Any, str]:
    page = await browser.new_page()
    page.on("pageerror", lambda e: print("pageerror:", e))
    await page.goto(base + "/static/room.html")
    await page.wait_for_function("() => window.roomReady === true", timeout=T)
    await page.add_script_tag(content=OURS_ADAPTER)
    if trackers is None:
        return page, ""
    return page, await page.evaluate("([t, r]) => window.start(t, r)", [trackers, room])


async def p2pt_page(browser: Any, base: str, trackers: list[str], room: str) -> tuple[Any, str]:
    page = await browser.new_page()
    await page.goto(base + "/p2pt.html")
    return page, await page.evaluate("([t, r]) => window.start(t, r)", [trackers, room])


async def test_our_page_and_python_room() -> None:
    async with TrackerServer(host="127.0.0.1") as server, static_server() as base, chromium() as browser, \
            Room("ours", [server.url]) as room:
        py = PyPeer(room)
        page, page_id = await our_page(browser, base, [server.url], "ours")
        await py.peer(peer_id=page_id)
        await page.wait_for_function(f"() => window.st.peers['{room.id}']", timeout=T)
        await page_python_exchange(page, page_id, room, py)
        assert await page.evaluate("() => window.room.dropped.frame") == 0
        await page.evaluate("() => window.stop()")
        await py.wait(lambda: page_id in py.closed)
        await py.stop()


async def test_our_page_and_the_p2pt_page() -> None:
    async with TrackerServer(host="127.0.0.1") as server, static_server() as base, chromium() as browser:
        ours, ours_id = await our_page(browser, base, [server.url], "mixed")
        theirs, theirs_id = await p2pt_page(browser, base, [server.url], "mixed")
        await ours.wait_for_function(f"() => window.st.peers['{theirs_id}']", timeout=T)
        await theirs.wait_for_function(f"() => window.st.peers['{ours_id}']", timeout=T)
        assert await ours.evaluate(f"() => window.chain('{theirs_id}')") == ["hi", "fine", "bye!"]
        assert await theirs.evaluate(f"() => window.chain('{ours_id}')") == ["hi", "fine", "bye!"]
        assert await ours.evaluate(f"() => window.sendBig('{theirs_id}', 100002)") == {"len": 100007, "ok": True}
        assert await theirs.evaluate(f"() => window.sendBig('{ours_id}', 100002)") == {"len": 100007, "ok": True}
        assert await theirs.evaluate(f"() => window.sendJSON('{ours_id}', {{k: [null]}})") == {"echo": {"k": [None]}}


async def test_room_view_chat_with_python() -> None:
    async with TrackerServer(host="127.0.0.1") as server, static_server() as base, chromium() as browser, \
            Room("lobby", [server.url]) as room:
        py = PyPeer(room, answer=False)
        page = await browser.new_page()
        await page.goto(f"{base}/static/room.html?room=lobby&tracker={server.url}")
        peer = await py.peer()
        await page.wait_for_function(f"() => document.getElementById('peers').textContent.includes('{room.id}')",
                                     timeout=T)
        await page.fill("#chat-input", "hello from the page <b>")
        await page.click("#chat-send")
        await py.wait(lambda: any(m.msg == "hello from the page <b>" for m in py.messages))
        await room.post(peer, "<img src=x onerror=alert(1)> hi from python")
        await page.wait_for_function("() => document.getElementById('log').textContent.includes('hi from python')",
                                     timeout=T)
        assert await page.evaluate("() => document.querySelectorAll('#log img').length") == 0  # shown as text
        assert "1 of 1 trackers connected" in await page.text_content("#room-status")
        await py.stop()


async def test_rooms_js_decodes_frames_as_python_does() -> None:
    """Differential: rooms.js decodeFrame and Reassembler against peerdht.tracker.framing on generated frames."""
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from peerdht.errors import DecodeError
    from peerdht.tracker.framing import Reassembler, decode_frame

    values = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(), st.text(max_size=8),
                       st.sampled_from([0, 1, -1, 1.0, 2.5, 2**53, 2**53 - 1, "x" * 64, "x" * 65, "", [], {}]))
    frames = st.one_of(
        st.text(max_size=40),
        st.builds(lambda d: "^" + json.dumps(d), st.dictionaries(
            st.sampled_from(["id", "msg", "c", "last", "o", "x"]), values, max_size=6)),
        st.builds(lambda i, m, c, last, o: "^" + json.dumps({"id": i, "msg": m, "c": c, "last": last, "o": o}),
                  st.integers(0, 10**6) | values, st.text(max_size=10) | st.builds(json.dumps, values) | values,
                  st.integers(0, 3) | values, st.booleans() | values, st.booleans() | values),
        st.builds(lambda i, m, c, last, o: "^" + json.dumps({"id": i, "msg": m, "c": c, "last": last, "o": o}),
                  st.integers(100000, 199999) | st.text(max_size=5), st.text(max_size=10) | st.builds(
                      json.dumps, st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=3)),
                  st.integers(0, 2), st.booleans(), st.booleans()),
        st.sampled_from(['^{"id":1,"msg":"a","c":0,"x":NaN}', '^{"id":1.0,"msg":"a","c":1e0,"last":true}',
                         '^{"id":1,"msg":"[1,","o":1,"c":0,"last":true}', '^{"id":1,"msg":"{}","o":1,"last":1}',
                         "^" + "[" * 3000]),
    )
    cases: list[str] = []

    @settings(max_examples=400, database=None, suppress_health_check=list(HealthCheck))
    @given(frames)
    def collect(frame: str) -> None:
        cases.append(frame)

    collect()

    def python_view(frame: str) -> Any:
        try:
            chunk = decode_frame(frame)
        except DecodeError:
            return "refused"
        if chunk is None:
            return None
        done = None
        try:
            done = Reassembler().receive("k", chunk, 0.0)
        except DecodeError:
            return ["chunk", chunk.id, chunk.msg, chunk.index, chunk.last, chunk.is_json, "message refused"]
        return ["chunk", chunk.id, chunk.msg, chunk.index, chunk.last, chunk.is_json,
                None if done is None else ["message", done.msg]]

    async with static_server() as base, chromium() as browser:
        page = await browser.new_page()
        await page.goto(base + "/static/room.html")
        js = await page.evaluate("""async (cases) => {
          const m = await import('./rooms.js');
          return cases.map((f) => {
            let chunk;
            try { chunk = m.decodeFrame(f); } catch (e) { return 'refused'; }
            if (chunk === null) return null;
            let done = null;
            try { done = new m.Reassembler().receive(chunk); } catch (e) {
              return ['chunk', chunk.id, chunk.msg, chunk.c, chunk.last, chunk.o, 'message refused']; }
            return ['chunk', chunk.id, chunk.msg, chunk.c, chunk.last, chunk.o, done === null ? null : ['message', done.msg]];
          });
        }""", cases)
    mismatches = [(f, p, j) for f, p, j in zip(cases, map(python_view, cases), js, strict=True) if p != j]
    assert not mismatches, mismatches[:5]
    assert sum(v == "refused" for v in js) > 20 and sum(isinstance(v, list) for v in js) > 50


async def test_room_view_served_by_a_web_node_uses_its_tracker() -> None:
    """``peerdht web``'s own tracker (``/tracker``): the room page finds it through config.json, no URL typed."""
    from peerdht.aio.web.node import WebNode

    async with WebNode(host="127.0.0.1", webrtc=False) as node, chromium() as browser:
        assert node.tracker_url == node.url.replace("http://", "ws://") + "tracker"
        async with Room("served", [node.tracker_url]) as room:
            py = PyPeer(room, answer=False)
            page = await browser.new_page()
            await page.goto(node.url + "room.html")
            await page.wait_for_function(
                "() => document.getElementById('room-trackers').value.endsWith('/tracker')", timeout=T)
            assert await page.input_value("#room-trackers") == node.tracker_url
            await page.fill("#room-name", "served")
            await page.click("#join-button")
            peer = await py.peer()
            await room.post(peer, "hello via the node's tracker")
            await page.wait_for_function(
                "() => document.getElementById('log').textContent.includes(\"hello via the node's tracker\")", timeout=T)
            assert node.tracker is not None and node.tracker.stats()["peersAll"] == 2
            await py.stop()
