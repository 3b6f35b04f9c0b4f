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

from peerdht.aio.tracker import TrackerServer
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
