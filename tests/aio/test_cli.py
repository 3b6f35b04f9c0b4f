"""The ``peerdht`` command line, run as real processes against a `peerdht testnet`."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
    assert json.loads(out.stdout) == {"publicKey": KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex(), "seed": seed}


def test_keypair_without_seed_keeps_the_secret(tmp_path: Path) -> None:
    out = peerdht("keypair", "--json")
    assert out.returncode == 0
    made = json.loads(out.stdout)
    assert KeyPair.from_seed(bytes.fromhex(made["seed"])).public_key.hex() == made["publicKey"]
    assert b"secret" in out.stderr
    out = peerdht("keypair")
    lines = out.stdout.decode().splitlines()
    assert lines[0].startswith("public key: ") and lines[1].startswith("seed: ")
    pk, seed = lines[0].split()[-1], lines[1].split()[-1]
    assert KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex() == pk
    key_file = tmp_path / "my.key"
    out = peerdht("keypair", "--key-file", str(key_file), "--json")
    assert out.returncode == 0, out.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    written = json.loads(out.stdout)
    assert "seed" not in written and written["keyFile"] == str(key_file)
    assert KeyPair.from_seed(bytes.fromhex(key_file.read_text().strip())).public_key.hex() == written["publicKey"]
    again = json.loads(peerdht("keypair", "--key-file", str(key_file), "--json").stdout)  # read, not replaced
    assert again["publicKey"] == written["publicKey"]


def _leaf_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    from peerdht.cli.main import _subparsers, build_parser

    for p in _subparsers(build_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            yield p.prog, p


def test_help_of_every_command() -> None:
    leaves = dict(_leaf_parsers())
    assert {"peerdht lookup", "peerdht mainline get-mutable", "peerdht serve"} <= set(leaves)
    for prog, p in leaves.items():
        text = p.format_help()
        assert "exit codes: 0 done, 1 not found or failed, 2 bad arguments" in " ".join(text.split()), prog
        for action in p._actions:
            assert action.help, (prog, action.dest)  # every positional (TOPIC, HASH, PUBKEY...) and option
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and action.dest != "help":
                assert "default" in p._get_formatter()._get_help_string(action), (prog, action.dest)  # type: ignore[attr-defined]
    assert "(default: 300.0)" in " ".join(leaves["peerdht announce"].format_help().split())


def test_verbose_after_the_subcommand_and_subcommand_usage(bootstrap: str) -> None:
    out = peerdht("lookup", "nobody here", "--bootstrap", bootstrap, "-v")
    assert out.returncode == 1
    assert b"bootstrapped:" in out.stderr and b"lookup done in" in out.stderr
    assert peerdht("announce", "somebody here", "--seed", "00" * 32, "--bootstrap", bootstrap).returncode == 0
    out = peerdht("lookup", "somebody here", "--bootstrap", bootstrap, "-v")
    assert out.returncode == 0 and b"reply 1 from 127.0.0.1:" in out.stderr
    out = peerdht("announce", "t", "--seed", "00" * 32, "--keep", "--interval", "0", "--bootstrap", bootstrap)
    assert out.returncode == 2 and b"--interval must be more than 0" in out.stderr
    assert b"usage: peerdht announce" in out.stderr
    assert b"usage: peerdht [-h]" not in out.stderr  # no top-level usage under a sub-command's error


def test_values_over_the_limit_are_refused_before_sending() -> None:
    out = peerdht("immutable-put", "-", "--bootstrap", "127.0.0.1:9", stdin=b"x" * 70_000)
    assert out.returncode == 2
    assert b"value is 70,000 bytes; the limit is 1,000 for Mainline BEP 44 (bencoded), 65,000 for HyperDHT" \
        in out.stderr
    out = peerdht("mutable-put", "-", "--seed", "00" * 32, "--bootstrap", "127.0.0.1:9", stdin=b"x" * 65_001)
    assert out.returncode == 2 and b"value is 65,001 bytes" in out.stderr


def test_bootstrap_errors_say_what_was_tried() -> None:
    out = peerdht("lookup", "t", "--bootstrap", "no-such-host.invalid:49737")
    assert out.returncode == 1
    assert b"cannot resolve bootstrap host 'no-such-host.invalid'" in out.stderr
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        out = peerdht("lookup", "t", "--bootstrap", addr)
        assert out.returncode == 1 and f"no bootstrap node answered (tried {addr})".encode() in out.stderr
        assert b"Traceback" not in out.stderr

        proc = subprocess.Popen(
            [sys.executable, "-m", "peerdht", "node", "--host", "127.0.0.1", "--bootstrap", addr],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # the first stderr line is the bootstrap outcome
            assert line.startswith(b"warning: no bootstrap node answered (tried " + addr.encode()), line
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        silent.close()


def test_mutable_put_seq_default_and_stale_seq(bootstrap: str) -> None:
    seed = os.urandom(32).hex()
    boot = ("--bootstrap", bootstrap, "--json")
    assert json.loads(peerdht("mutable-put", "a", "--seed", seed, *boot).stdout)["seq"] == 1  # none stored: 1
    assert json.loads(peerdht("mutable-put", "b", "--seed", seed, *boot).stdout)["seq"] == 2  # newest + 1
    for seq in ("1", "2"):  # lower, and the same seq with another value
        out = peerdht("mutable-put", "c", "--seed", seed, "--seq", seq, *boot)
        assert out.returncode == 1
        assert f"peerdht: seq {seq} is not newer than the stored seq 2".encode() in out.stderr, out.stderr
    pk = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    got = json.loads(peerdht("mutable-get", pk, *boot).stdout)
    assert got == {"value": "b", "valueHex": "62", "seq": 2}


def test_json_values_are_binary_safe(bootstrap: str) -> None:
    raw = b"\xff\x00text\xfe"
    out = peerdht("immutable-put", "-", "--bootstrap", bootstrap, "--json", stdin=raw)
    digest = json.loads(out.stdout)["hash"]
    got = json.loads(peerdht("immutable-get", digest, "--bootstrap", bootstrap, "--json").stdout)
    assert bytes.fromhex(got["valueHex"]) == raw and got["hash"] == digest


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
    assert json.loads(out.stdout) == {"value": "new", "valueHex": b"new".hex(), "seq": 4}


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
    assert {s["section"] for s in steps} == {"hyperdht", "mainline"}  # both DHTs


def test_demo_text_is_aligned_and_says_what_next() -> None:
    out = peerdht("demo", "--size", "6")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    steps = [line for line in text.splitlines() if re.match(r"\[[ \d]\d\] ", line)]
    assert len(steps) >= 18
    assert len({line.index(" ms  ") for line in steps}) == 1, steps  # one column for the timings
    assert "get_peers" in text and "BEP 44" in text and "Mainline" in text
    assert "path = how the connection was opened" in text and "reverse" in text and "lan" in text
    assert "peerdht serve --bootstrap" in text and "peerdht connect KEY" in text
    assert "pip install 'peerdht[web]'" in text and "then peerdht web" in text  # the web command exists now
