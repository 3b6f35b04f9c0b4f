"""``WebNode``: a Mainline DHT node that browsers join, over WebSocket and WebRTC (aiohttp + aiortc).

One node sits in two worlds:

* **UDP Mainline** (:class:`~peerdht.aio.mainline.MainlineDHT`): a normal BEP 5/44 node on a UDP socket.
* **the web overlay** (:class:`~peerdht.web.overlay.WebOverlay`, sans-IO): KRPC over links, each link a
  WebSocket (``GET /ws``, one bencoded KRPC message per binary message) or a WebRTC data channel (aiortc,
  :mod:`peerdht.aio.webrtc`; same framing, as webtorrent-dht's ``webrtc-socket.js``). WebRTC offers and
  answers travel inside the overlay's own queries (``signals`` / ``peer_connection``).

The two share the BEP 44 item store (a value put by a browser is served to UDP queriers of this node and the
other way round). Link handles never reach the UDP side.

HTTP endpoints (one aiohttp server):

* ``GET /`` the page (``static/index.html``), ``GET /<name>`` the other files of
  :mod:`peerdht.web` ``static/`` (no directory traversal; ``.js`` as ``text/javascript``); ``GET /config.json``
  ``{"iceServers": [...]}``: the ``ice_servers`` (``--ice-server``) for the page's RTCPeerConnections;
* ``GET /ws`` the WebSocket;
* ``POST /`` webtorrent-dht 0.18's bootstrap (``webrtc-socket.js`` ``bind()``): a JSON offer in, the JSON answer
  ``{"type": "answer", "sdp", "extensions": []}`` out, ``Access-Control-Allow-Origin: *``; the data channel
  that follows is a link (1 per second per IP, burst 5; then 429). A TLS ClientHello on this port (webtorrent-dht
  tries ``https://`` first) gets aiohttp's 400 at once.
* ``PUT``/``GET``/``OPTIONS /<z-base32 public key>`` a Pkarr relay (pubky/pkarr ``design/relays.md``,
  :mod:`peerdht.web.pkarr`) backed by BEP 44 on UDP Mainline.

The bridge (``bridge=True``): a link's ``get``/``get_peers`` that the overlay cannot answer waits (<= 5 s) for a
lookup on UDP Mainline; a link's ``put``/``announce_peer`` is stored on UDP Mainline too (announces from this
node's own address); both rate-limited per link. Nothing a link sends makes the Mainline side send UDP to an
address the link chose: it talks only to the nodes of its UDP routing table (BEP 5: they answered us). The one
UDP traffic a peer steers is WebRTC's own: ICE connectivity checks (STUN, consent-based, as in any browser) to
the candidates of an offer or answer, bounded by the WebRTC caps of :class:`~peerdht.web.overlay.WebLimits`.

Example::

    async with WebNode(host="127.0.0.1", bootstrap=[("127.0.0.1", 6881)]) as node:
        print(node.url, node.ws_url)
        target = await node.put(b"hello")       # BEP 44 in the web overlay

Not thread-safe; one event loop. ``pip install 'peerdht[web]'`` (aiohttp, aiortc).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from peerdht.aio.driver import DatagramDriver
from peerdht.aio.mainline import MainlineDHT
from peerdht.aio.ops import Operations, Start
from peerdht.encoding.bencode import Value
from peerdht.errors import LocalProtocolError, PeerDHTError
from peerdht.kademlia.ratelimit import TokenBucket
from peerdht.mainline.crypto import KeyPair
from peerdht.mainline.events import (
    AnnounceResult,
    GetResult,
    Item,
    LookupResult,
    OpDone,
    OpFailed,
    PeersFound,
    PutResult,
)
from peerdht.web.events import (
    AnswerOffer,
    BridgeAnnounce,
    BridgeLookup,
    BridgeStore,
    ConnectAnswer,
    DiscardOffer,
    LinkDropped,
    OffersWanted,
)
from peerdht.web.overlay import Handle, WebLimits, WebOverlay

__all__ = ["STATIC_DIR", "WebNode"]

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: The page and browser node served at ``/`` (written as plain ES modules, no build step).
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

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
_MAX_POST = 64 * 1024
_PKARR_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, PUT, OPTIONS"}
_WS_QUEUE = 256
_OPEN_TIMEOUT = 20.0


class _Sink:
    """Sends the overlay's messages to links (the driver's "transport")."""

    def __init__(self, node: WebNode) -> None:
        self.node = node

    def sendto(self, data: bytes, addr: Address) -> None:
        self.node._send_link(data, addr)

    def is_closing(self) -> bool:
        return self.node._closed

    def get_extra_info(self, name: str) -> Any:
        return None

    def close(self) -> None:
        pass


class _WSLink:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_WS_QUEUE)
        self.task = asyncio.ensure_future(self._writer())

    async def _writer(self) -> None:
        with contextlib.suppress(Exception):
            while (data := await self.queue.get()) is not None:
                await self.ws.send_bytes(data)

    def send(self, data: bytes) -> bool:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    async def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.ws.close()


class WebNode:
    """A Mainline node on UDP plus an HTTP/WebSocket/WebRTC endpoint for browsers and webtorrent-dht peers.

    Args:
        host: HTTP + WebSocket bind address (``"127.0.0.1"``; the page needs a secure context for WebCrypto:
            loopback, or https behind a reverse proxy).
        port: HTTP port (0: any free port).
        udp_host: UDP Mainline bind address (default: ``host``).
        udp_port: UDP port (0: any free port).
        bootstrap: UDP Mainline nodes to join through, ``(host, port)``; never a public list in tests.
        ice_servers: STUN/TURN URLs for aiortc (none by default: host candidates only).
        static_dir: the files served at ``/`` (default :data:`STATIC_DIR`).
        advertise_host: the host written into :attr:`url` when ``host`` is a wildcard address.
        limits: bounds on links and signalling (:class:`~peerdht.web.overlay.WebLimits`).
        k: the overlay's bucket size (webtorrent-dht: 2).
        webrtc: make and answer WebRTC offers (needs aiortc); ``False``: WebSocket links only.
        bridge: answer links' ``get``/``get_peers`` by also looking on UDP Mainline, and store their
            ``put``/``announce_peer`` there too (rate-limited per link; :class:`~peerdht.web.overlay.WebLimits`).
        seed: bytes for the cores' randomness (tests).
        **udp_options: more :class:`~peerdht.aio.mainline.MainlineDHT` options.

    Attributes:
        dht: the UDP Mainline node.
        overlay: the web overlay core (after :meth:`open`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        udp_host: str | None = None,
        udp_port: int = 0,
        bootstrap: Sequence[Address] = (),
        ice_servers: Sequence[str] = (),
        static_dir: str | os.PathLike[str] | None = None,
        advertise_host: str | None = None,
        limits: WebLimits | None = None,
        k: int = 2,
        webrtc: bool = True,
        bridge: bool = True,
        seed: bytes | None = None,
        **udp_options: Any,
    ) -> None:
        self._bridge = bridge
        self._host = host
        self._port = port
        self._advertise = advertise_host
        self._ice = list(ice_servers)
        self._static = Path(static_dir) if static_dir is not None else STATIC_DIR
        self._limits = limits or WebLimits()
        self._k = k
        self._webrtc = webrtc
        self._rng = random.Random(seed if seed is not None else os.urandom(32))
        self.dht = MainlineDHT(
            bootstrap=bootstrap, host=udp_host or host, port=udp_port, seed=self._rng.randbytes(32), **udp_options
        )
        self._overlay: WebOverlay | None = None
        self._driver: DatagramDriver | None = None
        self._ops = Operations(lambda op: self.overlay.node.cancel(op))
        self._runner: Any = None
        self._http_port = 0
        self._ws: dict[Handle, _WSLink] = {}
        self._peers: dict[Handle, Any] = {}  # Handle -> DataChannelPeer
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clients: list[Any] = []
        self._closed = False
        self.counters: Counter[str] = Counter()
        #: Test hook (issue 10: "a test hook that refuses the offer"): WebRTC links made through signalling
        #: fail as if ICE failed, so the overlay falls back to relayed messages.
        self.fail_webrtc = False
        self._http_rate: dict[tuple[str, str], TokenBucket] = {}
        self._pkarr_busy: set[bytes] = set()

    # ------------------------------------------------------------------ lifetime

    async def open(self) -> WebNode:
        """Bind UDP and HTTP, join the UDP network (if given a bootstrap).

        Raises:
            OSError: an address cannot be bound.
            ImportError: aiohttp is not installed (``pip install 'peerdht[web]'``).
        """
        from aiohttp import web

        if self._overlay is not None:
            return self
        if self._webrtc:
            try:  # import aiortc (and av) now, not in the middle of the first join (~0.3 s of blocked loop)
                import aiortc  # noqa: F401
            except ImportError:
                log.warning("aiortc is not installed: WebSocket links only (pip install 'peerdht[web]')")
                self._webrtc = False
        await self.dht.open()
        loop = asyncio.get_running_loop()
        self._overlay = WebOverlay(
            rng=self._rng, node_id=self.dht.node_id, k=self._k, webrtc=self._webrtc, bridge=self._bridge,
            limits=self._limits,
            now=loop.time(),
        )
        self._overlay.node.items = self.dht.core.items  # one BEP 44 store for both worlds
        self._driver = DatagramDriver(self._overlay, self._on_event, False)
        self._driver.transports.append(_Sink(self))  # type: ignore[arg-type]
        app = web.Application(client_max_size=_MAX_POST)
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_post("/", self._bootstrap_handler)
        app.router.add_route("OPTIONS", "/", self._options_handler)
        app.router.add_get("/", self._index_handler)
        app.router.add_get("/{path:.+}", self._static_handler)
        app.router.add_put("/{key}", self._pkarr_put)
        app.router.add_route("OPTIONS", "/{key}", self._options_handler)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await self.close()
            raise
        server = site._server
        assert server is not None
        self._http_port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._driver.kick()
        return self

    async def __aenter__(self) -> WebNode:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every link, the HTTP server and the UDP node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ops.close(LocalProtocolError("the node was closed"))
        for task in list(self._tasks):
            task.cancel()
        for link in list(self._ws.values()):
            await link.close()
        for peer in list(self._peers.values()):
            with contextlib.suppress(Exception):
                await peer.close()
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
        if self._driver is not None:
            self._driver.close()
        await self.dht.close()

    # ------------------------------------------------------------------ state

    @property
    def overlay(self) -> WebOverlay:
        """The web overlay core (after :meth:`open`)."""
        if self._overlay is None:
            raise LocalProtocolError("the node is not open: use `async with WebNode(...)`")
        return self._overlay

    @property
    def node_id(self) -> bytes:
        """Our 20-byte node id (the same in both worlds)."""
        return self.overlay.id

    @property
    def http_address(self) -> Address:
        """The bound ``(host, port)`` of the HTTP server."""
        return (self._host, self._http_port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``: the page."""
        host = self._advertise or self._host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self._http_port}/"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT/ws``: KRPC over WebSocket."""
        return "ws" + self.url[4:] + "ws"

    def udp_address(self) -> Address:
        """The bound ``(host, port)`` of the UDP Mainline socket."""
        return self.dht.address()

    @property
    def stats(self) -> dict[str, int]:
        """Overlay counters (links, drops by reason, signalling) and the asyncio layer's (``http_*``, ``ws_*``)."""
        out = self.overlay.snapshot()
        out.update(self.counters)
        return out

    def links(self) -> list[dict[str, object]]:
        """Open links: ``{"transport": "websocket"|"webrtc", "id", "ip", "received", "sent"}``."""
        return self.overlay.links()

    # ------------------------------------------------------------------ overlay commands

    async def bootstrap(self) -> int:
        """Look up our own id in the web overlay; returns the overlay's routing-table size."""
        with contextlib.suppress(PeerDHTError):
            await self._run(self.overlay.node.bootstrap)
        return len(self.overlay.node.table)

    async def find_node(self, target: bytes) -> list[bytes]:
        """Iterative ``find_node`` in the web overlay: ids of the closest nodes that answered."""
        result = await self._run(lambda now: self.overlay.node.find_node(target, now))
        assert isinstance(result, LookupResult)
        return [n.id for n in result.nodes]

    async def put(self, value: Value) -> bytes:
        """BEP 44 immutable put in the web overlay (and our shared store); returns the 20-byte target."""
        result = await self._run(lambda now: self.overlay.node.put(value, now))
        assert isinstance(result, PutResult)
        return result.target

    async def get(self, target: bytes) -> Value | None:
        """BEP 44 immutable get in the web overlay (our own store first)."""
        result = await self._run(lambda now: self.overlay.node.get(target, now))
        assert isinstance(result, GetResult)
        return None if result.item is None else result.item.v

    async def put_mutable(self, key_pair: KeyPair, value: Value, salt: bytes = b"", seq: int | None = None) -> PutResult:
        """BEP 44 mutable put in the web overlay."""
        result = await self._run(lambda now: self.overlay.node.put_mutable(key_pair, value, now, salt=salt, seq=seq))
        assert isinstance(result, PutResult)
        return result

    async def get_mutable(self, public_key: bytes, salt: bytes = b"") -> Item | None:
        """BEP 44 mutable get in the web overlay."""
        result = await self._run(lambda now: self.overlay.node.get_mutable(public_key, now, salt=salt))
        assert isinstance(result, GetResult)
        return result.item

    async def announce_peer(self, info_hash: bytes, port: int) -> int:
        """Announce in the web overlay; returns how many overlay nodes stored it."""
        result = await self._run(lambda now: self.overlay.node.announce_peer(info_hash, port, now))
        assert isinstance(result, AnnounceResult)
        return result.stored

    async def get_peers(self, info_hash: bytes) -> AsyncIterator[Address]:
        """``get_peers`` in the web overlay: yields ``(host, port)`` as found."""
        assert self._driver is not None
        start: Start = lambda now: self.overlay.node.get_peers(info_hash, now)  # noqa: E731
        async for event in self._ops.stream(self._driver, start):
            for peer in event.peers:
                yield peer

    async def connect(self, url: str, timeout: float = 10.0) -> None:
        """Open a WebSocket link to another node's ``ws://HOST:PORT/ws`` and join the overlay through it.

        Raises:
            OSError: cannot connect. TimeoutError: no WebSocket within ``timeout`` seconds.
        """
        import aiohttp

        session = aiohttp.ClientSession()
        self._clients.append(session)
        ws = await asyncio.wait_for(session.ws_connect(url, max_msg_size=self._limits.max_message), timeout)
        handle = self.overlay.open_link("websocket", None, self._now())
        if handle is None:
            await ws.close()
            raise LocalProtocolError("too many links")
        self._ws[handle] = _WSLink(ws)
        self._spawn(self._pump_ws(ws, handle))
        await self._join(handle)

    async def connect_http(self, host: str, port: int, timeout: float = 20.0) -> None:
        """webtorrent-dht 0.18's bootstrap as a client: POST our offer to ``http://host:port``, take the JSON
        answer, open the data channel, join the overlay through it.

        Raises:
            OSError: HTTP failed. SignalError: a bad answer. TimeoutError: no channel in ``timeout`` s.
        """
        import aiohttp

        from peerdht.aio.webrtc import SignalError

        handle = self.overlay.reserve_link(self._now())
        if handle is None:
            raise LocalProtocolError("too many links")
        peer = self._new_peer(handle)
        offer = await peer.create_offer()
        try:
            async with aiohttp.ClientSession() as session:
                body = json.dumps({**offer, "extensions": []})
                async with session.post(f"http://{host}:{port}", data=body, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    if resp.status != 200:
                        raise SignalError(f"bootstrap POST answered {resp.status}")
                    answer = json.loads(await resp.text())
            await peer.accept_answer(answer)
            await peer.wait_open(timeout)
        except BaseException:
            self._close_link(handle)
            raise
        self._link_opened(handle, peer)
        await self._join(handle)

    async def _join(self, handle: Handle) -> None:
        """Ping the node behind a new link we opened (it enters the table), then look up our own id."""
        await self._run(lambda now: self.overlay.node.ping(handle, now))
        await self.bootstrap()

    # ------------------------------------------------------------------ HTTP handlers

    async def _index_handler(self, request: Any) -> Any:
        return self._file(self._static / "index.html")

    async def _static_handler(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["path"]
        if len(name) == 52 and "." not in name and not (self._static / name).exists():
            return await self._pkarr_get(request, name)
        if name == "config.json" and not (self._static / name).exists():  # the page's ICE servers (--ice-server)
            return web.json_response({"iceServers": self._ice}, headers={"Cache-Control": "no-cache"})
        parts = name.split("/")
        if not all(_SEGMENT.match(p) for p in parts):
            self.counters["http_bad_path"] += 1
            raise web.HTTPNotFound()
        path = (self._static / "/".join(parts)).resolve()
        if not path.is_relative_to(self._static.resolve()):
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

        from peerdht.aio.webrtc import SignalError

        cors = {"Access-Control-Allow-Origin": "*"}
        self.counters["http_bootstrap"] += 1
        try:
            body = await request.content.read(_MAX_POST + 1)
            if len(body) > _MAX_POST:
                raise ValueError("too long")
            offer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self.counters["http_bootstrap_bad"] += 1
            return web.Response(status=400, headers=cors)
        if not self._webrtc:
            return web.Response(status=503, headers=cors)
        if not self._http_allow("bootstrap", request.remote or "", rate=1.0, burst=5.0):
            self.counters["http_bootstrap_rate_limited"] += 1
            return web.Response(status=429, headers=cors)
        handle = self.overlay.reserve_link(self._now())
        if handle is None:
            self.counters["http_bootstrap_refused"] += 1
            return web.Response(status=503, headers=cors)
        peer = self._new_peer(handle)
        try:
            answer = await peer.accept_offer(offer)
        except SignalError:
            self.counters["http_bootstrap_bad"] += 1
            self._close_link(handle)
            return web.Response(status=400, headers=cors)
        self._spawn(self._open_then_link(handle, peer))
        return web.Response(text=json.dumps({**answer, "extensions": []}), headers=cors)

    # ------------------------------------------------------------------ Pkarr relay (pubky/pkarr design/relays.md)

    def _http_allow(self, kind: str, ip: str, rate: float = 2.0, burst: float = 10.0) -> bool:
        """Per-IP token bucket for the expensive HTTP endpoints (Pkarr PUT, the WebRTC bootstrap POST)."""
        if len(self._http_rate) > 10000:
            self._http_rate.clear()
        bucket = self._http_rate.get((kind, ip))
        if bucket is None:
            bucket = self._http_rate[(kind, ip)] = TokenBucket(rate, burst)
        return bucket.allow(1, self._now())

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
        local = self.dht.core.items.get(mutable_target(key), self._now())
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

        ws = web.WebSocketResponse(max_msg_size=self._limits.max_message, heartbeat=30.0)
        await ws.prepare(request)
        handle = self.overlay.open_link("websocket", request.remote, self._now())
        if handle is None:
            self.counters["ws_refused"] += 1
            await ws.close(code=1013, message=b"too many links")
            return ws
        self._ws[handle] = _WSLink(ws)
        await self._pump_ws(ws, handle)
        return ws

    async def _pump_ws(self, ws: Any, handle: Handle) -> None:
        from aiohttp import WSMsgType

        assert self._driver is not None
        self.counters["ws_opened"] += 1
        self._driver.kick()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    self._driver.receive(msg.data, handle)
                elif msg.type == WSMsgType.TEXT:
                    self._driver.receive(msg.data.encode(), handle)
                else:
                    self.counters["ws_errors"] += 1
                    break
        finally:
            if ws.close_code not in (None, 1000, 1001):
                self.counters["ws_closed_abnormally"] += 1
            self._close_link(handle)

    # ------------------------------------------------------------------ links and events

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _send_link(self, data: bytes, handle: Address) -> None:
        ws = self._ws.get(handle)
        if ws is not None:
            if not ws.send(data):
                self.counters["ws_send_queue_full"] += 1
            return
        peer = self._peers.get(handle)
        if peer is not None:
            try:
                peer.send(data)
            except Exception as exc:  # aiortc raises ValueError over the remote's max message size
                self.counters["webrtc_send_failed"] += 1
                log.debug("send on %s failed: %s", handle, exc)

    def _close_link(self, handle: Handle) -> None:
        ws = self._ws.pop(handle, None)
        if ws is not None:
            self._spawn(ws.close())
        peer = self._peers.pop(handle, None)
        if peer is not None:
            self._spawn(peer.close())
        if ws is None and peer is None:
            return  # not a connection of ours (any more): a relay-only link lives on in the overlay
        if self._overlay is not None and not self._closed:
            self._overlay.close_link(handle, self._now())
            assert self._driver is not None
            self._driver.kick()

    def _callbacks(self, handle: Handle) -> tuple[Callable[[bytes | str], None], Callable[[], None]]:
        """``(on_message, on_close)`` for the data channel of ``handle``: messages go to the overlay while the
        link is ours; a close closes the link."""

        def message(data: bytes | str) -> None:
            if self._driver is not None and handle in self._peers:
                self._driver.receive(data if isinstance(data, bytes) else data.encode(), handle)

        def closed() -> None:
            if handle in self._peers:
                self._close_link(handle)

        return message, closed

    def _new_peer(self, handle: Handle) -> Any:
        from peerdht.aio.webrtc import DataChannelPeer

        message, closed = self._callbacks(handle)
        peer = DataChannelPeer(on_message=message, on_close=closed, ice_servers=self._ice)
        self._peers[handle] = peer
        return peer

    def _link_opened(self, handle: Handle, peer: Any) -> None:
        remote = peer.remote_address()
        self.overlay.link_opened(handle, remote[0] if remote else None, self._now())
        assert self._driver is not None
        self._driver.kick()

    async def _open_then_link(self, handle: Handle, peer: Any) -> None:
        try:
            await peer.wait_open(_OPEN_TIMEOUT)
        except (TimeoutError, PeerDHTError):
            self.counters["webrtc_open_failed"] += 1
            self._close_link(handle)
            return
        self._link_opened(handle, peer)

    async def _make_offer(self) -> None:
        peer = None
        offer = None
        try:
            from peerdht.aio.webrtc import DataChannelPeer

            peer = DataChannelPeer(ice_servers=self._ice)
            offer = await peer.create_offer()
        except Exception as exc:
            log.debug("cannot make an offer: %s", exc)
        handle = self.overlay.add_offer(offer, self._now())
        if handle is None or peer is None or self._closed:
            if peer is not None:
                await peer.close()
        else:
            peer.on_message, peer.on_close = self._callbacks(handle)  # the handle is known now
            self._peers[handle] = peer
        assert self._driver is not None
        self._driver.kick()

    async def _connect_answer(self, event: ConnectAnswer) -> None:
        peer = self._peers.get(event.handle)
        if peer is None:
            return
        if self.fail_webrtc:
            self.counters["webrtc_failed_by_hook"] += 1
            self._close_link(event.handle)
            return
        try:
            await peer.accept_answer(event.answer)
        except PeerDHTError:
            self.counters["webrtc_bad_answer"] += 1
            self._close_link(event.handle)
            return
        await self._open_then_link(event.handle, peer)

    async def _answer_offer(self, event: AnswerOffer) -> None:
        from peerdht.aio.webrtc import SignalError

        peer = self._new_peer(event.handle)
        try:
            answer: dict[str, str] | None = await peer.accept_offer(event.offer)
        except SignalError:
            answer = None
        self.overlay.offer_answered(event.handle, answer, self._now())
        assert self._driver is not None
        self._driver.kick()
        if answer is None or self.fail_webrtc:
            self._close_link(event.handle)
            return
        await self._open_then_link(event.handle, peer)

    async def _bridge_lookup(self, event: BridgeLookup) -> None:
        """A link's get/get_peers we could not answer: look on UDP Mainline, then let the overlay answer."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        budget = max(0.5, self._limits.bridge_hold - 0.5)
        peers: list[Address] = []

        async def collect() -> None:
            async for peer in self.dht.get_peers(event.target):
                peers.append(peer)

        try:
            if event.method == "get":
                item = await asyncio.wait_for(self.dht.get_item(event.target), budget)
                if item is not None:
                    self.dht.core.items.put(event.target, item, loop.time())
                    self.counters["bridge_found"] += 1
            else:
                await asyncio.wait_for(collect(), budget)
        except (TimeoutError, PeerDHTError):
            self.counters["bridge_lookup_failed"] += 1
        if self._closed:
            return
        if peers:
            self.overlay.add_peers(event.target, peers, loop.time())
            self.counters["bridge_found"] += 1
        self.counters["bridge_lookup_ms"] = int((loop.time() - start) * 1000)
        self.overlay.bridge_done(event.method, event.target, loop.time())
        assert self._driver is not None
        self._driver.kick()

    async def _bridge_write(self, event: BridgeStore | BridgeAnnounce) -> None:
        """A link's put/announce_peer, stored on UDP Mainline too (by this node: our own address)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            if isinstance(event, BridgeAnnounce):
                stored = await self.dht.announce_peer(event.info_hash, event.port)
            else:
                stored = (await self.dht.put_item(event.item)).stored
        except PeerDHTError as exc:
            self.counters["bridge_write_failed"] += 1
            log.debug("bridged write failed: %s", exc)
            return
        self.counters["bridge_writes"] += 1
        self.counters["bridge_write_stored"] = stored
        self.counters["bridge_write_ms"] = int((loop.time() - start) * 1000)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: object) -> None:
        if isinstance(event, PeersFound):
            self._ops.item(event.op, event)
        elif isinstance(event, OpDone):
            self._ops.done(event.op, event.result)
        elif isinstance(event, OpFailed):
            self._ops.failed(event.op, event.error)
        elif self._closed:
            return
        elif isinstance(event, OffersWanted):
            for _ in range(event.count):
                self._spawn(self._make_offer())
        elif isinstance(event, DiscardOffer):
            peer = self._peers.pop(event.handle, None)
            if peer is not None:
                self._spawn(peer.close())
        elif isinstance(event, ConnectAnswer):
            self._spawn(self._connect_answer(event))
        elif isinstance(event, AnswerOffer):
            self._spawn(self._answer_offer(event))
        elif isinstance(event, LinkDropped):
            self._close_link(event.handle)
        elif isinstance(event, BridgeLookup):
            self._spawn(self._bridge_lookup(event))
        elif isinstance(event, BridgeStore | BridgeAnnounce):
            self._spawn(self._bridge_write(event))

    async def _run(self, start: Start) -> object:
        if self._driver is None or self._closed:
            raise LocalProtocolError("the node is not open")
        return await self._ops.run(self._driver, start)
