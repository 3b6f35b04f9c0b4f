"""A WebTorrent WebSocket tracker on aiohttp (the I/O half of :mod:`peerdht.tracker.server`).

Speaks the protocol of npm ``bittorrent-tracker`` 11.2.3 (``server.js``, WebSocket part only: no HTTP or UDP
announces), so p2pt pages, WebTorrent clients and :class:`peerdht.rooms.Room` can use it for signalling.
WebSocket upgrades are accepted on any path (``ws://host:port``, ``ws://host:port/``, ``/announce``), as the
``ws`` server in JS is; ``GET /stats`` answers an HTML page and ``GET /stats.json`` (or ``Accept:
application/json``) the same figures as JSON, in bittorrent-tracker's shape plus our counters.

Each connection has a bounded send queue drained by its own writer task: a client that does not read
is disconnected instead of growing memory (``max_queue`` messages).

Example::

    async with TrackerServer(host="127.0.0.1", port=0) as tracker:
        print(tracker.url)          # ws://127.0.0.1:PORT

A :class:`~peerdht.aio.web.node.WebNode` mounts one at ``/tracker`` of its own HTTP server
(:meth:`TrackerServer.add_routes` + :meth:`TrackerServer.start_timer`), so its room page needs no other server.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import random
from typing import Any

from peerdht.tracker.server import CloseConnection, ServerWarning, TrackerCore

__all__ = ["TrackerServer"]

log = logging.getLogger(__name__)


class _Client:
    __slots__ = ("name", "queue", "writer", "ws")

    def __init__(self, ws: Any, name: str, max_queue: int) -> None:
        self.ws = ws
        self.name = name
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(max_queue)
        self.writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<tracker client {self.name}>"


class TrackerServer:
    """The tracker server.

    Args:
        host: address to bind (``"127.0.0.1"``; ``"0.0.0.0"`` for every IPv4 interface).
        port: TCP port; 0 picks a free one (read :attr:`port` / :attr:`url` after :meth:`start`).
        max_queue: messages queued to one slow client before it is disconnected.
        **core: options of :class:`~peerdht.tracker.server.TrackerCore` (``interval``, ``max_peers``, ...).

    Raises:
        ImportError: aiohttp is missing (``pip install 'peerdht[web]'``).
        OSError: the address cannot be bound (from :meth:`start`).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, max_queue: int = 256, **core: Any) -> None:
        self.host = host
        self.port = port
        self.core = TrackerCore(**{"rng": random.Random(), **core})
        self._max_queue = max_queue
        self._clients: set[_Client] = set()
        self._runner: Any = None
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def url(self) -> str:
        """``ws://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving."""
        from aiohttp import web

        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self._runner.addresses:  # aiohttp's public list of bound (host, port, ...) addresses
            self.port = int(self._runner.addresses[0][1])
        self.start_timer()
        log.info("tracker listening on %s", self.url)

    def add_routes(self, app: Any, path: str = "/{tail:.*}") -> None:
        """Serve the tracker at ``path`` of the aiohttp ``web.Application`` ``app`` (another server's).

        Call :meth:`start_timer` once the app runs and :meth:`close` when done; :attr:`url` is then the
        owner's business (``host``/``port`` are not bound by this object).
        """
        app.router.add_get(path, self._handle)

    def start_timer(self) -> None:
        """Start the core's timer (announce expiry, idle sockets); :meth:`start` calls it."""
        if self._timer is None:
            self._timer = asyncio.create_task(self._run_timer())

    async def close(self) -> None:
        """Close every connection and stop serving (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TrackerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The ``/stats.json`` figures."""
        return self.core.stats()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        path = request.path
        if path in ("/stats", "/stats.json"):
            stats = self.stats()
            if path == "/stats.json" or request.headers.get("Accept") == "application/json":
                return web.json_response(stats)
            return web.Response(text=_stats_html(stats), content_type="text/html")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=404, text="WebTorrent tracker: connect with a WebSocket\n")
        return await self._serve_ws(request)

    async def _serve_ws(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=4 * self.core.max_message, compress=False, autoping=True)
        await ws.prepare(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = _Client(ws, f"{peer[0]}:{peer[1]}" if peer else "?", self._max_queue)
        client.writer = asyncio.create_task(self._write(client))
        self._clients.add(client)
        now = asyncio.get_running_loop().time
        self.core.connect(client, now())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.core.receive(client, msg.data, now())
                elif msg.type == WSMsgType.BINARY:
                    try:
                        text = msg.data.decode("utf-8")
                    except UnicodeDecodeError:
                        text = "\x00"  # not JSON: refused by the core with a failure reason
                    self.core.receive(client, text, now())
                else:
                    break
                self._flush()
        finally:
            self._clients.discard(client)
            self.core.disconnect(client, now())
            self._flush()
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
            if client.writer is not None:
                client.writer.cancel()
        return ws

    async def _write(self, client: _Client) -> None:
        with contextlib.suppress(Exception):
            while (text := await client.queue.get()) is not None:
                await client.ws.send_str(text)

    def _flush(self) -> None:
        for conn, text in self.core.messages_to_send():
            if not isinstance(conn, _Client) or conn not in self._clients:
                continue
            try:
                conn.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.info("tracker: %s does not read its messages; disconnecting", conn.name)
                self._close_soon(conn)
        while (event := self.core.next_event()) is not None:
            if isinstance(event, CloseConnection) and isinstance(event.conn, _Client):
                log.debug("tracker: closing %s (%s)", event.conn.name, event.reason)
                self._close_soon(event.conn)
            elif isinstance(event, ServerWarning):
                log.debug("tracker: %r: %s", event.conn, event.reason)

    def _close_soon(self, client: _Client) -> None:
        self._clients.discard(client)
        task = asyncio.ensure_future(client.ws.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.core.get_timer()
            await asyncio.sleep(1.0 if deadline is None else max(0.05, min(5.0, deadline - loop.time())))
            self.core.handle_timer(loop.time())
            self._flush()


def _stats_html(stats: dict[str, Any]) -> str:
    e = html.escape
    counters = "".join(f"<li>{e(k)}: {v}</li>" for k, v in stats["counters"].items())
    return (
        "<!doctype html><meta charset=utf-8><title>peerdht tracker</title>"
        f"<h1>{stats['torrents']} torrents ({stats['activeTorrents']} active)</h1>"
        f"<h2>Connected Peers: {stats['peersAll']}</h2>"
        f"<h3>Peers Seeding Only: {stats['peersSeederOnly']}</h3>"
        f"<h3>Peers Leeching Only: {stats['peersLeecherOnly']}</h3>"
        f"<h3>Peers Seeding &amp; Leeching: {stats['peersSeederAndLeecher']}</h3>"
        f"<h3>IPv4 Peers: {stats['peersIPv4']}</h3><h3>IPv6 Peers: {stats['peersIPv6']}</h3>"
        f"<h3>WebSocket connections: {stats['connections']}</h3><ul>{counters}</ul>"
        f"<script type=application/json id=stats>{e(json.dumps(stats))}</script>"
    )
