"""HyperDHT commands of the ``peerdht`` CLI (keypair, node, bootstrap, testnet, announce, lookup, records, demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from peerdht.cli.common import (
    HYPER_MAX_VALUE,
    CLIError,
    add_json_arg,
    add_network_args,
    check_value_size,
    client_host,
    emit,
    fmt_addr,
    hex_bytes,
    load_key_pair,
    no_answer,
    read_value,
    require_bootstrap,
    run,
    stale_seq_message,
    status,
    value_json,
    verbose,
    wait_forever,
)
from peerdht.errors import RemoteError
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

Address = tuple[str, int]

TOPIC_HELP = "64 hex characters, or any other string (hashed with BLAKE2b-256; the hash is printed to stderr)"
SEED_HELP = "key pair seed, 64 hex characters (see `peerdht keypair`)"


def parse_topic(value: str) -> bytes:
    """A topic: 64 hex characters as given, any other string hashed with BLAKE2b-256 (printed to stderr)."""
    if len(value) == 64:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(value)
    topic = blake2b256(value.encode())
    status(f"topic: {topic.hex()} (BLAKE2b-256 of {value!r})")
    return topic


def register(sub: Any) -> None:
    p = sub.add_parser(
        "keypair",
        help="make a key pair (or show the one of --seed): public key and secret seed",
        description="Without --seed, make a new key pair and print its public key and its seed. The seed is "
        "the secret: whoever has it can announce and sign as this key. Keep it (--key-file writes it to a "
        "file with mode 0600) and pass it back with --seed or --key-file.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=hex_bytes(32), help="32-byte seed as 64 hex characters")
    g.add_argument("--key-file", type=Path,
                   help="file holding the seed as hex: read if it exists, else a new seed is written to it (mode 0600)")
    add_json_arg(p)
    p.set_defaults(func=cmd_keypair)

    p = sub.add_parser("node", help="run a long-lived HyperDHT node (ephemeral until found reachable)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind")
    p.add_argument("--port", type=int, default=0, help="UDP port (0: any free port)")
    p.add_argument("--persistent", action="store_true", help="serve records at once instead of adapting")
    p.add_argument("--relay", action="store_true",
                   help="offer blind relaying to peers that cannot holepunch (announced under BLAKE2b('peerdht relay'))")
    add_network_args(p)
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("bootstrap", help="run a bootstrap node on a public IPv4 address")
    p.add_argument("--host", required=True, help="the node's public IPv4 address (its id derives from it)")
    p.add_argument("--port", type=int, default=49737, help="UDP port")
    add_network_args(p)
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("testnet", help="run a local network of persistent nodes until interrupted")
    p.add_argument("--size", type=int, default=10, help="number of nodes")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    add_json_arg(p)
    p.set_defaults(func=cmd_testnet)

    p = sub.add_parser("announce", help="announce a key pair under a topic")
    p.add_argument("topic", metavar="TOPIC", help=TOPIC_HELP)
    p.add_argument("--seed", type=hex_bytes(32), required=True, help=SEED_HELP)
    p.add_argument("--keep", action="store_true", help="re-announce every --interval seconds until interrupted")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between re-announces with --keep (> 0)")
    add_network_args(p)
    p.set_defaults(func=cmd_announce)

    p = sub.add_parser("unannounce", help="remove a key pair's announce from a topic")
    p.add_argument("topic", metavar="TOPIC", help=TOPIC_HELP)
    p.add_argument("--seed", type=hex_bytes(32), required=True, help=SEED_HELP)
    add_network_args(p)
    p.set_defaults(func=cmd_unannounce)

    p = sub.add_parser("lookup", help="find the peers announced under a topic (one line per peer)")
    p.add_argument("topic", metavar="TOPIC", help=TOPIC_HELP)
    add_network_args(p)
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("immutable-put", help="store a value at its BLAKE2b-256 hash")
    p.add_argument("value", metavar="VALUE",
                   help=f"the value (UTF-8; at most {HYPER_MAX_VALUE:,} bytes); '-' reads bytes from stdin")
    add_network_args(p)
    p.set_defaults(func=cmd_immutable_put)

    p = sub.add_parser("immutable-get", help="fetch a value by hash; its bytes go to stdout")
    p.add_argument("hash", metavar="HASH", type=hex_bytes(32),
                   help="the value's BLAKE2b-256 hash, 64 hex characters (as immutable-put printed it)")
    add_network_args(p)
    p.set_defaults(func=cmd_immutable_get)

    p = sub.add_parser("mutable-put", help="store a signed value under a key pair")
    p.add_argument("value", metavar="VALUE",
                   help=f"the value (UTF-8; at most {HYPER_MAX_VALUE:,} bytes); '-' reads bytes from stdin")
    p.add_argument("--seed", type=hex_bytes(32), required=True, help=SEED_HELP)
    p.add_argument("--seq", type=int, help="sequence number, must grow with every change (default: one more "
                   "than the newest stored, 1 if none: as `peerdht mainline put-mutable`)")
    add_network_args(p)
    p.set_defaults(func=cmd_mutable_put)

    p = sub.add_parser("mutable-get", help="fetch the newest value signed by a public key; bytes go to stdout")
    p.add_argument("public_key", metavar="PUBKEY", type=hex_bytes(32),
                   help="the signer's public key, 64 hex characters (as mutable-put printed it)")
    p.add_argument("--seq", type=int, default=0, help="only accept values with at least this seq")
    add_network_args(p)
    p.set_defaults(func=cmd_mutable_get)

    p = sub.add_parser("demo", help="run the main job on an in-process local network and narrate it")
    p.add_argument("--size", type=int, default=10, help="nodes in each local network")
    add_json_arg(p)
    p.set_defaults(func=cmd_demo)


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """An ephemeral client node, fully bootstrapped; a clear error when no bootstrap node answers."""
    from peerdht.aio.hyperdht import HyperDHT

    boot = require_bootstrap(args)
    async with HyperDHT(bootstrap=boot, ephemeral=True, host=client_host(boot)) as dht:
        verbose(args, f"bootstrapping from {', '.join(fmt_addr(a) for a in boot)}")
        await dht.fully_bootstrapped()
        if not dht.to_array():
            raise no_answer(boot)
        verbose(args, f"bootstrapped: {len(dht.to_array())} nodes in the routing table")
        yield dht


def cmd_keypair(args: argparse.Namespace) -> int:
    if args.key_file is not None:
        made = not args.key_file.exists()
        kp = load_key_pair(None, args.key_file)
        if made:
            status(f"new key pair; its seed (secret) is in {args.key_file} (mode 0600)")
        emit(args, {"publicKey": kp.public_key.hex(), "keyFile": str(args.key_file)},
             kp.public_key.hex() if not args.json else None)
        return 0
    kp = KeyPair.from_seed(args.seed if args.seed is not None else os.urandom(32))
    if args.seed is None:
        status("warning: the seed is secret: whoever has it can announce and sign as this key. Keep it "
               "(or use --key-file FILE) and pass it back with --seed.")
    emit(args, {"publicKey": kp.public_key.hex(), "seed": kp.seed.hex()},
         None if args.json else kp.public_key.hex() if args.seed is not None
         else f"public key: {kp.public_key.hex()}\nseed:       {kp.seed.hex()}")
    return 0


def _warn_alone(dht: Any, boot: list[Address]) -> None:
    """``node``: say it when no bootstrap node answered instead of running on silently."""
    if not boot:
        status("warning: no --bootstrap given: this node is a network of its own until others join it")
    elif not dht.to_array():
        status(f"warning: no bootstrap node answered (tried {', '.join(fmt_addr(a) for a in boot)}); "
               "running alone until one does")
    else:
        status(f"bootstrapped: {len(dht.to_array())} nodes in the routing table")


def cmd_node(args: argparse.Namespace) -> int:
    from peerdht.aio.hyperdht import HyperDHT

    boot = require_bootstrap(args) if args.bootstrap else []

    async def main() -> int:
        ephemeral = False if args.persistent else None
        async with HyperDHT(
            bootstrap=boot, host=args.host, port=args.port, ephemeral=ephemeral, firewalled=not args.persistent,
            relay=args.relay,
        ) as dht:
            host, port = dht.local_address()
            emit(args, {"host": host, "port": port, "bootstrap": [fmt_addr(a) for a in boot]},
                 f"node listening on {fmt_addr((host, port))}")
            await dht.fully_bootstrapped()
            _warn_alone(dht, boot)
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

    boot = require_bootstrap(args) if args.bootstrap else []

    async def main() -> int:
        async with HyperDHT(
            bootstrap=boot, host=args.host, port=args.port, ephemeral=False, firewalled=False,
            public_host=args.host,
        ) as dht:
            host, port = dht.local_address()
            emit(args, {"host": host, "port": port, "id": (dht.id or b"").hex()},
                 f"bootstrap node on {fmt_addr((host, port))}")
            await dht.fully_bootstrapped()
            if boot and not dht.to_array():
                status(f"warning: no other bootstrap node answered (tried {', '.join(fmt_addr(a) for a in boot)})")
            await wait_forever()
        return 0

    return run(main())


def cmd_testnet(args: argparse.Namespace) -> int:
    from peerdht.aio.hyperdht.testnet import Testnet

    if args.size < 1:
        raise CLIError("--size must be at least 1", 2)

    async def main() -> int:
        testnet = await Testnet.create(args.size, host=args.host)
        try:
            emit(args, {"bootstrap": [fmt_addr(a) for a in testnet.bootstrap]})
            status(f"testnet of {args.size} nodes running; join with --bootstrap {fmt_addr(testnet.bootstrap[0])}")
            await wait_forever()
        finally:
            await testnet.close()
        return 0

    return run(main())


def cmd_announce(args: argparse.Namespace) -> int:
    if args.keep and not args.interval > 0:
        raise CLIError("--interval must be more than 0 seconds", 2)
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
        replies = 0
        async with _client(args) as dht:
            verbose(args, f"looking up {topic.hex()} (each node that holds announces answers with them)")
            start = time.perf_counter()
            async for reply in dht.lookup(topic):
                replies += 1
                new = [p for p in reply.peers if p.public_key not in seen]
                verbose(args, f"reply {replies} from {fmt_addr(reply.from_addr)}: {len(reply.peers)} peer(s), "
                        f"{len(new)} new")
                for peer in new:
                    seen.add(peer.public_key)
                    relays = [fmt_addr(a) for a in peer.relay_addresses]
                    emit(args, {"publicKey": peer.public_key.hex(), "relayAddresses": relays})
            verbose(args, f"lookup done in {(time.perf_counter() - start) * 1000:.0f} ms: "
                    f"{replies} node(s) held announces")
        if not seen:
            raise CLIError("no peers found for this topic")
        status(f"{len(seen)} peer(s) found")
        return 0

    return run(main())


def cmd_immutable_put(args: argparse.Namespace) -> int:
    value = read_value(args.value)
    check_value_size(len(value), HYPER_MAX_VALUE)

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
            emit(args, {**value_json(value), "hash": args.hash.hex()})
        else:
            sys.stdout.buffer.write(value)
            sys.stdout.flush()
        return 0

    return run(main())


def cmd_mutable_put(args: argparse.Namespace) -> int:
    value = read_value(args.value)
    check_value_size(len(value), HYPER_MAX_VALUE)
    kp = KeyPair.from_seed(args.seed)
    if args.seq is not None and args.seq < 0:
        raise CLIError("--seq must be >= 0", 2)

    async def main() -> int:
        async with _client(args) as dht:
            seq = args.seq
            if seq is None:
                newest = await dht.mutable_get(kp.public_key)
                seq = 1 if newest is None else newest.seq + 1
                verbose(args, f"newest stored seq: {'none' if newest is None else newest.seq}; using {seq}")
            try:
                result = await dht.mutable_put(kp, value, seq=seq)
            except RemoteError as exc:
                if exc.code not in (RemoteError.SEQ_REUSED, RemoteError.SEQ_TOO_LOW):
                    raise
                stored = await dht.mutable_get(kp.public_key)
                raise CLIError(stale_seq_message(seq, None if stored is None else stored.seq)) from None
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
            emit(args, {**value_json(record.value), "seq": record.seq})
        else:
            sys.stdout.buffer.write(record.value)
            sys.stdout.flush()
        return 0

    return run(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from peerdht.cli.demo import demo

    return run(demo(args))
