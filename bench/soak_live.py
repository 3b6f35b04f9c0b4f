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
        [--tracemalloc SECONDS | --probe SECONDS] [--trace-out FILE]

``--tracemalloc SECONDS`` starts the node through a wrapper (this file run as ``_node OUT SECONDS 1 <cli args>``)
that calls ``tracemalloc.start(10)`` before the CLI's ``main``; a thread in the node process then writes, every
SECONDS, to ``--trace-out`` (default ``soak-trace-PROFILE.txt``): RSS and traced bytes, glibc's ``mallinfo2``
and pymalloc's arena counts, the top 30 ``compare_to`` diffs by traceback against the previous report and the
top 15 by line against the first one, the live objects by type (a ``gc.get_objects()`` count) that changed,
and the lengths that changed of every container the node object holds
(:func:`peerdht.testing.soak.container_sizes`) and of the ``peerdht`` modules' global containers (the
address caches). Tracing costs CPU and memory of its own (the RSS column then includes it);
``--probe SECONDS`` writes the same reports without tracemalloc. Either adds one thread to the node.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Any

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.mainline import MainlineDHT
from peerdht.hyper.crypto import KeyPair
from peerdht.testing.soak import container_sizes, module_containers


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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def allocator_stats() -> str:
    """glibc ``mallinfo2`` (heap from brk, mmapped, in use, free: KiB) and pymalloc's arenas (from
    ``sys._debugmallocstats``, which writes to fd 2: briefly redirected)."""
    out = []
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        m = libc.mallinfo2()
        out.append(
            f"glibc: brk heap {m.arena // 1024} KiB, mmapped {m.hblkhd // 1024} KiB, in use {m.uordblks // 1024} "
            f"KiB, free {m.fordblks // 1024} KiB (releasable at top {m.keepcost // 1024} KiB)"
        )
    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        keep = ("# arenas allocated current", "# arenas highwater mark", "# bytes in allocated blocks",
                "# bytes in available blocks", "Total")
        stats = []
        for line in tmp:
            if line.startswith(keep):
                stats.append(" ".join(line.split()))
                if line.startswith("Total"):  # the end of the arena part
                    break
    out.append("pymalloc: " + "; ".join(stats))
    return "\n".join(out)


def _node_objects() -> dict[str, int]:
    """Container lengths of the node object(s) of the CLI (found by type among the live objects)."""
    out: dict[str, int] = {}
    for o in gc.get_objects():
        if isinstance(o, HyperDHT | MainlineDHT):
            out.update(container_sizes(o, type(o).__name__ + ".", depth=5))
    return out


def _probe(out_path: str, every: float, trace: bool) -> None:
    """The node process's reporter thread (see the module docstring)."""
    first: tracemalloc.Snapshot | None = None
    prev: tracemalloc.Snapshot | None = None
    prev_counts: collections.Counter[str] = collections.Counter()
    prev_sizes: dict[str, int] = {}
    t0 = time.monotonic()
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, __file__),
    ]
    while True:
        time.sleep(every)
        snap = tracemalloc.take_snapshot().filter_traces(filters) if trace else None
        counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        sizes = {**_node_objects(), **module_containers()}
        cur, peak = tracemalloc.get_traced_memory()
        minute = (time.monotonic() - t0) / 60
        lines = [
            f"=== minute {minute:.1f}: RSS {proc_stats(os.getpid())['rss_kib']} KiB, traced {cur // 1024} KiB "
            f"(peak {peak // 1024}), gc objects {sum(counts.values())}, gc counts {gc.get_count()}, "
            f"gc collections {[g['collections'] for g in gc.get_stats()]}",
            allocator_stats(),
        ]
        if snap is not None and prev is not None and first is not None:
            lines.append("--- top 30 by traceback since the previous report (size diff, count diff, where)")
            for d in snap.compare_to(prev, "traceback")[:30]:
                lines.append(f"{d.size_diff / 1024:+9.1f} KiB {d.count_diff:+7} (now {d.size / 1024:.1f} KiB)")
                lines.extend("      " + str(f) for f in d.traceback[-6:])
            lines.append("--- top 15 by line since the first report")
            lines.extend(f"  {d}" for d in snap.compare_to(first, "lineno")[:15])
        diff = {k: counts[k] - prev_counts.get(k, 0) for k in counts | prev_counts}
        grown = sorted(((v, k) for k, v in diff.items() if v), key=lambda x: -abs(x[0]))[:25]
        lines.append("--- live objects by type, change since the previous report: "
                     + ", ".join(f"{k} {v:+} ({counts[k]})" for v, k in grown))
        changed = {k: (prev_sizes.get(k), v) for k, v in sorted(sizes.items()) if prev_sizes.get(k) != v}
        lines.append("--- container lengths that changed (before, now): " + repr(changed))
        with open(out_path, "a") as f:
            f.write("\n".join(lines) + "\n\n")
        if first is None:
            first = snap
        prev, prev_counts, prev_sizes = snap, counts, sizes


def node_main(argv: list[str]) -> int:
    """``_node OUT SECONDS TRACE <peerdht cli args>``: run the CLI with the reporter thread (and tracemalloc
    if TRACE is ``1``)."""
    out_path, every, trace, cli = argv[0], float(argv[1]), argv[2] == "1", argv[3:]
    if trace:
        tracemalloc.start(10)
    threading.Thread(target=_probe, args=(out_path, every, trace), daemon=True, name="soak-probe").start()
    from peerdht.cli.main import main as cli_main

    return cli_main(cli)


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


async def run(
    profile: str,
    minutes: float,
    rate: float,
    addresses: int,
    probe: float | None = None,
    trace: bool = False,
    trace_out: str = "",
) -> dict[str, Any]:
    port = free_port()
    cmd = ["node"] if profile == "hyper" else ["mainline", "node"]
    extra = ["--persistent"] if profile == "hyper" else []
    start = ["-m", "peerdht"]
    if probe:
        trace_out = trace_out or f"soak-trace-{profile}.txt"
        start = [os.path.abspath(__file__), "_node", trace_out, str(probe), "1" if trace else "0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *start,
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
    late = samples[2 * third :] or samples  # a run of one or two samples: its whole span
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
    ap.add_argument("--tracemalloc", type=float, metavar="SECONDS", help="trace the node's heap, report every SECONDS")
    ap.add_argument(
        "--probe", type=float, metavar="SECONDS", help="the same reports without tracemalloc (RSS undistorted)"
    )
    ap.add_argument("--trace-out", default="", help="the node's heap reports (default soak-trace-PROFILE.txt)")
    args = ap.parse_args()
    probe = args.tracemalloc or args.probe
    out = [
        asyncio.run(
            run(p, args.minutes, args.rate, args.addresses, probe, bool(args.tracemalloc), args.trace_out)
        )
        for p in args.profile or ["hyper"]
    ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_node"]:
        raise SystemExit(node_main(sys.argv[2:]))
    main()
