"""``peerdht serve`` / ``peerdht connect``: an encrypted netcat over HyperDHT (the seed's chat example).

``serve`` listens on a key pair, prints ``listening on: <public key hex>`` to stderr, pipes every
connection to stdout, and (like ``nc -l``) starts reading stdin only once a connection is open,
sending it to the open connections; stdin EOF half-closes them. ``connect`` pipes stdin to the
connection and the connection to stdout; at stdin EOF it half-closes and exits 0 once the remote
side ended too, so ``peerdht connect KEY < in > out`` works in scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

from peerdht.cli.common import CLIError, add_network_args, hex_bytes, require_bootstrap, run, status
from peerdht.hyper.crypto import KeyPair
from peerdht.keys import is_public_key

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
        "stdout and stdin to it once it is open; stdin EOF half-closes the connection. Prints "
        "'listening on: <public key hex>' to stderr. Without --seed or --key-file a new key pair is made.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=hex_bytes(32), help="key pair seed, 64 hex characters")
    g.add_argument("--key-file", type=Path, help="file holding the seed as hex (created if missing)")
    p.add_argument("--once", action="store_true", help="exit after the first connection ended")
    add_network_args(p, json_flag=False)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "connect",
        help="connect to a server by public key; pipe stdin/stdout through it",
        description="Connect to the server listening on PUBKEY (Noise IK, holepunching as needed) and pipe "
        "stdin to it and it to stdout. At stdin EOF the connection is half-closed; exits 0 once the server "
        "has ended too, so `peerdht connect KEY < in > out` works in scripts. Exit 1 with the HyperDHT error "
        "code (e.g. PEER_NOT_FOUND) when it cannot connect.",
    )
    p.add_argument("public_key", metavar="PUBKEY", type=_public_key, help="64 hex characters")
    add_network_args(p, json_flag=False)
    p.set_defaults(func=cmd_connect)


def load_key_pair(seed: bytes | None, key_file: Path | None) -> KeyPair:
    """The key pair of ``seed``, of the seed in ``key_file`` (written with a new seed if missing), or a
    new random one."""
    if seed is not None:
        return KeyPair.from_seed(seed)
    if key_file is not None:
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        try:
            return KeyPair.from_seed(bytes.fromhex(key_file.read_text().strip()))
        except ValueError:
            raise CLIError(f"{key_file}: expected a 64-hex-character seed") from None
    return KeyPair.generate()


class _Stdin:
    """stdin read by a daemon thread (works for pipes, terminals and regular files, and never
    keeps the process alive at exit). Reads ahead at most a few chunks."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._credit = threading.Semaphore(4)
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
                return

    async def read(self) -> bytes:
        data = await self._queue.get()
        self._credit.release()
        return data


async def _write_stdout(data: bytes) -> None:
    def write() -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    await asyncio.get_running_loop().run_in_executor(None, write)


async def _to_stdout(stream: Any) -> None:
    while chunk := await stream.read(CHUNK):
        await _write_stdout(chunk)


async def _dht(args: argparse.Namespace) -> Any:
    from peerdht.aio.hyperdht import HyperDHT

    boot = require_bootstrap(args)
    dht = HyperDHT(bootstrap=boot)
    await dht.open()
    await dht.fully_bootstrapped()
    if not dht.to_array():
        await dht.destroy()
        raise CLIError("no bootstrap node answered")
    return dht


def cmd_connect(args: argparse.Namespace) -> int:
    async def main() -> int:
        dht = await _dht(args)
        try:
            stream = await dht.connect(args.public_key)
            status(f"connected to {args.public_key.hex()} ({stream.path})")
            stdin = _Stdin()

            async def pump() -> None:
                while chunk := await stdin.read():
                    stream.write(chunk)
                    await stream.drain()
                stream.write_eof()
                await stream.drain()

            sender = asyncio.ensure_future(pump())
            try:
                await _to_stdout(stream)
                await sender
            finally:
                sender.cancel()
                stream.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.wait_closed(), 5)
            return 0
        finally:
            await dht.destroy()

    return run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    kp = load_key_pair(args.seed, args.key_file)

    async def main() -> int:
        dht = await _dht(args)
        open_streams: set[Any] = set()
        done = asyncio.Event()
        state: dict[str, Any] = {"stdin_eof": False, "pump": None}
        stdin = _Stdin()

        async def pump() -> None:
            while chunk := await stdin.read():
                for s in list(open_streams):
                    with contextlib.suppress(Exception):
                        s.write(chunk)
                for s in list(open_streams):
                    with contextlib.suppress(Exception):
                        await s.drain()
            state["stdin_eof"] = True
            for s in list(open_streams):
                with contextlib.suppress(Exception):
                    s.write_eof()

        async def handler(stream: Any) -> None:
            status(f"connection from {stream.remote_public_key.hex()}")
            open_streams.add(stream)
            if state["stdin_eof"]:
                stream.write_eof()
            elif state["pump"] is None:
                state["pump"] = asyncio.ensure_future(pump())
            try:
                await _to_stdout(stream)
                while not state["stdin_eof"]:
                    await asyncio.sleep(0.05)
                await stream.drain()
            except Exception as exc:  # one broken connection does not stop the server
                status(f"connection error: {exc}")
            finally:
                open_streams.discard(stream)
                stream.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.wait_closed(), 5)
                if args.once:
                    done.set()

        server = dht.create_server(handler)
        try:
            await server.listen(kp)
            status(f"listening on: {kp.public_key.hex()}")
            if args.once:
                await done.wait()
            else:
                from peerdht.cli.common import wait_forever

                await wait_forever()
            return 0
        finally:
            await server.close()
            await dht.destroy()
            if state["pump"] is not None:
                state["pump"].cancel()

    return run(main())
