"""Scale by simulation: N sans-IO DHT cores in one process on :class:`peerdht.testing.FakeNet`.

For each profile (``hyper``: the HyperDHT dht-rpc core, :class:`peerdht.hyper.node.HyperDHTNode`;
``mainline``: :class:`peerdht.mainline.node.MainlineNode`) and each size N it builds a network (nodes
join in waves, each bootstrapping from three nodes already in), then runs FIND_NODE lookups towards
random targets from random nodes at each loss rate and reports, per lookup: messages the querier sent,
round trips (lookup time / RTT: the link has a fixed one-way delay and no jitter, so the fake time a
lookup takes counts the sequential round trips on its critical path, plus the timeouts of lost
datagrams), and success (the true closest node of the whole network is in the result); per node: the
routing-table size and the memory (process RSS growth while building / N, so it includes the core's
tables, stores, request table and FakeNet's few bytes per node).

Usage:
    python bench/scale.py --profile mainline --sizes 1000,10000 --lookups 200 --json out.json

The network is built once per size without loss; the lookups then run with each ``--loss`` value
applied to every datagram (both directions). Wall time of each phase is printed, so the cost curve of
the simulator itself is visible too.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import hashlib
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from peerdht.hyper.events import OpDone as HyperOpDone
from peerdht.hyper.events import OpFailed as HyperOpFailed
from peerdht.hyper.node import HyperDHTNode
from peerdht.kademlia.table import Contact
from peerdht.mainline.events import LookupResult
from peerdht.mainline.events import OpDone as MlOpDone
from peerdht.mainline.events import OpFailed as MlOpFailed
from peerdht.mainline.node import MainlineNode
from peerdht.testing import FakeNet
from peerdht.testing.soak import deep_size

Addr = tuple[str, int]
DELAY = 0.01  # one-way, seconds: RTT 20 ms


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ip_of(i: int) -> str:
    return f"10.{i // 62500 + 1}.{(i // 250) % 250}.{i % 250 + 1}"


class Sim:
    """One simulated network of one profile."""

    def __init__(self, profile: str, seed: int) -> None:
        self.profile = profile
        self.rng = random.Random(seed)
        self.net = FakeNet(random.Random(seed + 1), delay=DELAY, start=1000.0)
        self.addrs: list[Addr] = []  # the address others use (server socket for hyper)
        self.nodes: list[Any] = []
        self.done: dict[tuple[Addr, int], tuple[float, object]] = {}
        self.net.on_event = self._on_event

    def _on_event(self, addr: Addr, ev: object, now: float) -> None:
        if isinstance(ev, HyperOpDone | MlOpDone):
            self.done[(addr, ev.op)] = (now, ev.result)
        elif isinstance(ev, HyperOpFailed | MlOpFailed):
            self.done[(addr, ev.op)] = (now, ev.error)

    def add(self, bootstrap: list[Addr]) -> int:
        i = len(self.nodes) + 1
        ip = ip_of(i)
        if self.profile == "hyper":
            server, client = (ip, 49737), (ip, 49738)
            node: Any = HyperDHTNode(
                rng=random.Random(self.rng.getrandbits(64)),
                secrets=self.rng.randbytes(64),
                bootstrap=bootstrap,
                ephemeral=False,
                firewalled=False,
                host=ip if not bootstrap else None,
            )
            node.bind(server, client, self.net.now)
            self.net.add_sockets([server, client], node, events=True)
            addr = server
        else:
            addr = (ip, 6881)
            node = MainlineNode(
                rng=random.Random(self.rng.getrandbits(64)),
                now=self.net.now,
                bootstrap=bootstrap,
                rate_limit=None,
            )
            self.net.add(addr, node, events=True)
        self.nodes.append(node)
        self.addrs.append(addr)
        self.net.events[addr].clear()
        return len(self.nodes) - 1

    def start(self, idx: int, op: str, *args: Any) -> tuple[Addr, int]:
        addr = self.addrs[idx]
        node = self.nodes[idx]
        opid = getattr(node, op)(*args, self.net.now)
        self.net.touch(addr)
        return addr, opid

    def wait(self, keys: list[tuple[Addr, int]], max_time: float = 600.0) -> None:
        self.net.run(lambda: all(k in self.done for k in keys), max_time=max_time, poll=False)
        for a in {a for a, _ in keys}:
            self.net.events[a].clear()

    def build(
        self,
        n: int,
        wave: int,
        max_rss: float,
        stops: Sequence[int] = (),
        on_stop: Callable[[int], None] | None = None,
    ) -> None:
        """Grow the network to ``n`` nodes by protocol, in waves of up to ``wave`` joining nodes; at each
        size in ``stops`` (a wave is cut short to land on it) call ``on_stop(size)``."""
        first = self.add([])
        self.wait([self.start(first, "bootstrap")])
        t0, c0, shown = time.perf_counter(), time.process_time(), 0
        while len(self.nodes) < n:
            joined = len(self.nodes)
            count = min(wave, n - joined, max(joined, 1) * 4)
            count = min([count] + [s - joined for s in stops if s > joined])
            keys = []
            for _ in range(count):
                boot = [self.addrs[self.rng.randrange(joined)] for _ in range(3)]
                keys.append(self.start(self.add(boot), "bootstrap"))
            self.wait(keys)
            self._collect_wave()
            rss = rss_bytes()
            if len(self.nodes) - shown >= 10_000 or len(self.nodes) == n or rss > max_rss:
                shown = len(self.nodes)
                cpu = time.process_time() - c0
                print(
                    f"  {shown} nodes: {time.perf_counter() - t0:.0f} s wall, {cpu:.0f} s CPU, "
                    f"{self.net.delivered} datagrams ({cpu / max(self.net.delivered, 1) * 1e6:.0f} us CPU "
                    f"each), RSS {rss / 2**30:.2f} GiB",
                    flush=True,
                )
            if rss > max_rss:
                raise SystemExit(f"RSS {rss / 2**30:.2f} GiB is over --max-rss-gb at {len(self.nodes)} nodes")
            if on_stop is not None and len(self.nodes) in stops and len(self.nodes) < n:
                on_stop(len(self.nodes))

    @staticmethod
    def _collect_wave() -> None:
        """The cyclic GC, once per wave instead of automatically: collect what the wave left (only
        objects allocated since the last freeze are scanned) and freeze the rest, which is mostly the
        network itself (tables, stores). Automatic collection rescanned the whole network on every
        full collection: 22 % of a 5k-node Mainline build (14.6 of 66 s). Cycles that die after
        their wave was frozen wait for the one full collection in :func:`run_size`."""
        gc.collect()
        gc.freeze()

    def build_oracle(self, n: int) -> None:
        """Mainline only: n nodes whose routing tables are filled by construction (for each node and each
        distance range 2^(159-b) up to K random nodes of that range, far ranges first, through the table's
        own ``add``), not by bootstrap lookups. What a converged network looks like, at a cost of
        O(n log n) table insertions instead of ~170 datagrams per joining node."""
        if self.profile != "mainline":
            raise SystemExit("--build oracle is implemented for the mainline profile only")
        for _ in range(n):
            self.add([])
        now = self.net.now
        ints = sorted((int.from_bytes(self.nodes[i].id, "big"), i) for i in range(n))
        keys = [v for v, _ in ints]
        bits = 160
        for v, i in ints:
            node = self.nodes[i]
            k = node.k
            for b in range(bits):
                top = (v >> (bits - b)) << (bits - b) if b else 0  # ids sharing >= b leading bits with v
                if bisect.bisect_left(keys, top + (1 << (bits - b))) - bisect.bisect_left(keys, top) == 1:
                    break  # only v itself is left: no deeper bucket has anyone
                span = 1 << (bits - b - 1)  # ids sharing exactly b bits: the other half of that range
                lo = top if (v >> (bits - b - 1)) & 1 else top + span
                a, z = bisect.bisect_left(keys, lo), bisect.bisect_left(keys, lo + span)
                if z == a:
                    continue
                picks = range(a, z) if z - a <= k else self.rng.sample(range(a, z), k)
                for j in picks:
                    other = ints[j][1]
                    host, port = self.addrs[other]
                    node.table.add(Contact(id=self.nodes[other].id, host=host, port=port), now)
        for a in self.addrs:
            self.net.touch(a)

    def table_size(self, idx: int) -> int:
        return len(self.nodes[idx].table)

    def digest(self) -> str:
        """SHA-256 (hex, first 16 digits) of every node's id and routing table (each contact's id, address
        and timestamps, in the table's order) and the fake clock: two builds give the same digest iff
        they built the same network. For checking that a change to the cores or the simulator leaves
        the networks identical (``--digest``)."""
        h = hashlib.sha256(repr(self.net.now).encode())
        for node in self.nodes:
            h.update(bytes(node.id))
            for c in node.table:
                h.update(b"%s%s:%d %r %r %r;" % (c.id, c.host.encode(), c.port, c.added, c.seen, c.pinged))
        return h.hexdigest()[:16]

    def node_id(self, idx: int) -> bytes:
        return bytes(self.nodes[idx].id)

    def lookups(self, count: int, loss: float, batch: int) -> dict[str, Any]:
        self.net.loss = loss
        ids = sorted((int.from_bytes(self.node_id(i), "big"), i) for i in range(len(self.nodes)))
        idlen = len(self.node_id(0))
        sent: dict[Addr, int] = {}
        self.net.tap = lambda data, src, dst: sent.__setitem__(src, sent.get(src, 0) + 1)
        msgs: list[int] = []
        rounds: list[float] = []
        ok = 0
        done = 0
        while done < count:
            n = min(batch, count - done)
            queriers = self.rng.sample(range(len(self.nodes)), n)
            started: list[tuple[tuple[Addr, int], int, bytes, float]] = []
            for q in queriers:
                target = self.rng.randbytes(idlen)
                key = self.start(q, "find_node", target)
                started.append((key, q, target, self.net.now))
            for (a, _), _, _, _ in started:
                sent[a] = 0
                if self.profile == "hyper":
                    sent[(a[0], a[1] + 1)] = 0
            self.wait([k for k, _, _, _ in started])
            for key, _q, target, t0 in started:
                t1, result = self.done.pop(key)
                a = key[0]
                msgs.append(sent[a] + (sent.get((a[0], a[1] + 1), 0) if self.profile == "hyper" else 0))
                rounds.append((t1 - t0) / (2 * DELAY))
                found = _result_ids(result)
                if found and _true_closest(ids, target) in found:
                    ok += 1
            done += n
        self.net.tap = None
        self.net.loss = 0.0
        return {
            "loss": loss,
            "lookups": count,
            "success": ok / count,
            "messages_mean": statistics.fmean(msgs),
            "messages_median": statistics.median(msgs),
            "rounds_mean": statistics.fmean(rounds),
            "rounds_median": statistics.median(rounds),
        }


def _result_ids(result: object) -> set[bytes]:
    if isinstance(result, LookupResult):
        return {bytes(n.id) for n in result.nodes}
    if isinstance(result, list):
        return {bytes(c.id) for c in result}
    return set()


def _true_closest(ids: list[tuple[int, int]], target: bytes) -> bytes:
    t = int.from_bytes(target, "big")
    best = min(ids, key=lambda e: e[0] ^ t)  # O(N), fine at these sizes
    return best[0].to_bytes(len(target), "big")


def run_size(profile: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    gc.collect()
    rss0 = rss_bytes()
    sim = Sim(profile, args.seed)
    t0, c0 = time.perf_counter(), time.process_time()

    def checkpoint(size: int) -> None:
        """Measure the network at ``size`` nodes in a forked child (a copy-on-write snapshot: its
        lookups and settling do not touch the network that goes on growing) and wait for it."""
        build = (time.perf_counter() - t0, time.process_time() - c0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                r = measure(sim, size, args, rss0, build, peak)
                r["checkpoint_of"] = n
                append_json(args.json, r)
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.waitpid(pid, 0)

    gc.disable()  # see Sim._collect_wave
    if args.build == "oracle":
        sim.build_oracle(n)
    else:
        sim.build(n, args.wave, args.max_rss_gb * 2**30, args.checkpoints, checkpoint)
    build = (time.perf_counter() - t0, time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return measure(sim, n, args, rss0, build, peak)


def append_json(name: str | None, row: dict[str, Any]) -> None:
    if name:
        with open(name, "a") as f:
            f.write(json.dumps(row) + "\n")


def measure(
    sim: Sim, n: int, args: argparse.Namespace, rss0: int, build: tuple[float, float], peak: int
) -> dict[str, Any]:
    """Settle the built network, measure tables and memory, run the lookups at each loss rate."""
    profile = sim.profile
    build_s, build_cpu = build
    gc.unfreeze()
    gc.enable()
    gc.collect()
    datagrams = sim.net.delivered
    built = sim.digest() if args.digest else None
    sim.net.run_for(args.settle, poll=False)  # background: pings, refreshes
    gc.collect()
    mem = (rss_bytes() - rss0) / n
    tables = [sim.table_size(i) for i in range(n)]
    sample = sim.rng.sample(range(n), min(n, 50))
    deep = statistics.fmean(deep_size(sim.nodes[i]) for i in sample)
    out: dict[str, Any] = {
        "profile": profile,
        "nodes": n,
        "build": args.build,
        "build_wall_s": round(build_s, 1),
        "build_fake_s": round(sim.net.now - 1000.0, 1),
        "build_cpu_s": round(build_cpu, 1),
        "datagrams_build": datagrams,
        "cpu_us_per_datagram": round(build_cpu / datagrams * 1e6, 1) if datagrams else None,
        "peak_rss_bytes": peak,
        "table_mean": statistics.fmean(tables),
        "table_min": min(tables),
        "mem_per_node_bytes": round(mem),
        "deep_bytes_per_node": round(deep),
        "log2n": math.log2(n),
        "loss": [],
    }
    if built is not None:
        out["digest_built"] = built
        out["digest_settled"] = sim.digest()
    print(
        f"{profile} n={n}: built in {build_s:.1f} s wall, {build_cpu:.1f} s CPU ({out['build_fake_s']} s fake; "
        f"{datagrams} datagrams), peak RSS {peak / 2**30:.2f} GiB, "
        f"table {out['table_mean']:.1f} (min {out['table_min']}), {mem / 1024:.1f} KiB/node RSS, "
        f"{deep / 1024:.1f} KiB/node deep size",
        flush=True,
    )
    for loss in args.loss:
        t1 = time.perf_counter()
        r = sim.lookups(args.lookups, loss, args.batch)
        r["wall_s"] = round(time.perf_counter() - t1, 1)
        out["loss"].append(r)
        if args.digest:
            r["digest_after"] = sim.digest()
        print(
            f"  loss {loss:.0%}: success {r['success']:.1%}, messages {r['messages_mean']:.1f} "
            f"(median {r['messages_median']}), round trips {r['rounds_mean']:.1f} "
            f"(median {r['rounds_median']:.1f}), {r['wall_s']} s wall",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["hyper", "mainline"], action="append")
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated node counts")
    ap.add_argument("--loss", default="0,0.01,0.1", help="comma-separated loss rates for the lookups")
    ap.add_argument("--lookups", type=int, default=200, help="lookups per loss rate")
    ap.add_argument("--batch", type=int, default=20, help="lookups running at once")
    ap.add_argument("--wave", type=int, default=1000, help="nodes joining at once")
    ap.add_argument("--settle", type=float, default=30.0, help="fake seconds of background after building")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--checkpoints",
        default="",
        help="comma-separated sizes below --sizes at which the growing network is also measured "
        "(in a forked copy; rows get checkpoint_of)",
    )
    ap.add_argument("--max-rss-gb", type=float, default=12.0, help="stop building above this process RSS")
    ap.add_argument(
        "--build",
        choices=["bootstrap", "oracle"],
        default="bootstrap",
        help="bootstrap: nodes join by protocol; oracle (mainline): tables filled by construction",
    )
    ap.add_argument("--json", help="append results (one JSON object per line) to this file")
    ap.add_argument(
        "--digest",
        action="store_true",
        help="add digests of all routing tables (built, settled, after each loss rate) to the results: "
        "equal digests, same networks",
    )
    args = ap.parse_args()
    args.loss = [float(x) for x in args.loss.split(",")]
    args.checkpoints = [int(x) for x in args.checkpoints.split(",") if x]
    results = []
    for profile in args.profile or ["mainline", "hyper"]:
        for n in (int(x) for x in args.sizes.split(",")):
            r = run_size(profile, n, args)
            results.append(r)
            append_json(args.json, r)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
