#!/usr/bin/env python3
"""Connect by public key on one 20-node loopback testnet: Python <-> Python vs JS <-> JS.

    python bench/connect.py                 # 10 connects and a 256 MiB transfer per pair
    python bench/connect.py --connects 20 --mib 64 --json

One Python testnet (peerdht, 20 persistent nodes on 127.0.0.1) carries both pairs. For each pair a
server node listens on a key pair and a client node connects ``--connects`` times, timing
``connect()`` until the encrypted stream is open (median reported), then sends ``--mib`` MiB one
way and waits for the server to end its side (throughput = bytes / that wall time, 10^6 bytes/s).
Ratios are Python / JS: connect-time ratio (target <= 1.5, goal <= 1.0) and throughput ratio.
JS side: tests/js/connect-bench.js (hyperdht 6.34). Not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from jsproc import require_node  # noqa: E402
from peerdht.aio.hyperdht import HyperDHT  # noqa: E402
from peerdht.aio.hyperdht.testnet import Testnet  # noqa: E402


async def py_pair(testnet: Testnet, connects: int, mib: int) -> dict[str, Any]:
    async with testnet.node() as a, testnet.node() as b:
        await a.fully_bootstrapped()
        await b.fully_bootstrapped()
        received = 0

        async def handler(stream: Any) -> None:
            nonlocal received
            while chunk := await stream.read(1 << 20):
                received += len(chunk)
            stream.write_eof()
            await stream.drain()

        server = a.create_server(handler)
        kp = HyperDHT.key_pair()
        await server.listen(kp)
        times = []
        for _ in range(connects):
            t0 = time.perf_counter()
            s = await b.connect(kp.public_key)
            times.append((time.perf_counter() - t0) * 1000)
            s.write_eof()
            s.close()
        received = 0
        total = mib * 1024 * 1024
        chunk = b"\x07" * 65536
        s = await b.connect(kp.public_key)
        t0 = time.perf_counter()
        for _ in range(total // len(chunk)):
            s.write(chunk)
            await s.drain()
        s.write_eof()
        await s.read()  # the server ends once it read everything
        secs = time.perf_counter() - t0
        s.close()
        await server.close()
        return {"connect_ms": times, "MBps": total / secs / 1e6, "ok": received == total}


def js_pair(bootstrap: str, connects: int, mib: int) -> dict[str, Any]:
    res = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "js" / "connect-bench.js"),
            "--bootstrap",
            bootstrap,
            "--connects",
            str(connects),
            "--mib",
            str(mib),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connects", type=int, default=10)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--size", type=int, default=20, help="testnet size (default 20)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    require_node()
    async with await Testnet.create(args.size) as testnet:
        boot = f"{testnet.bootstrap[0][0]}:{testnet.bootstrap[0][1]}"
        py = await py_pair(testnet, args.connects, args.mib)
        js = await asyncio.get_running_loop().run_in_executor(None, js_pair, boot, args.connects, args.mib)
    py_ms, js_ms = statistics.median(py["connect_ms"]), statistics.median(js["connect_ms"])
    result = {
        "testnet": args.size,
        "connects": args.connects,
        "mib": args.mib,
        "py_connect_ms": round(py_ms, 2),
        "js_connect_ms": round(js_ms, 2),
        "connect_ratio": round(py_ms / js_ms, 3),
        "py_MBps": round(py["MBps"], 1),
        "js_MBps": round(js["MBps"], 1),
        "throughput_ratio": round(py["MBps"] / js["MBps"], 3),
        "ok": bool(py["ok"] and js["ok"]),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"testnet {args.size} nodes, {args.connects} connects, {args.mib} MiB one way")
        print(
            f"connect (median)  py-py {py_ms:8.2f} ms   js-js {js_ms:8.2f} ms   ratio py/js {py_ms / js_ms:.2f}"
        )
        print(
            f"throughput        py-py {py['MBps']:8.1f} MB/s js-js {js['MBps']:8.1f} MB/s ratio py/js "
            f"{py['MBps'] / js['MBps']:.2f}"
        )
        print(f"transfers intact: {result['ok']}")


if __name__ == "__main__":
    asyncio.run(main())
