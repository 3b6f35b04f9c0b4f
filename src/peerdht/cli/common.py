"""Conventions shared by every ``peerdht`` command.

* status and errors go to stderr; results to stdout (``--json``: one JSON object per line);
* every network command takes ``--bootstrap HOST:PORT`` (repeatable);
* exit 0 success, 1 not found / failed, 2 bad arguments (argparse usage); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine
from typing import Any


class CLIError(Exception):
    """An error for the user: printed as one line to stderr, exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_hostport(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[V6]:PORT``.

    Raises:
        argparse.ArgumentTypeError: not of that form (argparse turns it into exit 2 with usage).
    """
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host, int(port_s))


def hex_bytes(length: int) -> Any:
    """An argparse type: a hex string of ``length`` bytes."""

    def parse(value: str) -> bytes:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {2 * length} hex characters") from None
        if len(raw) != length:
            raise argparse.ArgumentTypeError(f"expected {2 * length} hex characters, got {len(value)}")
        return raw

    parse.__name__ = f"hex{2 * length}"
    return parse


def add_network_args(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """Add ``--bootstrap HOST:PORT`` (repeatable) and ``--json``."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        action="append",
        type=parse_hostport,
        default=[],
        help="a node to join the network through (repeatable); required: peerdht never contacts the "
        "public bootstrap nodes unless you name them",
    )
    if json_flag:
        add_json_arg(parser)


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line on stdout")


def require_bootstrap(args: argparse.Namespace) -> list[tuple[str, int]]:
    boot: list[tuple[str, int]] = args.bootstrap
    if not boot:
        raise CLIError("no --bootstrap HOST:PORT given (start one with `peerdht testnet`)", 2)
    return boot


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str | None = None) -> None:
    """Print a result: ``obj`` as one JSON line with ``--json``, else ``text`` (or ``obj`` as JSON)."""
    if getattr(args, "json", False) or text is None:
        sys.stdout.write(json.dumps(obj) + "\n")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


def status(message: str) -> None:
    """A progress or status line on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro`` to completion; Ctrl-C exits 130 quietly."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130


def fmt_addr(addr: tuple[str, int]) -> str:
    """``host:port``, or ``[v6]:port``."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_value(arg: str) -> bytes:
    """A VALUE argument: its UTF-8 bytes, or all of stdin for ``-``."""
    return sys.stdin.buffer.read() if arg == "-" else arg.encode()


async def wait_forever() -> None:
    """Wait until SIGINT or SIGTERM (long-lived commands: node, testnet, bootstrap)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
