"""Debian chromium through Playwright, for tests inside the test network namespace.

No browser download: Playwright drives ``/usr/bin/chromium`` (Debian's package). mDNS host candidates are
switched off so the page offers its raw veth address (198.51.100.2), which aioice can use; the Python side's
raw candidates make a page with mDNS on work too (tested separately where it matters).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

CHROMIUM = os.environ.get("PEERDHT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


@contextlib.asynccontextmanager
async def chromium(mdns: bool = False) -> AsyncIterator[Any]:
    """Yield a launched Playwright ``Browser`` (Debian chromium, headless); closed on exit."""
    from playwright.async_api import async_playwright

    args = [a for a in ARGS if mdns is False or "Mdns" not in a]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            await browser.close()
