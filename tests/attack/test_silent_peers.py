"""A client that is kill -9ed never says goodbye (issue 15 item 2): the server notices on every stream,
also those it had already half-closed, and the stream fails with a typed timeout."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from peerdht.aio.hyperdht.testnet import Testnet

from .conftest import Proc, attack_tool

pytestmark = pytest.mark.attack


async def test_half_closed_streams_of_a_killed_client_are_reclaimed(
    served: tuple[Testnet, Proc, dict[str, Any]],
) -> None:
    testnet, server, ready = served
    boot = "{}:{}".format(*testnet.bootstrap[0])
    clients = await attack_tool(
        "clients", "--bootstrap", boot, "--public-key", ready["publicKey"], "--count", "5"
    )
    try:
        assert (await clients.reply(60))["connected"] == 5
        for _ in range(100):  # the last headers may still be on their way
            stats = await server.ask({"op": "stats"})
            if stats["connections"] == 5:
                break
            await asyncio.sleep(0.1)
        assert stats["connections"] == 5  # each half-closed by the server at once, the client silent
        clients.proc.send_signal(signal.SIGKILL)  # no DESTROY, no END: the peer just vanishes
        await clients.proc.wait()
        events = await server.wait_events(5, timeout=45)  # the default timeout is 15 s
    finally:
        await clients.stop()
    assert [e["error"] for e in events] == ["StreamTimeout"] * 5
    assert (await server.ask({"op": "stats"}))["connections"] == 0


CLI = [sys.executable, "-m", "peerdht.cli.main"]


async def _serve_and_connect(
    testnet: Testnet, tmp_path: Path
) -> tuple[asyncio.subprocess.Process, asyncio.subprocess.Process, Path]:
    """``serve --once`` (stdin a file: it sends it and half-closes) and a ``connect`` whose stdin is a
    pipe we hold open; returns (server, client, the server's stdout file) once 64 KiB arrived."""
    boot = "{}:{}".format(*testnet.bootstrap[0])
    (tmp_path / "served").write_bytes(b"hello from serve\n")
    out = tmp_path / "received"
    with open(tmp_path / "served", "rb") as fin, open(out, "wb") as fout:
        server = await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "--once",
            "--bootstrap",
            boot,
            stdin=fin,
            stdout=fout,
            stderr=asyncio.subprocess.PIPE,
        )
    assert server.stderr is not None
    line = await asyncio.wait_for(server.stderr.readline(), 60)
    assert line.startswith(b"listening on: "), line
    key = line.split(b": ")[1].strip().decode()
    client = await asyncio.create_subprocess_exec(
        *CLI,
        "connect",
        key,
        "--bootstrap",
        boot,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert client.stdin is not None
    client.stdin.write(b"x" * 65536)
    await client.stdin.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while out.stat().st_size < 65536:
        assert loop.time() < deadline, "the transfer did not start"
        await asyncio.sleep(0.1)
    return server, client, out


@pytest.mark.parametrize("how", ["kill -9", "Ctrl-C"])
async def test_serve_once_reports_an_interrupted_transfer(testnet: Testnet, tmp_path: Path, how: str) -> None:
    """Issue 12 item 3: the client dies mid-stream (kill -9: no DESTROY, not even an END; Ctrl-C: it
    resets): serve --once says so on stderr and exits 1, it does not pass a cut file off as whole."""
    server, client, out = await _serve_and_connect(testnet, tmp_path)
    try:
        client.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
        await asyncio.wait_for(client.wait(), 30)
        assert await asyncio.wait_for(server.wait(), 45) == 1  # the keep-alive timeout is 15 s
        assert server.stderr is not None
        err = (await server.stderr.read()).decode()
        assert ("connection lost" if how == "kill -9" else "connection error") in err, err
        assert "incomplete" in err
        assert out.stat().st_size >= 65536
    finally:
        for p in (server, client):
            if p.returncode is None:
                p.kill()
                await p.wait()
