"""Sans-IO secret-stream: framing, in-band XX, keep-alives, datagrams, and bad input."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerdht.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from peerdht.secure import NS_PEER_HANDSHAKE, KeyPair, NoiseState
from peerdht.secure.secretstream import ABYTES, HandshakeComplete, Message, SecretStreamCore


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


A, B = KeyPair.from_seed(seed("a")), KeyPair.from_seed(seed("b"))


def ik_cores() -> tuple[SecretStreamCore, SecretStreamCore]:
    i = NoiseState(
        "IK",
        initiator=True,
        static_key_pair=A,
        remote_static=B.public_key,
        prologue=NS_PEER_HANDSHAKE,
        ephemeral_seed=seed("ae"),
    )
    r = NoiseState(
        "IK", initiator=False, static_key_pair=B, prologue=NS_PEER_HANDSHAKE, ephemeral_seed=seed("be")
    )
    r.recv(i.send(b""))
    i.recv(r.send(b""))
    ci = SecretStreamCore.from_handshake(i.result(), header=seed("hi")[:24], send_counter=bytes(8))
    cr = SecretStreamCore.from_handshake(r.result(), header=seed("hr")[:24], send_counter=b"\xff" * 8)
    return ci, cr


def xx_cores() -> tuple[SecretStreamCore, SecretStreamCore]:
    ci = SecretStreamCore.in_band(True, A, seed("ae"), remote_public_key=B.public_key)
    cr = SecretStreamCore.in_band(False, B, seed("be"))
    return ci, cr


def ik_in_band_cores() -> tuple[SecretStreamCore, SecretStreamCore]:
    ci = SecretStreamCore.in_band(True, A, seed("ae"), remote_public_key=B.public_key, pattern="IK")
    cr = SecretStreamCore.in_band(False, B, seed("be"), pattern="IK")
    return ci, cr


def shuttle(x: SecretStreamCore, y: SecretStreamCore) -> None:
    """Move bytes both ways until both sides are quiet."""
    while True:
        a, b = x.data_to_send(), y.data_to_send()
        if not a and not b:
            return
        y.receive(a)
        x.receive(b)


def events(c: SecretStreamCore) -> list[object]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def messages(c: SecretStreamCore) -> bytes:
    return b"".join(e.data for e in events(c) if isinstance(e, Message))


@pytest.mark.parametrize("make", [ik_cores, xx_cores, ik_in_band_cores])
def test_both_ways_with_keep_alives(make: object) -> None:
    ci, cr = make()  # type: ignore[operator]
    ci.write(b"written before the peer is known")
    shuttle(ci, cr)
    ev_i, ev_r = events(ci), events(cr)
    assert isinstance(ev_i[0], HandshakeComplete) and ev_i[0].remote_public_key == B.public_key
    assert isinstance(ev_r[0], HandshakeComplete) and ev_r[0].remote_public_key == A.public_key
    assert ci.handshake_hash == cr.handshake_hash
    assert b"".join(e.data for e in ev_r if isinstance(e, Message)) == b"written before the peer is known"
    ci.send_keep_alive()
    cr.write(b"pong")
    cr.send_keep_alive()
    shuttle(ci, cr)
    assert messages(ci) == b"pong"
    assert events(cr) == []  # the keep-alive is swallowed


def test_frame_layout() -> None:
    ci, cr = ik_cores()
    header = ci.data_to_send()
    assert header[:3] == (56).to_bytes(3, "little") and len(header) == 59
    assert cr.handshake_hash is not None
    ci.write(b"x" * 10)
    frame = ci.data_to_send()
    assert int.from_bytes(frame[:3], "little") == 10 + ABYTES == len(frame) - 3


def test_header_is_deterministic_when_given() -> None:
    assert ik_cores()[0].data_to_send() == ik_cores()[0].data_to_send()
    ci, _ = ik_cores()
    ci.write(b"abc")
    c2, _ = ik_cores()
    c2.write(b"abc")
    assert ci.data_to_send() == c2.data_to_send()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.binary(min_size=0, max_size=3000), max_size=12),
    cuts=st.lists(st.integers(0, 40000), max_size=20),
)
def test_any_chunking(chunks: list[bytes], cuts: list[int]) -> None:
    ci, cr = ik_cores()
    for c in chunks:
        ci.write(c)
        ci.send_keep_alive()
    wire = ci.data_to_send()
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    got = bytearray()
    for a, b in itertools.pairwise(points):
        cr.receive(wire[a:b])
        got += messages(cr)
    assert bytes(got) == b"".join(chunks)
    assert cr.buffered == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=400), after_header=st.booleans())
def test_garbage_raises_only_remote_error(garbage: bytes, after_header: bool) -> None:
    ci, cr = ik_cores()
    if after_header:
        cr.receive(ci.data_to_send())
    try:
        cr.receive(garbage)
    except RemoteProtocolError:
        assert cr.failed is not None
        with pytest.raises(RemoteProtocolError):
            cr.receive(b"")
        with pytest.raises(RemoteProtocolError):
            cr.write(b"more")
    else:
        assert cr.failed is None  # an incomplete frame just waits
        assert messages(cr) == b""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=300))
def test_in_band_handshake_garbage(garbage: bytes) -> None:
    _, cr = xx_cores()
    try:
        cr.receive(garbage)
    except RemoteProtocolError:
        assert cr.failed is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tampered_frame_fails_the_stream(data: st.DataObject) -> None:
    ci, cr = ik_cores()
    cr.receive(ci.data_to_send())
    ci.write(b"hello world")
    frame = bytearray(ci.data_to_send())
    pos = data.draw(st.integers(3, len(frame) - 1))
    frame[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(RemoteProtocolError, match="authentication"):
        cr.receive(bytes(frame))
    assert messages(cr) == b""


def test_wrong_stream_id_and_wrong_key() -> None:
    ci, cr = ik_cores()
    hdr = bytearray(ci.data_to_send())
    hdr[3] ^= 1
    with pytest.raises(RemoteProtocolError, match="stream id"):
        cr.receive(bytes(hdr))
    # the initiator's own header is not what the initiator expects back
    ci2, _ = ik_cores()
    ci3, _ = ik_cores()
    with pytest.raises(RemoteProtocolError):
        ci3.receive(ci2.data_to_send())
    # in-band: the responder proves a key other than the one required
    x = SecretStreamCore.in_band(True, A, seed("1"), remote_public_key=A.public_key)
    y = SecretStreamCore.in_band(False, B, seed("2"))
    y.receive(x.data_to_send())
    with pytest.raises(RemoteProtocolError, match="different public key"):
        x.receive(y.data_to_send())


def test_large_write_is_split_and_datagrams() -> None:
    ci, cr = ik_cores()
    with pytest.raises(LocalProtocolError):
        SecretStreamCore.in_band(True, A, seed("x")).encrypt_datagram(b"early")
    box = ci.encrypt_datagram(b"unordered")
    assert len(box) == len(b"unordered") + 24 and box[:8] == (1).to_bytes(8, "little")
    assert cr.decrypt_datagram(box) == b"unordered"
    box2 = cr.encrypt_datagram(b"back")
    assert box2[:8] == bytes(8)  # the counter wrapped from ff..ff
    assert ci.decrypt_datagram(box2) == b"back"
    with pytest.raises(DecodeError):
        ci.decrypt_datagram(box)  # our own direction's key does not open it
    for bad in (b"", box[:23], box[:-1], box[:10] + bytes([box[10] ^ 1]) + box[11:]):
        with pytest.raises(DecodeError):
            cr.decrypt_datagram(bad)
    big = bytes(range(256)) * 70000  # 17.9 MB > one frame
    ci.write(big)
    cr.receive(ci.data_to_send())
    assert messages(cr) == big
