"""Automatic relay fallback across real NATs: ``peerdht serve`` and ``peerdht connect`` both behind
symmetric NATs (punching impossible: HyperDHT gives up with HOLEPUNCH_DOUBLE_RANDOMIZED_NATS) connect
through a ``peerdht node --relay`` on the lab's public segment, found by lookup -- no option given."""

from __future__ import annotations

import hashlib
import os
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from natlab_tools import start_testnet

from peerdht.hyper.crypto import KeyPair
from peerdht.testing.natlab import Lab, NatType

pytestmark = pytest.mark.netns

PY = sys.executable


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _wait_stderr(proc: subprocess.Popen[str], needle: bytes, timeout: float = 30) -> bytes:
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline, err = time.monotonic() + timeout, b""
    while needle not in err and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"process exited: {err!r}"
            err += chunk
    assert needle in err, err
    return err


def test_symmetric_to_symmetric_through_relay(lab: Lab, tmp_path: Path) -> None:
    boot = lab.add_public("boot")
    relay_host = lab.add_public("relay")
    alice = lab.add_private("alice", NatType.SYMMETRIC)
    bob = lab.add_private("bob", NatType.SYMMETRIC)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    relay = lab.popen(
        relay_host,
        [
            "sh",
            "-c",
            f"exec {shlex.quote(PY)} -m peerdht node --relay --persistent --host {relay_host.ip} {args}",
        ],
        stdin=None,
        stdout=None,
    )
    _wait_stderr(relay, b"relaying as:")
    a_in, b_in = tmp_path / "a_in", tmp_path / "b_in"
    a_in.write_bytes(os.urandom(1024 * 1024 + 5))
    b_in.write_bytes(os.urandom(512 * 1024 + 3))
    seed = "ab" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    serve = (
        f"exec {shlex.quote(PY)} -m peerdht serve --seed {seed} --once {args} < {a_in} > {tmp_path / 'a_out'}"
    )
    server = lab.popen(alice, ["sh", "-c", serve], stdin=None, stdout=None)
    _wait_stderr(server, f"listening on: {key}".encode())
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {b_in} > {tmp_path / 'b_out'}"
    t0 = time.monotonic()
    res = lab.run(bob, ["sh", "-c", connect], timeout=120, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert server.returncode == 0
    assert _sha(tmp_path / "b_out") == _sha(a_in)
    assert _sha(tmp_path / "a_out") == _sha(b_in)
    print(f"symmetric <-> symmetric through the relay: connect + 1.5 MiB both ways in {elapsed:.2f} s")
    relay.send_signal(2)
    relay.wait(timeout=10)
    testnet.close(interrupt=True)
