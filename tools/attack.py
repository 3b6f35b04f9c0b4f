"""Attack tools for the robustness tests and ``bench/attack.py`` (loopback and test namespaces only).

Run as ``python -m tools.attack ROLE ...``; every role prints JSON lines on stdout:

* ``serve --bootstrap H:P [--seed HEX]``: a HyperDHT node on 127.0.0.1 with a server that half-closes
  each connection at once (as ``peerdht serve`` with stdin at EOF) and reads until the peer ends or
  the stream fails. Prints ``{"ready", "port", "publicKey", "pid"}``, then ``{"event": "closed",
  "error": name or null, "open": n}`` per connection; answers ``{"op": "stats"}`` on stdin with
  ``{"connections": n, "pending": n, "dropped": HyperDHT.stats["dropped"]}``.
* ``flood KIND --to H:P --public-key HEX [--rate N] [--count N | --duration S] [--source HOST]``:
  PEER_HANDSHAKE requests at the server's node, ``KIND`` ``garbage`` (random Noise bytes) or
  ``valid`` (a fresh client key pair and a well-formed Noise IK message each; built before the
  flood starts, so the sender is cheap). Prints ``{"sent": n, "seconds": s}``.
* ``clients --bootstrap H:P --public-key HEX --count N``: open N connections, write a few bytes on
  each, print ``{"connected": n}`` and wait to be killed (the ``kill -9``-ed client).

Nothing here may be pointed at hosts outside 127.0.0.0/8 or a test's own network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from peerdht.hyper.constants import Command
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.handshake import make_payload, noise_key_pair
from peerdht.hyper.messages import encode_request_fields
from peerdht.hyper.records import Handshake, encode_handshake, encode_noise_payload
from peerdht.hyper.router import FROM_CLIENT
from peerdht.secure.noise import peer_handshake

Address = tuple[str, int]

__all__ = ["flood", "garbage_handshake", "spread_sources", "valid_handshake"]


def _request(to: Address, target: bytes, noise: bytes, rng: random.Random) -> bytes:
    value = encode_handshake(Handshake(mode=FROM_CLIENT, noise=noise))
    return encode_request_fields(rng.randrange(65536), to, None, None, False, Command.PEER_HANDSHAKE, target, value)


def garbage_handshake(to: Address, public_key: bytes, rng: random.Random) -> bytes:
    """A PEER_HANDSHAKE request for ``public_key``'s server whose Noise message is random bytes of a
    plausible length (what a flooder that cannot be bothered with crypto sends)."""
    return _request(to, blake2b(public_key), rng.randbytes(rng.randrange(96, 240)), rng)


def valid_handshake(to: Address, public_key: bytes, rng: random.Random, *, open_address: Address | None) -> bytes:
    """A PEER_HANDSHAKE request carrying a well-formed Noise IK first message from a fresh random
    client key (each costs the server a full handshake and a reserved UDX stream). With
    ``open_address`` the fake client claims to be reachable there (firewall OPEN)."""
    kp = KeyPair.from_seed(rng.randbytes(32))
    hs = peer_handshake(noise_key_pair(kp), public_key, rng.randbytes(32))
    payload = make_payload(remote_address=open_address, udx_id=rng.randrange(1, 1 << 31))
    return _request(to, blake2b(public_key), hs.send(encode_noise_payload(payload)), rng)


async def flood(
    make: Callable[[], bytes] | list[bytes],
    to: Address,
    *,
    rate: float,
    duration: float | None = None,
    count: int | None = None,
    sources: list[str] | None = None,
) -> int:
    """Send datagrams from ``make()`` (or a prepared list, in order) to ``to`` at ``rate`` per second
    for ``duration`` seconds or ``count`` datagrams, round-robin from one socket per host of
    ``sources`` (default 127.0.0.2); returns how many were sent."""
    prepared = make if isinstance(make, list) else None
    total = count if count is not None else len(prepared) if prepared is not None else None
    socks = []
    for host in sources or ["127.0.0.2"]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((host, 0))
        socks.append(sock)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    try:
        while True:
            elapsed = loop.time() - start
            if duration is not None and elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            if total is not None:
                due = min(due, total)
            while sent < due:
                data = prepared[sent] if prepared is not None else make()  # type: ignore[operator]
                with contextlib.suppress(BlockingIOError, InterruptedError, ConnectionRefusedError):
                    socks[sent % len(socks)].sendto(data, to)
                sent += 1
            if total is not None and sent >= total:
                break
            await asyncio.sleep(0.005)
    finally:
        for sock in socks:
            sock.close()
    return sent


def spread_sources(n: int, first: int = 1) -> list[str]:
    """``n`` distinct loopback hosts 127.<first>.x.y (Linux routes all of 127.0.0.0/8 to lo)."""
    return [f"127.{first}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def _out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _addr(text: str) -> Address:
    host, _, port = text.rpartition(":")
    if not (host.startswith("127.") or host in ("::1", "localhost")) and not os.environ.get("PEERDHT_NETNS"):
        raise SystemExit(f"refusing non-loopback address {text}")
    return (host, int(port))


async def _serve(args: argparse.Namespace) -> None:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.hyperdht.secretstream import SecretStream

    seed = bytes.fromhex(args.seed) if args.seed else os.urandom(32)
    kp = KeyPair.from_seed(seed)
    open_count = 0

    async def handler(stream: SecretStream) -> None:
        nonlocal open_count
        open_count += 1
        error: str | None = None
        stream.write_eof()  # half-closed at once, as `peerdht serve` with stdin at EOF
        try:
            while await stream.read(65536):
                pass
        except Exception as exc:  # report the type; the test asserts on it
            error = type(exc).__name__
        finally:
            open_count -= 1
            stream.close()
            _out({"event": "closed", "error": error, "open": open_count})

    async with HyperDHT(bootstrap=[_addr(b) for b in args.bootstrap], host="127.0.0.1") as dht:
        await dht.fully_bootstrapped()
        server = dht.create_server(handler)
        await server.listen(kp)
        _out({"ready": True, "port": dht.local_address()[1], "publicKey": kp.public_key.hex(), "pid": os.getpid()})
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd.get("op") == "stats":
                _out({"connections": open_count, "pending": server.pending, "dropped": dht.stats["dropped"]})
        await server.close()


async def _flood(args: argparse.Namespace) -> None:
    to = _addr(args.to)
    pk = bytes.fromhex(args.public_key)
    rng = random.Random(os.urandom(16))
    make: Callable[[], bytes] | list[bytes]
    if args.kind == "garbage":

        def make() -> bytes:
            return garbage_handshake(to, pk, rng)
    else:
        n = args.count if args.count is not None else int(args.rate * (args.duration or 1))
        claim = ("127.0.0.2", 9) if args.claim_open else None
        make = [valid_handshake(to, pk, rng, open_address=claim) for _ in range(n)]
        _out({"prepared": n})
    start = time.monotonic()
    sources = spread_sources(args.hosts) if args.hosts > 1 else [args.source]
    sent = await flood(make, to, rate=args.rate, duration=args.duration, count=args.count, sources=sources)
    _out({"sent": sent, "seconds": round(time.monotonic() - start, 2)})


async def _clients(args: argparse.Namespace) -> None:
    from peerdht.aio.hyperdht import HyperDHT

    pk = bytes.fromhex(args.public_key)
    async with HyperDHT(bootstrap=[_addr(b) for b in args.bootstrap], host="127.0.0.1") as dht:
        await dht.fully_bootstrapped()
        streams = []
        for _ in range(args.count):
            s = await dht.connect(pk)
            s.write(b"partial transfer")
            streams.append(s)
        _out({"connected": len(streams)})
        await asyncio.Event().wait()  # until killed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.attack", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bootstrap", action="append", required=True)
    s.add_argument("--seed")
    f = sub.add_parser("flood")
    f.add_argument("kind", choices=["garbage", "valid"])
    f.add_argument("--to", required=True)
    f.add_argument("--public-key", required=True)
    f.add_argument("--rate", type=float, default=1000.0)
    f.add_argument("--count", type=int)
    f.add_argument("--duration", type=float)
    f.add_argument("--source", default="127.0.0.2", help="the attacker's host (default 127.0.0.2)")
    f.add_argument("--hosts", type=int, default=1, help="spread the flood over this many 127.1.x.y hosts")
    f.add_argument("--claim-open", action="store_true", help="valid: claim firewall OPEN at the source")
    c = sub.add_parser("clients")
    c.add_argument("--bootstrap", action="append", required=True)
    c.add_argument("--public-key", required=True)
    c.add_argument("--count", type=int, default=10)
    args = p.parse_args(argv)
    run = {"serve": _serve, "flood": _flood, "clients": _clients}[args.role]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
