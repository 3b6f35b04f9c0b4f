"""Shared set-up of the attack tests: a Python testnet in the test process and the server under
attack in its own process (``python -m tools.attack serve``), so its memory can be read
from /proc and a flood in further processes competes with it as a real attacker would."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tools.roleproc import RoleProcess as Proc

from peerdht.aio.hyperdht.testnet import Testnet

ROOT = Path(__file__).resolve().parents[2]


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
