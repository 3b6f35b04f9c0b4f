"""Connect by public key across real NATs: ``peerdht serve`` and ``peerdht connect`` behind cone NATs
holepunch to each other through a testnet on the lab's public segment."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from natlab_tools import LineProc, file_sha256, start_serve, start_testnet
from tools.natlab import Lab, NatType

from peerdht.hyper.crypto import KeyPair

pytestmark = pytest.mark.netns

PY = sys.executable


@pytest.mark.parametrize(
    ("server_nat", "client_nat"),
    [
        (NatType.PORT_RESTRICTED_CONE, NatType.PORT_RESTRICTED_CONE),
        (NatType.FULL_CONE, NatType.RESTRICTED_CONE),
        # client: birthday sockets; server: random probes (random: up to ~35 s)
        pytest.param(NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC, marks=pytest.mark.slow),
        pytest.param(NatType.SYMMETRIC, NatType.PORT_RESTRICTED_CONE, marks=pytest.mark.slow),
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
    server = start_serve(lab, alice, seed, args, a_in, tmp_path / "a_out")
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {b_in} > {tmp_path / 'b_out'}"
    res = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert server.returncode == 0
    assert file_sha256(tmp_path / "b_out") == file_sha256(a_in)
    assert file_sha256(tmp_path / "a_out") == file_sha256(b_in)
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
    server = start_serve(lab, alice, seed, args, a_in, tmp_path / "a_out")
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {c_in} > {tmp_path / 'c_out'}"
    res = lab.run(carol, ["sh", "-c", connect], timeout=90, check=False)
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert file_sha256(tmp_path / "c_out") == file_sha256(a_in)
    assert file_sha256(tmp_path / "a_out") == file_sha256(c_in)
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
    start_serve(lab, alice, seed, args, empty, "/dev/null", once=False)
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {empty} > /dev/null"
    first = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    assert first.returncode == 0, first.stderr
    second = lab.run(dave, ["sh", "-c", connect], timeout=90, check=False)
    assert second.returncode == 1
    assert "TRY_LATER" in second.stderr
    testnet.close(interrupt=True)


JS_PEER = Path(__file__).resolve().parent.parent / "js" / "connect-peer.js"


def _js(lab: Lab, host: object, bootstrap: list[str]) -> tuple[object, LineProc]:
    argv = ["node", str(JS_PEER), "--host", "0.0.0.0", *[a for b in bootstrap for a in ("--bootstrap", b)]]
    proc = LineProc(lab.popen(host, argv))  # type: ignore[arg-type]
    assert proc.line(timeout=30)["ready"]
    return proc.proc, proc


def _call(proc: LineProc, cmd: dict[str, object], timeout: float = 60) -> dict[str, object]:
    assert proc.proc.stdin is not None
    proc.proc.stdin.write(json.dumps(cmd) + "\n")
    proc.proc.stdin.flush()
    while True:
        reply = proc.line(timeout=timeout)
        if "event" not in reply:
            return reply


@pytest.mark.skipif(shutil.which("node") is None, reason="node missing")
@pytest.mark.parametrize(
    ("js_nat", "py_nat"),
    [
        (NatType.PORT_RESTRICTED_CONE, NatType.PORT_RESTRICTED_CONE),
        # we open birthday sockets and JS sprays, then the other way round
        pytest.param(NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC, marks=pytest.mark.slow),
        pytest.param(NatType.SYMMETRIC, NatType.PORT_RESTRICTED_CONE, marks=pytest.mark.slow),
    ],
)
def test_js_and_python_through_nats(lab: Lab, tmp_path: Path, js_nat: NatType, py_nat: NatType) -> None:
    """A JS hyperdht server behind a NAT and ``peerdht connect`` behind another; then a JS client to
    ``peerdht serve``: holepunched both ways."""
    boot = lab.add_public("boot")
    alice = lab.add_private("alice", js_nat)
    bob = lab.add_private("bob", py_nat)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    _, js = _js(lab, alice, bootstrap)
    info = _call(js, {"id": 1, "op": "serve", "seed": "ee" * 32, "send": 1 << 20})
    b_in = tmp_path / "b_in"
    b_in.write_bytes(os.urandom(300 * 1024))
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {info['publicKey']} {args} < {b_in} > {tmp_path / 'b_out'}"
    res = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    assert res.returncode == 0, res.stderr
    out = (tmp_path / "b_out").read_bytes()
    assert out[:32] == hashlib.sha256(b_in.read_bytes()).digest() and len(out) == 32 + (1 << 20)

    seed = "ef" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    server = start_serve(lab, bob, seed, args, b_in, tmp_path / "s_out")
    # a fresh JS node: the first one just did a random punch and would wait 20 s (hyperdht's throttle)
    _, js2 = _js(lab, alice, bootstrap)
    got = _call(js2, {"id": 2, "op": "connect", "publicKey": key, "send": 200 * 1024}, timeout=90)
    assert "code" not in got, got
    assert got["sha256"] == hashlib.sha256(b_in.read_bytes()).hexdigest()
    server.wait(timeout=30)
    assert (tmp_path / "s_out").stat().st_size == 200 * 1024
    testnet.close(interrupt=True)
