"""``peerdht serve`` / ``peerdht connect`` as subprocesses: netcat semantics, files intact both ways."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest

from peerdht.aio.hyperdht.testnet import Testnet
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


async def _serve_tty(boot: str, seed: str, stdout: Path, *extra: str) -> tuple[asyncio.subprocess.Process, int]:
    """``serve`` whose stdin is a terminal (a pty nobody types in unless the test writes to ``master``)."""
    master, slave = os.openpty()
    with open(stdout, "wb") as fout:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "serve", "--seed", seed, *extra, "--bootstrap", boot,
            stdin=slave, stdout=fout, stderr=asyncio.subprocess.PIPE,
        )
    os.close(slave)
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
    assert line.startswith(b"listening on: "), line
    return proc, master


async def _stderr_until(proc: asyncio.subprocess.Process, needle: bytes) -> bytes:
    assert proc.stderr is not None
    seen = b""
    while needle not in seen:
        line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
        assert line, seen
        seen += line
    return seen


async def _last_words(proc: asyncio.subprocess.Process) -> bytes:
    """Stop ``proc`` if it still runs; its stderr (what a failed test should show)."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
    return await proc.stderr.read() if proc.stderr is not None else b""


async def test_serve_from_a_terminal_ends_when_the_client_ends(tmp_path: Path) -> None:
    """Item 4: `connect KEY < file` against `serve > out` run from a terminal completes, nobody presses Ctrl-D."""
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1024 * 1024 + 3))
    async with await Testnet.create(4) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        server, master = await _serve_tty(boot, "cd" * 32, tmp_path / "server-out", "--once")
        try:
            key = KeyPair.from_seed(bytes.fromhex("cd" * 32)).public_key.hex()
            client = await _connect(boot, key, data, tmp_path / "client-out")
            assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
            assert await asyncio.wait_for(server.wait(), TIMEOUT) == 0
        finally:
            os.close(master)
            if server.returncode is None:
                server.kill()
    assert _sha(tmp_path / "server-out") == _sha(data)
    assert (tmp_path / "client-out").read_bytes() == b""


async def test_long_running_serve_is_two_way_for_every_connection(tmp_path: Path) -> None:
    """Item 5: after one connection ends, the next one to a long-running serve (stdin a terminal) is two-way."""
    async with await Testnet.create(4) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        server, master = await _serve_tty(boot, "ce" * 32, tmp_path / "server-out")
        key = KeyPair.from_seed(bytes.fromhex("ce" * 32)).public_key.hex()
        try:
            for i in (1, 2, 3):
                client = await asyncio.create_subprocess_exec(
                    *CLI, "connect", key, "--bootstrap", boot,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )
                assert client.stdin is not None and client.stdout is not None
                try:
                    await _stderr_until(server, b"connection from")
                    os.write(master, f"typed at the server {i}\n".encode())  # a person typing a line
                    line = await asyncio.wait_for(client.stdout.readline(), TIMEOUT)
                    assert line == f"typed at the server {i}\n".encode()
                    client.stdin.write(f"from client {i}\n".encode())
                    await client.stdin.drain()
                    client.stdin.close()  # client EOF: serve (stdin a terminal) ends its side too
                    assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
                except (AssertionError, TimeoutError) as exc:
                    raise AssertionError(f"connection {i}; the client said: {await _last_words(client)!r}") from exc
                await _stderr_until(server, b"done: sent")
            assert server.returncode is None  # still serving
        finally:
            os.close(master)
            server.terminate()
            await asyncio.wait_for(server.wait(), TIMEOUT)
    assert (tmp_path / "server-out").read_bytes() == b"from client 1\nfrom client 2\nfrom client 3\n"


