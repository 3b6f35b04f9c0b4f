"""64 MiB over a lossy link: two network namespaces joined by a veth pair with ``tc netem``
(3 % loss and 20 ms delay each way), one UDX peer process in each (root only). On kernels without the netem
qdisc the link goes through a third namespace running :mod:`tools.delayline` (the same 3 % loss
and 20 ms delay each way, done in userspace).

Run by hand: ``python -m pytest -m netns tests/interop/test_udx_netem.py``.
The file doubles as the Python peer (``python test_udx_netem.py --peer HOST``), speaking the JSON-lines
protocol of tests/js/udx-peer.js.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("10.201.0.1", "10.201.0.2")
LOSS = "3%"
DELAY = "20ms"
LOSS_P = 0.03  # the same, for the delay line
DELAY_S = 0.020
SIZE = int(os.environ.get("UDX_NETEM_MIB", "64")) << 20


# ---------------------------------------------------------------------------------- the peer


async def peer(host: str) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from peerdht.aio.transport.udx import UDXSocket, UDXStream

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sock = await UDXSocket.bind(host, 0)
    stream: UDXStream | None = None
    tasks = []

    def out(obj: dict[str, Any]) -> None:
        print(json.dumps(obj), flush=True)

    async def source(n: int) -> None:
        assert stream is not None
        h = hashlib.sha256()
        pool = os.urandom((1 << 20) + 65536)
        sent = 0
        while sent < n:
            off = int.from_bytes(os.urandom(3), "little") % (1 << 20)
            buf = pool[off : off + min(65536, n - sent)]
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
        while data := await stream.read(1 << 20):
            h.update(data)
            n += len(data)
        out({"received": n, "sha256": h.hexdigest()})
        stream.write_eof()

    out({"ready": True, "port": sock.address[1]})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "stream":
            stream = sock.create_stream(cmd["id"])
            await stream.connect(cmd["remoteId"], (cmd["host"], cmd["port"]))
            if cmd.get("mode") == "sink":
                tasks.append(asyncio.create_task(sink()))
            out({"connected": True})
        elif cmd["cmd"] == "source":
            tasks.append(asyncio.create_task(source(cmd["bytes"])))
    sock.close()


# ---------------------------------------------------------------------------------- the test

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.interop]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def link() -> Iterator[tuple[str, str, str]]:
    """Two namespaces joined by a lossy, slow link; yields (sender netns, receiver netns, how it is shaped).

    With netem: one veth pair, netem on both ends. Without (kernels built without ``CONFIG_NET_SCH_NETEM``):
    ``A -veth- D -veth- B``, with :mod:`tools.delayline` in D delaying and dropping frames each way.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip")
    from tools.delayline import DelayLineError, start_delay_line

    tag = uuid.uuid4().hex[:6]
    ns = (f"udxa{tag}", f"udxb{tag}")
    mid = f"udxd{tag}"
    made = [*ns]
    shaped = ""
    line = None
    veth = (f"va{tag}", f"vb{tag}")
    try:
        for n in ns:
            sh("ip", "netns", "add", n)
        sh("ip", "link", "add", veth[0], "netns", ns[0], "type", "veth", "peer", "name", veth[1], "netns", ns[1])  # fmt: skip
        for n, v in zip(ns, veth, strict=True):
            if shutil.which("tc") is None:
                break
            try:
                sh("ip", "netns", "exec", n, "tc", "qdisc", "add", "dev", v, "root", "netem",
                   "loss", LOSS, "delay", DELAY, "limit", "100000")  # fmt: skip
                shaped = f"netem {LOSS} loss {DELAY} delay"
            except subprocess.CalledProcessError:
                shaped = ""
                break
        if not shaped:
            # no sch_netem: re-plumb as A -veth- D -veth- B with the userspace delay line in D
            sh("ip", "-n", ns[0], "link", "del", veth[0])
            sh("ip", "netns", "add", mid)
            made.append(mid)
            for n, v, d in zip(ns, veth, ("da", "db"), strict=True):
                sh("ip", "link", "add", v, "netns", n, "type", "veth", "peer", "name", d, "netns", mid)
            line = start_delay_line("da", "db", netns=mid, delay=DELAY_S, loss=LOSS_P, seed=1)
            shaped = f"the delay line (no netem): {LOSS} loss per datagram, {DELAY} delay each way"
        for n, v, h in zip(ns, veth, HOSTS, strict=True):
            sh("ip", "-n", n, "addr", "add", f"{h}/24", "dev", v)
            sh("ip", "-n", n, "link", "set", v, "up")
            sh("ip", "-n", n, "link", "set", "lo", "up")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, DelayLineError) as exc:
        if line is not None:
            line.stop()
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)
        pytest.skip(f"cannot build network namespaces: {exc}")
    try:
        yield ns[0], ns[1], shaped
    finally:
        if line is not None:
            print(f"delay line counters: {line.stop()}")
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)


async def spawn(ns: str, kind: str, host: str) -> asyncio.subprocess.Process:
    if kind == "py":
        argv = [sys.executable, str(Path(__file__).resolve()), "--peer", host]
    else:
        node = shutil.which("node")
        if node is None or not (ROOT / "node_modules" / "udx-native").is_dir():
            pytest.skip("node_modules missing")
        argv = [node, str(ROOT / "tests" / "js" / "udx-peer.js"), host]
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, *argv, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def line(p: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert p.stdout is not None
    while True:
        raw = await asyncio.wait_for(p.stdout.readline(), timeout)
        if not raw:
            assert p.stderr is not None
            raise RuntimeError((await p.stderr.read()).decode(errors="replace")[-2000:])
        msg: dict[str, Any] = json.loads(raw)
        if "event" not in msg:
            return msg


async def send(p: asyncio.subprocess.Process, obj: dict[str, Any]) -> None:
    assert p.stdin is not None
    p.stdin.write(json.dumps(obj).encode() + b"\n")
    await p.stdin.drain()


@pytest.mark.parametrize("pair", ["py-py", "py-js", "js-py"])
async def test_64mib_over_netem(link: tuple[str, str, str], pair: str) -> None:
    kinds = pair.split("-")
    sender = await spawn(link[0], kinds[0], HOSTS[0])
    receiver = await spawn(link[1], kinds[1], HOSTS[1])
    try:
        sport = (await line(sender, 30))["port"]
        rport = (await line(receiver, 30))["port"]
        await send(
            receiver,
            {"cmd": "stream", "id": 2, "remoteId": 1, "port": sport, "host": HOSTS[0], "mode": "sink"},
        )
        await line(receiver, 30)
        await send(sender, {"cmd": "stream", "id": 1, "remoteId": 2, "port": rport, "host": HOSTS[1]})
        await line(sender, 30)
        t0 = time.monotonic()
        await send(sender, {"cmd": "source", "bytes": SIZE})
        got = await line(receiver, 170)
        elapsed = time.monotonic() - t0
        sent = await line(sender, 30)
        assert got["received"] == SIZE and got["sha256"] == sent["sha256"]
        print(f"{pair}: {SIZE >> 20} MiB at {SIZE / elapsed / 1e6:.1f} MB/s over {link[2]}")
    finally:
        for p in (sender, receiver):
            if p.stdin is not None:
                p.stdin.close()
            try:
                await asyncio.wait_for(p.wait(), 5)
            except TimeoutError:
                p.kill()
                await p.wait()


if __name__ == "__main__" and sys.argv[1:2] == ["--peer"]:
    asyncio.run(peer(sys.argv[2]))
