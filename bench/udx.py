#!/usr/bin/env python3
"""UDX throughput over loopback: Python (peerdht) vs udx-native, every sender/receiver pairing.

    python bench/udx.py --json --mib 64              # one JSON line per pair
    python bench/udx.py --mib 64 --pairs py-py,js-py

Each pair runs a sender process and a receiver process (``py`` = this file with ``--peer``,
``js`` = tests/js/udx-peer.js on udx-native). The sender writes N MiB of random bytes with
backpressure, then ends the stream; the receiver hashes what it reads and reports on EOF.
Printed per pair: ``{"pair", "MBps" (10^6 bytes/s, wall time from the first write to the receiver's
EOF), "cpu_s_per_gib" (user+system CPU seconds of both processes per GiB moved), "sha256_ok"}``.

``--encrypt`` wraps every stream in secret-stream (in-band Noise XX on both sides:
peerdht.aio.hyperdht.secretstream and @hyperswarm/secret-stream); the default moves raw UDX.
Installs what it needs: runs ``npm ci`` when node_modules/udx-native is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
JS_PEER = ROOT / "tests" / "js" / "udx-peer.js"
CHUNK = 65536
POOL = 1 << 20


# ---------------------------------------------------------------------------------- python peer


async def peer_main() -> None:
    """The Python peer: same JSON-lines protocol as tests/js/udx-peer.js (stream/source/sink)."""
    from peerdht.aio.transport.udx import UDXSocket, UDXStream

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sock = await UDXSocket.bind("127.0.0.1", 0)
    stream: Any = None
    tasks: list[asyncio.Task[None]] = []

    def out(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def source(n: int) -> None:
        assert stream is not None
        h = hashlib.sha256()
        rng = random.Random()
        pool = os.urandom(POOL + CHUNK)  # random chunks cut at random offsets: cheap to make, never repeating
        sent = 0
        while sent < n:
            off = rng.randrange(POOL)
            buf = pool[off : off + min(CHUNK, n - sent)]
            h.update(buf)
            stream.write(buf)
            sent += len(buf)
            await stream.drain()
        stream.write_eof()
        out({"sent": sent, "sha256": h.hexdigest()})

    async def sink() -> None:
        assert stream is not None
        h = hashlib.sha256()
        n = 0
        start = time.perf_counter()
        while data := await stream.read(1 << 20):
            h.update(data)
            n += len(data)
        out({"received": n, "sha256": h.hexdigest(), "ms": int((time.perf_counter() - start) * 1000)})
        stream.write_eof()

    out({"ready": True, "port": sock.address[1]})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "stream":
            raw: UDXStream = sock.create_stream(cmd["id"])
            await raw.connect(cmd["remoteId"], (cmd.get("host") or "127.0.0.1", cmd["port"]))
            stream = raw
            if cmd.get("secret"):
                from peerdht.aio.hyperdht.secretstream import open_secret_stream

                stream = await open_secret_stream(raw, initiator=bool(cmd.get("initiator")))
            if cmd.get("mode") == "sink":
                tasks.append(asyncio.create_task(sink()))
            out({"connected": True})
        elif cmd["cmd"] == "source":
            tasks.append(asyncio.create_task(source(cmd["bytes"])))
        elif cmd["cmd"] == "end" and stream is not None:
            stream.write_eof()
    sock.close()


# ---------------------------------------------------------------------------------- harness


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, kind: str) -> Peer:
        if kind == "py":
            argv = [sys.executable, str(Path(__file__).resolve()), "--peer"]
        else:
            argv = ["node", str(JS_PEER)]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        peer = cls(proc)
        peer.spy = None
        prefix = os.environ.get("UDX_BENCH_PROFILE")
        if kind == "py" and prefix:  # sample the Python peer with py-spy (collapsed stacks)
            Peer.count += 1
            peer.spy = await asyncio.create_subprocess_exec(
                *["py-spy", "record", "--pid", str(proc.pid), "-o", f"{prefix}-{Peer.count}.txt"],
                *["-f", "raw", "-r", "200", "--nonblocking"],
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        return peer

    count = 0
    spy: asyncio.subprocess.Process | None

    async def line(self, timeout: float = 600) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not raw:
                raise RuntimeError("peer exited")
            try:
                msg: dict[str, Any] = json.loads(raw)
            except ValueError:
                raise RuntimeError(f"bad line from peer: {raw!r}") from None
            if "event" not in msg:
                return msg

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()

    def pid(self) -> int:
        return self.proc.pid

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.spy is not None:
            await asyncio.wait_for(self.spy.wait(), 30)


async def run_pair(pair: str, mib: int, encrypt: bool = False) -> dict[str, Any]:
    send_kind, recv_kind = pair.split("-")
    size = mib << 20
    sender, receiver = await Peer.start(send_kind), await Peer.start(recv_kind)
    try:
        sport = (await sender.line(60))["port"]
        rport = (await receiver.line(60))["port"]
        secret = {"secret": encrypt}
        await receiver.send(
            {"cmd": "stream", "id": 2, "remoteId": 1, "port": sport, "mode": "sink", **secret}
        )
        await sender.send(
            {"cmd": "stream", "id": 1, "remoteId": 2, "port": rport, "initiator": True, **secret}
        )
        await receiver.line(60)
        await sender.line(60)
        cpu0 = cpu_seconds(sender.pid()) + cpu_seconds(receiver.pid())
        t0 = time.perf_counter()
        await sender.send({"cmd": "source", "bytes": size})
        got = await receiver.line()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(sender.pid()) + cpu_seconds(receiver.pid()) - cpu0
        sent = await sender.line()
        await sender.send({"cmd": "end"})
        return {
            "pair": pair,
            "MBps": round(size / wall / 1e6, 1),
            "cpu_s_per_gib": round(cpu / (size / (1 << 30)), 2),
            "sha256_ok": got["received"] == size and got["sha256"] == sent["sha256"],
            **({"encrypted": True} if encrypt else {}),
        }
    finally:
        await sender.close()
        await receiver.close()


def ensure_js() -> None:
    if shutil.which("node") is None:
        sys.exit("node is required for the js pairs")
    if not (ROOT / "node_modules" / "udx-native").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


async def harness(args: argparse.Namespace) -> None:
    pairs = args.pairs.split(",")
    if any("js" in p for p in pairs):
        ensure_js()
    for pair in pairs:
        result = await run_pair(pair, args.mib, args.encrypt)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(
                f"{pair:6} {result['MBps']:8.1f} MB/s  {result['cpu_s_per_gib']:7.2f} cpu s/GiB  "
                f"sha256 {'ok' if result['sha256_ok'] else 'MISMATCH'}"
                f"{'  (secret-stream)' if args.encrypt else '  (raw UDX)'}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--mib", type=int, default=64, help="MiB to move per pair")
    ap.add_argument(
        "--pairs", default="py-py,py-js,js-py,js-js", help="comma separated sender-receiver pairs"
    )
    ap.add_argument("--encrypt", action="store_true", help="secret-stream over UDX (in-band Noise XX)")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        asyncio.run(peer_main())
    else:
        asyncio.run(harness(args))


if __name__ == "__main__":
    main()
