"""HyperDHT hashing, namespaces, key pairs and signatures.

The hex vectors were produced by hyperdht 6.34 / dht-rpc 6.27 (node_modules); the interop test
tests/interop/test_hyper_codec_js.py recomputes them live.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.hyper import constants
from peerdht.hyper.crypto import (
    KeyPair,
    announce_signable,
    hash,
    mutable_signable,
    node_id,
    sign_announce,
    sign_mutable,
    validate_id,
    verify,
    verify_announce,
    verify_mutable,
)
from peerdht.hyper.records import Peer

K = bytes(range(32))
KP = KeyPair.from_seed(b"\x01" * 32)
PEER = Peer(public_key=KP.public_key, relay_addresses=(("1.2.3.4", 5),))

NS_JS = {
    "NS_ANNOUNCE": "36386adddf9f6fd60db83a6f42fc159d1146aa8644037664230aaa1f0179d497",
    "NS_UNANNOUNCE": "ded293cd93fb395e756ecf5fff426529e72c36eacc22e5ed944d9099a2561e32",
    "NS_MUTABLE_PUT": "668e823edd5ce7f5338d68bf1161f4a3c28ce437ee2ab49efd30d99366039b1e",
    "NS_PEER_HANDSHAKE": "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a",
    "NS_PEER_HOLEPUNCH": "f1191cd5e67b10b54a507033280ed1ff0e12278268d5679c8f93d417210d168b",
    "NS_PLUGIN": "6b8a2a8623f28c6c02a1e22abe515ce31cafd9af61d4b69970639aa7eb96a8d5",
}


@pytest.mark.parametrize(("name", "hexed"), NS_JS.items())
def test_namespaces_match_js(name: str, hexed: str) -> None:
    assert getattr(constants, name).hex() == hexed


def test_hash_and_node_id_match_js() -> None:
    assert hash(b"hello").hex() == "324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf"
    nid = node_id("1.2.3.4", 5)
    assert nid.hex() == "b28c11c96dde05cdc3f0d0a10e54170e3fcb1257dfd5429eb378cd32b98ac6f8"
    assert validate_id(nid, ("1.2.3.4", 5)) == nid
    assert validate_id(nid, ("1.2.3.4", 6)) is None
    assert validate_id(None, ("1.2.3.4", 5)) is None
    assert validate_id(nid, ("::1", 5)) is None
    assert validate_id(b"x", ("1.2.3.4", 5)) is None


def test_keypair_from_seed_matches_js() -> None:
    assert KP.public_key.hex() == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    assert KP.secret_key == b"\x01" * 32 + KP.public_key
    assert KeyPair.from_seed(bytes(32)).public_key.hex().startswith("3b6a27bcceb6a42d")
    assert "secret_key" not in repr(KP)
    with pytest.raises(LocalProtocolError):
        KeyPair.from_seed(b"short")
    gen = KeyPair.generate()
    assert len(gen.public_key) == 32 and gen != KeyPair.generate()


def test_announce_signatures_match_js() -> None:
    target, token = b"\x02" * 32, b"\x03" * 32
    sig = sign_announce(target, K, token, PEER, None, KP)
    assert sig.hex() == (
        "32943f352975f43c7f91e9f5f223b50b4fd03ba59ce2cf368a2b3c054c2ab938"
        "c8afc46f4c2d1d000e0b83f8700227c052a6d30742494f7e6cbb7394e714f40f"
    )
    assert verify_announce(sig, target, K, token, PEER, None)
    assert not verify_announce(sig, target, K, token, PEER, None, unannounce=True)
    assert not verify_announce(sig, target, bytes(32), token, PEER, None)  # other node
    assert not verify_announce(sig, target, K, b"\x04" * 32, PEER, None)  # other token
    unsig = sign_announce(target, K, token, PEER, b"\x04" * 32, KP, unannounce=True)
    assert unsig.hex() == (
        "cdfb14a73bef4d51e4c764a1678c2421f026c7822e8b5d6fc36e5cac7db116b1"
        "7420a1b5df89112d98d05d794eace81afd90fed912f2b1acab28e4661b8cd806"
    )
    assert verify_announce(unsig, target, K, token, PEER, b"\x04" * 32, unannounce=True)
    signable = announce_signable(target, K, token, PEER, None)
    assert len(signable) == 64 and signable[:32] == constants.NS_ANNOUNCE


def test_mutable_signature_matches_js() -> None:
    sig = sign_mutable(7, b"value", KP)
    assert sig.hex() == (
        "5f28c801801a181292e7c4fc6b7b8206377f95eecefc0189d1c1bde6baf29aae"
        "1287557aedac930b4c62418ba6172cb525559bd857afe4777c5ebfe2da06020c"
    )
    assert verify_mutable(sig, 7, b"value", KP.public_key)
    assert not verify_mutable(sig, 8, b"value", KP.public_key)
    assert not verify_mutable(sig, 7, b"valuE", KP.public_key)
    assert mutable_signable(7, b"value")[:32] == constants.NS_MUTABLE_PUT
    assert KP.sign(b"m") == KeyPair.from_seed(b"\x01" * 32).sign(b"m")


@given(st.binary(max_size=70), st.binary(max_size=40), st.binary(max_size=40), st.integers(-5, 2**60))
def test_verify_never_raises(sig: bytes, msg: bytes, pk: bytes, seq: int) -> None:
    assert verify(sig, msg, pk) in (True, False)
    assert verify_mutable(sig, seq, msg, pk) in (True, False)
    peer = Peer(public_key=pk, relay_addresses=(("1.2.3.4", 1),))
    assert verify_announce(sig, msg, msg, msg, peer, None) in (True, False)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=100), st.integers(0, 2**53 - 1))
def test_sign_verify_round_trip(seed: bytes, value: bytes, seq: int) -> None:
    kp = KeyPair.from_seed(seed)
    assert verify_mutable(sign_mutable(seq, value, kp), seq, value, kp.public_key)
    peer = Peer(public_key=kp.public_key)
    sig = sign_announce(K, K, K, peer, None, kp)
    assert verify_announce(sig, K, K, K, peer, None)
