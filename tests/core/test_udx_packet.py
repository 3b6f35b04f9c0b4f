"""UDX packet codec (libudx ``udx_write_header`` / ``process_packet``)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.errors import DecodeError
from peerdht.udx.packet import (
    DATA,
    END,
    HEARTBEAT,
    SACK,
    Packet,
    decode_packet,
    encode_packet,
    is_udx_packet,
)

u32 = st.integers(0, 0xFFFFFFFF)


def test_header_layout_matches_libudx() -> None:
    raw = encode_packet(
        Packet(type=DATA | END, stream_id=7, recv_window=4 << 20, seq=3, ack=9, payload=b"hi")
    )
    assert raw[:4] == bytes([0xFF, 1, DATA | END, 0])
    assert struct.unpack("<IIII", raw[4:20]) == (7, 4 << 20, 3, 9)
    assert raw[20:] == b"hi"


def test_sack_only_packet_has_zero_data_offset() -> None:
    raw = encode_packet(Packet(type=0, stream_id=1, recv_window=0, seq=0, ack=5, sacks=((6, 8), (10, 11))))
    assert raw[2] == SACK and raw[3] == 0
    assert raw[20:] == struct.pack("<IIII", 6, 8, 10, 11)
    p = decode_packet(raw)
    assert p.sacks == ((6, 8), (10, 11)) and p.payload == b""


def test_padding_is_skipped() -> None:
    raw = bytes([0xFF, 1, DATA, 5]) + struct.pack("<IIII", 1, 2, 3, 4) + b"\0" * 5 + b"data"
    p = decode_packet(raw)
    assert p.payload == b"data" and p.padding == 5


def test_trailing_partial_sack_block_ignored() -> None:
    raw = bytes([0xFF, 1, SACK, 0]) + struct.pack("<IIII", 1, 2, 3, 4) + struct.pack("<II", 5, 6) + b"xyz"
    assert decode_packet(raw).sacks == ((5, 6),)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\x01" + b"\0" * 17,
        b"\xfe\x01" + b"\0" * 18,
        b"\xff\x02" + b"\0" * 18,
        bytes([0xFF, 1, DATA, 3]) + b"\0" * 16 + b"ab",
    ],
)
def test_bad_packets_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_packet(raw)


def test_is_udx_packet() -> None:
    assert is_udx_packet(b"\xff\x01" + b"\0" * 18)
    assert not is_udx_packet(b"\xff\x01" + b"\0" * 17)
    assert not is_udx_packet(b"\x03" + b"\0" * 30)
    assert not is_udx_packet(b"\x00")


@given(
    t=st.integers(0, 63).map(lambda t: t & ~SACK),
    sid=u32,
    rwnd=u32,
    seq=u32,
    ack=u32,
    sacks=st.lists(st.tuples(u32, u32), max_size=20),
    padding=st.integers(0, 60),
    payload=st.binary(max_size=1200),
)
def test_roundtrip(
    t: int,
    sid: int,
    rwnd: int,
    seq: int,
    ack: int,
    sacks: list[tuple[int, int]],
    padding: int,
    payload: bytes,
) -> None:
    if not payload or sacks:
        padding = 0  # padding next to SACK blocks or without payload is indistinguishable from SACK space
    p = Packet(
        type=t,
        stream_id=sid,
        recv_window=rwnd,
        seq=seq,
        ack=ack,
        sacks=tuple(sacks),
        padding=padding,
        payload=payload,
    )
    q = decode_packet(encode_packet(p))
    assert q == Packet(
        type=t | (SACK if sacks else 0),
        stream_id=sid,
        recv_window=rwnd,
        seq=seq,
        ack=ack,
        sacks=tuple(sacks),
        padding=padding,
        payload=payload,
    )


@given(st.binary(max_size=200))
def test_decode_arbitrary_bytes_only_raises_decode_error(raw: bytes) -> None:
    try:
        p = decode_packet(raw)
    except DecodeError:
        return
    assert is_udx_packet(raw)
    assert all(0 <= s <= 0xFFFFFFFF and 0 <= e <= 0xFFFFFFFF for s, e in p.sacks)


@given(st.binary(min_size=16, max_size=200), st.integers(0, 255), st.integers(0, 63))
def test_decode_udx_shaped_bytes(rest: bytes, offset: int, t: int) -> None:
    raw = bytes([0xFF, 1, t, offset]) + rest
    try:
        p = decode_packet(raw)
    except DecodeError:
        assert offset > len(rest) - 16
        return
    assert p.type == t and len(p.payload) <= len(rest) - 16
    assert t & HEARTBEAT == p.type & HEARTBEAT
