"""The Pkarr relay codec (:mod:`peerdht.web.pkarr`): z-base32 keys, ``sig ‖ seq ‖ v`` bodies, dates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.encoding.bencode import encode
from peerdht.errors import DecodeError
from peerdht.mainline.crypto import KeyPair, sign_mutable
from peerdht.web.pkarr import ALPHABET, decode_key, encode_key, http_date, parse_http_date, parse_payload


def test_known_key() -> None:
    # the example TLD of pubky/pkarr design/base.md (agreement with npm z32 is checked in tests/web/test_pkarr_relay.py)
    key = decode_key("o4dksfbqk85ogzdb5osziw6befigbuxmuxkuxq8434q89uj56uyy")
    assert encode_key(key) == "o4dksfbqk85ogzdb5osziw6befigbuxmuxkuxq8434q89uj56uyy"
    assert decode_key("pk:o4dksfbqk85ogzdb5osziw6befigbuxmuxkuxq8434q89uj56uyy") == key
    assert encode_key(bytes(32)) == "y" * 52


@given(st.binary(min_size=32, max_size=32))
def test_key_round_trip(key: bytes) -> None:
    text = encode_key(key)
    assert len(text) == 52 and set(text) <= set(ALPHABET)
    assert decode_key(text) == key


@given(st.text(max_size=60))
def test_junk_keys_raise_decode_error(text: str) -> None:
    try:
        key = decode_key(text)
    except DecodeError:
        return
    assert encode_key(key) == text.removeprefix("pk:")


@given(st.binary(max_size=1200))
def test_junk_bodies_raise_decode_error(body: bytes) -> None:
    try:
        p = parse_payload(body)
    except DecodeError:
        return
    assert p.to_bytes() == body and len(p.sig) == 64


def test_signed_body() -> None:
    kp = KeyPair.from_seed(b"\x01" * 32)
    v = bytes(12) + b"records"
    body = sign_mutable(kp, encode(v), 77) + (77).to_bytes(8, "big") + v
    p = parse_payload(body)
    assert p.seq == 77 and p.v == v and p.verify(kp.public_key)
    assert not p.verify(KeyPair.from_seed(b"\x02" * 32).public_key)
    with pytest.raises(DecodeError):
        parse_payload(body[:71])
    with pytest.raises(DecodeError):
        parse_payload(b"\x00" * 64 + b"\xff" * 8 + v)  # seq over 2**63 - 1


def test_dates() -> None:
    seq = 1_700_000_000_123_456
    assert parse_http_date(http_date(seq)) == 1_700_000_000_000_000
    assert parse_http_date("not a date") is None
