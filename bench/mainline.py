"""Mainline DHT get_peers lookups, peerdht vs npm bittorrent-dht, on one 200-node loopback network.

The network: ``size / 2`` Python nodes (one process, :class:`MainlineTestnet`, this script run with
``--nodes``) and ``size / 2`` bittorrent-dht nodes (one node process, ``tests/js/mainline-bench.js``),
all joined through the first Python node. The two clients run in processes of their own -- the Python
client in this one, the JS client in ``bench/js/mainline-client.js`` -- so neither shares its event
loop with half of the network it queries (with the Python client inside the Python testnet process,
its lookups waited on the CPU of the Python nodes it queried, the JS client's on that of the JS nodes).
Each info hash is announced by one node (alternately Python and JS); then the Python client and the
JS client look up the same info hashes, one after the other (Python first for even hashes, JS first
for odd ones), so both see the same moment and the same machine load. Printed per client: median (with
its interquartile range) and p90 lookup time (until the lookup finished), median time to the first peer,
mean queries sent per lookup, success rate; and the ratios Python / JS (lower is better; issue 6 targets
messages <= 1.0, time <= 1.5), both of the medians and as the median (with interquartile range) of the
paired per-hash ratios.

    python bench/mainline.py [--size 200] [--lookups 30] [--json]

Everything binds 127.0.0.1. Needs `npm ci` at the repo root.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import JSProcess, require_node, start_js  # noqa: E402
from peerdht.aio.mainline import MainlineDHT, MainlineTestnet  # noqa: E402

PEER_PORT_BASE = 20000


async def ask(js: JSProcess, cmd: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    await js.send(cmd)
    while True:
        line = await js.line(timeout)
        if "error" in line and "cmd" not in line:
            raise RuntimeError(line["error"])
        if line.get("cmd") == cmd["cmd"]:
            return line


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def py_lookup(client: MainlineDHT, ih: bytes) -> dict[str, Any]:
    before = client.core.stats["queries_sent"]
    t0 = time.perf_counter()
    first: float | None = None
    peers = []
    async for peer in client.get_peers(ih):
        if first is None:
            first = time.perf_counter()
        peers.append(peer)
    t1 = time.perf_counter()
    return {
        "ms": (t1 - t0) * 1000,
        "firstMs": None if first is None else (first - t0) * 1000,
        "messages": client.core.stats["queries_sent"] - before,
        "peers": [f"{h}:{p}" for h, p in peers],
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(p25, median, p75) of ``values`` (NaNs if empty)."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def paired(py_rows: list[dict[str, Any]], js_rows: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    """Quartiles of the per-hash ratios Python / JS of ``key`` (hashes where both have a value)."""
    return quartiles([p[key] / j[key] for p, j in zip(py_rows, js_rows, strict=True) if p[key] and j[key]])


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    ms = [r["ms"] for r in rows]
    first = [r["firstMs"] for r in rows if r["firstMs"] is not None]
    q1, _, q3 = quartiles(ms)
    f1, _, f3 = quartiles(first)
    return {
        "median_ms": statistics.median(ms),
        "p25_ms": q1,
        "p75_ms": q3,
        "p25_first_peer_ms": f1,
        "p75_first_peer_ms": f3,
        "p90_ms": pct(ms, 0.9),
        "median_first_peer_ms": statistics.median(first) if first else float("nan"),
        "messages_per_lookup": statistics.mean(r["messages"] for r in rows),
        "success": sum(1 for r in rows if r["found"]) / len(rows),
    }


async def nodes_process(n: int) -> None:
    """``--nodes N``: the Python half of the network in its own process, driven by JSON lines on stdin
    (``bootstrap`` the first ``count`` nodes again, ``announce`` from node ``node``); prints
    ``{"ready": true, "bootstrap": [host, port]}`` first and one line per command. Ends when stdin closes."""
    testnet = await MainlineTestnet.create(n)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def out(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    out({"ready": True, "bootstrap": list(testnet.bootstrap[0])})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "bootstrap":
                for node in testnet.nodes[: cmd["count"]]:
                    await node.bootstrap()
                out({"cmd": "bootstrap", "error": None})
            elif cmd["cmd"] == "announce":
                node = testnet.nodes[cmd["node"] % n]
                await node.announce_peer(bytes.fromhex(cmd["infoHash"]), cmd["port"])
                out({"cmd": "announce", "error": None})
    finally:
        await testnet.close()


async def start_process(name: str, *argv: str) -> JSProcess:
    """A helper process speaking JSON lines (``JSProcess`` drives any such process, not only node)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=1 << 24,
    )
    return JSProcess(proc, name)


