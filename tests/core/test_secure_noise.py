"""Noise IK/XX sans-IO: a known-answer vector from JS noise-handshake, round trips, bad input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError, RemoteProtocolError
from peerdht.secure import NS_PEER_HANDSHAKE, KeyPair, NoiseState, holepunch_secret, stream_id
from peerdht.secure.keys import NS_INITIATOR, NS_RESPONDER, NS_SEND, blake2b, namespace


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


INIT, RESP = KeyPair.from_seed(seed("init")), KeyPair.from_seed(seed("resp"))

# Produced by tests/js/secure-noise.js (JS noise-handshake 4.2 + noise-curve-ed 2.1) with the same seeds.
KAT_MSG1 = bytes.fromhex(
    "d9c588a825658057fd513a8001aafb578e25c43eff364ea6d6dcfd1891e9a5593ee24a6b355525810dd80749acbbaa46"
    "ce3d5aa2d5a09490e8264e4f4e932baa59fa653e2d13450c28851bdac77b701b86604baff7c27092e0d2b9f0ca78d0eb"
    "2a4ab649"
)
KAT_MSG2 = bytes.fromhex(
    "f94c8fa5e2f5c0f21c3445f3d3e2f9f16750f362298172974b896456e5e045ecc483067005ed92bb770f736e15817f5ffce707cd"
)
KAT_HASH = bytes.fromhex(
    "af29f80e6a81580880a48efa72a48d2a6ceb9cbe9b6711e5de1eaef478615003d35f3151f508e90c2347f9b97a06c117"
    "7cbb05ddf02a8a98aa796683fb591a30"
)
KAT_RESP_TX = bytes.fromhex("21c16c81a780d523a20b8f09f2a576ec16199b472e4a7b696e4cb82436710d8d")
KAT_RESP_RX = bytes.fromhex("cb7834f7e16d1e36f4ac8d36f2aa4710d5879b3e1039e6ac7a68b49b162cf3ae")


def ik_pair(init_e: str = "init-e", resp_e: str = "resp-e") -> tuple[NoiseState, NoiseState]:
    i = NoiseState(
        "IK",
        initiator=True,
        static_key_pair=INIT,
        remote_static=RESP.public_key,
        prologue=NS_PEER_HANDSHAKE,
        ephemeral_seed=seed(init_e),
    )
    r = NoiseState(
        "IK", initiator=False, static_key_pair=RESP, prologue=NS_PEER_HANDSHAKE, ephemeral_seed=seed(resp_e)
    )
    return i, r


def test_namespaces() -> None:
    assert blake2b(blake2b(b"hyperswarm/dht") + b"\x00") == NS_PEER_HANDSHAKE
    assert namespace("hyperswarm/secret-stream", [0, 1, 2]) == [NS_INITIATOR, NS_RESPONDER, NS_SEND]


def test_ik_known_answer_from_js() -> None:
    i, r = ik_pair()
    assert i.send(b"ping") == KAT_MSG1
    assert r.recv(KAT_MSG1) == b"ping"
    assert r.remote_public_key == INIT.public_key
    assert r.send(b"pong") == KAT_MSG2
    assert i.recv(KAT_MSG2) == b"pong"
    assert i.complete and r.complete
    assert i.handshake_hash == r.handshake_hash == KAT_HASH
    assert (r.tx_key, r.rx_key) == (KAT_RESP_TX, KAT_RESP_RX)
    assert (i.tx_key, i.rx_key) == (KAT_RESP_RX, KAT_RESP_TX)
    res = i.result()
    assert res.holepunch_secret == holepunch_secret(KAT_HASH)
    assert res.secret_stream_id == stream_id(KAT_HASH, True) == r.result().remote_secret_stream_id
    assert "secret" not in repr(INIT) and INIT.secret_key.hex() not in repr(res)


@pytest.mark.parametrize("pattern", ["XX", "NN", "XK"])
def test_other_patterns_round_trip(pattern: str) -> None:
    remote = RESP.public_key if pattern == "XK" else None
    i = NoiseState(
        pattern, initiator=True, static_key_pair=INIT, remote_static=remote, ephemeral_seed=seed("a")
    )
    r = NoiseState(pattern, initiator=False, static_key_pair=RESP, ephemeral_seed=seed("b"))
    sender, receiver = i, r
    n = 0
    while not (i.complete and r.complete):
        assert receiver.recv(sender.send(bytes([n]) * n)) == bytes([n]) * n
        sender, receiver = receiver, sender
        n += 1
    assert i.handshake_hash == r.handshake_hash
    assert i.tx_key == r.rx_key and i.rx_key == r.tx_key


def test_api_misuse() -> None:
    i, r = ik_pair()
    with pytest.raises(LocalProtocolError):
        i.recv(b"x" * 100)  # initiator speaks first
    with pytest.raises(LocalProtocolError):
        r.send(b"")
    with pytest.raises(LocalProtocolError):
        _ = i.tx_key
    with pytest.raises(LocalProtocolError):
        NoiseState("IK", initiator=True, static_key_pair=INIT, ephemeral_seed=seed("e"))
    with pytest.raises(LocalProtocolError):
        NoiseState("KK", initiator=True, static_key_pair=INIT, ephemeral_seed=seed("e"))
    with pytest.raises(LocalProtocolError):
        KeyPair.from_seed(b"short")
    r.recv(i.send())
    i.recv(r.send())
    with pytest.raises(LocalProtocolError):
        i.send(b"")


def test_small_order_ephemeral_rejected() -> None:
    _, r = ik_pair()
    identity = (1).to_bytes(32, "little")  # the neutral point: DH would be all zeros
    with pytest.raises(RemoteProtocolError):
        r.recv(identity + bytes(64))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=300))
def test_responder_garbage_raises_only_remote_error_and_keeps_state(garbage: bytes) -> None:
    i, r = ik_pair()
    with pytest.raises(RemoteProtocolError):
        r.recv(garbage)
    assert r.recv(i.send(b"real")) == b"real"  # the forged message left no trace


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_initiator_mutated_reply_raises_only_remote_error(data: st.DataObject) -> None:
    i, r = ik_pair()
    r.recv(i.send(b"q"))
    reply = r.send(b"answer")
    pos = data.draw(st.integers(0, len(reply) - 1))
    flip = data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(reply)))
    bad = bytearray(reply)
    bad[pos] ^= flip
    for candidate in (bytes(bad), reply[:cut] if cut < len(reply) else reply + b"\x00"):
        with pytest.raises(RemoteProtocolError):
            i.recv(candidate)
    assert i.recv(reply) == b"answer"
    assert i.handshake_hash == r.handshake_hash
