"""Shared pieces for the room tests and bench/rooms.py: a static server for the pages, the npm tracker, a
Python room driver that answers like the pages do.

Pages are served from ``http://127.0.0.1:PORT`` (a secure context): ``/p2pt.html`` loads the JS p2pt 1.6.2
browser bundle (``node_modules/p2pt/dist/p2pt.iife.js``), ``/static/room.html`` and ``/static/rooms.js`` are
our own page (``src/peerdht/web/static``). Both pages expose the same test hooks (``window.st`` and
``window.start/send/post/chain/sendBig``), so one test body drives either.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from peerdht.aio.rooms.room import (
    Message,
    PeerClose,
    PeerConnect,
    Room,
    RoomEvent,
    TrackerConnect,
    TrackerWarning,
)

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_006  # UTF-16 units, a multiple of 7 (see big_text)
T = 60_000  # ms, page waits
STATIC = ROOT / "src" / "peerdht" / "web" / "static"
P2PT_BUNDLE = ROOT / "node_modules" / "p2pt" / "dist" / "p2pt.iife.js"

# Test hooks shared by the p2pt page and ours: the same answering rules as PyPeer below.
HOOKS = r"""
window.st = {peers: {}, msgs: [], closes: [], warnings: [], connects: 0, chains: 0};
window.bigText = (n) => 'abé€x😀'.repeat(n / 7);
window.digest = async (s) => { const b = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return Array.from(new Uint8Array(b)).map(x => x.toString(16).padStart(2, '0')).join(''); };
window.record = async (peer, msg) => {
  st.msgs.push({id: peer.id, msg: (typeof msg === 'string' && msg.length > 200) ? {len: msg.length, sha: await digest(msg)} : msg});
};
window.answer = (room, peer, msg) => {
  if (msg === 'hello') {   // the responder side of p2pt's 'chained messages' test
    room.respond(peer, 'hi').then(([peer, m]) => { if (m !== 'how are you ?') throw new Error(m); return room.respond(peer, 'fine'); })
      .then(([peer, m]) => { if (m !== 'byeee') throw new Error(m); st.chains++; return room.respond(peer, 'bye!'); });
  } else if (typeof msg === 'string') {
    if (!msg.startsWith('no-answer')) room.respond(peer, 'echo:' + msg);
  } else {
    room.respond(peer, {echo: msg});
  }
};
window.chain = async (id) => {
  const out = [];
  let [peer, m] = await R.send(st.peers[id], 'hello'); out.push(m);
  [peer, m] = await R.respond(peer, 'how are you ?'); out.push(m);
  [peer, m] = await R.respond(peer, 'byeee'); out.push(m);
  return out;
};
window.sendBig = async (id, n) => {
  const big = bigText(n);
  const [peer, m] = await R.send(st.peers[id], big);
  return {len: m.length, ok: m === 'echo:' + big};
};
window.sendJSON = async (id, obj) => { const [peer, m] = await R.send(st.peers[id], obj); return m; };
window.post = (id, msg) => { R.send(st.peers[id], msg); return true; };
"""

# p2pt adapter: R.send / R.respond over the p2pt API (peer.respond is p2pt's own response hook).
P2PT_PAGE = """<!doctype html><meta charset=utf-8><title>p2pt test page</title>
<script src="/p2pt.iife.js"></script>
<script>""" + HOOKS + r"""
window.R = {
  send: (peer, msg) => window.p2pt.send(peer, msg),
  respond: (peer, msg) => peer.respond(msg),
};
window.start = (trackers, ident) => {
  const p = new P2PT(trackers, ident); window.p2pt = p;
  p.on('peerconnect', peer => { st.peers[peer.id] = peer; });
  p.on('peerclose', peer => { st.closes.push(peer.id); delete st.peers[peer.id]; });
  p.on('trackerconnect', () => { st.connects++; });
  p.on('trackerwarning', (err) => { st.warnings.push(String(err && err.message || err)); });
  p.on('msg', (peer, msg) => { record(peer, msg); answer(R, peer, msg); });
  p.start();
  return p._peerId;
};
window.channels = (id) => Object.keys((window.p2pt.peers[id] || {})).length;
window.dropChannel = (id) => { const chans = window.p2pt.peers[id]; const k = Object.keys(chans)[0]; chans[k].destroy(); return k; };
window.stop = () => window.p2pt.destroy();
</script>"""


# our page (static/room.html + rooms.js): the same hooks over peerdht's Room (a RoomMessage's respond() is the
# per-message response hook; replies are RoomMessages, so chains continue from them)
OURS_ADAPTER = HOOKS + r"""
window.R = {
  send: (peer, msg) => window.room.send(peer, msg, {timeout: 120000}).then((r) => [r, r.msg]),
  respond: (m, msg) => m.respond(msg, {timeout: 120000}).then((r) => [r, r.msg]),
};
window.start = (trackers, ident) => {
  const room = window.joinRoom(ident, trackers);
  room.on('peerconnect', (peer) => { st.peers[peer.id] = peer; });
  room.on('peerclose', (peer) => { st.closes.push(peer.id); delete st.peers[peer.id]; });
  room.on('trackerconnect', () => { st.connects++; });
  room.on('trackerwarning', (w) => { st.warnings.push(w.reason); });
  room.on('msg', (m) => { record(m.peer, m.msg); answer(R, m, m.msg); });
  return room.id;
};
window.channels = (id) => (window.room.peers.get(id) || {channels: 0}).channels;
window.stop = () => window.room.close();
"""


def big_text(n: int) -> str:
    """The pages' ``bigText(n)`` for ``n`` a multiple of 7: 'abé€x😀' (7 UTF-16 units) repeated, so surrogate
    pairs straddle some of P2PT's 16,000-unit chunk edges (16000 % 7 != 0)."""
    assert n % 7 == 0
    return "abé€x😀" * (n // 7)


def sha(text: str) -> str:
    """SHA-256 hex of the UTF-8 text (the pages' ``digest``)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@contextlib.asynccontextmanager
async def static_server(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``/p2pt.html``, ``/p2pt.iife.js`` and ``/static/*``; yields ``http://host:port``."""
    from aiohttp import web

    app = web.Application()

    async def p2pt_page(request: Any) -> Any:
        return web.Response(text=P2PT_PAGE, content_type="text/html")

    async def bundle(request: Any) -> Any:
        return web.FileResponse(P2PT_BUNDLE, headers={"Content-Type": "text/javascript"})

    app.router.add_get("/p2pt.html", p2pt_page)
    app.router.add_get("/p2pt.iife.js", bundle)
    app.router.add_static("/static/", STATIC)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server: Any = site._server
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def npm_tracker() -> AsyncIterator[tuple[str, Any]]:
    """npm bittorrent-tracker 11.2.3's Server in node; yields ``(url, process)`` (close the process to kill it)."""
    from tests.jsproc import start_js

    proc = await start_js("tracker-server.js")
    try:
        ready = await proc.line(30)
        assert ready.get("ready"), ready
        yield ready["url"], proc
    finally:
        await proc.close()


class PyPeer:
    """Runs a :class:`Room`'s event loop in a task: records events and answers like the pages' ``answer``."""

    def __init__(self, room: Room, answer: bool = True) -> None:
        self.room = room
        self.answer = answer
        self.events: list[RoomEvent] = []
        self.messages: list[Message] = []
        self.warnings: list[str] = []
        self.chains = 0
        self.connects = 0
        self.closed: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _run(self) -> None:
        async for event in self.room:
            self.events.append(event)
            if isinstance(event, TrackerWarning):
                self.warnings.append(event.reason)
            elif isinstance(event, TrackerConnect):
                self.connects += 1
            elif isinstance(event, PeerClose):
                self.closed.append(event.peer.id)
            elif isinstance(event, Message):
                self.messages.append(event)
                if self.answer:
                    task = asyncio.create_task(self._answer(event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            self._changed.set()

    async def _answer(self, event: Message) -> None:
        msg = event.msg
        if msg == "hello":  # the responder side of p2pt's chain test, through Message.request
            reply = await event.request("hi", timeout=60)
            assert reply.msg == "how are you ?", reply.msg
            reply = await reply.request("fine", timeout=60)
            assert reply.msg == "byeee", reply.msg
            self.chains += 1
            await reply.respond("bye!")
        elif isinstance(msg, str):
            if not msg.startswith("no-answer"):
                await event.respond("echo:" + msg)
        else:
            await event.respond({"echo": msg})

    async def wait(self, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Wait until ``check()`` is truthy (re-checked on every event and every 0.2 s)."""
        async with asyncio.timeout(timeout):
            while not (result := check()):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)
            return result

    async def peer(self, timeout: float = 60.0, peer_id: str | None = None) -> Any:
        """Wait for a connected peer (the given one, or any) and return it."""
        def find() -> Any:
            if peer_id is not None:
                return self.room.peers.get(peer_id)
            return next(iter(self.room.peers.values()), None)

        return await self.wait(find, timeout)

    def connected_events(self) -> list[PeerConnect]:
        return [e for e in self.events if isinstance(e, PeerConnect)]

    async def stop(self) -> None:
        self._task.cancel()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def page_python_exchange(page: Any, page_id: str, room: Room, py: PyPeer) -> None:
    """The page <-> Python checks shared by the p2pt page and ours (the page answers with window.answer)."""
    peer = room.peers[page_id]
    # a message sent from Python arrives in the page
    await room.post(peer, "no-answer: from python")
    await page.wait_for_function("() => window.st.msgs.some(m => m.msg === 'no-answer: from python')", timeout=T)

    # 1 MB Python -> page and the page's response (the page echoes 'echo:' + msg)
    big = big_text(MB)
    reply = await room.send(peer, big, timeout=120)
    assert reply.msg == "echo:" + big
    assert await page.evaluate("() => window.st.msgs.at(-1).msg") == {"len": MB, "sha": sha(big)}

    # 1 MB page -> Python and Python's response
    assert await page.evaluate(f"() => window.sendBig('{room.id}', {MB})") == {"len": MB + 5, "ok": True}
    assert py.messages[-1].msg == big

    # chains of 3 round trips, started by Python, then by the page
    r = await room.send(peer, "hello")
    assert r.msg == "hi"
    r = await r.request("how are you ?")
    assert r.msg == "fine"
    r = await r.request("byeee")
    assert r.msg == "bye!"
    await page.wait_for_function("() => window.st.chains === 1", timeout=T)
    assert await page.evaluate(f"() => window.chain('{room.id}')") == ["hi", "fine", "bye!"]
    assert py.chains == 1

    # JSON both ways
    obj = {"a": [1, 2.5, None, True], "s": "é😀", "nested": {"k": []}}
    assert (await room.send(peer, obj)).msg == {"echo": obj}
    assert await page.evaluate(f"() => window.sendJSON('{room.id}', [1, 'two', {{three: 3}}])") == {
        "echo": [1, "two", {"three": 3}]}

    # concurrent requests to one peer each get their own response (p2pt's single peer.respond would race)
    replies = await asyncio.gather(*(room.send(peer, f"n{i}") for i in range(20)))
    assert [r.msg for r in replies] == [f"echo:n{i}" for i in range(20)]
    assert room.dropped["frame"] == 0