async def main(size: int, lookups: int, as_json: bool) -> int:
    half = size // 2
    t = time.perf_counter()
    procs: list[JSProcess] = []
    try:
        pyn = await start_process("python nodes", sys.executable, __file__, "--nodes", str(half))
        procs.append(pyn)
        ready = await pyn.line(300)
        boot = (ready["bootstrap"][0], int(ready["bootstrap"][1]))
        js = await start_js("mainline-bench.js", str(size - half), f"{boot[0]}:{boot[1]}")
        procs.append(js)
        ready = await js.line(300)
        assert ready.get("ready"), ready
        # let the Python nodes learn the JS nodes too (they answer our verification pings)
        await ask(pyn, {"cmd": "bootstrap", "count": max(1, half // 4)}, 300)
        jsc = await start_process("mainline-client.js", require_node(), str(ROOT / "bench/js/mainline-client.js"),
                                  f"{boot[0]}:{boot[1]}")
        procs.append(jsc)
        ready = await jsc.line(60)
        assert ready.get("ready"), ready
        build_s = time.perf_counter() - t
        client = MainlineDHT(bootstrap=[boot], host="127.0.0.1", rate_limit=None)
        await client.open()
        hashes = [os.urandom(20) for _ in range(lookups)]
        expected: list[str] = []
        for i, ih in enumerate(hashes):
            port = PEER_PORT_BASE + i
            cmd = {"cmd": "announce", "infoHash": ih.hex(), "port": port, "node": 7 * i + (1 if i % 2 == 0 else 0)}
            res = await ask(pyn if i % 2 == 0 else js, cmd)
            assert res["error"] is None, res
            expected.append(f"127.0.0.1:{port}")

        py_rows: list[dict[str, Any]] = []
        js_rows: list[dict[str, Any]] = []
        for i, ih in enumerate(hashes):
            order = ("py", "js") if i % 2 == 0 else ("js", "py")
            for who in order:
                if who == "py":
                    row = await py_lookup(client, ih)
                    row["found"] = expected[i] in row["peers"]
                    py_rows.append(row)
                else:
                    row = await ask(jsc, {"cmd": "lookup", "infoHash": ih.hex()})
                    row["found"] = expected[i] in row["peers"]
                    js_rows.append(row)
        await client.close()
    finally:
        for proc in reversed(procs):
            await proc.close()

    py, jsr = summary(py_rows), summary(js_rows)
    ratios = {
        "messages": py["messages_per_lookup"] / jsr["messages_per_lookup"],
        "median_ms": py["median_ms"] / jsr["median_ms"],
        "p90_ms": py["p90_ms"] / jsr["p90_ms"],
        "median_first_peer_ms": py["median_first_peer_ms"] / jsr["median_first_peer_ms"],
    }
    pairs = {key: paired(py_rows, js_rows, key) for key in ("ms", "firstMs", "messages")}
    result = {
        "network": {"size": size, "python_nodes": half, "js_nodes": size - half, "build_s": build_s},
        "lookups": lookups,
        "python": py,
        "bittorrent_dht": jsr,
        "ratio_python_over_js": ratios,
        "paired_ratio_quartiles": {"lookup_ms": pairs["ms"], "first_peer_ms": pairs["firstMs"],
                                   "messages": pairs["messages"]},
    }
    if as_json:
        print(json.dumps(result))
        return 0
    print(
        f"network: {half} Python + {size - half} bittorrent-dht nodes on 127.0.0.1 (built in {build_s:.1f} s)"
    )
    print(f"{lookups} get_peers lookups per client, same info hashes\n")
    print(f"{'':28}{'python':>12}{'bittorrent-dht':>16}{'ratio':>9}   paired ratio median [p25-p75]")
    rows = [
        ("lookup time, median (ms)", "median_ms", "median_ms", "ms"),
        ("lookup time, p90 (ms)", "p90_ms", "p90_ms", ""),
        ("first peer, median (ms)", "median_first_peer_ms", "median_first_peer_ms", "firstMs"),
        ("queries sent per lookup", "messages_per_lookup", "messages", "messages"),
    ]
    for label, key, rkey, pkey in rows:
        pair = f"   {pairs[pkey][1]:5.2f} [{pairs[pkey][0]:4.2f}-{pairs[pkey][2]:4.2f}]" if pkey else ""
        print(f"{label:28}{py[key]:12.1f}{jsr[key]:16.1f}{ratios[rkey]:9.2f}{pair}")
    for label, key in (("lookup time, p25-p75 (ms)", "ms"), ("first peer, p25-p75 (ms)", "first_peer_ms")):
        p25, p75 = f"p25_{key}", f"p75_{key}"
        print(f"{label:28}{f'{py[p25]:.1f}-{py[p75]:.1f}':>12}{f'{jsr[p25]:.1f}-{jsr[p75]:.1f}':>16}")
    print(f"{'peer found':28}{py['success']:12.0%}{jsr['success']:16.0%}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200, help="nodes in the network (default 200)")
    parser.add_argument("--lookups", type=int, default=30, help="lookups per client (default 30)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--nodes", type=int, default=0, help=argparse.SUPPRESS)  # the Python half's process
    args = parser.parse_args()
    if args.nodes:
        asyncio.run(nodes_process(args.nodes))
        raise SystemExit(0)
    require_node()
    raise SystemExit(asyncio.run(main(args.size, args.lookups, args.json)))
