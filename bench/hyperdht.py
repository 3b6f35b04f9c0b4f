"""HyperDHT client operations, peerdht vs JS hyperdht, on the same 32-node loopback network.

Runs the same rounds (new ephemeral client -> fully bootstrapped, announce, lookup, mutable put, mutable get)
with a Python client and a JS client, first on a JS testnet and then on a Python testnet, and prints medians
and ratios (Python / JS; lower is better, target <= 1.5).

    python bench/hyperdht.py [--rounds 20] [--size 32] [--json]

Everything binds 127.0.0.1. Needs `npm ci` at the repo root (scripts/test.sh does it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import start_js  # noqa: E402
from peerdht.aio.hyperdht import HyperDHT  # noqa: E402
from peerdht.hyper.crypto import KeyPair  # noqa: E402

OPS = ("bootstrap", "announce", "lookup", "mutablePut", "mutableGet")


async def python_rounds(rounds: int, bootstrap: list[tuple[str, int]]) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {op: [] for op in OPS}
    for _ in range(rounds):
        t = time.perf_counter()
        dht = HyperDHT(bootstrap=bootstrap, host="127.0.0.1", ephemeral=True)
        await dht.open()
        await dht.fully_bootstrapped()
        res["bootstrap"].append((time.perf_counter() - t) * 1000)

        topic = os.urandom(32)
        kp = KeyPair.generate()
        t = time.perf_counter()
        await dht.announce(topic, kp)
        res["announce"].append((time.perf_counter() - t) * 1000)

        t = time.perf_counter()
        found = False
        async for reply in dht.lookup(topic):
            found = found or any(p.public_key == kp.public_key for p in reply.peers)
        res["lookup"].append((time.perf_counter() - t) * 1000)
        if not found:
            raise RuntimeError("lookup did not find the announce")

        t = time.perf_counter()
        await dht.mutable_put(kp, b"bench", seq=1)
        res["mutablePut"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        got = await dht.mutable_get(kp.public_key)
        res["mutableGet"].append((time.perf_counter() - t) * 1000)
        if got is None:
            raise RuntimeError("mutable_get found nothing")
        await dht.destroy()
    return res


def js_rounds(rounds: int, bootstrap: list[tuple[str, int]]) -> dict[str, list[float]]:
    out = subprocess.run(
        ["node", str(ROOT / "bench/js/hyperdht-ops.js"), str(rounds), *[f"{h}:{p}" for h, p in bootstrap]],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )
    result: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def js_rounds_async(rounds: int, bootstrap: list[tuple[str, int]]) -> dict[str, list[float]]:
    return await asyncio.to_thread(js_rounds, rounds, bootstrap)


def report(network: str, py: dict[str, list[float]], js: dict[str, list[float]], as_json: bool) -> None:
    for op in OPS:
        p, j = statistics.median(py[op]), statistics.median(js[op])
        row = {"network": network, "op": op, "py_ms": round(p, 2), "js_ms": round(j, 2), "ratio": round(p / j, 2)}
        if as_json:
            print(json.dumps(row))
        else:
            print(f"{network:<12} {op:<11} python {p:8.2f} ms   js {j:8.2f} ms   ratio {p / j:5.2f}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # 1. a JS testnet of `size` persistent nodes
    js_net = await start_js("hyper-peer.js", "--testnet", str(args.size))
    ready = await js_net.line(120)
    boot = [(h, int(p)) for h, _, p in (b.rpartition(":") for b in ready["bootstrap"])]
    try:
        js = await js_rounds_async(args.rounds, boot)
        py = await python_rounds(args.rounds, boot)
        report("js-testnet", py, js, args.json)
    finally:
        await js_net.close()

    # 2. a Python testnet of `size` persistent nodes, in its own process (as the JS testnet is)
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerdht", "testnet", "--size", str(args.size), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        if not args.json:
            print(f"(python testnet of {args.size} nodes up in {(time.perf_counter() - t) * 1000:.0f} ms)")
        boot = [(h, int(p)) for h, _, p in (b.rpartition(":") for b in first["bootstrap"])]
        js = await js_rounds_async(args.rounds, boot)
        py = await python_rounds(args.rounds, boot)
        report("py-testnet", py, js, args.json)
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
