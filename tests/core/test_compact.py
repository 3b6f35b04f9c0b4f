"""compact-encoding codec: vectors, round trips, and DecodeError-only decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.encoding.compact import (
    MAX_SAFE_INTEGER,
    Decoder,
    Encoder,
    encode_ipv4_address,
    uint_length,
)
from peerdht.errors import DecodeError, LocalProtocolError


def enc(fn: Callable[[Encoder], None]) -> bytes:
    e = Encoder()
    fn(e)
    return e.getvalue()


@pytest.mark.parametrize(
    ("n", "hexed"),
    [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (0xFFFFFFFF, "feffffffff"),
        (0x100000000, "ff0000000001000000"),
        (MAX_SAFE_INTEGER, "ffffffffffffff1f00"),
    ],
)
def test_uint_vectors(n: int, hexed: str) -> None:
    data = enc(lambda e: e.uint(n))
    assert data.hex() == hexed
    assert uint_length(n) == len(data)
    d = Decoder(data)
    assert d.uint() == n
    assert d.at_end()


def test_fixed_width_ints_little_endian() -> None:
    e = Encoder()
    e.uint8(0xAB)
    e.uint16(0x0102)
    e.uint24(0x010203)
    e.uint32(0x01020304)
    e.uint64(0x0002030405060708)
    assert e.getvalue().hex() == "ab0201030201040302010807060504030200"
    d = Decoder(e.getvalue())
    assert (d.uint8(), d.uint16(), d.uint24(), d.uint32(), d.uint64()) == (
        0xAB,
        0x0102,
        0x010203,
        0x01020304,
        0x0002030405060708,
    )
    d.end()


def test_uint_non_minimal_accepted_like_js() -> None:
    assert Decoder(bytes.fromhex("fd0500")).uint() == 5
    assert Decoder(bytes.fromhex("fe05000000")).uint() == 5
    assert Decoder(bytes.fromhex("ff0500000000000000")).uint() == 5


def test_uint_above_safe_integer_rejected() -> None:
    with pytest.raises(DecodeError):
        Decoder(bytes.fromhex("ff0000000000002000")).uint()
    with pytest.raises(DecodeError):
        Decoder(b"\xff" * 9).uint()
    with pytest.raises(LocalProtocolError):
        Encoder().uint(MAX_SAFE_INTEGER + 1)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_encoder_rejects_bad_uint(bad: Any) -> None:
    with pytest.raises(LocalProtocolError):
        Encoder().uint(bad)


def test_buffer_semantics() -> None:
    assert enc(lambda e: e.buffer(None)) == b"\x00"
    assert enc(lambda e: e.buffer(b"")) == b"\x00"
    assert enc(lambda e: e.buffer(b"abc")) == b"\x03abc"
    # compact-encoding 3.x c.buffer: length 0 is an empty buffer, not null
    assert Decoder(b"\x00").buffer() == b""
    assert Decoder(b"\x00").optional_buffer() is None
    assert Decoder(b"\x03abc").optional_buffer() == b"abc"
    with pytest.raises(DecodeError):
        Decoder(b"\x04abc").buffer()


def test_string() -> None:
    data = enc(lambda e: e.string("héllo"))
    assert data == b"\x06h\xc3\xa9llo"
    assert Decoder(data).string() == "héllo"
    assert Decoder(b"\x02\xff\xfe").string() == "\ufffd\ufffd"
    with pytest.raises(LocalProtocolError):
        Encoder().string("\ud800")


def test_ipv4_address() -> None:
    data = enc(lambda e: e.ipv4_address(("1.2.3.4", 0x1234)))
    assert data.hex() == "010203043412"
    assert encode_ipv4_address("1.2.3.4", 0x1234) == data
    assert Decoder(data).ipv4_address() == ("1.2.3.4", 0x1234)


@pytest.mark.parametrize(
    "host", ["1.2.3", "1.2.3.4.5", "256.0.0.1", "a.b.c.d", "::1", "", "1.2.3.-4", "1.2.3.٣"]
)
def test_ipv4_address_rejects(host: str) -> None:
    with pytest.raises(LocalProtocolError):
        Encoder().ipv4_address((host, 1))


def test_ipv4_port_range() -> None:
    with pytest.raises(LocalProtocolError):
        Encoder().ipv4_address(("1.2.3.4", 65536))


def test_ipv6_address_network_order_groups() -> None:
    data = enc(lambda e: e.ipv6_address(("2001:db8::1", 443)))
    assert data.hex() == "20010db8000000000000000000000001" + "bb01"
    assert Decoder(data).ipv6_address() == ("2001:db8::1", 443)
    with pytest.raises(LocalProtocolError):
        Encoder().ipv6_address(("1.2.3.4", 1))


def test_array_limits() -> None:
    with pytest.raises(DecodeError):
        Decoder(enc(lambda e: e.uint(0x100001)) + bytes(10)).array_length()
    with pytest.raises(DecodeError):
        Decoder(b"\x05\x00\x00").array_length()  # more items than bytes left
    assert Decoder(b"\x02\x00\x00").array_length() == 2
    with pytest.raises(DecodeError):
        Decoder(b"\x03" + bytes(12)).ipv4_array()
    with pytest.raises(DecodeError):
        Decoder(b"\x02" + bytes(12)).ipv4_array(max_items=1)


def test_end_and_trailing() -> None:
    d = Decoder(b"\x01\x02")
    assert d.uint() == 1
    assert not d.at_end()
    assert d.remaining == 1
    with pytest.raises(DecodeError):
        d.end()
    assert d.uint8() == 2
    d.end()
    with pytest.raises(DecodeError):
        d.uint8()


def test_decoder_start_and_memoryview() -> None:
    d = Decoder(memoryview(b"xx\x05"), 2)
    assert d.uint() == 5
    with pytest.raises(DecodeError):
        Decoder(b"", 1)


def test_fixed_length_checked() -> None:
    with pytest.raises(LocalProtocolError):
        Encoder().fixed(b"\x00" * 31, 32)
    with pytest.raises(DecodeError):
        Decoder(bytes(31)).fixed(32)


@given(st.lists(st.integers(0, MAX_SAFE_INTEGER)))
def test_uint_round_trip(ns: list[int]) -> None:
    e = Encoder()
    for n in ns:
        e.uint(n)
    d = Decoder(e.getvalue())
    assert [d.uint() for _ in ns] == ns
    d.end()


@given(
    st.binary(),
    st.text(),
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
    st.binary(min_size=32, max_size=32),
)
def test_mixed_round_trip(
    blob: bytes, text: str, a4: tuple[str, int], a6: tuple[str, int], key: bytes
) -> None:
    e = Encoder()
    e.buffer(blob)
    e.string(text)
    e.ipv4_address(a4)
    e.ipv6_address(a6)
    e.fixed(key, 32)
    e.ipv4_array([a4, a4])
    e.ipv6_array([a6])
    e.bool(True)
    d = Decoder(e.getvalue())
    assert d.buffer() == blob
    assert d.string() == text
    assert d.ipv4_address() == a4
    assert d.ipv6_address() == a6
    assert d.fixed(32) == key
    assert d.ipv4_array() == (a4, a4)
    assert d.ipv6_array() == (a6,)
    assert d.bool() is True
    d.end()


READERS: list[Callable[[Decoder], object]] = [
    Decoder.uint,
    Decoder.uint8,
    Decoder.uint16,
    Decoder.uint24,
    Decoder.uint32,
    Decoder.uint64,
    Decoder.bool,
    Decoder.buffer,
    Decoder.optional_buffer,
    Decoder.string,
    Decoder.ipv4_address,
    Decoder.ipv6_address,
    Decoder.ipv4_array,
    Decoder.ipv6_array,
    Decoder.array_length,
    Decoder.raw,
    Decoder.end,
    lambda d: d.fixed(32),
]


@given(st.binary(max_size=64), st.lists(st.integers(0, len(READERS) - 1), max_size=12))
def test_decoder_raises_only_decode_error(data: bytes, which: list[int]) -> None:
    d = Decoder(data)
    for i in which:
        try:
            READERS[i](d)
        except DecodeError:
            return
        assert 0 <= d.offset <= len(data)
