"""``peerdht tracker`` and ``peerdht room`` as processes, with a Python Room and with each other (in the test
network namespace: WebRTC between processes runs over 198.51.100.2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

from tests.web.roomkit import PyPeer

from peerdht.rooms import Room

TIMEOUT = 60


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []
        self._err_task = asyncio.create_task(self._read_err())

    async def _read_err(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode().rstrip("\n"))

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert raw, f"process exited; stderr: {self.stderr[-20:]}"
        return raw.decode().rstrip("\n")

    async def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def err_line(self, starts: str) -> str:
        """The first stderr line starting with ``starts`` (waits for it)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for line in self.stderr:
                    if line.startswith(starts):
                        return line
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def peerdht(*args: str) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerdht", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    p = Proc(proc)
    try:
        yield p
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        p._err_task.cancel()


async def get_json(url: str) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_tracker_command_and_stats() -> None:
    async with peerdht("tracker", "--host", "127.0.0.1", "--port", "0", "--json") as tracker:
        first = json.loads(await tracker.line())
        assert first["url"].startswith("ws://127.0.0.1:") and not first["url"].endswith(":0")
        async with Room("stats-room", [first["url"]]) as room:
            py = PyPeer(room)
            await py.wait(lambda: py.connects)
            status, ctype, body = await get_json(first["url"].replace("ws://", "http://") + "/stats.json")
            assert status == 200 and ctype.startswith("application/json")
            stats = json.loads(body)
            assert stats["torrents"] == 1 and stats["peersAll"] == 1 and stats["counters"]["announces"] >= 1
            status, ctype, body = await get_json(first["stats"])
            assert status == 200 and ctype.startswith("text/html") and "1 torrents" in body
            await py.stop()


async def test_room_command_with_python_and_with_itself() -> None:
    async with peerdht("tracker", "--json") as tracker:
        url = json.loads(await tracker.line())["url"]
        async with peerdht("room", "cli-room", "--tracker", url, "--echo", "--json") as echo, \
                Room("cli-room", [url]) as room:
            py = PyPeer(room, answer=False)
            peer = await py.peer()
            joined = await echo.err_line("peer joined ")
            assert joined == f"peer joined {room.id}"
            # --echo answers as a P2PT response: send() resolves with it
            assert (await room.send(peer, "hi there")).msg == "echo:hi there"
            assert (await room.send(peer, {"k": [1]})).msg == 'echo:{"k": [1]}'
            # messages received are printed as {"peer", "msg"}
            assert json.loads(await echo.line()) == {"peer": room.id, "msg": "hi there"}
            assert json.loads(await echo.line()) == {"peer": room.id, "msg": {"k": [1]}}
            # stdin lines go to every peer as new messages
            await echo.write("line from the cli")
            await py.wait(lambda: any(m.msg == "line from the cli" for m in py.messages))

            # a second CLI peer: its stdin line reaches the echoing one, whose response it prints
            async with peerdht("room", "cli-room", "--tracker", url) as chat:
                async with asyncio.timeout(TIMEOUT):  # connected to the echoing peer and to Python
                    while len([line for line in chat.stderr if line.startswith("peer joined ")]) < 2:
                        await asyncio.sleep(0.1)
                await chat.write("ping\x1b[2J")
                await py.wait(lambda: any(m.msg == "ping\x1b[2J" for m in py.messages))
                # the echo comes back as a message; the peer's control characters are escaped
                assert (await chat.line()).endswith(": echo:ping\\x1b[2J")
            await room.close()
            assert await echo.err_line(f"peer left {room.id}")
            await py.stop()
