"""P2PT framing (peerdht.tracker.framing): the wire format of p2pt 1.6.2 and bounded reassembly, no event loop."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import DecodeError
from peerdht.tracker.framing import (
    CHUNK_UNITS,
    MAX_FRAME,
    Chunk,
    Reassembler,
    decode_frame,
    encode_message,
    join_utf16,
    split_utf16,
    utf16_len,
)

# text as JS strings can carry it from a real peer (no lone surrogates in what we send)
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


def reassemble(frames: list[str], r: Reassembler | None = None, key: Any = "k", now: float = 0.0) -> Any:
    r = r or Reassembler()
    done = None
    for frame in frames:
        chunk = decode_frame(frame)
        assert chunk is not None
        out = r.receive(key, chunk, now)
        if out is not None:
            done = out
    assert done is not None
    return done.msg


def test_frames_are_what_p2pt_sends() -> None:
    # p2pt builds {id, msg}, adds o, then c and last, and sends '^' + JSON.stringify(chunk)
    assert encode_message(123456, "hi") == ['^{"id":123456,"msg":"hi","c":0,"last":true}']
    assert encode_message(100001, {"a": [1, "é"]}) == ['^{"id":100001,"msg":"{\\"a\\":[1,\\"é\\"]}","o":1,"c":0,"last":true}']
    frames = encode_message(7, "x" * (CHUNK_UNITS + 1))
    assert [json.loads(f[1:]) for f in frames] == [
        {"id": 7, "msg": "x" * CHUNK_UNITS, "c": 0},
        {"id": 7, "msg": "x", "c": 1, "last": True},
    ]
    # a JS sender's chunk: decoded as p2pt reads it
    assert decode_frame('^{"id":150000,"msg":"hey","c":0,"last":true}') == Chunk(
        id=150000, msg="hey", index=0, last=True, is_json=False)
    assert decode_frame("not p2pt") is None
    assert decode_frame(b'^{"id":1,"msg":"b"}') == Chunk(id=1, msg="b", index=0, last=False, is_json=False)


def test_utf16_units_and_split_surrogates() -> None:
    assert utf16_len("a😀é") == 4
    parts = split_utf16("😀😀", 3)  # cuts the second pair in half, as JS slice does
    assert [utf16_len(p) for p in parts] == [3, 1]
    assert join_utf16(parts) == "😀😀"
    assert join_utf16(["\ud83d"]) == "\ufffd"  # unpaired: replaced, never a crash later
    # the cut pair travels JSON-escaped (UTF-8 cannot carry a lone surrogate) and comes back whole
    frames = encode_message(1, "ab😀" * 3, units=3)
    assert any("\\ud83d" in f for f in frames)
    for f in frames:
        f.encode("utf-8")
    assert reassemble(frames) == "ab😀" * 3


@given(texts, st.integers(1, 20))
def test_text_roundtrip(text: str, units: int) -> None:
    frames = encode_message(42, text, units=units)
    assert all(utf16_len(json.loads(f[1:])["msg"].encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace"))
               <= units + 1 for f in frames)
    r = Reassembler(units=units)
    assert reassemble(frames, r) == text
    assert r.buffered == 0 and len(r) == 0


@given(json_values, st.integers(1, 50))
def test_json_roundtrip(value: Any, units: int) -> None:
    frames = encode_message("id-1", value, units=units)
    assert all('"o":1' in f for f in frames) or isinstance(value, str)
    assert reassemble(frames, Reassembler(units=units)) == value


def test_empty_string_is_one_chunk() -> None:
    assert encode_message(3, "") == ['^{"id":3,"msg":"","c":0,"last":true}']
    assert reassemble(encode_message(3, "")) == ""


def test_interleaved_messages_and_peers_do_not_mix() -> None:
    # p2pt keys chunks by id only; two peers using one id would corrupt each other there
    a = encode_message(5, "A" * 30, units=10)
    b = encode_message(5, "B" * 30, units=10)
    r = Reassembler(units=10)
    out = []
    for fa, fb in zip(a, b, strict=True):
        for key, frame in (("peer-a", fa), ("peer-b", fb)):
            chunk = decode_frame(frame)
            assert chunk is not None
            done = r.receive(key, chunk, 0.0)
            if done:
                out.append((done.key, done.msg))
    assert out == [("peer-a", "A" * 30), ("peer-b", "B" * 30)]


@pytest.mark.parametrize("frame", [
    "^", "^{", "^[]", "^null", '^{"msg":"x"}', '^{"id":1}', '^{"id":true,"msg":""}', '^{"id":1.5,"msg":""}',
    '^{"id":"' + "x" * 65 + '","msg":""}', '^{"id":1,"msg":2}', '^{"id":1,"msg":"","c":-1}', '^{"id":1,"msg":"","c":"0"}',
    '^{"id":1,"msg":"","c":1.5}', '^{"id":1,"msg":"","last":"yes"}', '^{"id":1,"msg":"","o":{}}',
    '^{"id":' + "9" * 5000 + ',"msg":""}', "^" + "[" * 100_000, "^" + "x" * MAX_FRAME, b"^\xff\xfe",
    '^{"id":99999999999999999999,"msg":""}',
])
def test_bad_frames_raise_decode_error(frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        decode_frame(frame)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.builds(lambda v: "^" + json.dumps(v), json_values),
                 st.builds(lambda d: "^" + json.dumps(d), st.dictionaries(
                     st.sampled_from(["id", "msg", "c", "last", "o", "x"]), json_values, max_size=6))))
def test_decode_frame_only_raises_decode_error(frame: str | bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_frame(frame)


def test_bad_json_message_is_dropped() -> None:
    r = Reassembler()
    with pytest.raises(DecodeError):
        r.receive("k", Chunk(id=1, msg="{not json", index=0, last=True, is_json=True), 0.0)
    with pytest.raises(DecodeError):
        r.receive("k", Chunk(id=1, msg="[" * 100_000, index=0, last=True, is_json=True), 0.0)
    assert r.dropped == 2 and r.buffered == 0


def test_chunk_flood_without_last_is_bounded() -> None:
    r = Reassembler(max_message=100_000, max_partial=8)
    errors = 0
    for i in range(10_000):  # 10,000 chunks of 1,000 units under many ids and indices: 10 M units offered
        try:
            r.receive(("p", i % 50), Chunk(id=i % 50, msg="x" * 1000, index=i // 50, last=False, is_json=False), 0.0)
        except DecodeError:
            errors += 1
        assert r.buffered <= 100_000 and len(r) <= 8
    assert r.dropped > 0


def test_index_out_of_range_and_huge_declared_message() -> None:
    r = Reassembler(max_message=1_000_000)  # at most 63 chunks of 16,000
    with pytest.raises(DecodeError, match="out of range"):
        r.receive("k", Chunk(id=1, msg="x", index=63, last=False, is_json=False), 0.0)
    # "a 1 GB message": its last chunk's index says 62,500 chunks
    with pytest.raises(DecodeError, match="out of range"):
        r.receive("k", Chunk(id=2, msg="x", index=62_500, last=True, is_json=False), 0.0)
    assert r.buffered == 0


def test_duplicate_and_missing_chunks() -> None:
    r = Reassembler()
    r.receive("k", Chunk(id=1, msg="a", index=0, last=False, is_json=False), 0.0)
    with pytest.raises(DecodeError, match="twice"):
        r.receive("k", Chunk(id=1, msg="a", index=0, last=False, is_json=False), 0.0)
    r.receive("k", Chunk(id=1, msg="a", index=0, last=False, is_json=False), 0.0)
    with pytest.raises(DecodeError, match="missing"):
        r.receive("k", Chunk(id=1, msg="c", index=2, last=True, is_json=False), 0.0)
    assert r.buffered == 0 and len(r) == 0


def test_message_over_the_limit() -> None:
    r = Reassembler(max_message=20_000)
    r.receive("k", Chunk(id=1, msg="x" * 16_000, index=0, last=False, is_json=False), 0.0)
    with pytest.raises(DecodeError, match="over"):
        r.receive("k", Chunk(id=1, msg="x" * 16_000, index=1, last=True, is_json=False), 0.0)
    assert r.buffered == 0


def test_stale_partials_expire() -> None:
    r = Reassembler(timeout=60.0)
    r.receive("a", Chunk(id=1, msg="x", index=0, last=False, is_json=False), 0.0)
    r.receive("b", Chunk(id=2, msg="y", index=0, last=False, is_json=False), 30.0)
    assert r.get_timer() == 60.0
    assert r.expire(59.9) == 0
    assert r.expire(60.0) == 1 and len(r) == 1
    assert r.get_timer() == 90.0
    assert r.expire(90.0) == 1 and r.buffered == 0 and r.get_timer() is None


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 12), st.booleans(),
                          st.integers(0, 40)), max_size=60))
def test_reassembler_bounds_hold_for_any_chunk_sequence(ops: list[tuple[int, int, int, bool, int]]) -> None:
    r = Reassembler(max_message=100, max_partial=3, units=10)
    for step, (key, msg_id, index, last, size) in enumerate(ops):
        with contextlib.suppress(DecodeError):
            r.receive((key, msg_id), Chunk(id=msg_id, msg="z" * size, index=index, last=last, is_json=False), step)
        assert 0 <= r.buffered <= 100 and len(r) <= 3
        assert r.buffered == sum(p.units for p in r._partials.values())
    r.expire(10_000.0)
    assert r.buffered == 0 and len(r) == 0
