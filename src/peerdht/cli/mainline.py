"""``peerdht mainline ...``: the BitTorrent Mainline DHT from the command line.

Same conventions as the HyperDHT commands (:mod:`peerdht.cli.common`): ``--bootstrap HOST:PORT``
(repeatable, required for client commands: the public routers are never contacted unless named),
``--json`` (one JSON object per line on stdout), exit 0 ok / 1 not found or failed / 2 bad arguments.
One-shot client commands run a BEP 43 read-only node, so they never enter other nodes' routing tables.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from peerdht.cli.common import (
    MAINLINE_MAX_VALUE,
    CLIError,
    Subparsers,
    add_json_arg,
    add_network_args,
    check_value_size,
    emit,
    fmt_addr,
    hex_bytes,
    no_answer,
    parse_hostport,
    read_value,
    require_bootstrap,
    run,
    stale_seq_message,
    status,
    value_json,
    verbose,
    wait_forever,
)
from peerdht.cli.web import cmd_node_web, web_bind
from peerdht.encoding.bencode import Value, encode
from peerdht.errors import RequestTimeout
from peerdht.mainline.crypto import KeyPair
from peerdht.mainline.messages import ERROR_SEQ_TOO_LOW

Address = tuple[str, int]



def _salt(value: str) -> bytes:
    salt = value.encode()
    if len(salt) > 64:
        raise argparse.ArgumentTypeError("salt is at most 64 bytes")
    return salt


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 1..65535, got {value!r}")
    return int(value)


def _bind_port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value!r}")
    return int(value)


def register(subparsers: Subparsers) -> None:
    """Add ``peerdht mainline`` and its sub-commands."""
    top = subparsers.add_parser(
        "mainline", help="BitTorrent Mainline DHT (BEP 5/32/42/43/44/51): nodes, peers, BEP 44 items"
    )
    sub = top.add_subparsers(dest="mainline_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("node", help="run a long-lived Mainline DHT node until interrupted")
    p.add_argument("--host", default="0.0.0.0", help="address to bind ('::' for IPv6)")
    p.add_argument("--port", type=_bind_port, default=0, help="UDP port (0: any free port)")
    p.add_argument("--state", metavar="FILE", help="routing table file: restored at start, saved at exit")
    p.add_argument("--read-only", action="store_true", help="BEP 43 read-only node (answers no queries)")
    p.add_argument("--web", metavar="HOST:PORT", type=web_bind, help="also serve browsers: the page, KRPC over "
                   "WebSocket/WebRTC (peerdht web; needs the [web] extra)")
    add_network_args(p)
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("testnet", help="run a local network of Mainline nodes until interrupted")
    p.add_argument("--size", type=int, default=10, help="number of nodes")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    add_json_arg(p)
    p.set_defaults(func=cmd_testnet)

    p = sub.add_parser("get-peers", help="find the peers of an info hash (one per line)")
    p.add_argument("info_hash", metavar="INFOHASH", type=hex_bytes(20), help="the torrent's info hash, 40 hex characters")
    add_network_args(p)
    p.set_defaults(func=cmd_get_peers)

    p = sub.add_parser("announce", help="announce a peer for an info hash to the closest nodes")
    p.add_argument("info_hash", metavar="INFOHASH", type=hex_bytes(20), help="the torrent's info hash, 40 hex characters")
    p.add_argument("--port", type=_port, required=True, help="the port peers should connect to")
    add_network_args(p)
    p.set_defaults(func=cmd_announce)

    p = sub.add_parser("put", help="store an immutable BEP 44 item (VALUE as a bencoded byte string)")
    p.add_argument("value", metavar="VALUE", help=f"the value (UTF-8; at most {MAINLINE_MAX_VALUE:,} bytes once "
                   "bencoded); '-' reads bytes from stdin")
    add_network_args(p)
    p.set_defaults(func=cmd_put)

    p = sub.add_parser("get", help="fetch an immutable BEP 44 item; its bytes go to stdout")
    p.add_argument("target", metavar="TARGET", type=hex_bytes(20),
                   help="the item's SHA-1 target, 40 hex characters (as put printed it)")
    add_network_args(p)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("put-mutable", help="store a signed, mutable BEP 44 item; prints the public key to get it with")
    p.add_argument("value", metavar="VALUE", help=f"the value (UTF-8; at most {MAINLINE_MAX_VALUE:,} bytes once "
                   "bencoded); '-' reads bytes from stdin")
    p.add_argument("--seed", type=hex_bytes(32), required=True, help="Ed25519 seed, 64 hex characters")
    p.add_argument("--salt", type=_salt, default=b"", help="salt (UTF-8, at most 64 bytes)")
    p.add_argument("--seq", type=int, help="sequence number, must grow with every change (default: one more "
                   "than the newest stored, 1 if none: as `peerdht mutable-put`)")
    add_network_args(p)
    p.set_defaults(func=cmd_put_mutable)

    p = sub.add_parser("get-mutable", help="fetch the newest mutable BEP 44 item; its bytes go to stdout")
    p.add_argument("public_key", metavar="PUBKEY", type=hex_bytes(32),
                   help="the signer's public key, 64 hex characters (as put-mutable printed it)")
    p.add_argument("--salt", type=_salt, default=b"", help="salt (UTF-8, at most 64 bytes)")
    add_network_args(p)
    p.set_defaults(func=cmd_get_mutable)

    p = sub.add_parser("sample", help="BEP 51: ask one node for a sample of the info hashes it stores")
    p.add_argument("addr", metavar="HOST:PORT", type=parse_hostport, help="the node to ask")
    add_network_args(p)
    p.set_defaults(func=cmd_sample)



def _value_bytes(value: Value) -> bytes:
    """A fetched value for stdout: byte strings as they are, other bencode types bencoded."""
    return value if isinstance(value, bytes) else encode(value)



@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """A bootstrapped BEP 43 read-only client; a clear error when no bootstrap node answers."""
    from peerdht.aio.mainline import MainlineDHT

    boot = require_bootstrap(args, socket.AF_UNSPEC)
    host = "::" if all(":" in h for h, _ in boot) else "0.0.0.0"
    dht = MainlineDHT(bootstrap=boot, host=host, read_only=True)
    verbose(args, f"bootstrapping from {', '.join(fmt_addr(a) for a in boot)}")
    try:
        await dht.open()
    except RequestTimeout:
        await dht.close()
        raise no_answer(boot) from None
    except BaseException:
        await dht.close()
        raise
    try:
        if not len(dht.core.table):
            raise no_answer(boot)
        verbose(args, f"bootstrapped: {len(dht.core.table)} nodes in the routing table")
        yield dht
    finally:
        await dht.close()


def cmd_node(args: argparse.Namespace) -> int:
    from peerdht.aio.mainline import MainlineDHT

    boot = require_bootstrap(args, socket.AF_UNSPEC) if args.bootstrap else []
    if args.web is not None:
        return cmd_node_web(args, boot)

    async def main() -> int:
        dht = MainlineDHT(
            bootstrap=boot,
            host=args.host,
            port=args.port,
            state_file=args.state,
            read_only=args.read_only,
        )
        await dht.open(bootstrap=False)
        try:
            host, port = dht.address()
            emit(
                args,
                {
                    "host": host,
                    "port": port,
                    "id": dht.node_id.hex(),
                    "bootstrap": [fmt_addr(a) for a in boot],
                },
                f"mainline node {dht.node_id.hex()} listening on {fmt_addr((host, port))}",
            )
            if boot or len(dht.core.table):
                with contextlib.suppress(Exception):
                    await dht.bootstrap()
            if len(dht.core.table):
                status(f"bootstrapped: {len(dht.core.table)} nodes in the routing table")
            elif boot:
                tried = ", ".join(fmt_addr(a) for a in boot)
                status(f"warning: no bootstrap node answered (tried {tried}); running alone until one does")
            else:
                status("warning: no --bootstrap given: this node is a network of its own until others join it")
            await wait_forever()
        finally:
            await dht.close()
        return 0

    return run(main())


def cmd_testnet(args: argparse.Namespace) -> int:
    from peerdht.aio.mainline import MainlineTestnet

    if args.size < 1:
        raise CLIError("--size must be at least 1", 2)

    async def main() -> int:
        testnet = await MainlineTestnet.create(args.size, host=args.host)
        try:
            emit(args, {"bootstrap": [fmt_addr(a) for a in testnet.bootstrap]})
            status(
                f"mainline testnet of {args.size} nodes; join with --bootstrap {fmt_addr(testnet.bootstrap[0])}"
            )
            await wait_forever()
        finally:
            await testnet.close()
        return 0

    return run(main())


def cmd_get_peers(args: argparse.Namespace) -> int:
    async def main() -> int:
        found = 0
        async with _client(args) as dht:
            async for host, port in dht.get_peers(args.info_hash):
                found += 1
                verbose(args, f"peer {found}: {fmt_addr((host, port))}")
                emit(args, {"host": host, "port": port}, fmt_addr((host, port)) if not args.json else None)
        if not found:
            raise CLIError("no peers found for this info hash")
        status(f"{found} peer(s) found")
        return 0

    return run(main())


def cmd_announce(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _client(args) as dht:
            stored = await dht.announce_peer(args.info_hash, args.port)
        if not stored:
            raise CLIError("no node accepted the announce")
        emit(
            args,
            {"infoHash": args.info_hash.hex(), "port": args.port, "nodes": stored},
            f"announced {args.info_hash.hex()} port {args.port} to {stored} node(s)",
        )
        return 0

    return run(main())


def cmd_put(args: argparse.Namespace) -> int:
    value = read_value(args.value)
    check_value_size(len(encode(value)), MAINLINE_MAX_VALUE)

    async def main() -> int:
        async with _client(args) as dht:
            result = await dht.put_result(value)
        if not result.stored:
            raise CLIError("no node stored the item")
        emit(
            args,
            {"target": result.target.hex(), "nodes": result.stored},
            result.target.hex() if not args.json else None,
        )
        return 0

    return run(main())


def _print_value(args: argparse.Namespace, value: Value, extra: dict[str, Any]) -> None:
    raw = _value_bytes(value)
    if args.json:
        emit(args, {**value_json(raw), **extra})
    else:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()


def cmd_get(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _client(args) as dht:
            value = await dht.get(args.target)
        if value is None:
            raise CLIError("not found")
        _print_value(args, value, {"target": args.target.hex()})
        return 0

    return run(main())


def cmd_put_mutable(args: argparse.Namespace) -> int:
    value = read_value(args.value)
    check_value_size(len(encode(value)), MAINLINE_MAX_VALUE)
    if args.seq is not None and not 0 <= args.seq < 2**63:
        raise CLIError("--seq must be in [0, 2^63)", 2)
    kp = KeyPair.from_seed(args.seed)

    async def main() -> int:
        async with _client(args) as dht:
            result = await dht.put_mutable(kp, value, salt=args.salt, seq=args.seq)
            if not result.stored:
                if ERROR_SEQ_TOO_LOW in result.errors:
                    newest = await dht.get_mutable(kp.public_key, args.salt)
                    raise CLIError(stale_seq_message(result.seq, None if newest is None else newest.seq))
                codes = ", ".join(str(c) for c in sorted(set(result.errors))) or "no answer"
                raise CLIError(f"no node stored the item (error codes: {codes})")
        salt = f" --salt {args.salt.decode(errors='replace')}" if args.salt else ""
        status(f"stored seq {result.seq} on {result.stored} node(s), target {result.target.hex()}; "
               f"fetch it with: peerdht mainline get-mutable {kp.public_key.hex()}{salt}")
        emit(
            args,
            {
                "target": result.target.hex(),
                "publicKey": kp.public_key.hex(),
                "seq": result.seq,
                "nodes": result.stored,
            },
            kp.public_key.hex() if not args.json else None,
        )
        return 0

    return run(main())


def cmd_get_mutable(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _client(args) as dht:
            item = await dht.get_mutable(args.public_key, args.salt)
        if item is None:
            raise CLIError("not found")
        _print_value(args, item.v, {"seq": item.seq, "publicKey": args.public_key.hex()})
        return 0

    return run(main())


def cmd_sample(args: argparse.Namespace) -> int:
    async def main() -> int:
        from peerdht.aio.mainline import MainlineDHT

        host = "::" if ":" in args.addr[0] else "0.0.0.0"
        async with MainlineDHT(bootstrap=args.bootstrap, host=host, read_only=True) as dht:
            result = await dht.sample_infohashes(args.addr)
        emit(
            args,
            {
                "id": result.id.hex(),
                "samples": [s.hex() for s in result.samples],
                "num": result.num,
                "interval": result.interval,
            },
            "\n".join(s.hex() for s in result.samples) if not args.json else None,
        )
        return 0

    return run(main())
