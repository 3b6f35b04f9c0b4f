"""Automatic relay fallback across real NATs: ``peerdht serve`` and ``peerdht connect`` both behind
symmetric NATs (punching impossible: HyperDHT gives up with HOLEPUNCH_DOUBLE_RANDOMIZED_NATS) connect
through a ``peerdht node --relay`` on the lab's public segment, found by lookup -- no option given."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from natlab_tools import LineProc, file_sha256, start_serve, start_testnet, wait_stderr
from tools.natlab import Host, Lab, NatType

from peerdht.hyper.crypto import KeyPair

pytestmark = pytest.mark.netns

PY = sys.executable


def _start_relay(lab: Lab, host: Host, args: str) -> subprocess.Popen[str]:
    """``peerdht node --relay`` on a public host; returns once it announced its relay."""
    cmd = f"exec {shlex.quote(PY)} -m peerdht node --relay --persistent --host {host.ip} {args}"
    relay = lab.popen(host, ["sh", "-c", cmd], stdin=None, stdout=None)
    wait_stderr(relay, b"relaying as:")
    return relay


@pytest.mark.parametrize("loss", [0.0, pytest.param(0.05, marks=pytest.mark.slow)])
def test_symmetric_to_symmetric_through_relay(lab: Lab, tmp_path: Path, loss: float) -> None:
    """``loss``: packet loss on both private hosts' links (5%: 2-6 s instead of ~0.3 s)."""
    boot = lab.add_public("boot")
    relay_host = lab.add_public("relay")
    alice = lab.add_private("alice", NatType.SYMMETRIC, loss=loss)
    bob = lab.add_private("bob", NatType.SYMMETRIC, loss=loss)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    relay = _start_relay(lab, relay_host, args)
    a_in, b_in = tmp_path / "a_in", tmp_path / "b_in"
    a_in.write_bytes(os.urandom(1024 * 1024 + 5))
    b_in.write_bytes(os.urandom(512 * 1024 + 3))
    seed = "ab" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    server = start_serve(lab, alice, seed, args, a_in, tmp_path / "a_out")
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {b_in} > {tmp_path / 'b_out'}"
    t0 = time.monotonic()
    res = lab.run(bob, ["sh", "-c", connect], timeout=120, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert server.returncode == 0
    assert file_sha256(tmp_path / "b_out") == file_sha256(a_in)
    assert file_sha256(tmp_path / "a_out") == file_sha256(b_in)
    print(
        f"symmetric <-> symmetric through the relay (loss {loss}): connect + 1.5 MiB both ways in {elapsed:.2f} s"
    )
    relay.send_signal(2)
    relay.wait(timeout=10)
    testnet.close(interrupt=True)


def _block_udp_between(router_netns: str, other_ip: str) -> None:
    """In a NAT router, drop forwarded UDP to and from ``other_ip`` ("UDP filtered" between two peers)."""
    rules = (
        "table inet relaytest {\n"
        "  chain blockpeer {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f"    ip daddr {other_ip} meta l4proto udp drop\n"
        f"    ip saddr {other_ip} meta l4proto udp drop\n"
        "  }\n"
        "}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", router_netns, "nft", "-f", "-"], input=rules, text=True, check=True
    )


@pytest.mark.slow
def test_udp_filtered_between_peers_falls_back_to_relay(lab: Lab, tmp_path: Path) -> None:
    """Port-restricted cone NATs on both sides (punchable in theory), but UDP between the two is
    filtered: punching fails, and the connect moves to the relay."""
    boot = lab.add_public("boot")
    relay_host = lab.add_public("relay")
    alice = lab.add_private("alice", NatType.PORT_RESTRICTED_CONE)
    bob = lab.add_private("bob", NatType.PORT_RESTRICTED_CONE)
    assert alice.router_netns is not None
    _block_udp_between(alice.router_netns, bob.public_ip)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    relay = _start_relay(lab, relay_host, args)
    a_in, b_in = tmp_path / "a_in", tmp_path / "b_in"
    a_in.write_bytes(os.urandom(256 * 1024))
    b_in.write_bytes(os.urandom(128 * 1024))
    seed = "ac" * 32
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    server = start_serve(lab, alice, seed, args, a_in, tmp_path / "a_out")
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {key} {args} < {b_in} > {tmp_path / 'b_out'}"
    t0 = time.monotonic()
    res = lab.run(bob, ["sh", "-c", connect], timeout=120, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    server.wait(timeout=30)
    assert file_sha256(tmp_path / "b_out") == file_sha256(a_in)
    assert file_sha256(tmp_path / "a_out") == file_sha256(b_in)
    print(f"UDP filtered between port-restricted peers, through the relay: {elapsed:.2f} s")
    relay.send_signal(2)
    relay.wait(timeout=10)
    testnet.close(interrupt=True)


JS_PEER = Path(__file__).resolve().parent.parent / "js" / "connect-peer.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node missing")
def test_python_client_reaches_js_server_both_symmetric(lab: Lab, tmp_path: Path) -> None:
    """A JS hyperdht server behind a symmetric NAT, ``peerdht connect`` behind another: our client
    falls back to relayThrough (our relay); the unmodified JS server follows it."""
    boot = lab.add_public("boot")
    relay_host = lab.add_public("relay")
    alice = lab.add_private("alice", NatType.SYMMETRIC)
    bob = lab.add_private("bob", NatType.SYMMETRIC)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    args = " ".join(f"--bootstrap {b}" for b in bootstrap)
    relay = _start_relay(lab, relay_host, args)
    argv = ["node", str(JS_PEER), "--host", "0.0.0.0", *[a for b in bootstrap for a in ("--bootstrap", b)]]
    js = LineProc(lab.popen(alice, argv))
    assert js.line(timeout=30)["ready"]
    assert js.proc.stdin is not None
    js.proc.stdin.write(json.dumps({"id": 1, "op": "serve", "seed": "ea" * 32, "send": 1 << 20}) + "\n")
    js.proc.stdin.flush()
    info = js.line(timeout=30)
    b_in = tmp_path / "b_in"
    b_in.write_bytes(os.urandom(300 * 1024))
    connect = f"exec {shlex.quote(PY)} -m peerdht connect {info['publicKey']} {args} < {b_in} > {tmp_path / 'b_out'}"
    t0 = time.monotonic()
    res = lab.run(bob, ["sh", "-c", connect], timeout=90, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    out = (tmp_path / "b_out").read_bytes()
    assert out[:32] == hashlib.sha256(b_in.read_bytes()).digest() and len(out) == 32 + (1 << 20)
    print(f"peerdht client -> JS server, both symmetric, through our relay: {elapsed:.2f} s")
    relay.send_signal(2)
    relay.wait(timeout=10)
    testnet.close(interrupt=True)
