"""Conventions shared by every ``peerdht`` command.

* status and errors go to stderr; results to stdout (``--json``: one JSON object per line);
* every network command takes ``--bootstrap HOST:PORT`` (repeatable);
* exit 0 success, 1 not found / failed, 2 bad arguments (argparse usage), 130 interrupted; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from peerdht.hyper.constants import MAX_VALUE_SIZE as HYPER_MAX_VALUE_SIZE
from peerdht.keys import KeyPair
from peerdht.mainline.messages import MAX_VALUE as MAINLINE_MAX_VALUE_SIZE


class Subparsers(Protocol):
    """What a ``register`` function needs from ``parser.add_subparsers()`` (argparse's class is private)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


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


def client_host(boot: list[tuple[str, int]]) -> str:
    """The address a client node binds: loopback when every bootstrap node is on loopback (a local test
    network: nothing outside it can reach us, and we never offer or dial a LAN address), else any IPv4."""
    try:
        local = bool(boot) and all(ipaddress.ip_address(h).is_loopback for h, _ in boot)
    except ValueError:  # a host name
        local = False
    return "127.0.0.1" if local else "0.0.0.0"


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line on stdout")


EXIT_CODES = "exit codes: 0 done, 1 not found or failed, 2 bad arguments, 130 interrupted (Ctrl-C)"

HYPER_MAX_VALUE = HYPER_MAX_VALUE_SIZE
"""Bytes of a HyperDHT record value (:data:`peerdht.hyper.constants.MAX_VALUE_SIZE`)."""

MAINLINE_MAX_VALUE = MAINLINE_MAX_VALUE_SIZE
"""Bytes of a bencoded BEP 44 value (:data:`peerdht.mainline.messages.MAX_VALUE`)."""


def check_value_size(size: int, limit: int) -> None:
    """Refuse a value of ``size`` bytes over ``limit`` before anything is sent (both profiles name both
    limits, so users learn them once).

    Raises:
        CLIError: exit 2.
    """
    if size <= limit:
        return
    raise CLIError(
        f"value is {size:,} bytes; the limit is {MAINLINE_MAX_VALUE:,} for Mainline BEP 44 (bencoded), "
        f"{HYPER_MAX_VALUE:,} for HyperDHT",
        2,
    )


def stale_seq_message(seq: int, stored: int | None) -> str:
    """The one wording of a refused mutable put, for HyperDHT (errors 16/17) and Mainline (302) alike."""
    if stored is None:
        return f"seq {seq} was refused as not newer than the stored seq; leave out --seq to use newest + 1"
    return f"seq {seq} is not newer than the stored seq {stored} (use --seq {stored + 1}, or leave it out)"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_bootstrap(
    boot: list[tuple[str, int]], family: socket.AddressFamily = socket.AF_UNSPEC, *, keep_names: bool = False
) -> list[tuple[str, int]]:
    """Resolve bootstrap host names now, so a typo is reported as one.

    Args:
        boot: ``(host, port)`` pairs from ``--bootstrap``.
        family: resolve to this family (HyperDHT: ``AF_INET``).
        keep_names: return names as given (Mainline resolves them itself, per socket family).

    Returns:
        The resolvable entries (IP literals, or names when ``keep_names``); names that do not resolve are
        reported on stderr and dropped.

    Raises:
        CLIError: no entry resolves (exit 1).
    """
    out: list[tuple[str, int]] = []
    failed: list[str] = []
    for host, port in boot:
        if _is_ip(host):
            out.append((host, port))
            continue
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            failed.append(f"cannot resolve bootstrap host {host!r} ({reason})")
            continue
        out.append((host, port) if keep_names else (str(infos[0][4][0]), port))
    if failed and not out:
        raise CLIError("; ".join(failed))
    for message in failed:
        status(f"warning: {message}")
    return out


def require_bootstrap(args: argparse.Namespace, family: socket.AddressFamily = socket.AF_INET) -> list[tuple[str, int]]:
    """``--bootstrap`` resolved (see :func:`resolve_bootstrap`; HyperDHT is IPv4).

    Raises:
        CLIError: none given (exit 2), none resolves (exit 1).
    """
    boot: list[tuple[str, int]] = args.bootstrap
    if not boot:
        raise CLIError("no --bootstrap HOST:PORT given (start one with `peerdht testnet`)", 2)
    return resolve_bootstrap(boot, family, keep_names=family == socket.AF_UNSPEC)


def no_answer(boot: list[tuple[str, int]]) -> CLIError:
    """The error for a bootstrap list nobody answered: says what was tried."""
    return CLIError(
        f"no bootstrap node answered (tried {', '.join(fmt_addr(a) for a in boot)}): is the address right "
        "and the node running? UDP must reach it"
    )


def verbose(args: argparse.Namespace, message: str) -> None:
    """A progress line on stderr with ``-v``."""
    if getattr(args, "verbose", 0):
        status(message)


def value_json(value: bytes) -> dict[str, str]:
    """A value in ``--json`` output: ``value`` (UTF-8 text, undecodable bytes replaced) and ``valueHex``
    (the exact bytes)."""
    return {"value": value.decode("utf-8", "replace"), "valueHex": value.hex()}


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


def read_seed_file(key_file: Path) -> bytes:
    """The seed in ``key_file`` (64 hex characters).

    Raises:
        CLIError: unreadable or not a seed.
    """
    try:
        return bytes.fromhex(key_file.read_text().strip())
    except (ValueError, UnicodeDecodeError):
        raise CLIError(f"{key_file}: expected a 64-hex-character seed") from None


def write_seed_file(key_file: Path, seed: bytes) -> None:
    """Write ``seed`` as hex to a new ``key_file`` with mode 0600 (never overwrites).

    Raises:
        FileExistsError: the file exists.
    """
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")


def load_key_pair(seed: bytes | None, key_file: Path | None) -> KeyPair:
    """The key pair of ``seed``, of the seed in ``key_file`` (written with a new seed, mode 0600, if
    missing), or a new random one."""
    if seed is not None:
        return KeyPair.from_seed(seed)
    if key_file is not None:
        if not key_file.exists():
            write_seed_file(key_file, os.urandom(32))
        seed = read_seed_file(key_file)
        if len(seed) != 32:
            raise CLIError(f"{key_file}: expected a 64-hex-character seed")
        return KeyPair.from_seed(seed)
    return KeyPair.generate()
