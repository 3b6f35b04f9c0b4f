"""NAT sampler: unit behaviour and equality with npm ``nat-sampler`` on random sample streams."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from peerdht.hyper.nat import NatSampler

ROOT = Path(__file__).resolve().parents[2]


def test_consistent_nat() -> None:
    s = NatSampler()
    assert (s.host, s.port) == (None, 0)
    s.add("1.2.3.4", 5000)
    assert (s.host, s.port) == ("1.2.3.4", 5000)
    s.add("1.2.3.4", 5000)
    s.add("1.2.3.4", 5000)
    assert (s.host, s.port) == ("1.2.3.4", 5000)


def test_random_ports_give_host_only() -> None:
    s = NatSampler()
    for p in (1000, 2000, 3000, 4000, 5000):
        s.add("1.2.3.4", p)
    assert (s.host, s.port) == ("1.2.3.4", 0)


def test_disagreeing_hosts_give_nothing() -> None:
    s = NatSampler()
    s.add("1.1.1.1", 1)
    s.add("2.2.2.2", 1)
    assert s.host is None and s.port == 0


def test_one_outlier_tolerated_after_four_samples() -> None:
    s = NatSampler()
    for _ in range(4):
        s.add("1.2.3.4", 7000)
    s.add("9.9.9.9", 7000)
    assert (s.host, s.port) == ("1.2.3.4", 7000)


def _streams(seed: int, n: int) -> list[list[tuple[str, int]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        hosts = [f"10.0.0.{i}" for i in range(1, rng.randint(1, 3) + 1)]
        ports = [rng.randint(1, 65535) for _ in range(rng.randint(1, 4))]
        out.append([(rng.choice(hosts), rng.choice(ports)) for _ in range(rng.randint(1, 60))])
    return out


_JS = """
const NatSampler = require(process.argv[1] + '/node_modules/nat-sampler')
const streams = JSON.parse(require('fs').readFileSync(0, 'utf8'))
const out = streams.map((stream) => {
  const s = new NatSampler()
  return stream.map(([h, p]) => { const hits = s.add(h, p); return [s.host, s.port, hits, s.size] })
})
console.log(JSON.stringify(out))
"""


@pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules/nat-sampler").exists(), reason="needs node"
)
def test_equal_to_js_nat_sampler() -> None:
    streams = _streams(7, 200)
    proc = subprocess.run(
        ["node", "-e", _JS, str(ROOT)],
        input=json.dumps(streams),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    expected = json.loads(proc.stdout)
    for stream, exp in zip(streams, expected, strict=True):
        s = NatSampler()
        got = []
        for h, p in stream:
            hits = s.add(h, p)
            got.append([s.host, s.port, hits, s.size])
        assert got == exp
