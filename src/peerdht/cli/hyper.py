"""HyperDHT commands of the ``peerdht`` CLI (keypair, node, bootstrap, testnet, announce, lookup, records, demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from peerdht.cli.common import (
    CLIError,
    add_json_arg,
    add_network_args,
    emit,
    fmt_addr,
    hex_bytes,
    read_value,
    require_bootstrap,
    run,
    status,
    wait_forever,
)
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

Address = tuple[str, int]



def parse_topic(value: str) -> bytes:
    """A topic: 64 hex characters as given, any other string hashed with BLAKE2b-256 (printed to stderr)."""
    if len(value) == 64:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(value)
    topic = blake2b256(value.encode())
    status(f"topic: {topic.hex()} (BLAKE2b-256 of {value!r})")
    return topic



def register(sub: Any) -> None:
    p = sub.add_parser("keypair", help="print the public key of a key pair (from --seed, or a new random one)")
    p.add_argument("--seed", type=hex_bytes(32), help="32-byte seed as 64 hex characters")
    add_json_arg(p)
    p.set_defaults(func=cmd_keypair)

    p = sub.add_parser("node", help="run a long-lived HyperDHT node (ephemeral until found reachable)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=0, help="UDP port (default: any free port)")
    p.add_argument("--persistent", action="store_true", help="serve records at once instead of adapting")
    p.add_argument("--relay", action="store_true",
                   help="offer blind relaying to peers that cannot holepunch (announced under BLAKE2b('peerdht relay'))")
    add_network_args(p)
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("bootstrap", help="run a bootstrap node on a public IPv4 address")
    p.add_argument("--host", required=True, help="the node's public IPv4 address (its id derives from it)")
    p.add_argument("--port", type=int, default=49737, help="UDP port (default 49737)")
    add_network_args(p)
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("testnet", help="run a local network of persistent nodes until interrupted")
    p.add_argument("--size", type=int, default=10, help="number of nodes (default 10)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add_json_arg(p)
    p.set_defaults(func=cmd_testnet)

    p = sub.add_parser("announce", help="announce a key pair under a topic")
    p.add_argument("topic", metavar="TOPIC", help="64 hex characters, or any string (hashed with BLAKE2b-256)")
    p.add_argument("--seed", type=hex_bytes(32), required=True, help="key pair seed, 64 hex characters")
    p.add_argument("--keep", action="store_true", help="re-announce until interrupted")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between re-announces with --keep")
    add_network_args(p)
    p.set_defaults(func=cmd_announce)

    p = sub.add_parser("unannounce", help="remove a key pair's announce from a topic")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--seed", type=hex_bytes(32), required=True, help="key pair seed, 64 hex characters")
    add_network_args(p)
    p.set_defaults(func=cmd_unannounce)

    p = sub.add_parser("lookup", help="find the peers announced under a topic")
    p.add_argument("topic", metavar="TOPIC")
    add_network_args(p)
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("immutable-put", help="store a value at its BLAKE2b-256 hash")
    p.add_argument("value", metavar="VALUE", help="the value (UTF-8); '-' reads bytes from stdin")
    add_network_args(p)
    p.set_defaults(func=cmd_immutable_put)

    p = sub.add_parser("immutable-get", help="fetch a value by hash; its bytes go to stdout")
    p.add_argument("hash", metavar="HASH", type=hex_bytes(32))
    add_network_args(p)
    p.set_defaults(func=cmd_immutable_get)

    p = sub.add_parser("mutable-put", help="store a signed value under a key pair")
    p.add_argument("value", metavar="VALUE", help="the value (UTF-8); '-' reads bytes from stdin")
    p.add_argument("--seed", type=hex_bytes(32), required=True, help="key pair seed, 64 hex characters")
    p.add_argument("--seq", type=int, default=0, help="sequence number (must grow with every change)")
    add_network_args(p)
    p.set_defaults(func=cmd_mutable_put)

    p = sub.add_parser("mutable-get", help="fetch the newest value signed by a public key; bytes go to stdout")
    p.add_argument("public_key", metavar="PUBKEY", type=hex_bytes(32))
    p.add_argument("--seq", type=int, default=0, help="only accept values with at least this seq")
    add_network_args(p)
    p.set_defaults(func=cmd_mutable_get)

    p = sub.add_parser("demo", help="run the main job on an in-process local network and narrate it")
    p.add_argument("--size", type=int, default=10, help="nodes in the local network (default 10)")
    add_json_arg(p)
    p.set_defaults(func=cmd_demo)




@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """An ephemeral client node, fully bootstrapped; a clear error when no bootstrap node answers."""
    from peerdht.aio.hyperdht import HyperDHT

    boot = require_bootstrap(args)
    async with HyperDHT(bootstrap=boot, ephemeral=True) as dht:
        await dht.fully_bootstrapped()
        if not dht.to_array():
            raise CLIError("no bootstrap node answered: " + ", ".join(fmt_addr(a) for a in boot))
        yield dht


def cmd_keypair(args: argparse.Namespace) -> int:
    kp = KeyPair.from_seed(args.seed) if args.seed else KeyPair.generate()
    emit(args, {"publicKey": kp.public_key.hex()}, kp.public_key.hex() if not args.json else None)
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    from peerdht.aio.hyperdht import HyperDHT

    async def main() -> int:
        ephemeral = False if args.persistent else None
        async with HyperDHT(
            bootstrap=args.bootstrap, host=args.host, port=args.port, ephemeral=ephemeral, firewalled=not args.persistent,
            relay=args.relay,
        ) as dht:
            host, port = dht.local_address()
            emit(args, {"host": host, "port": port, "bootstrap": [fmt_addr(a) for a in args.bootstrap]},
                 f"node listening on {fmt_addr((host, port))}")
            await dht.fully_bootstrapped()
            status(f"bootstrapped: {len(dht.to_array())} nodes in the routing table")
            if args.relay:
                relay = await dht.relay_ready()
                assert relay.public_key is not None
                if not relay.announced:
                    status("relay running; announced once this node is reachable from the internet")
                await relay.wait_announced()
                status(f"relaying as: {relay.public_key.hex()}")
            await wait_forever()
        return 0

    return run(main())


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from peerdht.aio.hyperdht import HyperDHT

    async def main() -> int:
        async with HyperDHT(
            bootstrap=args.bootstrap, host=args.host, port=args.port, ephemeral=False, firewalled=False,
            public_host=args.host,
        ) as dht:
            host, port = dht.local_address()
            emit(args, {"host": host, "port": port, "id": (dht.id or b"").hex()},
                 f"bootstrap node on {fmt_addr((host, port))}")
            await dht.fully_bootstrapped()
            await wait_forever()
        return 0

    return run(main())


def cmd_testnet(args: argparse.Namespace) -> int:
    from peerdht.aio.testnet import Testnet

    if args.size < 1:
        raise CLIError("--size must be at least 1", 2)

    async def main() -> int:
        testnet = await Testnet.create(args.size, host=args.host)
        try:
            emit(args, {"bootstrap": [fmt_addr(a) for a in testnet.bootstrap]})
            status(f"testnet of {args.size} nodes running; join with --bootstrap {fmt_addr(testnet.bootstrap[0])}")
            await wait_forever()
        finally:
            await testnet.destroy()
        return 0

    return run(main())


def cmd_announce(args: argparse.Namespace) -> int:
    topic = parse_topic(args.topic)
    kp = KeyPair.from_seed(args.seed)

    async def main() -> int:
        async with _client(args) as dht:
            while True:
                stored = await dht.announce(topic, kp)
                status(f"announced {kp.public_key.hex()} to {stored} nodes")
                if stored == 0:
                    raise CLIError("no node stored the announce")
                emit(args, {"topic": topic.hex(), "publicKey": kp.public_key.hex(), "nodes": stored},
                     kp.public_key.hex() if not args.json else None)
                if not args.keep:
                    return 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wait_forever(), args.interval)
                    return 0

    return run(main())


def cmd_unannounce(args: argparse.Namespace) -> int:
    topic = parse_topic(args.topic)
    kp = KeyPair.from_seed(args.seed)

    async def main() -> int:
        async with _client(args) as dht:
            await dht.unannounce(topic, kp)
            status(f"unannounced {kp.public_key.hex()}")
            emit(args, {"topic": topic.hex(), "publicKey": kp.public_key.hex()},
                 kp.public_key.hex() if not args.json else None)
        return 0

    return run(main())


def cmd_lookup(args: argparse.Namespace) -> int:
    topic = parse_topic(args.topic)

    async def main() -> int:
        seen: set[bytes] = set()
        async with _client(args) as dht:
            async for reply in dht.lookup(topic):
                for peer in reply.peers:
                    if peer.public_key in seen:
                        continue
                    seen.add(peer.public_key)
                    relays = [fmt_addr(a) for a in peer.relay_addresses]
                    emit(args, {"publicKey": peer.public_key.hex(), "relayAddresses": relays})
        if not seen:
            raise CLIError("no peers found for this topic")
        status(f"{len(seen)} peer(s) found")
        return 0

    return run(main())


def cmd_immutable_put(args: argparse.Namespace) -> int:
    value = read_value(args.value)

    async def main() -> int:
        async with _client(args) as dht:
            digest = await dht.immutable_put(value)
        emit(args, {"hash": digest.hex()}, digest.hex() if not args.json else None)
        return 0

    return run(main())


def cmd_immutable_get(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _client(args) as dht:
            value = await dht.immutable_get(args.hash)
        if value is None:
            raise CLIError("not found")
        if args.json:
            emit(args, {"value": value.decode("utf-8", "replace"), "hash": args.hash.hex()})
        else:
            sys.stdout.buffer.write(value)
            sys.stdout.flush()
        return 0

    return run(main())


def cmd_mutable_put(args: argparse.Namespace) -> int:
    value = read_value(args.value)
    kp = KeyPair.from_seed(args.seed)
    if args.seq < 0:
        raise CLIError("--seq must be >= 0", 2)

    async def main() -> int:
        async with _client(args) as dht:
            result = await dht.mutable_put(kp, value, seq=args.seq)
        emit(args, {"publicKey": result.public_key.hex(), "seq": result.seq},
             result.public_key.hex() if not args.json else None)
        return 0

    return run(main())


def cmd_mutable_get(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _client(args) as dht:
            record = await dht.mutable_get(args.public_key, seq=args.seq)
        if record is None:
            raise CLIError("not found")
        if args.json:
            emit(args, {"value": record.value.decode("utf-8", "replace"), "seq": record.seq})
        else:
            sys.stdout.buffer.write(record.value)
            sys.stdout.flush()
        return 0

    return run(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from peerdht.cli.demo import demo

    return run(demo(args))
