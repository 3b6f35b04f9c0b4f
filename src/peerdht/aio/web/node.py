"""``WebNode``: a Mainline DHT node that browsers join, over WebSocket and WebRTC (aiohttp + aiortc).

One node sits in two worlds:

* **UDP Mainline** (:class:`~peerdht.aio.mainline.MainlineDHT`): a normal BEP 5/44 node on a UDP socket.
* **the web overlay** (:class:`~peerdht.web.overlay.WebOverlay`, sans-IO): KRPC over links, each link a
  WebSocket (``GET /ws``, one bencoded KRPC message per binary message) or a WebRTC data channel (aiortc,
  :mod:`peerdht.aio.web.webrtc`; same framing, as webtorrent-dht's ``webrtc-socket.js``). WebRTC offers and
  answers travel inside the overlay's own queries (``signals`` / ``peer_connection``).

The two share the BEP 44 item store (a value put by a browser is served to UDP queriers of this node and the
other way round). Link handles never reach the UDP side.

The node is a facade over three parts: :mod:`peerdht.aio.web.routes` (one aiohttp server: the page and its
files, ``GET /config.json``, ``GET /ws``, webtorrent-dht 0.18's ``POST /`` bootstrap, a Pkarr relay),
:mod:`peerdht.aio.web.links` (the WebSockets and aiortc data channels behind the overlay's link handles; it
carries out the overlay's WebRTC events) and the overlay core with its :class:`~peerdht.aio.transport.driver.DatagramDriver`;
this module owns their lifetime, the overlay commands (``put``, ``get``, lookups, ``connect``) and the bridge's
UDP work.

The bridge (``bridge=True``): a link's ``get``/``get_peers`` that the overlay cannot answer waits (<= 5 s) for a
lookup on UDP Mainline; a link's ``put``/``announce_peer`` is stored on UDP Mainline too (announces from this
node's own address); both rate-limited per link. Nothing a link sends makes the Mainline side send UDP to an
address the link chose: it talks only to the nodes of its UDP routing table (BEP 5: they answered us). The one
UDP traffic a peer steers is WebRTC's own: ICE connectivity checks (STUN, consent-based, as in any browser) to
the candidates of an offer or answer, bounded by the WebRTC caps of :class:`~peerdht.web.links.WebLimits`.

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
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from peerdht.aio.mainline import MainlineDHT
from peerdht.aio.rooms.tracker import TrackerServer
from peerdht.aio.transport.driver import DatagramDriver
from peerdht.aio.transport.ops import Operations, Start
from peerdht.aio.web.links import WebLinks
from peerdht.aio.web.routes import MAX_POST, WebHTTP
from peerdht.encoding.bencode import Value
from peerdht.errors import LocalProtocolError, PeerDHTError
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
    BridgeAnnounce,
    BridgeLookup,
    BridgeStore,
)
from peerdht.web.links import Handle, WebLimits
from peerdht.web.overlay import WebOverlay

__all__ = ["STATIC_DIR", "WebNode"]

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: The page and browser node served at ``/`` (written as plain ES modules, no build step).
STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
#: Where a WebNode serves its WebTorrent tracker (P2PT rooms).
TRACKER_PATH = "/tracker"

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
        limits: bounds on links and signalling (:class:`~peerdht.web.links.WebLimits`).
        k: the overlay's bucket size (webtorrent-dht: 2).
        webrtc: make and answer WebRTC offers (needs aiortc); ``False``: WebSocket links only.
        tracker: also serve a WebTorrent tracker (P2PT rooms) at ``/tracker`` (:attr:`tracker_url`); the
            room page (``room.html``) uses it by default.
        bridge: answer links' ``get``/``get_peers`` by also looking on UDP Mainline, and store their
            ``put``/``announce_peer`` there too (rate-limited per link; :class:`~peerdht.web.links.WebLimits`).
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
        tracker: bool = True,
        seed: bytes | None = None,
        **udp_options: Any,
    ) -> None:
        self._bridge = bridge
        self.tracker: TrackerServer | None = TrackerServer() if tracker else None
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
        self._links: WebLinks | None = None
        self._runner: Any = None
        self._http_port = 0
        self._clients: list[Any] = []
        self._closed = False
        self._fail_webrtc = False
        self.counters: Counter[str] = Counter()

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
        self._links = WebLinks(overlay=self._overlay, driver=self._driver, ice_servers=self._ice, counters=self.counters)
        self._links.fail_webrtc = self._fail_webrtc
        self._driver.add_transport(self._links)
        app = web.Application(client_max_size=MAX_POST)
        if self.tracker is not None:  # before the static routes, which would take /tracker
            self.tracker.add_routes(app, TRACKER_PATH)
            self.tracker.start_timer()
        WebHTTP(
            dht=self.dht, overlay=self._overlay, links=self._links, static_dir=self._static, ice_servers=self._ice,
            webrtc=self._webrtc, limits=self._limits, counters=self.counters,
            trackers=[TRACKER_PATH] if self.tracker is not None else [],
        ).add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await self.close()
            raise
        self._http_port = int(self._runner.addresses[0][1])
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
        if self._links is not None:
            await self._links.aclose()
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        if self.tracker is not None:
            await self.tracker.close()
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

    @property
    def tracker_url(self) -> str | None:
        """``ws://HOST:PORT/tracker``: the WebTorrent tracker for P2PT rooms (``None`` with ``tracker=False``)."""
        return "ws" + self.url[4:] + TRACKER_PATH[1:] if self.tracker is not None else None

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
        """Open links: ``{"handle": "web:N", "transport": "websocket"|"webrtc"|"relay", "id": hex node id or None,
        "ip": str or None, "received": messages, "sent": messages}``."""
        return self.overlay.links()

    @property
    def fail_webrtc(self) -> bool:
        """Test hook (issue 10: "a test hook that refuses the offer"): WebRTC links made through signalling fail
        as if ICE failed, so the overlay falls back to relayed messages."""
        return self._fail_webrtc

    @fail_webrtc.setter
    def fail_webrtc(self, value: bool) -> None:
        self._fail_webrtc = value
        if self._links is not None:
            self._links.fail_webrtc = value

    # ------------------------------------------------------------------ overlay commands

    async def bootstrap(self) -> int:
        """Look up our own id in the web overlay (BEP 5 ``find_node``); returns the overlay's routing-table size
        (nodes). A failed lookup is not an error (the table may still be empty).

        Raises:
            LocalProtocolError: the node is not open.
        """
        with contextlib.suppress(PeerDHTError):
            await self._run(self.overlay.node.bootstrap)
        return len(self.overlay.node.table)

    async def find_node(self, target: bytes) -> list[bytes]:
        """Iterative ``find_node`` (BEP 5) in the web overlay for the 20-byte ``target``: the 20-byte ids of the
        closest nodes that answered (up to the overlay's ``k``: 2 by default, as webtorrent-dht).

        Raises:
            LocalProtocolError: the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.find_node(target, now))
        assert isinstance(result, LookupResult)
        return [n.id for n in result.nodes]

    async def put(self, value: Value) -> bytes:
        """BEP 44 immutable put in the web overlay (and our shared store, so UDP queriers see it too); returns the
        20-byte target ``SHA1(bencode(value))``.

        Raises:
            LocalProtocolError: ``bencode(value)`` is longer than 1000 bytes, or the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.put(value, now))
        assert isinstance(result, PutResult)
        return result.target

    async def get(self, target: bytes) -> Value | None:
        """BEP 44 immutable get in the web overlay for the 20-byte ``target`` (our own store first): the value
        (checked against the target), or ``None`` if no node holds it.

        Raises:
            LocalProtocolError: the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.get(target, now))
        assert isinstance(result, GetResult)
        return None if result.item is None else result.item.v

    async def put_mutable(self, key_pair: KeyPair, value: Value, salt: bytes = b"", seq: int | None = None) -> PutResult:
        """BEP 44 mutable put in the web overlay, signed with ``key_pair`` (Ed25519), under ``salt`` (<= 64 bytes);
        ``seq`` defaults to one more than the highest found. Returns the
        :class:`~peerdht.mainline.events.PutResult` (target ``SHA1(public key + salt)``, nodes that stored it).

        Raises:
            LocalProtocolError: ``bencode(value)`` is longer than 1000 bytes, the salt longer than 64, ``seq`` out
                of range, or the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.put_mutable(key_pair, value, now, salt=salt, seq=seq))
        assert isinstance(result, PutResult)
        return result

    async def get_mutable(self, public_key: bytes, salt: bytes = b"") -> Item | None:
        """BEP 44 mutable get in the web overlay for a 32-byte Ed25519 ``public_key`` and ``salt``: the verified
        item with the highest ``seq``, or ``None``.

        Raises:
            LocalProtocolError: the public key is not 32 bytes, the salt longer than 64, or the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.get_mutable(public_key, now, salt=salt))
        assert isinstance(result, GetResult)
        return result.item

    async def announce_peer(self, info_hash: bytes, port: int) -> int:
        """BEP 5 ``announce_peer`` of the 20-byte ``info_hash`` with ``port`` (1-65535) in the web overlay; returns
        how many overlay nodes stored it (the page's nodes store the link's IP, see
        :meth:`~peerdht.web.overlay.WebOverlay.peer_host`).

        Raises:
            LocalProtocolError: the node is not open.
        """
        result = await self._run(lambda now: self.overlay.node.announce_peer(info_hash, port, now))
        assert isinstance(result, AnnounceResult)
        return result.stored

    async def get_peers(self, info_hash: bytes) -> AsyncIterator[Address]:
        """BEP 5 ``get_peers`` of the 20-byte ``info_hash`` in the web overlay: yields peers ``(host, port)`` as
        they are found (duplicates possible across replies).

        Raises:
            LocalProtocolError: the node is not open.
        """
        assert self._driver is not None
        start: Start = lambda now: self.overlay.node.get_peers(info_hash, now)  # noqa: E731
        async for event in self._ops.stream(self._driver, start):
            for peer in event.peers:
                yield peer

    async def connect(self, url: str, timeout: float = 10.0) -> None:
        """Open a WebSocket link to another node's ``ws://HOST:PORT/ws`` and join the overlay through it.

        Raises:
            OSError: cannot connect (aiohttp's ``ClientError`` for an HTTP-level refusal).
            TimeoutError: no WebSocket within ``timeout`` seconds.
            LocalProtocolError: over the link caps (:class:`~peerdht.web.links.WebLimits`), or the node is not open.
        """
        import aiohttp

        session = aiohttp.ClientSession()
        self._clients.append(session)
        ws = await asyncio.wait_for(session.ws_connect(url, max_msg_size=self._limits.max_message), timeout)
        links = self._web_links()
        handle = self.overlay.open_link("websocket", None, asyncio.get_running_loop().time())
        if handle is None:
            await ws.close()
            raise LocalProtocolError("too many links")
        links.add_websocket(ws, handle)
        links.spawn(links.pump_websocket(ws, handle))
        await self._join(handle)

    async def connect_http(self, host: str, port: int, timeout: float = 20.0) -> None:
        """webtorrent-dht 0.18's bootstrap as a client: POST our offer to ``http://host:port``, take the JSON
        answer, open the data channel, join the overlay through it.

        Raises:
            OSError: HTTP failed (aiohttp's ``ClientError`` too).
            SignalError: the server did not answer 200 or sent a bad answer (:mod:`peerdht.aio.web.webrtc`).
            TimeoutError: no data channel within ``timeout`` seconds.
            LocalProtocolError: over the link caps, or the node is not open.
        """
        import aiohttp

        from peerdht.aio.web.webrtc import SignalError

        links = self._web_links()
        handle = self.overlay.reserve_link(asyncio.get_running_loop().time())
        if handle is None:
            raise LocalProtocolError("too many links")
        peer = links.new_peer(handle)
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
            links.close_link(handle)
            raise
        links.link_opened(handle, peer)
        await self._join(handle)

    async def _join(self, handle: Handle) -> None:
        """Ping the node behind a new link we opened (it enters the table), then look up our own id."""
        await self._run(lambda now: self.overlay.node.ping(handle, now))
        await self.bootstrap()

    # ------------------------------------------------------------------ the bridge and events

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

    def _on_event(self, event: object) -> None:
        if isinstance(event, PeersFound):
            self._ops.item(event.op, event)
        elif isinstance(event, OpDone):
            self._ops.done(event.op, event.result)
        elif isinstance(event, OpFailed):
            self._ops.failed(event.op, event.error)
        elif self._closed or self._links is None or self._links.handle_event(event):
            return
        elif isinstance(event, BridgeLookup):
            self._links.spawn(self._bridge_lookup(event))
        elif isinstance(event, BridgeStore | BridgeAnnounce):
            self._links.spawn(self._bridge_write(event))

    def _web_links(self) -> WebLinks:
        if self._links is None or self._closed:
            raise LocalProtocolError("the node is not open")
        return self._links

    async def _run(self, start: Start) -> object:
        if self._driver is None or self._closed:
            raise LocalProtocolError("the node is not open")
        return await self._ops.run(self._driver, start)
