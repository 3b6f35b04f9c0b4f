"""Shared set-up of the attack tests: a Python testnet in the test process and the server under
attack in its own process (``python -m tools.attack serve``), so its memory can be read
from /proc and a flood in further processes competes with it as a real attacker would."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from peerdht.aio.testnet import Testnet

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A helper process speaking JSON lines: events (``{"event": ...}``) are collected, other lines
    are replies."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
                self.changed.set()
            else:
                await self.replies.put(msg)

    async def reply(self, timeout: float = 60.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.reply()

    async def wait_events(self, n: int, timeout: float) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.events) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.events

    def rss_mib(self) -> float:
        statm = Path(f"/proc/{self.proc.pid}/statm").read_text().split()
        return int(statm[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()


async def attack_tool(*argv: str, stdin: bool = False) -> Proc:
    """``python -m tools.attack ARGV`` as a :class:`Proc`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.attack",
        *argv,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},  # peerdht, tools
        limit=1 << 20,
    )
    return Proc(proc)


@pytest.fixture
async def testnet() -> AsyncIterator[Testnet]:
    async with await Testnet.create(5) as tn:
        yield tn


@pytest.fixture
async def served(testnet: Testnet) -> AsyncIterator[tuple[Testnet, Proc, dict[str, Any]]]:
    """(testnet, the server process, its ready line: port, publicKey, pid)."""
    boot = "{}:{}".format(*testnet.bootstrap[0])
    server = await attack_tool("serve", "--bootstrap", boot, stdin=True)
    try:
        ready = await server.reply(60)
        assert ready["ready"]
        yield testnet, server, ready
    finally:
        await server.stop()


async def legit_connect(testnet: Testnet, public_key: bytes, timeout: float = 30.0) -> str | None:
    """Connect from a fresh client node on 127.0.0.1; the served side half-closes at once, so the
    client reads EOF. Returns the path the connection took."""
    async with testnet.node() as client:
        await client.fully_bootstrapped()
        stream = await asyncio.wait_for(client.connect(public_key), timeout)
        assert await asyncio.wait_for(stream.read(), timeout) == b""
        path = stream.path
        stream.close()
        return path
