"""KRPC messages: round trips, exact bytes, field checks and fuzzing."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.encoding.bencode import decode, encode
from peerdht.errors import DecodeError
from peerdht.mainline.messages import (
    AnnouncePeer,
    BadQuery,
    ErrorMessage,
    FindNode,
    FindNodeResponse,
    Get,
    GetPeers,
    GetPeersResponse,
    GetResponse,
    IdResponse,
    NodeInfo,
    Ping,
    Put,
    QueryMessage,
    ResponseMessage,
    SampleInfohashes,
    SampleInfohashesResponse,
    UnknownQuery,
    decode_message,
    decode_nodes,
    encode_error,
    encode_nodes,
    encode_query,
    encode_response,
    parse_response,
)

A = b"a" * 20
B = b"b" * 20
N1 = NodeInfo(id=B, host="127.0.0.1", port=6881)
N6 = NodeInfo(id=A, host="::1", port=7000)


def test_bep5_ping_bytes() -> None:
    # BEP 5 example: ping Query = {"t":"aa", "y":"q", "q":"ping", "a":{"id":"abcdefghij0123456789"}}
    wire = encode_query(b"aa", Ping(id=b"abcdefghij0123456789"))
    assert wire == b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    msg = decode_message(wire)
    assert msg == QueryMessage(t=b"aa", query=Ping(id=b"abcdefghij0123456789"))
    resp = encode_response(b"aa", IdResponse(id=b"mnopqrstuvwxyz123456"))
    assert resp == b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"


def test_bep5_error_bytes() -> None:
    wire = encode_error(b"aa", 201, "A Generic Error Ocurred")
    assert wire == b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"
    assert decode_message(wire) == ErrorMessage(t=b"aa", code=201, message="A Generic Error Ocurred")


@pytest.mark.parametrize(
    "query",
    [
        Ping(id=A),
        FindNode(id=A, target=B),
        FindNode(id=A, target=B, want=frozenset({"n4", "n6"})),
        GetPeers(id=A, info_hash=B),
        AnnouncePeer(id=A, info_hash=B, port=6881, token=b"tok"),
        AnnouncePeer(id=A, info_hash=B, port=0, token=b"tok", implied_port=True),
        Get(id=A, target=B),
        Get(id=A, target=B, seq=3),
        Put(id=A, token=b"t", v=b"Hello World!"),
        Put(id=A, token=b"t", v=[1, {b"x": b"y"}]),
        Put(id=A, token=b"t", v=b"v", k=b"k" * 32, sig=b"s" * 64, seq=4, salt=b"salt", cas=3),
        SampleInfohashes(id=A, target=B),
    ],
)
def test_query_roundtrip(query: object) -> None:
    wire = encode_query(b"\x00\x01", query, read_only=True, version=b"PD\x00\x01")  # type: ignore[arg-type]
    msg = decode_message(wire)
    assert isinstance(msg, QueryMessage)
    assert msg.query == query
    assert msg.read_only
    assert msg.version == b"PD\x00\x01"
    assert b"2:roi1e" in wire


@pytest.mark.parametrize(
    ("method", "resp"),
    [
        ("ping", IdResponse(id=A)),
        ("find_node", FindNodeResponse(id=A, nodes=(N1,), nodes6=(N6,))),
        ("find_node", FindNodeResponse(id=A)),
        ("get_peers", GetPeersResponse(id=A, token=b"tk", values=(("1.2.3.4", 5), ("::1", 6)))),
        ("get_peers", GetPeersResponse(id=A, token=b"tk", nodes=(N1,))),
        ("get", GetResponse(id=A, token=b"tk", nodes=(N1,), v=b"x", k=b"k" * 32, seq=9, sig=b"s" * 64)),
        ("get", GetResponse(id=A, token=b"tk", nodes=(N1,))),
        (
            "sample_infohashes",
            SampleInfohashesResponse(id=A, interval=60, num=2, samples=(A, B), nodes=(N1,)),
        ),
    ],
)
def test_response_roundtrip(method: str, resp: object) -> None:
    wire = encode_response(b"xy", resp, ip=("10.0.0.1", 1234))  # type: ignore[arg-type]
    msg = decode_message(wire)
    assert isinstance(msg, ResponseMessage)
    assert msg.ip == ("10.0.0.1", 1234)
    assert parse_response(method, msg.body) == resp


def test_nodes_codec() -> None:
    data = encode_nodes([N1, N6, NodeInfo(id=A, host="webrtc-peer", port=1)])
    assert len(data) == 26
    assert decode_nodes(data) == [N1]
    assert decode_nodes(encode_nodes([N1, N6], v6=True), v6=True) == [N6]
    assert decode_nodes(B + bytes(6)) == []  # port 0 dropped
    with pytest.raises(DecodeError):
        decode_nodes(b"x" * 27)


def _q(method: bytes, a: object, **extra: object) -> bytes:
    return encode(
        {b"t": b"aa", b"y": b"q", b"q": method, b"a": a, **{k.encode(): v for k, v in extra.items()}}
    )


@pytest.mark.parametrize(
    "wire",
    [
        _q(b"ping", {}),
        _q(b"ping", {b"id": 5}),
        _q(b"ping", {b"id": b"short"}),
        _q(b"ping", b"notadict"),
        _q(b"find_node", {b"id": A, b"target": 7}),  # crashes bittorrent-dht 11.0.12
        _q(b"find_node", {b"id": A, b"target": B, b"want": b"n4"}),
        _q(b"find_node", {b"id": A, b"target": B, b"want": [1]}),
        _q(b"get_peers", {b"id": A, b"info_hash": 12345}),  # crashes bittorrent-dht 11.0.12
        _q(b"get", {b"id": A, b"target": [B]}),  # crashes bittorrent-dht 11.0.12
        _q(b"get", {b"id": A, b"target": B, b"seq": b"1"}),
        _q(b"announce_peer", {b"id": A, b"info_hash": B, b"port": 1, b"token": 5}),  # crashes bittorrent-dht
        _q(b"announce_peer", {b"id": A, b"info_hash": B, b"port": 70000, b"token": b"t"}),
        _q(b"announce_peer", {b"id": A, b"info_hash": B, b"port": 0, b"token": b"t"}),
        _q(b"announce_peer", {b"id": A, b"info_hash": B, b"token": b"t"}),
        _q(b"announce_peer", {b"id": A, b"info_hash": B, b"port": 1, b"token": b"t" * 1370}),
        _q(b"put", {b"id": A, b"token": 5, b"v": b"x"}),  # crashes bittorrent-dht 11.0.12
        _q(b"put", {b"id": A, b"token": b"t"}),
        _q(b"put", {b"id": A, b"token": b"t", b"v": b"x", b"k": b"k" * 32}),
        _q(b"put", {b"id": A, b"token": b"t", b"v": b"x", b"k": b"k" * 31, b"sig": b"s" * 64, b"seq": 1}),
        _q(b"put", {b"id": A, b"token": b"t", b"v": b"x", b"k": b"k" * 32, b"sig": b"s" * 64, b"seq": -1}),
        _q(b"put", {b"id": A, b"token": b"t", b"v": b"x", b"k": b"k" * 32, b"sig": b"s" * 64, b"seq": 2**63}),
        _q(b"put", {b"id": A, b"token": b"t", b"v": b"x", b"sig": b"s" * 64}),
        _q(b"sample_infohashes", {b"id": A}),
    ],
)
def test_bad_query_keeps_tid(wire: bytes) -> None:
    with pytest.raises(BadQuery) as info:
        decode_message(wire)
    assert info.value.t == b"aa"


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"garbage",
        b"le",
        b"i1e",
        encode({b"y": b"q", b"q": b"ping", b"a": {b"id": A}}),  # no t
        encode({b"t": 1, b"y": b"q", b"q": b"ping", b"a": {b"id": A}}),
        encode({b"t": b"", b"y": b"q", b"q": b"ping", b"a": {b"id": A}}),
        encode({b"t": b"x" * 33, b"y": b"q", b"q": b"ping", b"a": {b"id": A}}),
        encode(
            {b"t": b"aa", b"y": b"q", b"a": {b"id": A}}
        ),  # no q: "uncatchable" crash in bittorrent-dht#224
        encode({b"t": b"aa", b"y": b"q", b"q": 5, b"a": {b"id": A}}),
        encode({b"t": b"aa", b"y": b"x"}),
        encode({b"t": b"aa", b"y": b"r"}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": 5}}),
        encode({b"t": b"aa", b"y": b"e", b"e": b"oops"}),
        encode({b"t": b"aa", b"y": b"e", b"e": []}),
        encode({b"t": b"aa", b"y": b"e", b"e": [b"x", 1]}),
        b"d1:t2:aa1:y1:q" + b"l" * 50 + b"e" * 50 + b"e",
    ],
)
def test_malformed_envelope(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(wire)


def test_unknown_query_and_want_filter() -> None:
    msg = decode_message(_q(b"vote", {b"id": A, b"target": B}))
    assert isinstance(msg, QueryMessage)
    assert msg.query == UnknownQuery(method=b"vote", id=A)
    msg = decode_message(_q(b"find_node", {b"id": A, b"target": B, b"want": [b"n6", b"zz"]}))
    assert isinstance(msg, QueryMessage)
    assert msg.query == FindNode(id=A, target=B, want=frozenset({"n6"}))


def test_liberal_responses() -> None:
    # unsorted keys and an unknown extra key are accepted; a long version is ignored
    wire = b"d1:t2:aa1:y1:r1:rd2:id20:" + A + b"5:extrai1ee1:v40:" + b"x" * 40 + b"e"
    msg = decode_message(wire)
    assert isinstance(msg, ResponseMessage)
    assert msg.version is None
    # many nodes (bittorrent-dht replies with its whole table)
    many = encode_nodes([NodeInfo(id=bytes([i]) * 20, host="127.0.0.1", port=1000 + i) for i in range(1, 60)])
    resp = parse_response("find_node", {b"id": A, b"nodes": many})
    assert isinstance(resp, FindNodeResponse)
    assert len(resp.nodes) == 59


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("find_node", {b"id": A, b"nodes": 5}),
        ("find_node", {b"id": A, b"nodes": b"x" * 25}),
        ("get_peers", {b"id": A, b"values": b"x"}),
        ("get_peers", {b"id": A, b"values": [b"x" * 7]}),
        ("get_peers", {b"id": A, b"token": [b"x"]}),
        ("get", {b"id": A, b"k": b"x"}),
        ("get", {b"id": A, b"seq": b"x"}),
        ("sample_infohashes", {b"id": A, b"samples": b"x" * 21}),
        ("ping", {b"id": b"x"}),
    ],
)
def test_bad_response_bodies(method: str, body: dict[bytes, object]) -> None:
    with pytest.raises(DecodeError):
        parse_response(method, body)  # type: ignore[arg-type]


_fields = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"v",
        b"k",
        b"sig",
        b"seq",
        b"salt",
        b"cas",
        b"want",
        b"nodes",
        b"values",
        b"samples",
        b"interval",
        b"num",
    ]
)
_junk = st.recursive(
    st.binary(max_size=40) | st.integers(min_value=-(2**70), max_value=2**70),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.binary(max_size=4), c, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400)
@given(
    st.sampled_from(
        [b"ping", b"find_node", b"get_peers", b"announce_peer", b"get", b"put", b"sample_infohashes", b"x"]
    ),
    st.dictionaries(_fields, _junk | st.binary(min_size=20, max_size=20), max_size=8),
)
def test_fuzz_queries(method: bytes, args: dict[bytes, object]) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(_q(method, args))


@settings(max_examples=300)
@given(
    st.sampled_from(["ping", "find_node", "get_peers", "announce_peer", "get", "put", "sample_infohashes"]),
    st.dictionaries(_fields, _junk | st.binary(min_size=20, max_size=20), max_size=8),
)
def test_fuzz_responses(method: str, body: dict[bytes, object]) -> None:
    body = {b"id": A, **body}
    wire = encode({b"t": b"aa", b"y": b"r", b"r": body})
    try:
        msg = decode_message(wire)
        assert isinstance(msg, ResponseMessage)
        parse_response(method, msg.body)
    except DecodeError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


def test_decoded_dicts_are_plain() -> None:
    assert decode(encode_query(b"t", Ping(id=A))) == {b"a": {b"id": A}, b"q": b"ping", b"t": b"t", b"y": b"q"}


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.binary(min_size=26, max_size=26), max_size=12), v6=st.booleans(), data=st.data())
def test_decode_nodes_memo_is_transparent(entries: list[bytes], v6: bool, data: st.DataObject) -> None:
    # decode_nodes memoises compact entries: a warm decode (entries seen before, possibly in other replies)
    # must equal a cold one, and both must equal the field-by-field reading of BEP 5 / BEP 32
    size = 38 if v6 else 26
    if v6:
        entries = [e + data.draw(st.binary(min_size=12, max_size=12)) for e in entries]
    blob = b"".join(entries)
    expected = []
    for e in entries:
        port = int.from_bytes(e[size - 2 :], "big")
        if port:
            host = str(ipaddress.ip_address(e[20 : size - 2]))
            expected.append(NodeInfo(id=e[:20], host=host, port=port))
    assert decode_nodes(blob, v6=v6) == expected
    assert decode_nodes(bytearray(blob), v6=v6) == expected  # warm, and from a mutable buffer
    assert decode_nodes(blob[::-1][::-1], v6=v6) == expected


@settings(max_examples=100, deadline=None)
@given(
    tids=st.lists(st.binary(max_size=6), min_size=1, max_size=4),
    read_only=st.booleans(),
    version=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    ids=st.lists(st.binary(min_size=20, max_size=20), min_size=2, max_size=2),
    token=st.binary(min_size=1, max_size=20),
)
def test_core_query_template_matches_encode_query(
    tids: list[bytes], read_only: bool, version: bytes | None, ids: list[bytes], token: bytes
) -> None:
    # the core bencodes a lookup's query once and only formats the transaction id per request: the bytes
    # must be exactly encode_query's, for every query type and whatever the tid, version or values hold
    import random

    from peerdht.mainline.node import MainlineNode

    node = MainlineNode(rng=random.Random(0), read_only=read_only, version=version)
    a, b = ids
    queries = [
        Ping(id=a), FindNode(id=a, target=b, want=frozenset({"n4"})), GetPeers(id=a, info_hash=b),
        AnnouncePeer(id=a, info_hash=b, port=6881, token=token, implied_port=True),
        Get(id=a, target=b, seq=7), Put(id=a, token=token, v=token + b"1:t0:"),
        Put(id=a, token=token, v=[1, {b"t": token}]),  # unhashable value: encoded in full
        SampleInfohashes(id=a, target=b),
    ]
    for q in queries:
        for t in tids:
            want = encode_query(t, q, read_only=read_only, version=version)
            assert node._encode_query(t, q) == want
