"""``peerdht demo``: the main job on in-process local networks, narrated step by step with timings.

Two parts: HyperDHT (announce/lookup, immutable and mutable records, an encrypted connection by public
key) and the BitTorrent Mainline DHT (announce_peer/get_peers, BEP 44 immutable and mutable items).
Never touches the public network: every node binds 127.0.0.1 and bootstraps from the embedded testnets.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from peerdht.cli.common import CLIError, emit
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

T = TypeVar("T")


TITLE_WIDTH = 46
PATH_NOTE = (
    "      path = how the connection was opened: direct (the server is reachable), reverse (we are, and it\n"
    "      dialled back), lan (same network), consistent/random-probes/birthday (NAT holepunching), relay"
)


class Narrator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.step = 0
        self.section = ""
        self.t0 = time.perf_counter()

    def heading(self, section: str, text: str) -> None:
        self.section = section
        if not self.args.json:
            print(f"\n{text}" if self.step else text)

    def note(self, text: str) -> None:
        if not self.args.json:
            print(text)

    async def run(self, title: str, action: Callable[[], Awaitable[T]], describe: Callable[[T], str]) -> T:
        self.step += 1
        start = time.perf_counter()
        result = await action()
        ms = (time.perf_counter() - start) * 1000
        text = describe(result)
        emit(
            self.args,
            {"step": self.step, "section": self.section, "title": title, "ms": round(ms, 2), "result": text},
            f"[{self.step:2}] {title:<{TITLE_WIDTH}} {ms:8.1f} ms  {text}",
        )
        return result


async def demo(args: argparse.Namespace) -> int:

    n = Narrator(args)
    n.heading("hyperdht", f"peerdht demo, part 1: HyperDHT, a local network of {args.size} nodes on 127.0.0.1 "
              "(in this process)")
    await _hyperdht(n, args)
    n.heading("mainline", f"part 2: the BitTorrent Mainline DHT (BEP 5, BEP 44), {args.size} nodes on 127.0.0.1")
    await _mainline(n, args)
    if not args.json:
        total = (time.perf_counter() - n.t0) * 1000
        print(f"\nall {n.step} steps passed in {total:.0f} ms\n")
        print(_next_steps(getattr(args, "commands", ())))
    return 0


def _next_steps(commands: tuple[str, ...]) -> str:
    """What to try next; ``commands`` are the top-level command names (``args.commands``, set by cli.main)."""
    lines = [
        "next, in three terminals:",
        "  peerdht testnet                             # a local network; prints the HOST:PORT to join it by",
        "  peerdht serve --bootstrap HOST:PORT         # prints 'listening on: KEY'; type, or pipe a file in",
        "  peerdht connect KEY --bootstrap HOST:PORT   # an encrypted pipe to it (netcat semantics)",
        "and: peerdht mainline testnet, peerdht mainline --help, peerdht --help",
    ]
    if "web" in commands:
        lines.append("browsers as DHT peers: pip install 'peerdht[web]' (in a checkout: bash scripts/setup.sh web), "
                     "then peerdht web: a local Mainline network and its page; open the URL it prints")
    return "\n".join(lines)


async def _hyperdht(n: Narrator, args: argparse.Namespace) -> None:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.hyperdht.testnet import Testnet

    testnet: Testnet = await n.run(
        f"start a {args.size}-node testnet", lambda: Testnet.create(args.size),
        lambda t: f"bootstrap {t.bootstrap[0][0]}:{t.bootstrap[0][1]}",
    )
    try:
        alice_kp = KeyPair.from_seed(blake2b256(b"peerdht demo alice"))
        alice: HyperDHT = testnet.node()
        bob: HyperDHT = testnet.node()

        async def join() -> int:
            await alice.open()
            await bob.open()
            await alice.fully_bootstrapped()
            await bob.fully_bootstrapped()
            return len(alice.to_array())

        await n.run("alice and bob join (ephemeral clients)", join, lambda k: f"{k} nodes in alice's table")

        topic = blake2b256(b"peerdht demo topic")
        stored = await n.run(
            "alice announces her key under a topic", lambda: alice.announce(topic, alice_kp),
            lambda k: f"stored on {k} nodes, key {alice_kp.public_key.hex()[:16]}...",
        )
        if not stored:
            raise CLIError("announce reached no node")

        async def lookup() -> list[bytes]:
            keys: list[bytes] = []
            async for reply in bob.lookup(topic):
                keys.extend(p.public_key for p in reply.peers if p.public_key not in keys)
            return keys

        found = await n.run("bob looks the topic up", lookup, lambda ks: f"{len(ks)} peer(s): {ks[0].hex()[:16]}..."
                            if ks else "none")
        if alice_kp.public_key not in found:
            raise CLIError("bob did not find alice")

        value = b"hello from alice, stored by content hash"
        digest = await n.run("alice stores an immutable value", lambda: alice.immutable_put(value),
                             lambda h: f"hash {h.hex()[:16]}...")
        got = await n.run("bob fetches it by hash", lambda: bob.immutable_get(digest),
                          lambda v: repr(v.decode()) if v else "not found")
        if got != value:
            raise CLIError("immutable value did not round-trip")

        await n.run("alice signs a mutable value (seq 1)", lambda: alice.mutable_put(alice_kp, b"status: online", seq=1),
                    lambda r: f"seq {r.seq}")
        await n.run("alice updates it (seq 2)", lambda: alice.mutable_put(alice_kp, b"status: away", seq=2),
                    lambda r: f"seq {r.seq}")
        rec: Any = await n.run("bob fetches the newest by public key", lambda: bob.mutable_get(alice_kp.public_key),
                               lambda r: f"seq {r.seq}: {r.value.decode()!r}" if r else "not found")
        if rec is None or rec.seq != 2:
            raise CLIError("mutable value did not round-trip")

        async def on_connection(stream: Any) -> None:
            line = await stream.readline()
            stream.write(b"hi bob, alice here. you said: " + line)
            stream.write_eof()
            await stream.drain()

        server = alice.create_server(on_connection)
        await n.run("alice listens on her key (self-announce)", lambda: server.listen(alice_kp),
                    lambda s: f"{s.relays} relay node(s)")
        try:
            stream: Any = await n.run("bob connects to alice by public key", lambda: bob.connect(alice_kp.public_key),
                                      lambda s: f"encrypted stream ({s.path}), alice proved key {s.remote_public_key.hex()[:16]}...")

            async def chat() -> bytes:
                stream.write(b"hello alice\n")
                stream.write_eof()
                await stream.drain()
                reply: bytes = await stream.read()
                stream.close()
                return reply

            n.note(PATH_NOTE)
            answer = await n.run("bob and alice exchange messages", chat, lambda r: repr(r.decode()))
            if not answer.startswith(b"hi bob"):
                raise CLIError("the connection did not carry the messages")
        finally:
            await server.close()
    finally:
        await testnet.close()


async def _mainline(n: Narrator, args: argparse.Namespace) -> None:
    from peerdht.aio.mainline import MainlineDHT, MainlineTestnet
    from peerdht.mainline.events import PutResult

    testnet: MainlineTestnet = await n.run(
        f"start a {args.size}-node Mainline testnet", lambda: MainlineTestnet.create(args.size),
        lambda t: f"bootstrap {t.bootstrap[0][0]}:{t.bootstrap[0][1]}",
    )
    try:
        carol: MainlineDHT = testnet.node()
        dave: MainlineDHT = testnet.node(read_only=True)

        async def join() -> int:
            await carol.open()
            await dave.open()
            return len(carol.core.table)

        await n.run("carol and dave (read-only, BEP 43) join", join,
                    lambda k: f"{k} nodes in carol's table")
        info_hash = hashlib.sha1(b"peerdht demo torrent").digest()
        stored = await n.run("carol announces a torrent (announce_peer)",
                             lambda: carol.announce_peer(info_hash, 6881),
                             lambda k: f"stored on {k} nodes, info hash {info_hash.hex()[:16]}...")
        if not stored:
            raise CLIError("announce_peer reached no node")

        async def get_peers() -> list[tuple[str, int]]:
            return [peer async for peer in dave.get_peers(info_hash)]

        peers = await n.run("dave asks for its peers (get_peers)", get_peers,
                            lambda ps: ", ".join(f"{h}:{p}" for h, p in dict.fromkeys(ps)) or "none")
        if not any(port == 6881 for _, port in peers):
            raise CLIError("dave did not find carol's announce")

        target = await n.run("carol stores an immutable item (BEP 44)", lambda: carol.put(b"hello from carol"),
                             lambda t: f"target {t.hex()[:16]}... (SHA-1 of the bencoded value)")
        got = await n.run("dave fetches it by target", lambda: dave.get(target),
                          lambda v: _text(v) if v is not None else "not found")
        if got != b"hello from carol":
            raise CLIError("the immutable item did not round-trip")

        carol_kp = KeyPair.from_seed(blake2b256(b"peerdht demo carol"))
        put: PutResult = await n.run("carol signs a mutable item (seq: newest + 1)",
                                     lambda: carol.put_mutable(carol_kp, b"carol: online"),
                                     lambda r: f"seq {r.seq} on {r.stored} nodes")
        item: Any = await n.run("dave fetches it by carol's public key", lambda: dave.get_mutable(carol_kp.public_key),
                                lambda i: f"seq {i.seq}: {_text(i.v)}" if i else "not found")
        if item is None or item.seq != put.seq:
            raise CLIError("the mutable item did not round-trip")
    finally:
        await testnet.close()


def _text(value: object) -> str:
    return repr(value.decode("utf-8", "replace")) if isinstance(value, bytes) else repr(value)
