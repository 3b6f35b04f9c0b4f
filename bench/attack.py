#!/usr/bin/env python3
"""A peerdht server and a JS hyperdht 6.34 server under the same attacks, side by side (issue 15).

    python bench/attack.py                       # all attacks, full size (~6 minutes)
    python bench/attack.py --only garbage --seconds 10
    python bench/attack.py --json

Needs what README command 1 installs plus ``npm ci`` (for the JS server); nothing from tests/.
One Python testnet of 10 nodes on 127.0.0.1 (in this process) carries both servers, each in its own
process (``python -m tools.attack serve`` and ``bench/js/attack-server.js``); the attacker
is ``python -m tools.attack flood``/``clients`` in further processes. CPU (% of one core,
utime+stime from /proc) and RSS (VmRSS) are those of the server process. Attacks, one server at a time:

* garbage: ``--rate`` (3,000) random-noise PEER_HANDSHAKE datagrams/s for ``--seconds`` (20) at the
  server node's port from one socket on 127.0.0.2 (``--hosts N``: round-robin from N hosts
  127.1.x.y, each under the per-host limits, so every datagram costs a Diffie-Hellman); CPU during
  and in the 8 s after; a legitimate connect (from 127.0.0.1) half-way through.
* valid: ``--floods`` (3) floods of ``--handshakes`` (10,000) fresh valid Noise handshakes at 500/s
  (the fake clients claim to be reachable, so each costs a UDX stream; ``--hosts`` spreads them as for
  garbage, so that none is shed by the per-address rate); RSS at start, peak, and
  ``--settle`` (50) s after each flood; a legitimate connect after the floods.
* kill: ``--conns`` (100) connections from a client process that is then ``kill -9``ed; the server
  half-closed each one first. Seconds until the server has reclaimed them all (60 s limit).

Network: 127.0.0.1 only. Not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # peerdht, tools

from tools.roleproc import RoleProcess as Proc  # noqa: E402
from tools.roleproc import cpu_seconds, rss_mib  # noqa: E402

from peerdht.aio.hyperdht.testnet import Testnet  # noqa: E402


async def spawn(*argv: str, stdin: bool = True) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},  # peerdht, tools
    )
    return Proc(proc)


def attacker(*argv: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "tools.attack", *argv)


async def start_server(kind: str, boot: str) -> tuple[Proc, dict[str, Any]]:
    if kind == "python":
        p = await spawn(*attacker("serve", "--bootstrap", boot))
    else:
        node = shutil.which("node")
        if node is None:
            raise SystemExit("node is needed for the JS anchor (apt install nodejs; npm ci)")
        p = await spawn(node, str(ROOT / "bench/js/attack-server.js"), "--bootstrap", boot)
    ready = await p.reply(60)
    assert ready.get("ready"), ready
    return p, ready


async def legit_connect(testnet: Testnet, public_key: bytes, timeout: float = 30.0) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        async with testnet.node() as client:
            await client.fully_bootstrapped()
            stream = await asyncio.wait_for(client.connect(public_key), timeout)
            await asyncio.wait_for(stream.read(), timeout)  # the server half-closed: EOF
            stream.close()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "s": round(time.perf_counter() - t, 2)}
    return {"ok": True, "s": round(time.perf_counter() - t, 2)}


async def cpu_over(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


async def garbage(testnet: Testnet, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    server, ready = await start_server(kind, args.boot)
    pid, pk = ready["pid"], ready["publicKey"]
    try:
        await asyncio.sleep(2)
        idle = await cpu_over(pid, 2)
        fl = await spawn(
            *attacker("flood", "garbage", "--to", f"127.0.0.1:{ready['port']}", "--public-key", pk,
                      "--rate", str(args.rate), "--duration", str(args.seconds), "--hosts", str(args.hosts)),
            stdin=False,
        )
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(args.seconds / 2)
        connect = await legit_connect(testnet, bytes.fromhex(pk))
        sent = await fl.reply(args.seconds + 60)
        during = 100 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
        await fl.stop()
        after = await cpu_over(pid, 8)
        return {"idle_cpu": round(idle, 1), "cpu": round(during, 1), "cpu_after": round(after, 1),
                "sent": sent["sent"], "connect": connect}
    finally:
        await server.stop()


async def valid(testnet: Testnet, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    server, ready = await start_server(kind, args.boot)
    pid, pk = ready["pid"], ready["publicKey"]
    out: dict[str, Any] = {"floods": []}
    try:
        await asyncio.sleep(2)
        out["rss_start"] = round(rss_mib(pid), 1)
        for _ in range(args.floods):
            fl = await spawn(
                *attacker("flood", "valid", "--claim-open", "--to", f"127.0.0.1:{ready['port']}",
                          "--public-key", pk, "--rate", "500", "--count", str(args.handshakes),
                          "--hosts", str(args.hosts)),
                stdin=False,
            )
            await fl.reply(600)  # prepared
            peak = rss_mib(pid)
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            done = asyncio.ensure_future(fl.reply(600))
            while not done.done():
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.2)
            cpu = 100 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
            await fl.stop()
            t_end = time.perf_counter()
            while time.perf_counter() - t_end < args.settle:
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.5)
            out["floods"].append({"cpu": round(cpu, 1), "rss_peak": round(peak, 1), "rss_after": round(rss_mib(pid), 1)})
        out["connect"] = await legit_connect(testnet, bytes.fromhex(pk))
        return out
    finally:
        await server.stop()


async def kill9(testnet: Testnet, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    server, ready = await start_server(kind, args.boot)
    try:
        cl = await spawn(
            *attacker("clients", "--bootstrap", args.boot, "--public-key", ready["publicKey"],
                      "--count", str(args.conns)),
            stdin=False,
        )
        got = await cl.reply(300)
        await server.send({"op": "stats"})
        before = (await server.reply())["connections"]
        cl.proc.send_signal(signal.SIGKILL)
        t = time.perf_counter()
        left = before
        while time.perf_counter() - t < 60:
            await server.send({"op": "stats"})
            left = (await server.reply())["connections"]
            if left == 0:
                break
            await asyncio.sleep(0.5)
        await cl.stop()
        errors = sorted({str(e.get("error")) for e in server.events})
        return {"connected": got["connected"], "open_before_kill": before, "left": left,
                "reclaimed_s": round(time.perf_counter() - t, 1) if left == 0 else None, "errors": errors}
    finally:
        await server.stop()


ATTACKS = {"garbage": garbage, "valid": valid, "kill": kill9}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=list(ATTACKS), action="append")
    ap.add_argument("--servers", default="python,js")
    ap.add_argument("--rate", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--hosts", type=int, default=1, help="garbage, valid: spread over this many 127.1.x.y hosts")
    ap.add_argument("--handshakes", type=int, default=10_000)
    ap.add_argument("--floods", type=int, default=3)
    ap.add_argument("--settle", type=float, default=50)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    async with await Testnet.create(10) as testnet:
        args.boot = "{}:{}".format(*testnet.bootstrap[0])
        for name in args.only or list(ATTACKS):
            for kind in args.servers.split(","):
                if not args.json:
                    print(f"... {name} on {kind}", file=sys.stderr, flush=True)
                results.setdefault(name, {})[kind] = await ATTACKS[name](testnet, kind, args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, by in results.items():
        print(f"\n== {name}")
        for kind, r in by.items():
            print(f"  {kind:7s} {json.dumps(r)}")


if __name__ == "__main__":
    asyncio.run(main())
