"""Strict bencode: known encodings, malformed inputs, and hypothesis properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.encoding.bencode import decode, decode_prefix, encode
from peerdht.errors import DecodeError, LocalProtocolError

values = st.recursive(
    st.binary(max_size=40) | st.integers(min_value=-(2**80), max_value=2**80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.mark.parametrize(
    ("obj", "wire"),
    [
        (b"spam", b"4:spam"),
        (b"", b"0:"),
        (0, b"i0e"),
        (-3, b"i-3e"),
        (42, b"i42e"),
        ([b"a", 1], b"l1:ai1ee"),
        ([], b"le"),
        ({}, b"de"),
        ({b"b": 1, b"a": b"x"}, b"d1:a1:x1:bi1ee"),
        (
            {"t": "aa", "y": "q", "q": "ping", "a": {"id": b"0" * 20}},
            b"d1:ad2:id20:" + b"0" * 20 + b"e1:q4:ping1:t2:aa1:y1:qe",
        ),
    ],
)
def test_known(obj: object, wire: bytes) -> None:
    assert encode(obj) == wire
    dec = decode(wire)
    assert encode(dec) == wire


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"i",
        b"ie",
        b"i-e",
        b"i-0e",
        b"i03e",
        b"i1.5e",
        b"i 1e",
        b"i+1e",
        b"i1",
        b"4:spa",
        b"04:spam",
        b"-1:a",
        b"4spam",
        b"99999999999:x",
        b"999999999999999999999:x",
        b"l",
        b"li1e",
        b"d",
        b"d1:a",
        b"d1:ai1e",
        b"di1ei2ee",
        b"d1:b1:x1:a1:ye",
        b"d1:a1:x1:a1:ye",
        b"i1ei2e",
        b"4:spamx",
        b"x",
        b"e",
        b"l" * 100 + b"e" * 100,
        b"d1:a" * 100 + b"e" * 100,
        b"i" + b"9" * 5000 + b"e",
        b"l" * 100000,
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(bad)


def test_unsorted_allowed_when_lenient_but_duplicates_never() -> None:
    assert decode(b"d1:b1:x1:a1:ye", sorted_keys=False) == {b"a": b"y", b"b": b"x"}
    with pytest.raises(DecodeError):
        decode(b"d1:a1:x1:a1:ye", sorted_keys=False)


def test_depth_limit_is_a_parameter() -> None:
    deep = b"l" * 10 + b"e" * 10
    assert decode(deep, max_depth=10) is not None
    with pytest.raises(DecodeError):
        decode(deep, max_depth=9)


def test_decode_prefix() -> None:
    assert decode_prefix(b"i5exyz") == (5, 3)


def test_encode_refuses() -> None:
    for bad in (True, 1.5, None, {1: b"x"}, {"a": 1, b"a": 2}):
        with pytest.raises(LocalProtocolError):
            encode(bad)
    with pytest.raises(LocalProtocolError):
        encode(_nest(100))


def _nest(n: int) -> object:
    obj: object = []
    for _ in range(n):
        obj = [obj]
    return obj


@given(values)
def test_roundtrip(obj: object) -> None:
    wire = encode(obj)
    assert decode(wire) == obj
    assert encode(decode(wire)) == wire


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_fuzz_bytes_only_decode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data  # strict: anything accepted is canonical


@settings(max_examples=300)
@given(values, st.data())
def test_fuzz_mutations(obj: object, data: st.DataObject) -> None:
    wire = bytearray(encode(obj))
    pos = data.draw(st.integers(min_value=0, max_value=len(wire)))
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip" and pos < len(wire):
        wire[pos] = data.draw(st.integers(0, 255))
    elif action == "cut":
        del wire[pos:]
    else:
        wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    for lenient in (False, True):
        with contextlib.suppress(DecodeError):
            decode(bytes(wire), sorted_keys=not lenient)


def test_matches_js_bencode() -> None:
    """Byte-for-byte against the npm ``bencode`` package (bittorrent-dht's codec)."""
    import json
    import shutil
    import subprocess

    from tests.jsproc import ROOT

    if shutil.which("node") is None or not (ROOT / "node_modules" / "bencode").is_dir():
        pytest.skip("node or node_modules missing")
    script = (
        "import('bencode').then(m => { const b = m.default;"
        " const obj = {t: Buffer.from('aa'), y: 'q', q: 'get_peers', a: {id: Buffer.alloc(20, 1),"
        " info_hash: Buffer.alloc(20, 2), want: ['n4', 'n6'], seq: -12, port: 6881}, z: [1, [2, {x: 3}]]};"
        " process.stdout.write(JSON.stringify({hex: Buffer.from(b.encode(obj)).toString('hex')})) })"
    )
    out = subprocess.run(["node", "-e", script], cwd=ROOT, capture_output=True, timeout=30, check=True)
    js = bytes.fromhex(json.loads(out.stdout)["hex"])
    ours = encode(
        {
            "t": b"aa",
            "y": b"q",
            "q": b"get_peers",
            "a": {
                "id": b"\x01" * 20,
                "info_hash": b"\x02" * 20,
                "want": [b"n4", b"n6"],
                "seq": -12,
                "port": 6881,
            },
            "z": [1, [2, {"x": 3}]],
        }
    )
    assert ours == js
    assert encode(decode(js)) == js
