"""``peerdht serve`` / ``peerdht connect``: an encrypted netcat over HyperDHT (the seed's chat example).

``serve`` listens on a key pair, prints ``listening on: <public key hex>`` to stderr, pipes every
connection to stdout, and (like ``nc -l``) starts reading stdin only once a connection is open,
sending it to the open connections. ``connect`` pipes stdin to the connection and the connection to
stdout. Ending a connection (half-close, as ``nc`` does):

* stdin EOF half-closes our side. From a file or pipe that is for good: a long-running ``serve`` says
  that later connections are receive-only. From a terminal (Ctrl-D) it ends only the current
  connections: the next connection to a long-running ``serve`` is two-way again.
* when the peer half-closes and our stdin is a terminal (or ``serve --once``, whose stdin is a
  terminal), we end our side too, so ``peerdht connect KEY < file`` completes against a ``serve`` run
  from a terminal without anyone pressing Ctrl-D. With stdin from a file or pipe, we first send it to
  its end, as ``nc`` does. ``--once`` exits when its connection has ended.

Both show progress (bytes each way, rate, elapsed; ``rich``) while data moves from or to a file or
pipe and stderr is a terminal, and print a one-line summary per connection (bytes each way, time, path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from peerdht.cli.common import (
    add_network_args,
    client_host,
    hex_bytes,
    load_key_pair,
    no_answer,
    require_bootstrap,
    run,
    status,
)
from peerdht.keys import is_public_key

__all__ = ["load_key_pair", "register"]

CHUNK = 256 * 1024


def _public_key(value: str) -> bytes:
    key: bytes = hex_bytes(32)(value)
    if not is_public_key(key):
        raise argparse.ArgumentTypeError("not a valid Ed25519 public key")
    return key


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="accept encrypted connections by public key; pipe them to stdout/stdin",
        description="Listen on a key pair (announced on the DHT) and, like `nc -l`, pipe each connection to "
        "stdout and stdin to it once it is open. Prints 'listening on: <public key hex>' to stderr. Without "
        "--seed or --key-file a new key pair is made. Ending: stdin EOF half-closes (from a terminal, Ctrl-D "
        "ends only the current connections; from a file or pipe it is for good and later connections are "
        "receive-only). When the client half-closes, serve ends its side too if stdin is a terminal; with "
        "stdin from a file or pipe it first sends it to the end. Progress (bytes, rate, elapsed) on a "
        "terminal's stderr and a summary line per connection.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=hex_bytes(32), help="key pair seed, 64 hex characters")
    g.add_argument("--key-file", type=Path, help="file holding the seed as hex (created with mode 0600 if missing)")
    p.add_argument("--once", action="store_true",
                   help="serve one connection and exit when it has ended (exit 0 when it ended cleanly, 1 when "
                        "it broke: reset, or the peer went silent for the keep-alive timeout, 15 s)")
    add_network_args(p, json_flag=False)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "connect",
        help="connect to a server by public key; pipe stdin/stdout through it",
        description="Connect to the server listening on PUBKEY (Noise IK, holepunching as needed) and pipe "
        "stdin to it and it to stdout. At stdin EOF the connection is half-closed; exits 0 once the server "
        "has ended too, so `peerdht connect KEY < in > out` works in scripts (and when the server ends first "
        "and stdin is a terminal, connect ends too). Exit 1 with the HyperDHT error code (e.g. "
        "PEER_NOT_FOUND) when it cannot connect. Progress (bytes, rate, elapsed) on a terminal's stderr and "
        "a summary line at the end.",
    )
    p.add_argument("public_key", metavar="PUBKEY", type=_public_key,
                   help="the server's public key, 64 hex characters (serve prints it)")
    add_network_args(p, json_flag=False)
    p.set_defaults(func=cmd_connect)


class _Stdin:
    """stdin read by a daemon thread (works for pipes, terminals and regular files, and never
    keeps the process alive at exit). Reads ahead at most a few chunks.

    A file or pipe ends once; a terminal's EOF (Ctrl-D) is not final: after one, the thread waits for
    :meth:`resume` before it reads the terminal again (what is typed meanwhile stays in the terminal for
    the next connection). Only a :meth:`resume` after the EOF was read counts: ``serve`` calls it for
    every new connection, and one from before the EOF must not let the thread read on at once."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self.tty = os.isatty(self.fd)
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._credit = threading.Semaphore(4)
        self._again = threading.Event()
        self._paused = False  # a terminal's EOF was handed out by read(); the thread waits for resume()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self._credit.acquire()
            try:
                data = os.read(self.fd, CHUNK)
            except OSError:
                data = b""
            self._loop.call_soon_threadsafe(self._queue.put_nowait, data)
            if not data:
                if not self.tty:
                    return
                self._again.wait()
                self._again.clear()

    def resume(self) -> None:
        """After a terminal's EOF: read it again (a new connection wants input). A no-op otherwise."""
        if self._paused:
            self._paused = False
            self._again.set()

    async def read(self) -> bytes:
        data = await self._queue.get()
        self._credit.release()
        if not data and self.tty:
            self._paused = True  # the thread is (about to be) waiting in _again.wait()
        return data


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


