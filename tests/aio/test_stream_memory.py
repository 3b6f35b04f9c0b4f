"""drain() bounds memory: 1 GiB through an encrypted UDX stream stays within a small, fixed footprint.

The transfer runs in a child process so its peak RSS (ru_maxrss) is its own, not the test runner's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import asyncio, hashlib, json, resource, sys
from peerdht.aio.hyperdht.secretstream import open_secret_stream
from peerdht.aio.transport.udx import UDXSocket
from peerdht.keys import KeyPair

TOTAL = int(sys.argv[1])
CHUNK = 1 << 20

async def main():
    a, b = await UDXSocket.bind("127.0.0.1", 0), await UDXSocket.bind("127.0.0.1", 0)
    ra, rb = a.create_stream(1), b.create_stream(2)
    await ra.connect(2, b.address)
    await rb.connect(1, a.address)
    sa, sb = await asyncio.gather(
        open_secret_stream(ra, initiator=True, key_pair=KeyPair.from_seed(bytes(32))),
        open_secret_stream(rb, initiator=False, key_pair=KeyPair.from_seed(bytes([1]) * 32)),
    )
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    block = bytes(range(256)) * (CHUNK // 256)

    async def send():
        h = hashlib.sha256()
        for _ in range(TOTAL // CHUNK):
            sa.write(block)      # never more than one chunk ahead of drain()
            h.update(block)
            await sa.drain()
        sa.write_eof()
        return h.hexdigest()

    async def recv():
        h, n = hashlib.sha256(), 0
        while chunk := await sb.read(1 << 16):
            h.update(chunk)
            n += len(chunk)
        return n, h.hexdigest()

    sent, (n, got) = await asyncio.gather(send(), recv())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": n, "ok": sent == got, "base_kib": base, "peak_kib": peak}))
    for s in (sa, sb):
        s.close()
    a.close(); b.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_one_gib_transfer_has_bounded_memory() -> None:
    total = 1 << 30
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(total)], capture_output=True, text=True, timeout=600, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == total and result["ok"]
    growth_mib = (result["peak_kib"] - result["base_kib"]) / 1024
    # send window + receive window + one chunk of each kind: tens of MiB, never the 1 GiB moved
    assert growth_mib < 96, result
