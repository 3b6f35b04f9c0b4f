"""blind-relay messages and protomux frames: byte-for-byte against npm blind-relay/protomux, and
property tests for the decoders of untrusted bytes."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.errors import DecodeError
from peerdht.relay.messages import Pair, Unpair, decode_pair, decode_unpair, encode_pair, encode_unpair
from peerdht.relay.protomux import (
    CloseFrame,
    MessageFrame,
    OpenFrame,
    decode_frame,
    encode_batch,
    encode_close,
    encode_message,
    encode_open,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = bytes((i * 7 + 1) & 0xFF for i in range(32))


@cache
def js_fixture() -> dict[str, object]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "blind-relay").exists():
        pytest.skip("node / blind-relay not installed")
    out = subprocess.run(
        ["node", str(ROOT / "tests/js/relay-codec.js")], capture_output=True, text=True, timeout=30, check=True
    )
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_pair_unpair_bytes_match_js() -> None:
    js = js_fixture()
    assert encode_pair(Pair(is_initiator=True, token=TOKEN, id=5)).hex() == js["pair_init"]
    assert encode_pair(Pair(is_initiator=False, token=TOKEN, id=70000, seq=3)).hex() == js["pair_resp"]
    assert encode_unpair(Unpair(token=TOKEN)).hex() == js["unpair"]
    assert decode_pair(bytes.fromhex(str(js["pair_resp"]))) == Pair(is_initiator=False, token=TOKEN, id=70000, seq=3)
    assert decode_unpair(bytes.fromhex(str(js["unpair"]))) == Unpair(token=TOKEN)


def test_protomux_frames_match_js() -> None:
    frames = js_fixture()["mux"]
    assert isinstance(frames, list)
    pair9 = encode_pair(Pair(is_initiator=True, token=TOKEN, id=9))
    pair10 = encode_pair(Pair(is_initiator=False, token=TOKEN, id=10))
    unpair = encode_unpair(Unpair(token=TOKEN))
    assert frames[0] == encode_open(1, "blind-relay", TOKEN).hex()
    assert frames[1] == encode_message(1, 0, pair9).hex()
    assert frames[2] == encode_batch([(1, b"\x00" + pair10), (1, b"\x01" + unpair)]).hex()
    assert frames[3] == encode_close(1).hex()
    assert decode_frame(bytes.fromhex(frames[0])) == [
        OpenFrame(remote_id=1, protocol="blind-relay", id=TOKEN, handshake=b"")
    ]
    assert decode_frame(bytes.fromhex(frames[2])) == [
        MessageFrame(remote_id=1, type=0, payload=pair10),
        MessageFrame(remote_id=1, type=1, payload=unpair),
    ]
    assert decode_frame(bytes.fromhex(frames[3])) == [CloseFrame(remote_id=1)]


def test_js_decodes_our_pair() -> None:
    js_fixture()
    ours = encode_pair(Pair(is_initiator=True, token=TOKEN, id=123456789))
    out = subprocess.run(
        ["node", str(ROOT / "tests/js/relay-codec.js"), "decode", "pair", ours.hex()],
        capture_output=True, text=True, timeout=30, check=True,
    )
    got = json.loads(out.stdout)
    assert got == {"ok": True, "isInitiator": True, "token": TOKEN.hex(), "id": 123456789, "seq": 0}


@given(st.booleans(), st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1), st.integers(0, 2**40))
def test_pair_roundtrip(init: bool, token: bytes, sid: int, seq: int) -> None:
    m = Pair(is_initiator=init, token=token, id=sid, seq=seq)
    assert decode_pair(encode_pair(m)) == m


@given(st.binary(max_size=80))
def test_message_decoders_raise_only_decode_error(data: bytes) -> None:
    for dec in (decode_pair, decode_unpair):
        with contextlib.suppress(DecodeError):
            dec(data)


@given(st.binary(max_size=200))
def test_frame_decoder_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_frame(data)


@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 5), st.binary(max_size=40)), min_size=1, max_size=6))
def test_batch_roundtrip(items: list[tuple[int, int, bytes]]) -> None:
    body = [(cid, bytes([t]) + p) for cid, t, p in items]
    assert decode_frame(encode_batch(body)) == [MessageFrame(remote_id=c, type=t, payload=p) for c, t, p in items]


def test_deeply_nested_batch_rejected() -> None:
    frame = encode_message(1, 0, b"x")
    for _ in range(6):
        frame = b"\x00\x00" + b"\x00" + bytes([len(frame) - 1]) + frame[1:]  # batch on channel 0
    with pytest.raises(DecodeError):
        decode_frame(frame)
