"""``peerdht demo``: the main job on an in-process local network, narrated step by step with timings.

Never touches the public network: every node binds 127.0.0.1 and bootstraps from the embedded testnet.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from peerdht.cli.common import CLIError, emit
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

T = TypeVar("T")


class Narrator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.step = 0
        self.t0 = time.perf_counter()

    async def run(self, title: str, action: Callable[[], Awaitable[T]], describe: Callable[[T], str]) -> T:
        self.step += 1
        start = time.perf_counter()
        result = await action()
        ms = (time.perf_counter() - start) * 1000
        text = describe(result)
        emit(
            self.args,
            {"step": self.step, "title": title, "ms": round(ms, 2), "result": text},
            f"[{self.step}] {title:<44} {ms:8.1f} ms  {text}",
        )
        return result


async def demo(args: argparse.Namespace) -> int:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.testnet import Testnet

    n = Narrator(args)
    if not args.json:
        print(f"peerdht demo: a local HyperDHT network of {args.size} nodes on 127.0.0.1 (in this process)\n")
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

            answer = await n.run("bob and alice exchange messages", chat, lambda r: repr(r.decode()))
            if not answer.startswith(b"hi bob"):
                raise CLIError("the connection did not carry the messages")
        finally:
            await server.close()

        if not args.json:
            total = (time.perf_counter() - n.t0) * 1000
            print(f"\nall steps passed in {total:.0f} ms")
    finally:
        await testnet.destroy()
    return 0
