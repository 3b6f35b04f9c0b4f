"""Bad input reaching a Room over the network: a hostile peer's frames and a hostile tracker.

Malformed JSON, chunk floods with no ``last``, chunk indices out of range, a declared 1 GB message, answers to
offers nobody made, junk and oversize tracker messages: each is dropped and counted (with a warning), memory
stays bounded, and the room keeps working for honest messages. The same frames go to our page's rooms.js,
which must drop what Python drops. Runs inside the test network namespace (WebRTC over 198.51.100.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from tests.web.browser import chromium
from tests.web.roomkit import OURS_ADAPTER, PyPeer, T, static_server

from peerdht.aio.rooms.tracker import TrackerServer
from peerdht.rooms import Room, TrackerWarning
from peerdht.tracker import messages as tm
from peerdht.tracker.framing import encode_message

HOSTILE_FRAMES: list[str | bytes] = [
    "^{not json",
    "^" + "[" * 50_000,
    '^{"id":1,"msg":5,"c":0}',
    '^{"id":1,"msg":"x","c":-1,"last":true}',
    '^{"id":{"x":1},"msg":"x","c":0,"last":true}',
    '^{"id":2,"msg":"x","c":100000000,"last":true}',  # "a 1 GB message": its last chunk is number 10^8
    '^{"id":3,"msg":"{broken","o":1,"c":0,"last":true}',
    '^{"id":4,"msg":"a","c":0}', '^{"id":4,"msg":"a","c":0}',  # the same chunk twice
    '^{"id":5,"msg":"z","c":3,"last":true}',  # chunks 0-2 never came
    b"^\xff\xfe\xfd",
    "^" + "x" * 200_000,  # a frame over the limit... of the receiver (we allow up to 256 KiB)
]


def flood(n: int) -> list[str]:
    """n chunks of 16,000 units under 100 ids, none of them last (1.6 GB offered at n = 100,000)."""
    return [json.dumps({"id": 500_000 + i % 100, "msg": "f" * 16000, "c": i // 100}) for i in range(n)]


async def send_raw(attacker: Room, victim_id: str, frames: list[str | bytes]) -> None:
    channel = attacker.peers[victim_id]._channel()
    for frame in frames:
        await channel.drain(1 << 20)
        channel.send(frame if isinstance(frame, bytes) or frame.startswith("^") else "^" + frame)


async def test_hostile_peer_frames_are_dropped_and_bounded() -> None:
    async with TrackerServer(host="127.0.0.1") as server, \
            Room("bad", [server.url], max_message=1_000_000, max_buffered=2_000_000) as victim, \
            Room("bad", [server.url]) as attacker:
        good = PyPeer(victim)
        bad = PyPeer(attacker, answer=False)
        await good.peer()
        await bad.peer(peer_id=victim.id)
        await send_raw(attacker, victim.id, HOSTILE_FRAMES)
        await send_raw(attacker, victim.id, flood(2000))  # 32 M units offered; at most 1 M buffered per peer
        # an honest request after all that is still answered
        reply = await attacker.send(victim.id, "still ok?", timeout=60)
        assert reply.msg == "echo:still ok?"
        peer = victim.peers[attacker.id]
        assert peer._chunks.buffered <= 1_000_000 and len(peer._chunks) <= peer._chunks.max_partial
        assert victim.dropped["frame"] >= len(HOSTILE_FRAMES) - 2
        assert good.messages[-1].msg == "still ok?"
        assert all(m.msg == "still ok?" for m in good.messages)  # none of the junk became a message
        await good.stop()
        await bad.stop()


@contextlib.asynccontextmanager
async def hostile_tracker(script: list[Any]) -> AsyncIterator[str]:
    """A WebSocket 'tracker' that answers the first announce with the given messages."""
    from aiohttp import web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=1 << 24)
        await ws.prepare(request)
        async for msg in ws:
            data = json.loads(msg.data)
            ih = data.get("info_hash")
            for item in script:
                text = item(ih, data) if callable(item) else item
                await ws.send_str(text)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


async def test_hostile_tracker_messages_are_warnings() -> None:
    ih_of = tm.info_hash_of("evil").decode("latin-1")
    script: list[Any] = [
        "not json",
        "[1, 2]",
        json.dumps({"action": "teleport"}),
        json.dumps({"action": "announce", "info_hash": "short"}),
        "x" * 300_000,  # over the client's limit
        json.dumps({"action": "announce", "info_hash": ih_of, "answer": {"type": "answer", "sdp": "v=0"},
                    "offer_id": "o" * 20, "peer_id": "p" * 20}),  # an answer to an offer we never made
        json.dumps({"action": "announce", "info_hash": ih_of, "offer": "not an offer", "offer_id": "o" * 20,
                    "peer_id": "q" * 20}),
        json.dumps({"action": "announce", "info_hash": ih_of, "offer": {"type": "offer", "sdp": "v=0" + "x" * 20000},
                    "offer_id": "o" * 20, "peer_id": "r" * 20}),
        json.dumps({"failure reason": "go away"}),
        json.dumps({"complete": 0, "incomplete": 1, "action": "announce", "interval": 120, "info_hash": ih_of}),
    ]
    async with hostile_tracker(script) as url, Room("evil", [url], reconnect_min=60) as room:
        py = PyPeer(room)
        await py.wait(lambda: py.connects)  # the honest reply at the end still arrives
        await py.wait(lambda: room.dropped["signal"] >= 2)
        assert room.dropped["tracker"] >= 4 and room.dropped["unknown_answer"] == 1
        assert "go away" in py.warnings
        assert all(isinstance(e, TrackerWarning) for e in py.events[:-1])
        assert room.peers == {}
        await py.stop()


async def test_tracker_drops_answers_to_unknown_peers() -> None:
    async with TrackerServer(host="127.0.0.1") as server, Room("lonely", [server.url]) as room:
        py = PyPeer(room)
        await py.wait(lambda: py.connects)
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(server.url) as ws:
            await ws.send_str(tm.answer(room.info_hash, b"m" * 20, b"n" * 20, b"o" * 20,
                                        {"type": "answer", "sdp": "v=0"}))  # to a peer that is not there
            await ws.send_str(tm.announce(room.info_hash, b"m" * 20, [(b"o" * 20, {"type": "offer", "sdp": "v=0"})]))
            reply = json.loads(await asyncio.wait_for(ws.receive_str(), 10))
            assert reply["incomplete"] == 2  # the bad answer got no reply and changed nothing
        assert server.stats()["counters"]["unknown_targets"] == 1
        await py.wait(lambda: room.dropped["signal"] >= 1)  # the junk offer relayed to the room was refused
        await py.stop()


async def test_our_page_drops_what_python_drops() -> None:
    async with TrackerServer(host="127.0.0.1") as server, static_server() as base, chromium() as browser, \
            Room("page-bad", [server.url]) as attacker:
        bad = PyPeer(attacker, answer=False)
        page = await browser.new_page()
        await page.goto(base + "/static/room.html")
        await page.wait_for_function("() => window.roomReady === true", timeout=T)
        await page.add_script_tag(content=OURS_ADAPTER)
        page_id = await page.evaluate("([t, r]) => window.start(t, r)", [[server.url], "page-bad"])
        await bad.peer(peer_id=page_id)
        await send_raw(attacker, page_id, [f for f in HOSTILE_FRAMES if not isinstance(f, bytes)])
        await send_raw(attacker, page_id, flood(300))
        await send_raw(attacker, page_id, encode_message(7, "fine"))
        await page.wait_for_function("() => window.st.msgs.some(m => m.msg === 'fine')", timeout=T)
        dropped = await page.evaluate("() => window.room.dropped.frame")
        assert dropped >= len(HOSTILE_FRAMES) - 3
        buffered = await page.evaluate(f"() => window.room.peers.get('{attacker.id}').chunks.buffered")
        assert buffered <= 16 * 1024 * 1024
        assert [m["msg"] for m in await page.evaluate("() => window.st.msgs")] == ["fine"]
        await bad.stop()
