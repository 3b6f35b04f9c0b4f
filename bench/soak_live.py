"""Real-time soak: a ``peerdht node`` (or ``peerdht mainline node``) process under steady load, RSS each minute.

The node runs alone on 127.0.0.1 (bootstrapping from itself). Short-lived clients, each bound to its own
loopback address out of ``--addresses`` (127.1.0.1, 127.1.0.2, ... reused in turn), ``--rate`` per second,
bootstrap from it and run one operation (HyperDHT: announce, lookup, mutable put, mutable get; Mainline:
get_peers, announce_peer, put, get). Every minute the node's RSS, open file descriptors and threads are
read from /proc and printed; at the end, the RSS slope of the last third. Stores fill until their entries
expire (announces 20-30 min, BEP 44 items 2 h, hyperdht mutable/immutable records 48 h) and per-address
caches until they reach their bounds, so a flat RSS needs a run longer than those; ``bench/soak.py`` shows the
plateau in simulated time. Loopback only.

    python bench/soak_live.py [--profile hyper|mainline] [--minutes 30] [--rate 2] [--addresses 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
from typing import Any

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.mainline import MainlineDHT
from peerdht.hyper.crypto import KeyPair


def proc_stats(pid: int) -> dict[str, int]:
    out = {"rss_kib": 0, "threads": 0, "fds": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_host(i: int) -> str:
    return f"127.{i // 62500 + 1}.{(i // 250) % 250}.{i % 250 + 1}"


class Load:
    def __init__(self, profile: str, node: tuple[str, int], addresses: int) -> None:
        self.profile = profile
        self.node = node
        self.addresses = addresses
        self.next = 0
        self.ok = 0
        self.failed = 0
        self.rng = random.Random(1)
        self.topics = [os.urandom(32) for _ in range(200)]
        self.keys = [KeyPair.generate() for _ in range(20)]
        self.seq = 0

    async def one(self) -> None:
        host = client_host(self.next % self.addresses)
        self.next += 1
        try:
            await asyncio.wait_for(self._op(host), 30)
            self.ok += 1
        except Exception:
            self.failed += 1

    async def _op(self, host: str) -> None:
        r = self.rng.random()
        topic = self.rng.choice(self.topics)
        if self.profile == "hyper":
            dht = HyperDHT(bootstrap=[self.node], host=host, ephemeral=True)
            try:
                await dht.open()
                await dht.fully_bootstrapped()
                kp = self.rng.choice(self.keys)
                if r < 0.35:
                    await dht.announce(topic, kp)
                elif r < 0.7:
                    async for _ in dht.lookup(topic):
                        pass
                elif r < 0.85:
                    self.seq += 1
                    await dht.mutable_put(kp, b"soak %d" % self.seq, seq=self.seq)
                else:
                    await dht.mutable_get(kp.public_key)
            finally:
                await dht.destroy()
        else:
            ml = MainlineDHT(bootstrap=[self.node], host=host, read_only=True)
            try:
                await ml.open()
                ih = topic[:20]
                if r < 0.35:
                    async for _ in ml.get_peers(ih):
                        pass
                elif r < 0.7:
                    await ml.announce_peer(ih, self.rng.randrange(1, 65536))
                elif r < 0.85:
                    await ml.put(b"soak value %d" % self.rng.randrange(10**6))
                else:
                    await ml.get(ih)
            finally:
                await ml.close()


async def run(profile: str, minutes: float, rate: float, addresses: int) -> dict[str, Any]:
    port = free_port()
    cmd = ["node"] if profile == "hyper" else ["mainline", "node"]
    extra = ["--persistent"] if profile == "hyper" else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "peerdht",
        *cmd,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
        "--bootstrap",
        f"127.0.0.1:{port}",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 60)
    load = Load(profile, ("127.0.0.1", port), addresses)
    samples: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()
    next_sample = t0
    try:
        while (now := time.monotonic()) < t0 + minutes * 60:
            if now >= next_sample:
                s = {
                    "minute": round((now - t0) / 60, 1),
                    **proc_stats(proc.pid),
                    "ok": load.ok,
                    "failed": load.failed,
                }
                samples.append(s)
                print(
                    f"{profile:8} {s['minute']:5.1f} min  RSS {s['rss_kib']:7} KiB  fds {s['fds']:3}  threads "
                    f"{s['threads']:2}  clients ok {load.ok:6}  failed {load.failed:4}",
                    flush=True,
                )
                next_sample += 60
            if len(tasks) < 50:
                task = asyncio.create_task(load.one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(1 / rate)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        s = {
            "minute": round((time.monotonic() - t0) / 60, 1),
            **proc_stats(proc.pid),
            "ok": load.ok,
            "failed": load.failed,
        }
        samples.append(s)
        print(f"{profile:8} {s['minute']:5.1f} min  RSS {s['rss_kib']:7} KiB  (end)", flush=True)
    finally:
        proc.terminate()
        await proc.wait()
    third = max(1, len(samples) // 3)
    mid = max(x["rss_kib"] for x in samples[third : 2 * third] or samples)
    late = samples[2 * third :]
    slope = (late[-1]["rss_kib"] - late[0]["rss_kib"]) / max(1e-9, late[-1]["minute"] - late[0]["minute"])
    print(
        f"{profile}: RSS {samples[0]['rss_kib']} -> {samples[-1]['rss_kib']} KiB (max of the middle third {mid}, "
        f"last third rising {slope:.0f} KiB/min); fds {samples[0]['fds']} -> {samples[-1]['fds']}, threads "
        f"{samples[0]['threads']} -> {samples[-1]['threads']}; {load.ok} clients ok, {load.failed} failed, "
        f"{min(load.next, addresses)} distinct addresses"
    )
    return {"profile": profile, "samples": samples, "ok": load.ok, "failed": load.failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["hyper", "mainline"], action="append")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=2.0, help="clients per second")
    ap.add_argument("--addresses", type=int, default=10_000)
    ap.add_argument("--json", help="write the samples here")
    args = ap.parse_args()
    out = [asyncio.run(run(p, args.minutes, args.rate, args.addresses)) for p in args.profile or ["hyper"]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
