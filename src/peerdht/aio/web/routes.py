"""The HTTP side of a :class:`~peerdht.aio.web.node.WebNode` (aiohttp): the page, the WebSocket, webtorrent-dht's
POST bootstrap and a Pkarr relay.

Endpoints (one aiohttp application, :meth:`WebHTTP.add_routes`):

* ``GET /`` the page (``static/index.html``), ``GET /<name>`` the other files of :mod:`peerdht.web`
  ``static/`` (no directory traversal; ``.js`` as ``text/javascript``); ``GET /config.json``
  ``{"iceServers": [...]}``: the ``ice_servers`` (``--ice-server``) for the page's RTCPeerConnections (unless
  ``static/`` has a ``config.json``);
* ``GET /ws`` the WebSocket: a link of the web overlay (one bencoded KRPC message per binary message);
* ``POST /`` webtorrent-dht 0.18's bootstrap (``webrtc-socket.js`` ``bind()``): a JSON offer in, the JSON answer
  ``{"type": "answer", "sdp", "extensions": []}`` out, ``Access-Control-Allow-Origin: *``; the data channel
  that follows is a link (1 per second per IP, burst 5; then 429; 503 without WebRTC or over the link caps; 400
  for a bad offer). A TLS ClientHello on this port (webtorrent-dht tries ``https://`` first) gets aiohttp's 400.
* ``PUT``/``GET``/``OPTIONS /<z-base32 public key>`` a Pkarr relay (pubky/pkarr ``design/relays.md``, status
  codes in :mod:`peerdht.web.pkarr`) backed by BEP 44 on UDP Mainline; PUT is limited to 2 per second per IP,
  burst 10. ``GET /<name>`` serves static files first: a 52-character name without ``.`` that is not a file is a
  Pkarr GET.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from peerdht.aio.mainline import MainlineDHT
from peerdht.aio.web.links import WebLinks
from peerdht.errors import PeerDHTError
from peerdht.kademlia.ratelimit import TokenBucket
from peerdht.mainline.events import Item
from peerdht.web.links import WebLimits
from peerdht.web.overlay import WebOverlay

__all__ = ["MAX_POST", "WebHTTP"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_POST = 64 * 1024
"""Largest request body (bytes): the POST bootstrap's JSON offer (aiohttp's ``client_max_size``)."""
_PKARR_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, PUT, OPTIONS"}


def _now() -> float:
    return asyncio.get_running_loop().time()


class WebHTTP:
    """The request handlers of one web node (state: per-IP rate limits, Pkarr puts in progress).

    Args:
        dht: the node's UDP Mainline side (Pkarr reads and writes BEP 44 there).
        overlay: the web overlay core (WebSockets and bootstrap data channels become its links).
        links: the node's connections (:class:`~peerdht.aio.web.links.WebLinks`).
        static_dir: the files served at ``/``.
        ice_servers: served as ``/config.json``.
        webrtc: whether the POST bootstrap is served (aiortc available and wanted).
        limits: the overlay's bounds (``max_message`` for WebSocket messages).
        counters: the node's counters (``http_*``, ``pkarr_*``, ``ws_refused``).
        trackers: WebTorrent tracker URLs for the room page, served in ``/config.json`` (a path such as
            ``/tracker`` means this server; the page turns it into ``ws(s)://`` its own host).
    """

    def __init__(
        self,
        *,
        dht: MainlineDHT,
        overlay: WebOverlay,
        links: WebLinks,
        static_dir: Path,
        ice_servers: list[str],
        webrtc: bool,
        limits: WebLimits,
        counters: Counter[str],
        trackers: list[str] | None = None,
    ) -> None:
        self.dht = dht
        self.overlay = overlay
        self.links = links
        self.static_dir = static_dir
        self.ice_servers = ice_servers
        self.webrtc = webrtc
        self.limits = limits
        self.counters = counters
        self.trackers = trackers or []
        self._http_rate: dict[tuple[str, str], TokenBucket] = {}
        self._pkarr_busy: set[bytes] = set()

    def add_routes(self, app: Any) -> None:
        """Register the endpoints (module docs) on the aiohttp ``web.Application`` ``app``."""
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_post("/", self._bootstrap_handler)
        app.router.add_route("OPTIONS", "/", self._options_handler)
        app.router.add_get("/", self._index_handler)
        app.router.add_get("/{path:.+}", self._static_handler)
        app.router.add_put("/{key}", self._pkarr_put)
        app.router.add_route("OPTIONS", "/{key}", self._options_handler)

    async def _index_handler(self, request: Any) -> Any:
        return self._file(self.static_dir / "index.html")

    async def _static_handler(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["path"]
        if len(name) == 52 and "." not in name and not (self.static_dir / name).exists():
            return await self._pkarr_get(request, name)
        if name == "config.json" and not (self.static_dir / name).exists():  # the page's ICE servers (--ice-server)
            return web.json_response(
                {"iceServers": self.ice_servers, "trackers": self.trackers}, headers={"Cache-Control": "no-cache"})
        parts = name.split("/")
        if not all(_SEGMENT.match(p) for p in parts):
            self.counters["http_bad_path"] += 1
            raise web.HTTPNotFound()
        path = (self.static_dir / "/".join(parts)).resolve()
        if not path.is_relative_to(self.static_dir.resolve()):
            raise web.HTTPNotFound()
        return self._file(path)

    def _file(self, path: Path) -> Any:
        from aiohttp import web

        if not path.is_file():
            raise web.HTTPNotFound()
        ctype = _TYPES.get(path.suffix.lower(), "application/octet-stream")
        return web.Response(
            body=path.read_bytes(), headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
        )

    async def _options_handler(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "GET, POST, PUT, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, If-Match, If-Modified-Since",
        })

    async def _bootstrap_handler(self, request: Any) -> Any:
        """webtorrent-dht 0.18's HTTP bootstrap: JSON offer in, JSON answer out (``webrtc-socket.js``)."""
        from aiohttp import web

        from peerdht.aio.web.webrtc import SignalError

        cors = {"Access-Control-Allow-Origin": "*"}
        self.counters["http_bootstrap"] += 1
        try:
            body = await request.content.read(MAX_POST + 1)
            if len(body) > MAX_POST:
                raise ValueError("too long")
            offer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self.counters["http_bootstrap_bad"] += 1
            return web.Response(status=400, headers=cors)
        if not self.webrtc:
            return web.Response(status=503, headers=cors)
        if not self._http_allow("bootstrap", request.remote or "", rate=1.0, burst=5.0):
            self.counters["http_bootstrap_rate_limited"] += 1
            return web.Response(status=429, headers=cors)
        handle = self.overlay.reserve_link(_now())
        if handle is None:
            self.counters["http_bootstrap_refused"] += 1
            return web.Response(status=503, headers=cors)
        peer = self.links.new_peer(handle)
        try:
            answer = await peer.accept_offer(offer)
        except SignalError:
            self.counters["http_bootstrap_bad"] += 1
            self.links.close_link(handle)
            return web.Response(status=400, headers=cors)
        self.links.spawn(self.links.open_then_link(handle, peer))
        return web.Response(text=json.dumps({**answer, "extensions": []}), headers=cors)

    def _http_allow(self, kind: str, ip: str, rate: float = 2.0, burst: float = 10.0) -> bool:
        """Per-IP token bucket for the expensive HTTP endpoints (Pkarr PUT, the WebRTC bootstrap POST)."""
        if len(self._http_rate) > 10000:
            self._http_rate.clear()
        bucket = self._http_rate.get((kind, ip))
        if bucket is None:
            bucket = self._http_rate[(kind, ip)] = TokenBucket(rate, burst)
        return bucket.allow(1, _now())

    async def _pkarr_put(self, request: Any) -> Any:
        from aiohttp import web

        from peerdht.errors import DecodeError
        from peerdht.mainline.crypto import mutable_target
        from peerdht.web.pkarr import MAX_BODY, decode_key, parse_payload

        self.counters["pkarr_put"] += 1

        def reply(status: int, **headers: str) -> Any:
            return web.Response(status=status, headers={**_PKARR_CORS, **headers})

        try:
            key = decode_key(request.match_info["key"])
        except DecodeError:
            return reply(400)
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return reply(413)
        try:
            payload = parse_payload(body)
        except DecodeError:
            return reply(400)
        if not payload.verify(key):
            return reply(400)
        cas: int | None = None
        if "If-Match" in request.headers:
            text = request.headers["If-Match"].strip().strip('"')
            if not text.isdigit():
                return reply(400)
            cas = int(text)
        if not self._http_allow("pkarr", request.remote or ""):
            self.counters["pkarr_rate_limited"] += 1
            return reply(429)
        local = self.dht.core.items.get(mutable_target(key), _now())
        if local is not None and local.seq is not None:
            if payload.seq < local.seq:
                return reply(409)
            if cas is not None and cas != local.seq:
                return reply(412)
        if key in self._pkarr_busy and cas is None:
            return reply(428)
        self._pkarr_busy.add(key)
        try:
            result = await self.dht.put_item(Item(v=payload.v, k=key, seq=payload.seq, sig=payload.sig), cas=cas)
        except PeerDHTError:
            return reply(500)
        finally:
            self._pkarr_busy.discard(key)
        if result.stored == 0:
            if 302 in result.errors:
                return reply(409)
            if 301 in result.errors:
                return reply(412)
            return reply(500)
        return reply(204, **{"Access-Control-Expose-Headers": "Pkarr-Dht-Stored-Nodes",
                             "Pkarr-Dht-Stored-Nodes": str(result.stored)})

    async def _pkarr_get(self, request: Any, name: str) -> Any:
        from aiohttp import web

        from peerdht.errors import DecodeError
        from peerdht.web.pkarr import Payload, decode_key, http_date, parse_http_date

        self.counters["pkarr_get"] += 1
        try:
            key = decode_key(name)
        except DecodeError:
            return web.Response(status=400, headers=_PKARR_CORS)
        try:
            item = await self.dht.get_mutable(key)
        except PeerDHTError:
            item = None
        if item is None or not isinstance(item.v, bytes) or item.seq is None or item.sig is None:
            return web.Response(status=404, headers=_PKARR_CORS)
        modified = http_date(item.seq)
        since = parse_http_date(request.headers.get("If-Modified-Since", ""))
        if since is not None and item.seq // 1_000_000 * 1_000_000 <= since:
            return web.Response(status=304, headers={**_PKARR_CORS, "Last-Modified": modified})
        body = Payload(sig=item.sig, seq=item.seq, v=item.v).to_bytes()
        return web.Response(body=body, headers={
            **_PKARR_CORS,
            "Content-Type": "application/pkarr.org/relays#payload",
            "Cache-Control": "public, max-age=300",
            "Last-Modified": modified,
        })

    async def _ws_handler(self, request: Any) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse(max_msg_size=self.limits.max_message, heartbeat=30.0)
        await ws.prepare(request)
        handle = self.overlay.open_link("websocket", request.remote, _now())
        if handle is None:
            self.counters["ws_refused"] += 1
            await ws.close(code=1013, message=b"too many links")
            return ws
        self.links.add_websocket(ws, handle)
        await self.links.pump_websocket(ws, handle)
        return ws
