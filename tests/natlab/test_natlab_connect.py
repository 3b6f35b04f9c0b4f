"""Connect by public key across real NATs: ``peerdht serve`` and ``peerdht connect`` behind cone NATs
holepunch to each other through a testnet on the lab's public segment."""

from __future__ import annotations

import hashlib
import os
import select
import shlex
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


@pytest.mark.parametrize(
    ("server_nat", "client_nat"),
    [
        (NatType.PORT_RESTRICTED_CONE, NatType.PORT_RESTRICTED_CONE),
        (NatType.FULL_CONE, NatType.RESTRICTED_CONE),
        (NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC),  # client: birthday sockets; server: random probes
        (NatType.SYMMETRIC, NatType.PORT_RESTRICTED_CONE),  # the other way round
    ],
)
def test_serve_connect_through_cone_nats(
    lab: Lab, tmp_path: Path, server_nat: NatType, client_nat: NatType
) -> None:
    boot = lab.add_public("boot")
    alice = lab.add_private("alice", server_nat)
    bob = lab.add_private("bob", client_nat)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    a_in, b_in = tmp_path / "a_in", tmp_path / "b_in"
    a_in.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    b_in.write_bytes(os.urandom(1024 * 1024 + 1))
    seed = "cd" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    serve = (
        f"exec {shlex.quote(PY)} -m peerdht serve --seed {seed} --once {args} < {a_in} > {tmp_path / 'a_out'}"
    )
    server = lab.popen(alice, ["sh", "-c", serve], stdin=None, stdout=None)
    assert server.stderr is not None
    fd = server.stderr.fileno()
    deadline, err = time.monotonic() + 30, b""
    while b"listening on:" not in err and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, "serve exited"
            err += chunk
    assert f"listening on: {key}".encode() in err
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {b_in} > {tmp_path / 'b_out'}"
    res = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert server.returncode == 0
    assert _sha(tmp_path / "b_out") == _sha(a_in)
    assert _sha(tmp_path / "a_out") == _sha(b_in)
    testnet.close(interrupt=True)


@pytest.mark.parametrize("nat", [NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC])
def test_same_lan_behind_one_nat(lab: Lab, tmp_path: Path, nat: NatType) -> None:
    """Server and client on one LAN behind the same NAT (no hairpinning): the LAN shortcut."""
    boot = lab.add_public("boot")
    alice = lab.add_private("alice", nat)
    carol = lab.add_private("carol", behind="alice")
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    a_in, c_in = tmp_path / "a_in", tmp_path / "c_in"
    a_in.write_bytes(os.urandom(512 * 1024))
    c_in.write_bytes(os.urandom(256 * 1024))
    seed = "ce" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    serve = (
        f"exec {shlex.quote(PY)} -m peerdht serve --seed {seed} --once {args} < {a_in} > {tmp_path / 'a_out'}"
    )
    server = lab.popen(alice, ["sh", "-c", serve], stdin=None, stdout=None)
    assert server.stderr is not None
    fd = server.stderr.fileno()
    deadline, err = time.monotonic() + 30, b""
    while b"listening on:" not in err and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, "serve exited"
            err += chunk
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {c_in} > {tmp_path / 'c_out'}"
    res = lab.run(carol, ["sh", "-c", connect], timeout=90, check=False)
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert _sha(tmp_path / "c_out") == _sha(a_in)
    assert _sha(tmp_path / "a_out") == _sha(c_in)
    testnet.close(interrupt=True)


@pytest.mark.slow
def test_random_punches_are_throttled(lab: Lab, tmp_path: Path) -> None:
    """A server punches one RANDOM NAT at a time, 20 s apart: a second symmetric-NAT client right
    after the first is told TRY_LATER (HOLEPUNCH_ABORTED on our client, which has no relay to wait on)."""
    boot = lab.add_public("boot")
    alice = lab.add_private("alice", NatType.PORT_RESTRICTED_CONE)
    bob = lab.add_private("bob", NatType.SYMMETRIC)
    dave = lab.add_private("dave", NatType.SYMMETRIC)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    seed = "cf" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    serve = f"exec {shlex.quote(PY)} -m peerdht serve --seed {seed} {args} < {empty} > /dev/null"
    server = lab.popen(alice, ["sh", "-c", serve], stdin=None, stdout=None)
    assert server.stderr is not None
    fd = server.stderr.fileno()
    deadline, err = time.monotonic() + 30, b""
    while b"listening on:" not in err and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, "serve exited"
            err += chunk
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {empty} > /dev/null"
    first = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    assert first.returncode == 0, first.stderr
    second = lab.run(dave, ["sh", "-c", connect], timeout=90, check=False)
    assert second.returncode == 1
    assert "TRY_LATER" in second.stderr
    testnet.close(interrupt=True)
