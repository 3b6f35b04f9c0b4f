"""A Python web testnet for browser tests: a local UDP Mainline testnet plus a :class:`WebNode` serving the page.

Everything binds inside the test namespace: UDP and HTTP on 127.0.0.1 (the page is then a secure context, so
WebCrypto works; WebRTC between aiortc and chromium runs over the veth address 198.51.100.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from peerdht.aio.mainline import MainlineTestnet
from peerdht.aio.webnode import WebNode

JOIN_TIMEOUT_MS = 40000


@contextlib.asynccontextmanager
async def web_testnet(size: int = 4, host: str = "127.0.0.1", **options: Any) -> AsyncIterator[tuple[MainlineTestnet, WebNode]]:
    """Yield ``(udp testnet, web node)``; the web node joins the testnet and serves the page at ``node.url``."""
    testnet = await MainlineTestnet.create(size, host="127.0.0.1")
    try:
        async with WebNode(host=host, udp_host="127.0.0.1", bootstrap=testnet.bootstrap, **options) as node:
            yield testnet, node
    finally:
        await testnet.close()


async def open_page(browser: Any, url: str, errors: list[str] | None = None, **context: Any) -> Any:
    """A new page at ``url`` that has joined (``window.dht.ready``); page errors are appended to ``errors``."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.wait_for_function("window.dht && window.dht.ready === true", timeout=JOIN_TIMEOUT_MS)
    return page


async def stats(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("() => window.dht.stats()")
    return result
