"""``peerdht serve`` / ``peerdht connect`` as subprocesses: netcat semantics, files intact both ways."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

from peerdht.aio.testnet import Testnet
from peerdht.hyper.crypto import KeyPair

TIMEOUT = 60
CLI = [sys.executable, "-m", "peerdht.cli.main"]


async def _serve(boot: str, seed: str, stdin: Path, stdout: Path) -> tuple[asyncio.subprocess.Process, str]:
    with open(stdin, "rb") as fin, open(stdout, "wb") as fout:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "--seed",
            seed,
            "--once",
            "--bootstrap",
            boot,
            stdin=fin,
            stdout=fout,
            stderr=asyncio.subprocess.PIPE,
        )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
    assert line.startswith(b"listening on: "), line
    return proc, line.split(b": ")[1].strip().decode()


async def _connect(boot: str, key: str, stdin: Path, stdout: Path) -> asyncio.subprocess.Process:
    with open(stdin, "rb") as fin, open(stdout, "wb") as fout:
        return await asyncio.create_subprocess_exec(
            *CLI, "connect", key, "--bootstrap", boot, stdin=fin, stdout=fout, stderr=asyncio.subprocess.PIPE
        )


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


async def test_serve_connect_files_both_ways(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    b.write_bytes(os.urandom(1024 * 1024 + 5))
    async with await Testnet.create(4) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        seed = "ab" * 32
        server, key = await _serve(boot, seed, a, tmp_path / "server-out")
        assert key == KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
        client = await _connect(boot, key, b, tmp_path / "client-out")
        assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
        assert await asyncio.wait_for(server.wait(), TIMEOUT) == 0
    assert _sha(tmp_path / "client-out") == _sha(a)
    assert _sha(tmp_path / "server-out") == _sha(b)


async def test_connect_unknown_key_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    async with await Testnet.create(3) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        client = await _connect(boot, KeyPair.generate().public_key.hex(), empty, tmp_path / "out")
        assert await asyncio.wait_for(client.wait(), TIMEOUT) == 1
        assert client.stderr is not None
        assert b"PEER_NOT_FOUND" in await client.stderr.read()
