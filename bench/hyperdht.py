"""HyperDHT client operations, peerdht vs JS hyperdht, on the same 32-node loopback network.

Runs the same rounds (new ephemeral client -> fully bootstrapped, announce, lookup, mutable put, mutable get)
with a Python client and a JS client, first on a JS testnet and then on a Python testnet. The two clients
alternate round by round (Python then JS, then JS then Python, ...; the JS client is one long-lived node
process that runs a round when asked), so both see the same moment and the same machine load. Printed per
operation: each client's median with its interquartile range, the ratio of the medians, and the median of
the per-round paired ratios (Python round i / JS round i) with their interquartile range -- lower is better.
The JS process first runs ``--js-warmup`` (15) untimed rounds (V8 reaches its steady state after ~15
rounds: timing cold rounds would flatter Python), the Python client 3 untimed rounds per network.

    python bench/hyperdht.py [--rounds 20] [--size 32] [--json]
    python bench/hyperdht.py --core [--rounds 30] [--size 32] [--profile client.prof]

``--core`` needs no sockets and no node: it runs the sans-IO cores only (``size`` persistent
:class:`~peerdht.hyper.node.HyperDHTNode` s and an ephemeral client on an in-memory network, delivered in
order, fake clock) and prints the CPU time of each operation for the whole network and for the client core
alone, with the client's request count and its CPU per request. It is far less noisy than the loopback rows:
use it to compare protocol-core changes.

Everything binds 127.0.0.1. Needs `npm ci` at the repo root (scripts/test.sh does it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import JSProcess, require_node, start_js  # noqa: E402
from peerdht.aio.hyperdht import HyperDHT  # noqa: E402
from peerdht.hyper.crypto import KeyPair  # noqa: E402
from peerdht.hyper.node import HyperDHTNode  # noqa: E402

OPS = ("bootstrap", "announce", "lookup", "mutablePut", "mutableGet")
WARMUP = 3  # untimed Python rounds per network (imports, first-use caches)
JS_WARMUP = 15  # untimed rounds per JS process: V8 needs ~15 rounds to reach its steady state


def _sent(dht: HyperDHT) -> int:
    requests = dht.stats["requests"]
    assert isinstance(requests, dict)
    return int(requests["total"])


async def python_round(
    bootstrap: list[tuple[str, int]], sent: dict[str, list[int]] | None = None, cpu: dict[str, list[float]] | None = None
) -> dict[str, float]:
    """One timed Python round (ms per operation) on a new ephemeral client; appends the requests it sent
    during each operation to ``sent[op]`` and the process CPU time it took (ms; the client is alone in this
    process) to ``cpu[op]``."""
    res: dict[str, float] = {}
    c0 = time.process_time()
    t = time.perf_counter()
    dht = HyperDHT(bootstrap=bootstrap, host="127.0.0.1", ephemeral=True)
    await dht.open()
    await dht.fully_bootstrapped()
    res["bootstrap"] = (time.perf_counter() - t) * 1000
    last = [0]

    def count(op: str) -> None:
        nonlocal c0
        total = _sent(dht)
        if sent is not None:
            sent[op].append(total - last[0])
        if cpu is not None:
            cpu[op].append((time.process_time() - c0) * 1000)
        last[0] = total
        c0 = time.process_time()

    count("bootstrap")

    topic = os.urandom(32)
    kp = KeyPair.generate()
    t = time.perf_counter()
    await dht.announce(topic, kp)
    res["announce"] = (time.perf_counter() - t) * 1000
    count("announce")

    t = time.perf_counter()
    found = False
    async for reply in dht.lookup(topic):
        found = found or any(p.public_key == kp.public_key for p in reply.peers)
    res["lookup"] = (time.perf_counter() - t) * 1000
    count("lookup")
    if not found:
        raise RuntimeError("lookup did not find the announce")

    t = time.perf_counter()
    await dht.mutable_put(kp, b"bench", seq=1)
    res["mutablePut"] = (time.perf_counter() - t) * 1000
    count("mutablePut")
    t = time.perf_counter()
    got = await dht.mutable_get(kp.public_key)
    res["mutableGet"] = (time.perf_counter() - t) * 1000
    count("mutableGet")
    if got is None:
        raise RuntimeError("mutable_get found nothing")
    await dht.destroy()
    return res


async def start_js_client(bootstrap: list[tuple[str, int]]) -> JSProcess:
    """The long-lived JS client process (``bench/js/hyperdht-ops.js``), once it says it is ready."""
    proc = await asyncio.create_subprocess_exec(
        require_node(), str(ROOT / "bench/js/hyperdht-ops.js"), *[f"{h}:{p}" for h, p in bootstrap],
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    js = JSProcess(proc, "hyperdht-ops.js")
    ready = await js.line(60)
    assert ready.get("ready"), ready
    return js


async def js_round(js: JSProcess, sent: dict[str, list[int]] | None = None) -> dict[str, float]:
    """One timed JS round (ms per operation); appends the requests it sent per operation to ``sent[op]``."""
    await js.send({"cmd": "round"})
    got = await js.line(120)
    if got.get("cmd") != "round" or "error" in got:
        raise RuntimeError(f"JS round failed: {got}")
    if sent is not None:
        for op in OPS:
            sent[op].append(int(got["requests"][op]))
    return {op: float(got[op]) for op in OPS}


Sent = dict[str, list[int]]


async def both_rounds(
    rounds: int, bootstrap: list[tuple[str, int]], js_warmup: int = JS_WARMUP
) -> tuple[dict[str, list[float]], dict[str, list[float]], Sent, Sent, dict[str, list[float]]]:
    """``rounds`` Python and JS rounds on ``bootstrap``, alternating round by round: (python, js) ms per op,
    then (python, js) requests sent per op, then the Python client's CPU ms per op; round i of each list
    ran back to back with round i of the other."""
    py_cpu: dict[str, list[float]] = {op: [] for op in OPS}
    py: dict[str, list[float]] = {op: [] for op in OPS}
    js: dict[str, list[float]] = {op: [] for op in OPS}
    py_sent: Sent = {op: [] for op in OPS}
    js_sent: Sent = {op: [] for op in OPS}
    client = await start_js_client(bootstrap)
    try:
        for _ in range(WARMUP):  # imports, first-use caches: not timed
            await python_round(bootstrap)
        for _ in range(js_warmup):  # V8's JIT: not timed
            await js_round(client)
        for i in range(rounds):
            for who in (("py", "js") if i % 2 == 0 else ("js", "py")):
                if who == "py":
                    got = await python_round(bootstrap, py_sent, py_cpu)
                else:
                    got = await js_round(client, js_sent)
                for op in OPS:
                    (py if who == "py" else js)[op].append(got[op])
    finally:
        await client.close()
    return py, js, py_sent, js_sent, py_cpu


def start(cl: HyperDHTNode, op: str, kp: KeyPair, topic: bytes, now: float) -> int:
    """Start operation ``op`` of a ``--core`` round on client core ``cl``."""
    if op == "bootstrap":
        return cl.bootstrap(now)
    if op == "announce":
        return cl.announce(topic, kp, [], now)
    if op == "lookup":
        return cl.lookup(topic, now)
    if op == "mutablePut":
        return cl.mutable_put(kp, b"bench", 1, now)
    return cl.mutable_get(kp.public_key, now)


def core_rounds(rounds: int, size: int, profile: str | None = None) -> None:
    """The ``--core`` mode: CPU per operation of the sans-IO cores on an in-memory network, for the whole
    network and for the client core alone (its ``receive_datagram`` + ``datagrams_to_send`` per reply and
    the call that starts each operation; timers are rare and not counted). ``profile``: write a cProfile
    of the client core's calls only to this file."""
    import cProfile
    import random
    from collections import deque

    from peerdht.hyper.events import OpDone, OpFailed

    Addr = tuple[str, int]
    where: dict[Addr, tuple[HyperDHTNode, int]] = {}
    home: dict[int, tuple[Addr, Addr]] = {}
    queue: deque[tuple[bytes, Addr, Addr]] = deque()
    clock = [1000.0]
    ports = iter(range(10000, 65536))
    rng = random.Random(1)
    profiler = cProfile.Profile() if profile else None

    def attach(core: HyperDHTNode) -> None:
        server, client = ("127.0.0.1", next(ports)), ("127.0.0.1", next(ports))
        where[server], where[client] = (core, 0), (core, 1)
        home[id(core)] = (server, client)
        core.bind(server, client, clock[0])

    def flush(core: HyperDHTNode) -> None:
        for data, to, sock in core.datagrams_to_send(clock[0]):
            queue.append((data, home[id(core)][sock], to))

    client_cpu = [0.0]  # process time spent inside the client core's calls (see `timed`)
    clock_ns = time.process_time_ns

    def run(cores: list[HyperDHTNode], core: HyperDHTNode, op: int) -> None:
        for c in cores:
            flush(c)
        while True:
            while (ev := core.next_event()) is not None:
                if isinstance(ev, OpFailed) and ev.op == op:
                    raise RuntimeError(f"op {op} failed: {ev.error}")
                if isinstance(ev, OpDone) and ev.op == op:
                    return
            if queue:
                data, src, to = queue.popleft()
                clock[0] += 20e-6
                if to in where:
                    dst, sock = where[to]
                    if dst is core:  # the client: its CPU alone, as in a process of its own
                        t0 = clock_ns()
                        if profiler is not None:
                            profiler.enable()
                        dst.receive_datagram(data, src, clock[0], socket=sock)
                        out = dst.datagrams_to_send(clock[0])
                        if profiler is not None:
                            profiler.disable()
                        client_cpu[0] += (clock_ns() - t0) / 1e6
                        queue.extend((d, home[id(dst)][s], t) for d, t, s in out)
                    else:
                        dst.receive_datagram(data, src, clock[0], socket=sock)
                        flush(dst)
                continue
            clock[0] = max(clock[0], min(t for c in cores if (t := c.get_timer()) is not None))
            for c in cores:
                t = c.get_timer()
                if t is not None and t <= clock[0]:
                    c.handle_timer(clock[0])
                    flush(c)

    nodes: list[HyperDHTNode] = []
    for i in range(size):
        boot = [home[id(nodes[0])][0]] if nodes else []
        node = HyperDHTNode(
            rng=random.Random(i), secrets=rng.randbytes(64), bootstrap=boot,
            ephemeral=False, firewalled=False, host="127.0.0.1",
        )
        attach(node)
        nodes.append(node)
        run(nodes, node, node.bootstrap(clock[0]))
    cpu: dict[str, list[float]] = {op: [] for op in OPS}
    mine: dict[str, list[float]] = {op: [] for op in OPS}
    sent: dict[str, list[int]] = {op: [] for op in OPS}
    for r in range(rounds):
        cl = HyperDHTNode(rng=random.Random(1000 + r), secrets=rng.randbytes(64), bootstrap=[home[id(nodes[0])][0]])
        attach(cl)
        everyone = [*nodes, cl]
        kp, topic = KeyPair.generate(), rng.randbytes(32)
        for op in OPS:
            requests = cl.stats["requests"]
            assert isinstance(requests, dict)
            t, before = time.process_time(), requests["total"]
            client_cpu[0] = 0.0
            t0 = clock_ns()
            if profiler is not None:
                profiler.enable()
            op_id = start(cl, op, kp, topic, clock[0])
            if profiler is not None:
                profiler.disable()
            client_cpu[0] += (clock_ns() - t0) / 1e6
            run(everyone, cl, op_id)
            cpu[op].append((time.process_time() - t) * 1000)
            mine[op].append(client_cpu[0])
            sent[op].append(requests["total"] - before)
        cl.destroy()
        for a in home.pop(id(cl)):
            del where[a]
    total = client_total = 0.0
    for op in OPS:
        m, c, n = statistics.median(cpu[op]), statistics.median(mine[op]), statistics.mean(sent[op])
        total += m
        client_total += c
        print(f"core {size:<3}     {op:<11} cpu {m:6.2f} ms (whole network)   client cpu {c:5.2f} ms"
              f" for {n:5.1f} requests ({1000 * c / n:5.1f} us per request)")
    print(f"core {size:<3}     total       cpu {total:6.2f} ms   client cpu {client_total:5.2f} ms")
    if profiler is not None and profile:
        profiler.dump_stats(profile)
        print(f"(cProfile of the client core's calls written to {profile})")


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(p25, median, p75) of ``values``."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def report(
    network: str,
    py: dict[str, list[float]],
    js: dict[str, list[float]],
    sent: tuple[Sent, Sent],
    as_json: bool,
    cpu: dict[str, list[float]],
) -> None:
    """One line per operation: medians with their interquartile ranges, ratio of medians, paired ratios,
    mean requests sent per operation by each client, the Python client's median CPU time."""
    for op in OPS:
        p, j = quartiles(py[op]), quartiles(js[op])
        py_cpu = statistics.median(cpu[op])
        paired = quartiles([a / b for a, b in zip(py[op], js[op], strict=True)])
        py_req, js_req = statistics.mean(sent[0][op]), statistics.mean(sent[1][op])
        if as_json:
            print(json.dumps({
                "network": network, "op": op, "rounds": len(py[op]),
                "py_ms": round(p[1], 2), "py_iqr_ms": [round(p[0], 2), round(p[2], 2)],
                "js_ms": round(j[1], 2), "js_iqr_ms": [round(j[0], 2), round(j[2], 2)],
                "ratio": round(p[1] / j[1], 2),
                "paired_ratio": round(paired[1], 2), "paired_iqr": [round(paired[0], 2), round(paired[2], 2)],
                "py_requests": round(py_req, 1), "js_requests": round(js_req, 1),
                "js_requests_min_max": [min(sent[1][op]), max(sent[1][op])],
                "py_cpu_ms": round(py_cpu, 2),
            }))
        else:
            print(
                f"{network:<11} {op:<10} python {p[1]:6.1f} ms [{p[0]:5.1f}-{p[2]:5.1f}]"
                f"  js {j[1]:6.1f} ms [{j[0]:5.1f}-{j[2]:5.1f}]  ratio {p[1] / j[1]:4.2f}"
                f"  paired {paired[1]:4.2f} [{paired[0]:4.2f}-{paired[2]:4.2f}]"
                f"  requests {py_req:4.1f} / {js_req:4.1f}  python cpu {py_cpu:4.2f} ms"
            )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--js-warmup", type=int, default=JS_WARMUP, help="untimed rounds per JS process")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--core", action="store_true", help="sans-IO cores only: CPU per operation, no sockets")
    ap.add_argument("--profile", metavar="FILE", help="with --core: cProfile of the client core's calls to FILE")
    args = ap.parse_args()
    if args.core:
        core_rounds(args.rounds, args.size, args.profile)
        return
    require_node()

    # 1. a JS testnet of `size` persistent nodes
    js_net = await start_js("hyper-peer.js", "--testnet", str(args.size))
    ready = await js_net.line(120)
    boot = [(h, int(p)) for h, _, p in (b.rpartition(":") for b in ready["bootstrap"])]
    try:
        py, js, py_sent, js_sent, cpu = await both_rounds(args.rounds, boot, args.js_warmup)
        if not args.json:
            print("per op: median [p25-p75] of each client; ratio of the medians; median [p25-p75] of the"
                  " paired per-round ratios (python / js); mean requests sent (python / js); the Python"
                  " client's median CPU time")
        report("js-testnet", py, js, (py_sent, js_sent), args.json, cpu)
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
        py, js, py_sent, js_sent, cpu = await both_rounds(args.rounds, boot, args.js_warmup)
        report("py-testnet", py, js, (py_sent, js_sent), args.json, cpu)
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
