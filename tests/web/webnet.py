"""A Python web testnet for browser tests: a local UDP Mainline testnet plus a :class:`WebNode` serving the page.

Everything binds inside the test namespace: UDP and HTTP on 127.0.0.1 (the page is then a secure context, so
WebCrypto works; WebRTC between aiortc and chromium runs over the veth address 198.51.100.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from peerdht.aio.mainline import MainlineTestnet
from peerdht.aio.web.node import WebNode

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


async def until(cond: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0, what: str = "") -> None:
    """Wait until ``cond()`` (a bool, or an awaitable of one) is true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert loop.time() < deadline, f"not in time: {what}" if what else "condition not met in time"
        await asyncio.sleep(0.05)


def libtorrent_session(lt: Any, bootstrap: tuple[str, int]) -> Any:
    """A libtorrent session with only its DHT on, bootstrapping from ``bootstrap`` (a node of the local testnet)."""
    host, port = bootstrap
    return lt.session({
        "listen_interfaces": "127.0.0.1:0", "enable_dht": True, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "dht_bootstrap_nodes": f"{host}:{port}", "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False, "dht_block_ratelimit": 100000,
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification,
    })


def lt_get_immutable(lt: Any, ses: Any, target: bytes, timeout: float = 40.0) -> bytes | None:
    """Blocking (run it in an executor): wait for libtorrent's DHT bootstrap, then ``dht_get_immutable_item``
    (asked again every 5 s) until the item arrives; ``None`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    booted = False
    asked = 0.0
    while time.monotonic() < deadline:
        if booted and time.monotonic() - asked > 5:
            ses.dht_get_immutable_item(lt.sha1_hash(target))
            asked = time.monotonic()
        ses.wait_for_alert(200)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.dht_bootstrap_alert):
                booted = True
            elif isinstance(alert, lt.dht_immutable_item_alert) and alert.item:
                item: bytes = alert.item
                return item
    return None
