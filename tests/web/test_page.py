"""The page at ``/`` (issue 10 item 1) in Debian chromium, served by a :class:`WebNode` over a UDP testnet.

Every control is clicked (put/get, mutable put/get, announce/lookup, bad input), the ``#stats`` panel must name
the transports and update, the chart must be drawn, errors must show in the page; one page runs at a phone's
size. The screenshot is written to ``docs/web-page.png`` when ``PEERDHT_UPDATE_SCREENSHOT=1`` (the README shows
it), else to a temporary file. A page opened over plain http from a non-loopback address says it has no
WebCrypto and still joins.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from tests.web.browser import chromium
from tests.web.webnet import open_page, stats, web_testnet

ROOT = Path(__file__).resolve().parents[2]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


async def submit(page: Any, fields: dict[str, str], button: str, result: str, timeout: float = 40000) -> str:
    for sel, value in fields.items():
        await page.fill(sel, value)
    await page.click(button)
    await page.wait_for_function(
        "(r) => { const t = document.querySelector(r).textContent; return t && t !== '…'; }", arg=result, timeout=timeout)
    text: str = await page.text_content(result) or ""
    return text


async def test_every_control_of_the_page() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        desk = await open_page(browser, node.url, errors, viewport={"width": 1100, "height": 900})
        phone = await open_page(browser, node.url, errors, **PHONE)
        assert await desk.is_hidden("#no-crypto")
        # mutable, with and without salt
        out = await submit(desk, {"#mput-value": "mutable one"}, "#mput", "#mput-result")
        m = re.fullmatch(r"public key ([0-9a-f]{64})\nseq (\d+)", out)
        assert m, out
        key = m.group(1)
        assert await submit(phone, {"#mget-key": key}, "#mget", "#mget-result") == f"mutable one\n(seq {m.group(2)})"
        await submit(desk, {"#mput-value": "salted", "#mput-salt": "s1"}, "#mput", "#mput-result")
        assert (await submit(phone, {"#mget-key": key, "#mget-salt": "s1"}, "#mget", "#mget-result")).startswith("salted\n")
        # the key pair is kept in the page's storage: a reload signs with the same key
        await desk.reload()
        await desk.wait_for_function("window.dht && window.dht.ready", timeout=40000)
        again = await submit(desk, {"#mput-value": "after reload"}, "#mput", "#mput-result")
        assert again.startswith(f"public key {key}\n"), again
        # immutable
        target = await submit(desk, {"#put-value": "hello from the page"}, "#put", "#put-result")
        assert re.fullmatch(r"[0-9a-f]{40}", target), target
        assert await submit(phone, {"#get-key": target}, "#get", "#get-result") == "hello from the page"
        assert await submit(phone, {"#get-key": "00" * 20}, "#get", "#get-result") == "not found"
        # announce / lookup
        await desk.fill("#announce-port", "6999")
        assert await submit(desk, {"#announce-ih": "ab" * 20}, "#announce", "#announce-result") == "announced port 6999"
        found = await submit(phone, {"#lookup-ih": "ab" * 20}, "#lookup", "#lookup-result")
        assert found.splitlines() and all(line.endswith(":6999") for line in found.splitlines()), found
        assert await submit(phone, {"#lookup-ih": "cd" * 20}, "#lookup", "#lookup-result") == "no peers found"
        # bad input: the error is in the result field and in #errors
        bad = await submit(phone, {"#get-key": "not hex"}, "#get", "#get-result")
        assert bad.startswith("error: ") and "40 hex" in bad
        assert "error" in (await phone.get_attribute("#get-result", "class") or "")
        assert "40 hex" in (await phone.text_content("#errors") or "")
        # the stats panel: updated every second, names the transports, counts queries and items
        await desk.wait_for_function("document.querySelector('#peers tbody').rows.length >= 1", timeout=20000)
        panel = await desk.text_content("#stats") or ""
        s = await stats(desk)
        assert s["nodeId"] in panel and "websocket" in panel
        assert re.search(r"\d+ immutable, \d+ mutable", panel)
        first = await desk.text_content("#stat-bytes")
        await desk.wait_for_function("(b) => document.querySelector('#stat-bytes').textContent !== b", arg=first, timeout=20000)
        drawn = await desk.evaluate(
            """() => { const c = document.getElementById('chart'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
        assert drawn > 100
        # phone size: nothing wider than the screen
        assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 390
        # fill the desk page's result fields too (the screenshot shows them)
        assert await submit(desk, {"#get-key": target}, "#get", "#get-result") == "hello from the page"
        assert (await submit(desk, {"#mget-key": key}, "#mget", "#mget-result")).startswith("after reload\n")
        assert (await submit(desk, {"#lookup-ih": "ab" * 20}, "#lookup", "#lookup-result")).endswith(":6999")
        shot = ROOT / "docs" / "web-page.png" if os.environ.get("PEERDHT_UPDATE_SCREENSHOT") == "1" else \
            Path(tempfile.mkdtemp()) / "web-page.png"
        await desk.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not errors, errors


async def test_page_without_webcrypto_says_so() -> None:
    """Plain http from 198.51.100.2 (not loopback): no secure context, no WebCrypto; the page says so, still joins,
    announce/lookup work and put shows the error in the page."""
    errors: list[str] = []
    async with web_testnet(host="198.51.100.2") as (_, node), chromium() as browser:
        assert node.url.startswith("http://198.51.100.2:")
        page = await open_page(browser, node.url, errors)
        assert await page.is_visible("#no-crypto")
        assert "https://" in (await page.text_content("#no-crypto") or "")
        assert await page.evaluate("() => window.isSecureContext") is False
        out = await submit(page, {"#put-value": "x"}, "#put", "#put-result")
        assert out.startswith("error: ") and "WebCrypto" in out
        await submit(page, {"#announce-ih": "ab" * 20}, "#announce", "#announce-result")
        assert (await submit(page, {"#lookup-ih": "ab" * 20}, "#lookup", "#lookup-result")).endswith(":6881")
    assert not errors, errors


async def test_page_links_the_room_view_and_exports_room() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        page = await open_page(browser, node.url, errors)
        exported = await page.evaluate("async () => typeof (await import('./peerdht.js')).Room")
        assert exported == "function"
        await page.click("text=rooms →")
        await page.wait_for_selector("#room-name", timeout=20000)
        assert page.url.endswith("/room.html")
        assert not errors, errors
