"""Churn on loopback with real JS nodes (issue 14 item 3, HyperDHT): Python and JS clients side by side.

A network of ``--size`` persistent hyperdht nodes on 127.0.0.1, half Python (:class:`HyperDHT`, this process)
and half JS (``bench/js/churn-nodes.js``, npm hyperdht), all joined through the first Python node (which
stays). For ``--minutes`` of real time, nodes leave (destroyed, alternately Python and JS) and new ones join
until ``--churn`` of the network has been replaced. Every ``--every`` seconds a Python client and a JS client
each announce a fresh topic and put a mutable record; 30 s later each client looks up both topics and gets
both records (its own and the other language's). Printed: per client, the success rate of lookups and of
mutable gets, and failed stores. Loopback only; needs ``npm ci``.

    python bench/churn.py [--size 200] [--minutes 10] [--churn 0.3] [--every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import JSProcess, require_node, start_js  # noqa: E402
from peerdht.aio.hyperdht import HyperDHT  # noqa: E402
from peerdht.hyper.crypto import KeyPair  # noqa: E402


class JS:
    """The JS process; commands run concurrently there, replies are matched by id."""

    def __init__(self, proc: JSProcess) -> None:
        self.proc = proc
        self.next = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                line = await self.proc.line(3600)
            except Exception as exc:
                print(f"JS process: {exc}", file=sys.stderr)
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
            return await asyncio.wait_for(fut, 120)
        except TimeoutError:
            return {"error": "timeout"}


async def main(size: int, minutes: float, churn: float, every: float) -> None:
    rng = random.Random(1)
    t0 = time.monotonic()
    first = HyperDHT(
        host="127.0.0.1", ephemeral=False, firewalled=False, bootstrap=[], public_host="127.0.0.1"
    )
    await first.open()
    await first.fully_bootstrapped()
    boot = [first.local_address()]
    py_nodes: list[HyperDHT] = []

    async def spawn_py() -> None:
        n = HyperDHT(
            host="127.0.0.1", ephemeral=False, firewalled=False, bootstrap=boot, public_host="127.0.0.1"
        )
        await n.open()
        await n.fully_bootstrapped()
        py_nodes.append(n)

    for _ in range(size // 2 - 1):
        await spawn_py()
    proc = await start_js(
        "../../bench/js/churn-nodes.js", str(size - size // 2), f"{boot[0][0]}:{boot[0][1]}"
    )
    ready = await proc.line(600)
    assert ready.get("ready"), ready
    js = JS(proc)
    client = HyperDHT(host="127.0.0.1", ephemeral=True, bootstrap=boot)
    await client.open()
    await client.fully_bootstrapped()
    print(
        f"network of {size} nodes ({size // 2} Python, {size - size // 2} JS) up in "
        f"{time.monotonic() - t0:.0f} s",
        flush=True,
    )

    stats = {
        who: {"lookups": 0, "lookups_ok": 0, "gets": 0, "gets_ok": 0, "stores": 0, "stores_failed": 0}
        for who in ("python", "js")
    }
    stores: list[tuple[float, str, bytes, bytes, bytes]] = []  # (time, who, topic, seed, value)
    seq = 0

    async def store(who: str) -> None:
        nonlocal seq
        seq += 1
        topic, seed, value = os.urandom(32), os.urandom(32), b"churn %d" % seq
        kp = KeyPair.from_seed(seed)
        stats[who]["stores"] += 2
        if who == "python":
            for coro in (client.announce(topic, kp), client.mutable_put(kp, value, seq=1)):
                try:
                    await asyncio.wait_for(coro, 30)
                except Exception:
                    stats[who]["stores_failed"] += 1
        else:
            for op, args in (
                ("announce", {"topic": topic.hex(), "seed": seed.hex()}),
                ("mutablePut", {"seed": seed.hex(), "value": value.hex(), "seq": 1}),
            ):
                reply = await js.ask(op, **args)
                if "error" in reply:
                    print("js", op, reply.get("error"), file=sys.stderr)
                    stats[who]["stores_failed"] += 1
        stores.append((time.monotonic(), who, topic, seed, value))

    async def check(topic: bytes, seed: bytes, value: bytes) -> None:
        kp = KeyPair.from_seed(seed)
        # Python client
        st = stats["python"]
        st["lookups"] += 1
        st["gets"] += 1
        try:
            found = False
            async for reply in client.lookup(topic):
                found = found or any(p.public_key == kp.public_key for p in reply.peers)
            st["lookups_ok"] += found
            got = await asyncio.wait_for(client.mutable_get(kp.public_key), 30)
            st["gets_ok"] += got is not None and got.value == value
        except Exception:
            pass
        # JS client
        st = stats["js"]
        st["lookups"] += 1
        st["gets"] += 1
        r = await js.ask("lookup", topic=topic.hex())
        st["lookups_ok"] += kp.public_key.hex() in r.get("publicKeys", [])
        r = await js.ask("mutableGet", publicKey=kp.public_key.hex())
        st["gets_ok"] += r.get("value") == value.hex()

    steps = int(churn * size)
    end = time.monotonic() + minutes * 60
    churn_every = minutes * 60 / max(1, steps)
    next_churn = time.monotonic() + churn_every
    next_store = time.monotonic()
    replaced = 0
    tasks: set[asyncio.Task[None]] = set()

    def bg(coro: Any) -> None:
        t = asyncio.create_task(coro)
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def replace(python: bool) -> None:
        if python and py_nodes:
            n = py_nodes.pop(rng.randrange(len(py_nodes)))
            await n.destroy()
            await spawn_py()
        else:
            await js.ask("kill")
            await js.ask("spawn")

    while (now := time.monotonic()) < end:
        if now >= next_churn and replaced < steps:
            bg(replace(replaced % 2 == 0))
            replaced += 1
            next_churn += churn_every
        if now >= next_store:
            bg(store("python"))
            bg(store("js"))
            next_store += every
        while stores and stores[0][0] + 30 <= now:
            _, _, topic, seed, value = stores.pop(0)
            bg(check(topic, seed, value))
        await asyncio.sleep(0.2)
    while stores:  # the last stores: check after their 30 s too
        await asyncio.sleep(max(0.0, stores[0][0] + 30 - time.monotonic()))
        _, _, topic, seed, value = stores.pop(0)
        bg(check(topic, seed, value))
    if tasks:
        await asyncio.wait(tasks, timeout=120)
    for who, st in stats.items():
        print(
            f"{who:6} client: lookups {st['lookups_ok']}/{st['lookups']} "
            f"({st['lookups_ok'] / max(1, st['lookups']):.1%}), mutable gets {st['gets_ok']}/{st['gets']} "
            f"({st['gets_ok'] / max(1, st['gets']):.1%}), stores failed {st['stores_failed']}/{st['stores']}"
        )
    print(f"{replaced} nodes replaced ({replaced / size:.0%}) over {minutes} min")
    await client.destroy()
    js.reader.cancel()
    await js.proc.close()
    for n in py_nodes:
        await n.destroy()
    await first.destroy()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--churn", type=float, default=0.3)
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    require_node()
    asyncio.run(main(args.size, args.minutes, args.churn, args.every))
