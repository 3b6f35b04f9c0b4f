"""``peerdht mainline ...`` end to end: a CLI testnet on 127.0.0.1 and one-shot client commands."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from peerdht.mainline.crypto import KeyPair, mutable_target

IH = "0123456789abcdef0123456789abcdef01234567"


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "peerdht", "mainline", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
async def testnet() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "peerdht",
        "mainline",
        "testnet",
        "--size",
        "6",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert isinstance(first["bootstrap"], list) and first["bootstrap"]
        yield first["bootstrap"][0]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_cli_roundtrip(testnet: str) -> None:
    boot = ("--bootstrap", testnet)
    loop = asyncio.get_running_loop()

    async def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return await loop.run_in_executor(None, lambda: cli(*args, stdin=stdin))

    r = await run("put", "Hello World!", *boot, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target"] == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    r = await run("get", "e5f96f6f38320f0f33959cb4d3d656452117aadb", *boot)
    assert r.returncode == 0 and r.stdout == b"Hello World!"

    r = await run("announce", IH, "--port", "5555", *boot, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["nodes"] >= 4
    r = await run("get-peers", IH, *boot, "--json")
    assert r.returncode == 0, r.stderr
    assert {"host": "127.0.0.1", "port": 5555} in [json.loads(line) for line in r.stdout.splitlines()]

    seed = "11" * 32
    pk = KeyPair.from_seed(bytes.fromhex(seed)).public_key
    r = await run("put-mutable", "-", "--seed", seed, "--salt", "foo", *boot, "--json", stdin=b"first")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["publicKey"] == pk.hex() and out["seq"] == 1
    assert out["target"] == mutable_target(pk, b"foo").hex()
    r = await run("put-mutable", "second", "--seed", seed, "--salt", "foo", *boot, "--json")
    assert json.loads(r.stdout)["seq"] == 2
    r = await run("get-mutable", pk.hex(), "--salt", "foo", *boot)
    assert r.returncode == 0 and r.stdout == b"second"
    # a stale seq is explained; the text output is the public key get-mutable needs
    r = await run("put-mutable", "old", "--seed", seed, "--salt", "foo", "--seq", "1", *boot)
    assert r.returncode == 1
    assert b"peerdht: seq 1 is not newer than the stored seq 2" in r.stderr, r.stderr
    r = await run("put-mutable", "third", "--seed", seed, "--salt", "foo", *boot)
    assert r.returncode == 0 and r.stdout.decode().strip() == pk.hex()
    assert f"get-mutable {pk.hex()} --salt foo".encode() in r.stderr
    r = await run("get-mutable", pk.hex(), "--salt", "foo", *boot, "--json")
    assert json.loads(r.stdout) == {"value": "third", "valueHex": b"third".hex(), "seq": 3, "publicKey": pk.hex()}
    r = await run("put", "-", *boot, "--json", stdin=b"\xff\xfe")
    target = json.loads(r.stdout)["target"]
    r = await run("get", target, *boot, "--json")
    assert bytes.fromhex(json.loads(r.stdout)["valueHex"]) == b"\xff\xfe"

    r = await run("sample", testnet, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["interval"] == 21600


async def test_cli_errors(testnet: str) -> None:
    loop = asyncio.get_running_loop()

    async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return await loop.run_in_executor(None, lambda: cli(*args))

    r = await run("get", "00" * 20, "--bootstrap", testnet)
    assert r.returncode == 1 and r.stderr.startswith(b"peerdht: not found")
    assert b"Traceback" not in r.stderr
    r = await run("get", "zz", "--bootstrap", testnet)
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    r = await run("get", "00" * 20)  # no bootstrap: never a default list
    assert r.returncode == 2
    r = await run("announce", IH, "--port", "0", "--bootstrap", testnet)
    assert r.returncode == 2
    r = await run("put-mutable", "x", "--seed", "00" * 32, "--salt", "s" * 65, "--bootstrap", testnet)
    assert r.returncode == 2
    r = await run("put", "x" * 1200, "--bootstrap", testnet)
    assert r.returncode == 2
    assert b"value is 1,205 bytes; the limit is 1,000 for Mainline BEP 44 (bencoded), 65,000 for HyperDHT" in r.stderr
    assert b"usage: peerdht mainline put" in r.stderr
    r = await run("get-peers", IH, "--bootstrap", "no-such-host.invalid:6881")
    assert r.returncode == 1 and b"cannot resolve bootstrap host 'no-such-host.invalid'" in r.stderr
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        r = await run("get-peers", IH, "--bootstrap", addr)
        assert r.returncode == 1 and f"no bootstrap node answered (tried {addr})".encode() in r.stderr, r.stderr
    finally:
        silent.close()


async def test_cli_node_warns_when_no_bootstrap_answers() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{silent.getsockname()[1]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerdht", "mainline", "node", "--host", "127.0.0.1", "--bootstrap", addr,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line.startswith(b"warning: no bootstrap node answered (tried " + addr.encode()), line
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        silent.close()


async def test_cli_node_first_line_has_port(tmp_path: object) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "peerdht",
        "mainline",
        "node",
        "--host",
        "127.0.0.1",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert isinstance(first["port"], int) and first["port"] > 0
        assert len(bytes.fromhex(first["id"])) == 20
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