class _Board:
    """One live ``rich`` progress display on stderr shared by all transfers of the process (rich allows
    one live display at a time); started with the first transfer, stopped with the last."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._users = 0

    def add(self, description: str) -> int:
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True, redirect_stdout=False, redirect_stderr=False,
            )
            self._progress.start()
        self._users += 1
        task: int = self._progress.add_task(description, total=None)
        return task

    def update(self, task: int, completed: int) -> None:
        if self._progress is not None:
            self._progress.update(task, completed=completed)

    def remove(self, task: int) -> None:
        if self._progress is None:
            return
        self._progress.remove_task(task)
        self._users -= 1
        if self._users == 0:
            self._progress.stop()
            self._progress = None


_BOARD = _Board()


class Transfer:
    """The bytes one connection moved each way, a progress display while it runs (when stderr is a
    terminal and data moves from or to a file or pipe, not in a chat), and the summary at the end."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.sent = 0
        self.received = 0
        self.start = time.monotonic()
        self.sending = True  # our side not yet half-closed
        self._tasks: tuple[int, int] | None = None
        chat = sys.stdin.isatty() and sys.stdout.isatty()
        if sys.stderr.isatty() and not chat:
            self._tasks = (_BOARD.add(f"{label} sent"), _BOARD.add(f"{label} received"))

    def add_sent(self, n: int) -> None:
        self.sent += n
        if self._tasks is not None:
            _BOARD.update(self._tasks[0], self.sent)

    def add_received(self, n: int) -> None:
        self.received += n
        if self._tasks is not None:
            _BOARD.update(self._tasks[1], self.received)

    def summary(self, path: str | None, outcome: str = "done") -> str:
        secs = time.monotonic() - self.start
        rate = (self.sent + self.received) / secs if secs > 0 else 0.0
        via = f", path {path}" if path else ""
        return (f"{self.label} {outcome}: sent {_fmt_bytes(self.sent)}, received {_fmt_bytes(self.received)} "
                f"in {secs:.1f} s ({_fmt_bytes(rate)}/s){via}")

    def finish(self, path: str | None, outcome: str = "done") -> None:
        """Stop the progress display and print the summary line."""
        if self._tasks is not None:
            for task in self._tasks:
                _BOARD.remove(task)
            self._tasks = None
        status(self.summary(path, outcome))


async def _write_stdout(data: bytes) -> None:
    def write() -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    await asyncio.get_running_loop().run_in_executor(None, write)


async def _to_stdout(stream: Any, transfer: Transfer) -> None:
    while chunk := await stream.read(CHUNK):
        await _write_stdout(chunk)
        transfer.add_received(len(chunk))


async def _dht(args: argparse.Namespace) -> Any:
    from peerdht.aio.hyperdht import HyperDHT

    boot = require_bootstrap(args)
    dht = HyperDHT(bootstrap=boot, host=client_host(boot))
    await dht.open()
    await dht.fully_bootstrapped()
    if not dht.to_array():
        await dht.close()
        raise no_answer(boot)
    return dht


