"""Churn on loopback with real JS nodes (issue 14 item 3): Python and JS clients side by side.

A network of ``--size`` nodes on 127.0.0.1, half Python (this process) and half JS (one node process), all
joined through the first Python node (which stays):

* ``--profile hyper``: persistent :class:`HyperDHT` nodes and npm hyperdht nodes (``bench/js/churn-nodes.js``);
  the clients announce a topic (found by the announcer's public key) and put a mutable record.
* ``--profile mainline``: :class:`MainlineDHT` nodes and npm bittorrent-dht nodes (``bench/js/churn-mainline.js``);
  the clients ``announce_peer`` an info hash on a port of their own (found as ``127.0.0.1:port``) and put a
  BEP 44 mutable item.

For ``--minutes`` of real time, nodes leave (destroyed without warning, alternately Python and JS) and new
ones join until ``--churn`` of the network has been replaced. Every ``--every`` seconds a Python client and a
JS client each store a new record (announce + mutable put); ``--delay`` seconds later each client looks up
both records and gets both values (its own and the other language's). Printed: per client, the success rate
of lookups and of mutable gets, and failed stores. Loopback only, explicit local bootstrap; needs ``npm ci``.
``tests/interop/test_churn.py`` runs :func:`run` on a small network for a minute per profile.

    python bench/churn.py [--profile hyper|mainline] [--size 200] [--minutes 10] [--churn 0.3] [--every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import JSProcess, require_node, start_js  # noqa: E402
from peerdht.aio.hyperdht import HyperDHT  # noqa: E402
from peerdht.aio.mainline import MainlineDHT  # noqa: E402
from peerdht.hyper.crypto import KeyPair  # noqa: E402
from peerdht.mainline.crypto import KeyPair as MainlineKeyPair  # noqa: E402

CLIENTS = ("python", "js")
Address = tuple[str, int]


@dataclass
class Tally:
    """One client's counts: lookups that found the announcer, gets that returned the value, failed stores."""

    lookups: int = 0
    lookups_ok: int = 0
    gets: int = 0
    gets_ok: int = 0
    stores: int = 0
    stores_failed: int = 0

    def rates(self) -> tuple[float, float]:
        """(lookup success, get success), each in [0, 1]."""
        return self.lookups_ok / max(1, self.lookups), self.gets_ok / max(1, self.gets)


@dataclass(frozen=True, kw_only=True)
class Record:
    """What one client stored: an announce on ``topic`` (Mainline: on ``port``) and a mutable value under
    the key pair made from ``seed``."""

    who: str
    topic: bytes
    seed: bytes
    value: bytes
    port: int


@dataclass(kw_only=True)
class Result:
    """One churn run."""

    profile: str
    size: int
    replaced: int
    minutes: float
    setup_s: float
    tallies: dict[str, Tally] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for who, t in self.tallies.items():
            lk, gt = t.rates()
            out.append(
                f"{who:6} client: lookups {t.lookups_ok}/{t.lookups} ({lk:.1%}), "
                f"mutable gets {t.gets_ok}/{t.gets} ({gt:.1%}), stores failed {t.stores_failed}/{t.stores}"
            )
        out.extend(f"  failed: {f}" for f in self.failures)
        out.append(
            f"{self.replaced} nodes replaced ({self.replaced / self.size:.0%}) over {self.minutes} min"
        )
        return out


class JS:
    """The JS process; commands run concurrently there, replies are matched by id."""

    def __init__(self, proc: JSProcess, timeout: float) -> None:
        self.proc = proc
        self.timeout = timeout
        self.next = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                line = await self.proc.line(3600)
            except Exception as exc:
                print(f"JS process: {exc}", file=sys.stderr)
                for fut in self.waiting.values():
                    if not fut.done():
                        fut.set_result({"error": f"JS process: {exc}"})
                return
            fut = self.waiting.pop(line.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(line)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next] = fut
        await self.proc.send({"id": self.next, "op": op, **args})
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            return {"error": "timeout"}

    async def close(self) -> None:
        self.reader.cancel()
        await self.proc.close()


