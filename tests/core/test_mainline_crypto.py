"""BEP 42 and BEP 44 test vectors (from the BEPs) and key handling."""

from __future__ import annotations

import random

import pytest

from peerdht.encoding.bencode import encode
from peerdht.errors import LocalProtocolError
from peerdht.mainline.crypto import (
    KeyPair,
    crc32c,
    immutable_target,
    is_bep42_exempt,
    mutable_signable,
    mutable_target,
    node_id_for_ip,
    node_id_matches_ip,
    sign_mutable,
    verify_mutable,
)

BEP42 = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]

PK = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SIG1 = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG2 = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)
HELLO = encode(b"Hello World!")


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize(("ip", "rand", "example"), BEP42)
def test_bep42_vectors(ip: str, rand: int, example: str) -> None:
    ex = bytes.fromhex(example)
    assert node_id_matches_ip(ex, ip)
    generated = node_id_for_ip(ip, random.Random(rand), r=rand & 7)
    assert node_id_matches_ip(generated, ip)
    # the first 21 bits come from the CRC
    assert generated[:2] == ex[:2]
    assert generated[2] & 0xF8 == ex[2] & 0xF8
    assert generated[19] & 7 == rand & 7
    # a different IP does not match
    assert not node_id_matches_ip(ex, "1.2.3.4")


def test_bep42_ipv6_and_exempt() -> None:
    rng = random.Random(5)
    nid = node_id_for_ip("2001:db8::1", rng)
    assert len(nid) == 20
    assert node_id_matches_ip(nid, "2001:db8::1")
    assert node_id_matches_ip(nid, "2001:db8::ffff")  # only the high 64 bits count
    assert not node_id_matches_ip(nid, "2a00:1450::1")
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "172.20.0.1", "169.254.1.1", "::1"):
        assert is_bep42_exempt(ip)
        assert node_id_matches_ip(b"\x00" * 20, ip)
    assert not is_bep42_exempt("8.8.8.8")
    assert not node_id_matches_ip(b"\x00" * 19, "127.0.0.1")
    with pytest.raises(LocalProtocolError):
        node_id_for_ip("not-an-ip", rng)


def test_bep44_vector1_mutable() -> None:
    assert mutable_signable(HELLO, 1) == b"3:seqi1e1:v12:Hello World!"
    assert mutable_target(PK).hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    assert verify_mutable(PK, SIG1, HELLO, 1)
    assert not verify_mutable(PK, SIG1, HELLO, 2)
    assert not verify_mutable(PK, SIG1[:-1] + b"\x00", HELLO, 1)
    assert not verify_mutable(PK[:31], SIG1, HELLO, 1)


def test_bep44_vector2_salted() -> None:
    assert mutable_signable(HELLO, 1, b"foobar") == b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    assert mutable_target(PK, b"foobar").hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    assert verify_mutable(PK, SIG2, HELLO, 1, b"foobar")
    assert not verify_mutable(PK, SIG2, HELLO, 1)


def test_bep44_vector3_immutable() -> None:
    assert immutable_target(HELLO).hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"


def test_keypair_sign_verify_and_repr() -> None:
    kp = KeyPair.from_seed(bytes(range(32)))
    sig = sign_mutable(kp, HELLO, 7, b"s")
    assert verify_mutable(kp.public_key, sig, HELLO, 7, b"s")
    assert not verify_mutable(kp.public_key, sig, HELLO, 7)
    assert kp.seed == bytes(range(32))
    assert bytes(range(32)).hex() not in repr(kp)
    assert KeyPair.generate().public_key != KeyPair.generate().public_key
    with pytest.raises(LocalProtocolError):
        KeyPair.from_seed(b"short")