async def _first_of(*aws: Any) -> None:
    """Wait until the first of ``aws`` (coroutines) is done; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def cmd_connect(args: argparse.Namespace) -> int:
    async def main() -> int:
        dht = await _dht(args)
        try:
            stream = await dht.connect(args.public_key)
            status(f"connected to {args.public_key.hex()} ({stream.path})")
            transfer = Transfer("connection")
            stdin = _Stdin()

            async def pump() -> None:
                while chunk := await stdin.read():
                    stream.write(chunk)
                    transfer.add_sent(len(chunk))
                    await stream.drain()
                stream.write_eof()
                await stream.drain()

            sender = asyncio.ensure_future(pump())
            try:
                await _to_stdout(stream, transfer)
                if stdin.tty and not sender.done():
                    # the server ended and our input is a person at a terminal: end our side too
                    sender.cancel()
                    stream.write_eof()
                    await stream.drain()
                else:
                    await sender
            except asyncio.CancelledError:
                # interrupted (Ctrl-C): reset instead of ending, so the server cannot mistake the cut
                # transfer for a whole one
                destroy = getattr(stream.raw, "destroy", None)
                if destroy is not None:
                    destroy()
                raise
            finally:
                sender.cancel()
                stream.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.wait_closed(), 5)
                transfer.finish(stream.path)
            return 0
        finally:
            await dht.close()

    return run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    kp = load_key_pair(args.seed, args.key_file)

    async def main() -> int:
        dht = await _dht(args)
        open_streams: dict[Any, Transfer] = {}
        done = asyncio.Event()
        stdin_done = asyncio.Event()  # a file or pipe on stdin has ended (for good)
        state: dict[str, Any] = {"pump": None, "stdin": None}

        def end_our_side(stream: Any) -> None:
            transfer = open_streams.get(stream)
            if transfer is not None:
                transfer.sending = False
            stream.write_eof()

        async def pump() -> None:
            stdin: _Stdin = state["stdin"]
            while True:
                chunk = await stdin.read()
                sending = [(s, t) for s, t in open_streams.items() if t.sending]
                if not chunk:
                    for s, _ in sending:
                        with contextlib.suppress(Exception):
                            end_our_side(s)
                    if not stdin.tty:
                        stdin_done.set()
                        if not args.once:
                            status("stdin has ended: later connections are receive-only")
                        return
                    # Ctrl-D at a terminal ends the current connections only; read again for the next
                    continue
                for s, t in sending:
                    with contextlib.suppress(Exception):
                        s.write(chunk)
                        t.add_sent(len(chunk))
                for s, _ in sending:
                    with contextlib.suppress(Exception):
                        await s.drain()

        async def handler(stream: Any) -> None:
            who = stream.remote_public_key.hex()
            transfer = Transfer(f"connection from {who[:16]}...")
            open_streams[stream] = transfer
            if stdin_done.is_set():
                status(f"connection from {who} (receive-only: stdin has ended)")
                end_our_side(stream)
            else:
                status(f"connection from {who}")
                if state["pump"] is None:
                    state["stdin"] = _Stdin()
                    state["pump"] = asyncio.ensure_future(pump())
                else:
                    state["stdin"].resume()
            try:
                await _to_stdout(stream, transfer)
                if state["stdin"] is not None and state["stdin"].tty:
                    end_our_side(stream)  # the client ended; a terminal's user is not made to press Ctrl-D
                else:
                    # nc: send stdin to its end first -- unless the peer vanishes meanwhile
                    await _first_of(stdin_done.wait(), stream.wait_closed())
                await stream.drain()  # raises if the stream failed (reset, or the peer went silent)
                outcome = "done"
            except TimeoutError as exc:  # StreamTimeout: no packet from the peer for the keep-alive timeout
                status(f"connection lost: the peer went silent ({exc}); the transfer is incomplete")
                outcome = "failed"
            except Exception as exc:  # one broken connection does not stop the server
                status(f"connection error: {exc}; the transfer is incomplete")
                outcome = "failed"
            finally:
                open_streams.pop(stream, None)
                stream.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.wait_closed(), 5)
                transfer.finish(stream.path, outcome)
                if args.once:
                    state["failed"] = outcome != "done"
                    done.set()

        server = dht.create_server(handler)
        try:
            await server.listen(kp)
            status(f"listening on: {kp.public_key.hex()}")
            if args.once:
                await done.wait()
                return 1 if state.get("failed") else 0
            from peerdht.cli.common import wait_forever

            await wait_forever()
            return 0
        finally:
            await server.close()
            await dht.close()
            if state["pump"] is not None:
                state["pump"].cancel()

    return run(main())