class Network(Protocol):
    """One profile's network: Python nodes here, JS nodes in one node process, one client of each."""

    async def start(self, size: int) -> None: ...
    async def replace(self, python: bool) -> None: ...
    def record(self, who: str, seq: int) -> Record: ...
    async def store(self, rec: Record) -> tuple[int, int, str]: ...  # (stores, failed, how many took them)
    async def check(self, who: str, rec: Record) -> tuple[bool, bool]: ...  # (lookup ok, get ok)
    async def close(self) -> None: ...


async def _ok(coro: Any, timeout: float) -> Any:
    """``await coro`` within ``timeout`` seconds; ``None`` if it fails or times out."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except Exception:
        return None


class HyperNet:
    """Persistent :class:`HyperDHT` nodes and npm hyperdht nodes."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.rng = random.Random(1)
        self.first: HyperDHT | None = None
        self.boot: list[Address] = []
        self.nodes: list[HyperDHT] = []
        self.client: HyperDHT | None = None
        self.js: JS | None = None

    async def _spawn_py(self) -> None:
        n = HyperDHT(
            host="127.0.0.1", ephemeral=False, firewalled=False, bootstrap=self.boot, public_host="127.0.0.1"
        )
        await n.open()
        await n.fully_bootstrapped()
        self.nodes.append(n)

    async def start(self, size: int) -> None:
        self.first = HyperDHT(
            host="127.0.0.1", ephemeral=False, firewalled=False, bootstrap=[], public_host="127.0.0.1"
        )
        await self.first.open()
        await self.first.fully_bootstrapped()
        self.boot = [self.first.local_address()]
        for _ in range(size // 2 - 1):
            await self._spawn_py()
        host, port = self.boot[0]
        proc = await start_js("../../bench/js/churn-nodes.js", str(size - size // 2), f"{host}:{port}")
        try:
            ready = await proc.line(600)
        except BaseException:
            await proc.close()
            raise
        assert ready.get("ready"), ready
        self.js = JS(proc, 4 * self.timeout)
        self.client = HyperDHT(host="127.0.0.1", ephemeral=True, bootstrap=self.boot)
        await self.client.open()
        await self.client.fully_bootstrapped()

    async def replace(self, python: bool) -> None:
        assert self.js is not None
        if python and self.nodes:
            n = self.nodes.pop(self.rng.randrange(len(self.nodes)))
            await n.destroy()
            await self._spawn_py()
        else:
            await self.js.ask("kill")
            await self.js.ask("spawn")

    def record(self, who: str, seq: int) -> Record:
        return Record(who=who, topic=os.urandom(32), seed=os.urandom(32), value=b"churn %d" % seq, port=0)

    async def store(self, rec: Record) -> tuple[int, int, str]:
        assert self.client is not None and self.js is not None
        failed = 0
        if rec.who == "python":
            kp = KeyPair.from_seed(rec.seed)
            for coro in (self.client.announce(rec.topic, kp), self.client.mutable_put(kp, rec.value, seq=1)):
                try:
                    await asyncio.wait_for(coro, self.timeout)
                except Exception:
                    failed += 1
        else:
            for op, args in (
                ("announce", {"topic": rec.topic.hex(), "seed": rec.seed.hex()}),
                ("mutablePut", {"seed": rec.seed.hex(), "value": rec.value.hex(), "seq": 1}),
            ):
                reply = await self.js.ask(op, **args)
                if "error" in reply:
                    print("js", op, reply.get("error"), file=sys.stderr)
                    failed += 1
        return 2, failed, ""

    async def check(self, who: str, rec: Record) -> tuple[bool, bool]:
        assert self.client is not None and self.js is not None
        pk = KeyPair.from_seed(rec.seed).public_key
        if who == "js":
            r = await self.js.ask("lookup", topic=rec.topic.hex())
            found = pk.hex() in r.get("publicKeys", [])
            r = await self.js.ask("mutableGet", publicKey=pk.hex())
            return found, r.get("value") == rec.value.hex()
        client = self.client

        async def lookup() -> bool:
            found = False
            async for reply in client.lookup(rec.topic):
                found = found or any(p.public_key == pk for p in reply.peers)
            return found

        found = bool(await _ok(lookup(), self.timeout))
        got = await _ok(client.mutable_get(pk), self.timeout)
        return found, got is not None and got.value == rec.value

    async def close(self) -> None:
        if self.client is not None:
            await self.client.destroy()
        if self.js is not None:
            await self.js.close()
        for n in self.nodes:
            await n.destroy()
        if self.first is not None:
            await self.first.destroy()


class MainlineNet:
    """:class:`MainlineDHT` nodes and npm bittorrent-dht nodes. All share 127.0.0.1, so the Python nodes
    run without the per-IP rate limit (as :class:`MainlineTestnet` does)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.rng = random.Random(1)
        self.first: MainlineDHT | None = None
        self.boot: list[Address] = []
        self.nodes: list[MainlineDHT] = []
        self.client: MainlineDHT | None = None
        self.js: JS | None = None
        self.ports = iter(range(20000, 60000))

    def _node(self) -> MainlineDHT:
        return MainlineDHT(bootstrap=self.boot, host="127.0.0.1", rate_limit=None)

    async def start(self, size: int) -> None:
        self.first = self._node()
        await self.first.open()
        self.boot = [self.first.address()]
        for _ in range(size // 2 - 1):
            n = self._node()
            await n.open()
            self.nodes.append(n)
        host, port = self.boot[0]
        proc = await start_js("../../bench/js/churn-mainline.js", str(size - size // 2), f"{host}:{port}")
        try:
            ready = await proc.line(600)
        except BaseException:
            await proc.close()
            raise
        assert ready.get("ready"), ready
        self.js = JS(proc, 4 * self.timeout)
        # the Python nodes that joined first learn the later ones and the JS nodes
        for n in [self.first, *self.nodes]:
            await _ok(n.bootstrap(), self.timeout)
        self.client = self._node()
        await self.client.open()

    async def replace(self, python: bool) -> None:
        assert self.js is not None
        if python and self.nodes:
            n = self.nodes.pop(self.rng.randrange(len(self.nodes)))
            await n.close()
            n = self._node()
            await n.open()
            self.nodes.append(n)
        else:
            await self.js.ask("kill")
            await self.js.ask("spawn")

    def record(self, who: str, seq: int) -> Record:
        return Record(
            who=who, topic=os.urandom(20), seed=os.urandom(32), value=b"churn %d" % seq, port=next(self.ports)
        )

    async def store(self, rec: Record) -> tuple[int, int, str]:
        assert self.client is not None and self.js is not None
        failed = 0
        if rec.who == "python":
            kp = MainlineKeyPair.from_seed(rec.seed)
            stored = await _ok(self.client.announce_peer(rec.topic, rec.port), self.timeout)
            failed += not stored
            put = await _ok(self.client.put_mutable(kp, rec.value, seq=1), self.timeout)
            failed += put is None or put.stored == 0
            took = (stored, put and put.stored)
        else:
            r = await self.js.ask("announce", infoHash=rec.topic.hex(), port=rec.port)
            failed += "error" in r
            took = (r.get("n", r.get("error")), None)
            r = await self.js.ask("putMutable", seed=rec.seed.hex(), value=rec.value.hex(), seq=1)
            failed += "error" in r or not r.get("n")
            took = (took[0], r.get("n", r.get("error")))
        return 2, failed, f"announce stored on {took[0]} nodes, put on {took[1]}"

    async def check(self, who: str, rec: Record) -> tuple[bool, bool]:
        assert self.client is not None and self.js is not None
        pk = MainlineKeyPair.from_seed(rec.seed).public_key
        if who == "js":
            r = await self.js.ask("lookup", infoHash=rec.topic.hex())
            found = f"127.0.0.1:{rec.port}" in r.get("peers", [])
            r = await self.js.ask("getMutable", publicKey=pk.hex())
            return found, r.get("value") == rec.value.hex()
        client = self.client

        async def lookup() -> bool:
            return ("127.0.0.1", rec.port) in [p async for p in client.get_peers(rec.topic)]

        found = bool(await _ok(lookup(), self.timeout))
        item = await _ok(client.get_mutable(pk), self.timeout)
        return found, item is not None and item.v == rec.value

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.js is not None:
            await self.js.close()
        for n in self.nodes:
            await n.close()
        if self.first is not None:
            await self.first.close()


PROFILES: dict[str, Callable[[float], Network]] = {"hyper": HyperNet, "mainline": MainlineNet}


async def run(
    profile: str,
    *,
    size: int = 200,
    minutes: float = 10.0,
    churn: float = 0.3,
    every: float = 5.0,
    delay: float = 30.0,
    timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> Result:
    """One churn run of ``profile`` (``"hyper"`` or ``"mainline"``) in real time.

    Args:
        size: nodes in the network, half Python and half JS (plus one client of each).
        minutes: how long nodes leave and join (real time); ``churn`` of ``size`` are replaced by the end.
        every: seconds between stores (each client stores one record each time).
        delay: seconds between a store and the lookups/gets of it.
        timeout: seconds allowed per Python operation (a JS command gets 4x).
        log: where progress lines go.

    Returns:
        The counts per client (``"python"``, ``"js"``).
    """
    t0 = time.monotonic()
    net = PROFILES[profile](timeout)
    try:
        await net.start(size)
        setup = time.monotonic() - t0
        log(
            f"{profile}: network of {size} nodes ({size // 2} Python, {size - size // 2} JS) up in {setup:.0f} s"
        )
        result = Result(profile=profile, size=size, replaced=0, minutes=minutes, setup_s=setup)
        result.tallies = {who: Tally() for who in CLIENTS}
        await _schedule(net, result, churn, every, delay)
    finally:
        await net.close()
    return result


async def _schedule(net: Network, result: Result, churn: float, every: float, delay: float) -> None:
    tallies = result.tallies
    stores: list[tuple[float, Record]] = []
    seq = 0
    tasks: set[asyncio.Task[None]] = set()
    notes: dict[Record, str] = {}
    t0 = time.monotonic()

    def bg(coro: Any) -> None:
        t = asyncio.create_task(coro)
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def store(who: str) -> None:
        nonlocal seq
        seq += 1
        number = seq
        rec = net.record(who, number)
        started = time.monotonic()
        n, failed, took = await net.store(rec)
        notes[rec] = f"{who}'s record #{number} stored at {started - t0:.0f} s ({took})"
        tallies[who].stores += n
        tallies[who].stores_failed += failed
        stores.append((time.monotonic(), rec))

    async def check(who: str, rec: Record) -> None:
        found, got = await net.check(who, rec)
        t = tallies[who]
        t.lookups += 1
        t.gets += 1
        t.lookups_ok += found
        t.gets_ok += got
        for ok, what in ((found, "lookup"), (got, "mutable get")):
            if not ok:
                result.failures.append(
                    f"{who} client's {what} at {time.monotonic() - t0:.0f} s of {notes[rec]}"
                )

    async def replace(python: bool) -> None:
        try:
            await net.replace(python)
        except Exception as exc:
            print(f"replace failed: {exc!r}", file=sys.stderr)

    steps = int(churn * result.size)
    end = time.monotonic() + result.minutes * 60
    churn_every = result.minutes * 60 / max(1, steps)
    next_churn = time.monotonic() + churn_every / 2  # the last one half an interval before the end
    next_store = time.monotonic()
    while (now := time.monotonic()) < end:
        if now >= next_churn and result.replaced < steps:
            bg(replace(result.replaced % 2 == 0))
            result.replaced += 1
            next_churn += churn_every
        if now >= next_store:
            bg(store("python"))
            bg(store("js"))
            next_store += every
        while stores and stores[0][0] + delay <= now:
            _, rec = stores.pop(0)
            for who in CLIENTS:
                bg(check(who, rec))
        await asyncio.sleep(0.1)  # the schedule's tick
    if tasks:  # stores still running
        await asyncio.wait(tasks)
    while stores:  # the last stores: check after their delay too
        await asyncio.sleep(max(0.0, stores[0][0] + delay - time.monotonic()))
        _, rec = stores.pop(0)
        for who in CLIENTS:
            bg(check(who, rec))
    if tasks:
        await asyncio.wait(tasks)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="hyper")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--churn", type=float, default=0.3)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--delay", type=float, default=30.0, help="seconds from a store to its lookups (30)")
    args = ap.parse_args()
    require_node()
    res = asyncio.run(
        run(
            args.profile,
            size=args.size,
            minutes=args.minutes,
            churn=args.churn,
            every=args.every,
            delay=args.delay,
        )
    )
    print("\n".join(res.lines()))