async def test_a_resume_from_before_ctrl_d_does_not_end_the_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve's stdin reader: after a terminal's Ctrl-D it reads the terminal again only when the next connection
    calls resume(). serve calls resume() for every new connection, so one from before the Ctrl-D (a second
    connection while the first was open) must not count, or what is typed before the next connection is read
    at once and dropped (no connection is sending any more)."""
    from peerdht.cli.pipe import _Stdin

    master, slave = os.openpty()
    try:
        with open(slave, closefd=False) as terminal:
            monkeypatch.setattr(sys, "stdin", terminal)
            stdin = _Stdin()
        assert stdin.tty
        os.write(master, b"one\n")
        assert await asyncio.wait_for(stdin.read(), TIMEOUT) == b"one\n"
        stdin.resume()  # a second connection opens: there was no EOF, nothing to resume
        os.write(master, b"\x04")  # Ctrl-D
        assert await asyncio.wait_for(stdin.read(), TIMEOUT) == b""
        os.write(master, b"two\n")  # typed after the Ctrl-D, before the next connection
        reading = asyncio.ensure_future(stdin.read())
        done, _ = await asyncio.wait({reading}, timeout=1.0)
        assert not done, "read the terminal again after Ctrl-D without a resume()"
        stdin.resume()  # the next connection
        assert await asyncio.wait_for(reading, TIMEOUT) == b"two\n"
        os.write(master, b"\x04")  # leave the reader thread waiting for a resume, not reading the pty
        assert await asyncio.wait_for(stdin.read(), TIMEOUT) == b""
    finally:
        os.close(master)
        os.close(slave)


async def test_serve_with_stdin_from_a_file_says_later_connections_are_receive_only(tmp_path: Path) -> None:
    """Item 5, the other branch: a file on stdin is sent once; serve says later connections are receive-only."""
    a = tmp_path / "a"
    a.write_bytes(b"the file\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    async with await Testnet.create(4) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        with open(a, "rb") as fin, open(tmp_path / "server-out", "wb") as fout:
            server = await asyncio.create_subprocess_exec(
                *CLI, "serve", "--seed", "cf" * 32, "--bootstrap", boot,
                stdin=fin, stdout=fout, stderr=asyncio.subprocess.PIPE,
            )
        try:
            await _stderr_until(server, b"listening on: ")
            key = KeyPair.from_seed(bytes.fromhex("cf" * 32)).public_key.hex()
            client = await _connect(boot, key, empty, tmp_path / "out1")
            assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
            await _stderr_until(server, b"later connections are receive-only")
            client = await _connect(boot, key, empty, tmp_path / "out2")
            assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
            assert b"receive-only: stdin has ended" in await _stderr_until(server, b"receive-only: stdin has ended")
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), TIMEOUT)
    assert (tmp_path / "out1").read_bytes() == b"the file\n"
    assert (tmp_path / "out2").read_bytes() == b""


async def test_progress_on_a_terminal_and_a_summary_line(tmp_path: Path) -> None:
    """Item 6: progress (bytes, rate, elapsed) when stderr is a terminal; a summary line at the end."""
    data = tmp_path / "data"
    data.write_bytes(os.urandom(16 * 1024 * 1024))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    async with await Testnet.create(4) as tn:
        boot = f"{tn.bootstrap[0][0]}:{tn.bootstrap[0][1]}"
        server, key = await _serve(boot, "d0" * 32, empty, tmp_path / "server-out")
        master, slave = os.openpty()
        with open(data, "rb") as fin, open(tmp_path / "client-out", "wb") as fout:
            client = await asyncio.create_subprocess_exec(
                *CLI, "connect", key, "--bootstrap", boot, stdin=fin, stdout=fout, stderr=slave,
                env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
            )
        os.close(slave)
        out = bytearray()
        loop = asyncio.get_running_loop()

        def read_all() -> None:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the client closed the terminal
                    return
                if not chunk:
                    return
                out.extend(chunk)

        reader = loop.run_in_executor(None, read_all)
        try:
            assert await asyncio.wait_for(client.wait(), TIMEOUT) == 0
            await asyncio.wait_for(reader, TIMEOUT)
        finally:
            os.close(master)
        assert await asyncio.wait_for(server.wait(), TIMEOUT) == 0
        assert server.stderr is not None
        server_err = await server.stderr.read()
    text = out.decode(errors="replace")
    assert "connection sent" in text and "/s" in text, text[:2000]  # the live display: bytes and rate
    assert "connection done: sent 16.8 MB, received 0 B in" in text, text[-2000:]
    assert b"done: sent 0 B, received 16.8 MB in" in server_err  # not a terminal: the summary only
    assert _sha(tmp_path / "server-out") == _sha(data)
