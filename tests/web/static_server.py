"""A tiny aiohttp server for browser tests that need no DHT node: the browser modules under ``/s/`` and a
harness page at ``/t.html`` that imports them all and exposes them as ``window.m``.

Bound to 127.0.0.1 inside the test namespace (a secure context, so WebCrypto works).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "src" / "peerdht" / "web" / "static"

HARNESS = """<!doctype html><meta charset="utf-8"><script type="module">
import * as bencode from '/s/bencode.js';
import * as krpc from '/s/krpc.js';
import * as table from '/s/table.js';
import * as lookup from '/s/lookup.js';
import * as bep44 from '/s/bep44.js';
import * as webrtc from '/s/webrtc.js';
import * as relay from '/s/relay.js';
import * as peerdht from '/s/peerdht.js';
window.m = { bencode, krpc, table, lookup, bep44, webrtc, relay, peerdht };
window.b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
window.tob64 = (b) => btoa(String.fromCharCode(...b));
window.loaded = true;
</script>"""


@contextlib.asynccontextmanager
async def static_server() -> AsyncIterator[str]:
    """Serve the static modules; yields the base URL ``http://127.0.0.1:PORT``."""
    from aiohttp import web

    async def harness(_: web.Request) -> web.Response:
        return web.Response(text=HARNESS, content_type="text/html")

    app = web.Application()
    app.router.add_get("/t.html", harness)
    app.router.add_static("/s/", STATIC)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
