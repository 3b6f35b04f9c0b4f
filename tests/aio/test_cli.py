"""The ``peerdht`` command line, run as real processes against a `peerdht testnet`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256

TIMEOUT = 60


def peerdht(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "peerdht", *args], input=stdin, capture_output=True, timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peerdht", "testnet", "--size", "6", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else b""
        first = json.loads(line)
        yield first["bootstrap"][0]
    finally:
        proc.terminate()
        proc.wait(10)


def test_keypair_matches_library() -> None:
    seed = "ab" * 32
    out = peerdht("keypair", "--seed", seed, "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"publicKey": KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()}


def test_bad_arguments_exit_2_with_usage() -> None:
    for args in (["keypair", "--seed", "xyz"], ["lookup"], ["immutable-get", "00", "--bootstrap", "1.2.3.4:5"],
                 ["lookup", "t", "--bootstrap", "nohostport"], ["frobnicate"]):
        out = peerdht(*args)
        assert out.returncode == 2, args
        assert b"usage:" in out.stderr
        assert b"Traceback" not in out.stderr


def test_network_command_without_bootstrap_exits_2() -> None:
    out = peerdht("lookup", "topic")
    assert out.returncode == 2
    assert b"--bootstrap" in out.stderr and b"Traceback" not in out.stderr


def test_announce_lookup_unannounce(bootstrap: str) -> None:
    seed = os.urandom(32).hex()
    pk = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    out = peerdht("announce", "cli topic", "--seed", seed, "--bootstrap", bootstrap, "--json")
    assert out.returncode == 0, out.stderr
    assert blake2b256(b"cli topic").hex().encode() in out.stderr  # the topic used is printed to stderr

    out = peerdht("lookup", "cli topic", "--bootstrap", bootstrap, "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert {"publicKey": pk, "relayAddresses": []} in lines

    topic_hex = blake2b256(b"cli topic").hex()
    assert peerdht("unannounce", topic_hex, "--seed", seed, "--bootstrap", bootstrap).returncode == 0
    out = peerdht("lookup", topic_hex, "--bootstrap", bootstrap, "--json")
    assert pk not in out.stdout.decode()


def test_lookup_not_found_exits_1(bootstrap: str) -> None:
    out = peerdht("lookup", os.urandom(32).hex(), "--bootstrap", bootstrap)
    assert out.returncode == 1
    assert len(out.stderr.decode().strip().splitlines()) >= 1 and b"Traceback" not in out.stderr


def test_immutable_and_mutable(bootstrap: str) -> None:
    out = peerdht("immutable-put", "hello cli", "--bootstrap", bootstrap, "--json")
    assert out.returncode == 0, out.stderr
    digest = json.loads(out.stdout)["hash"]
    assert digest == blake2b256(b"hello cli").hex()
    out = peerdht("immutable-get", digest, "--bootstrap", bootstrap)
    assert (out.returncode, out.stdout) == (0, b"hello cli")
    out = peerdht("immutable-get", os.urandom(32).hex(), "--bootstrap", bootstrap)
    assert out.returncode == 1 and b"not found" in out.stderr

    seed = os.urandom(32).hex()
    out = peerdht("mutable-put", "-", "--seed", seed, "--seq", "3", "--bootstrap", bootstrap, "--json",
                  stdin=b"\x00binary\xff")
    assert out.returncode == 0, out.stderr
    put = json.loads(out.stdout)
    assert put["seq"] == 3
    out = peerdht("mutable-get", put["publicKey"], "--bootstrap", bootstrap)
    assert (out.returncode, out.stdout) == (0, b"\x00binary\xff")
    out = peerdht("mutable-put", "new", "--seed", seed, "--seq", "4", "--bootstrap", bootstrap)
    assert out.returncode == 0
    out = peerdht("mutable-get", put["publicKey"], "--bootstrap", bootstrap, "--json")
    assert json.loads(out.stdout) == {"value": "new", "seq": 4}


def test_node_prints_its_port_first(bootstrap: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peerdht", "node", "--host", "127.0.0.1", "--bootstrap", bootstrap, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert isinstance(first["port"], int) and first["port"] > 0
    finally:
        proc.terminate()
        assert proc.wait(10) in (0, -15)


def test_demo_runs() -> None:
    out = peerdht("demo", "--size", "6", "--json")
    assert out.returncode == 0, out.stderr
    steps = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(steps) >= 8
    assert all(s["ms"] >= 0 for s in steps)
