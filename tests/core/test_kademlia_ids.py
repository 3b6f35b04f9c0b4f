"""Tests for peerdht.kademlia.ids: XOR metric, shared prefix length, bucket refresh ids."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.ids import common_prefix_length, distance, id_to_int, random_id_in_bucket


def _bits(b: bytes) -> str:
    return "".join(f"{x:08b}" for x in b)


def test_distance_examples() -> None:
    assert distance(b"\x00\x00", b"\x00\x00") == 0
    assert distance(b"\x80\x00", b"\x00\x00") == 0x8000
    assert distance(b"\x12\x34", b"\x56\x78") == 0x1234 ^ 0x5678
    assert id_to_int(b"\x01\x00") == 256


def test_common_prefix_length_examples() -> None:
    assert common_prefix_length(b"\x00", b"\x80") == 0
    assert common_prefix_length(b"\x00", b"\x01") == 7
    assert common_prefix_length(b"\xff\x00", b"\xff\x00") == 16
    assert common_prefix_length(b"\xff\x00", b"\xff\x10") == 11


def test_length_mismatch_is_a_caller_bug() -> None:
    with pytest.raises(LocalProtocolError):
        distance(b"\x00", b"\x00\x00")
    with pytest.raises(LocalProtocolError):
        common_prefix_length(b"\x00" * 20, b"\x00" * 32)


ids20 = st.binary(min_size=20, max_size=20)


@given(ids20, ids20)
def test_cpl_matches_bit_strings(a: bytes, b: bytes) -> None:
    sa, sb = _bits(a), _bits(b)
    n = 0
    while n < len(sa) and sa[n] == sb[n]:
        n += 1
    assert common_prefix_length(a, b) == n
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) == 0) == (a == b)


@given(ids20, ids20, ids20)
def test_xor_triangle_inequality(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert distance(a, c) == distance(a, b) ^ distance(b, c)


@given(st.binary(min_size=1, max_size=32), st.data())
def test_random_id_in_bucket_shares_exactly_index_bits(local: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, 8 * len(local)))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    rid = random_id_in_bucket(local, index, rng)
    assert len(rid) == len(local)
    assert common_prefix_length(local, rid) == index


def test_random_id_in_bucket_is_random_in_the_tail() -> None:
    rng = random.Random(7)
    local = bytes(32)
    seen = {random_id_in_bucket(local, 3, rng) for _ in range(50)}
    assert len(seen) == 50
    for rid in seen:
        assert _bits(rid)[:4] == "0001"


def test_random_id_in_bucket_range() -> None:
    rng = random.Random(1)
    with pytest.raises(LocalProtocolError):
        random_id_in_bucket(bytes(20), 161, rng)
    with pytest.raises(LocalProtocolError):
        random_id_in_bucket(bytes(20), -1, rng)
    assert random_id_in_bucket(bytes(20), 160, rng) == bytes(20)
    assert random_id_in_bucket(bytes(20), 159, rng) == bytes(19) + b"\x01"
