"""Tests for peerdht.kademlia.tokens: write tokens from two rotating secrets."""

from __future__ import annotations

import hashlib

import pytest

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.tokens import TokenIssuer


def bep5_derive(secret: bytes, ip: bytes) -> bytes:
    return hashlib.sha1(ip + secret).digest()


def dht_rpc_derive(secret: bytes, host: bytes) -> bytes:
    return hashlib.blake2b(host, key=secret, digest_size=32).digest()


IP = bytes([127, 0, 0, 1])
OTHER = bytes([127, 0, 0, 2])


def test_issue_and_check() -> None:
    t = TokenIssuer(bep5_derive, (b"s1", b"s0"), rotate_every=300.0)
    tok = t.issue(IP)
    assert tok == bep5_derive(b"s1", IP)
    assert t.check(IP, tok)
    assert not t.check(OTHER, tok)
    assert not t.check(IP, b"")
    assert not t.check(IP, tok[:-1] + bytes([tok[-1] ^ 1]))
    assert t.check(IP, bep5_derive(b"s0", IP))  # previous secret accepted too


def test_rotation_window() -> None:
    """A token stays valid across one rotation and dies at the second (BEP 5: 5 min / 10 min)."""
    t = TokenIssuer(dht_rpc_derive, (b"a" * 32, b"b" * 32), rotate_every=300.0)
    assert t.next_rotation() is None
    assert not t.due(0.0)  # starts the clock
    assert t.next_rotation() == 300.0
    tok = t.issue(b"127.0.0.1")
    assert not t.due(299.0)
    assert t.due(300.0)
    t.rotate(b"c" * 32)
    assert t.next_rotation() == 600.0
    assert not t.due(599.0)
    assert t.check(b"127.0.0.1", tok)  # previous secret
    assert t.issue(b"127.0.0.1") != tok
    assert t.due(600.0)
    t.rotate(b"d" * 32)
    assert not t.check(b"127.0.0.1", tok)


def test_rotate_with_explicit_now() -> None:
    t = TokenIssuer(bep5_derive, (b"x", b"y"), rotate_every=10.0)
    t.rotate(b"z", now=50.0)
    assert not t.due(59.0)
    assert t.due(60.0)
    t.rotate(b"w")  # uses the last due() time
    assert t.next_rotation() == 70.0


def test_secrets_redacted_and_bad_args() -> None:
    t = TokenIssuer(bep5_derive, (b"topsecret", b"other"), rotate_every=1.0)
    assert "topsecret" not in repr(t)
    with pytest.raises(LocalProtocolError):
        TokenIssuer(bep5_derive, (b"a", b"b"), rotate_every=0.0)
