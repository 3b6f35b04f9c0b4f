"""The in-place fast paths of the dht-rpc datagram decoder (issue 14 item 1) against a field-by-field
reading through :class:`~peerdht.encoding.compact.Decoder`: same message or the same DecodeError, for valid
datagrams, multi-byte (non-minimal) uints, mutations and truncations; and ``ipv4_entries`` (one struct call
per array) against the per-entry decoding, for any count including more than its 64 cached layouts; the
node's memo of LOOKUP reply values against the records codec."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_hyper_messages_strategies import lookup_replies, requests, responses

from peerdht.encoding.compact import Decoder, Encoder, decode_ipv4_address, ipv4_entries
from peerdht.errors import DecodeError
from peerdht.hyper import records as r
from peerdht.hyper.messages import (
    REQUEST_ID,
    RESPONSE_ID,
    Request,
    Response,
    _uint,
    decode_message,
    encode_request,
    encode_response,
)
from peerdht.hyper.queries import map_lookup


def reference_decode(data: bytes) -> Request | Response:
    """dht-rpc ``decodeRequest`` / ``decodeReply`` read field by field with the generic Decoder."""
    if len(data) < 2:
        raise DecodeError("short")
    dec = Decoder(data)
    kind = dec.uint8()
    if kind not in (REQUEST_ID, RESPONSE_ID):
        raise DecodeError("type")
    flags = dec.uint()
    tid = dec.uint16()
    to = dec.ipv4_address()
    id_ = dec.fixed(32) if flags & 1 else None
    token = dec.fixed(32) if flags & 2 else None
    if kind == REQUEST_ID:
        command = dec.uint()
        target = dec.fixed(32) if flags & 8 else None
        value = dec.buffer() if flags & 16 else None
        return Request(
            tid=tid, to=to, id=id_, token=token, internal=bool(flags & 4), command=command, target=target, value=value
        )
    closer = dec.ipv4_array() if flags & 4 else ()
    error = dec.uint() if flags & 8 else 0
    value = dec.buffer() if flags & 16 else None
    return Response(tid=tid, to=to, id=id_, token=token, closer_nodes=closer, error=error, value=value)


def outcome(decode: object, data: bytes) -> object:
    assert callable(decode)
    try:
        return decode(data)
    except DecodeError:
        return DecodeError


def widen_uint(data: bytes, offset: int, width: int) -> bytes:
    """Rewrite the one-byte uint at ``offset`` in a non-minimal form (0xFD u16, 0xFE u32, 0xFF u64)."""
    v = data[offset]
    marker, fmt = {3: (0xFD, "<H"), 5: (0xFE, "<I"), 9: (0xFF, "<Q")}[width]
    return data[:offset] + bytes([marker]) + struct.pack(fmt, v) + data[offset + 1 :]


messages = st.one_of(requests.map(encode_request), responses.map(encode_response))


@settings(max_examples=300)
@given(messages)
def test_fast_decode_equals_reference(data: bytes) -> None:
    got = decode_message(data)
    assert got == reference_decode(data)
    assert type(got) is type(reference_decode(data))
    assert (encode_request(got) if isinstance(got, Request) else encode_response(got)) == data


@settings(max_examples=300)
@given(messages, st.data())
def test_non_minimal_uints_decode_alike(data: bytes, draw: st.DataObject) -> None:
    """Any one-byte uint after the head (command, count, error, value length) in a wider form."""
    m = decode_message(data)
    o = 10 + (32 if m.id is not None else 0) + (32 if m.token is not None else 0)
    width = draw.draw(st.sampled_from([3, 5, 9]))
    if isinstance(m, Request):
        if m.command > 0xFC:
            return  # already a multi-byte uint
        candidates = [o]  # command
        after = o + 1 + (32 if m.target is not None else 0)
        if m.value is not None and len(m.value) <= 0xFC:
            candidates.append(after)
    else:
        candidates = []
        if m.closer_nodes and len(m.closer_nodes) <= 0xFC:
            candidates.append(o)
            o += 1 + 6 * len(m.closer_nodes)
        if m.error:
            if m.error <= 0xFC:
                candidates.append(o)
            o += len(encode_response(Response(tid=0, to=("0.0.0.0", 0), error=m.error))) - 10
        if m.value is not None and len(m.value) <= 0xFC:
            candidates.append(o)
    if not candidates:
        return
    wide = widen_uint(data, draw.draw(st.sampled_from(candidates)), width)
    assert outcome(decode_message, wide) == outcome(reference_decode, wide) == m


@settings(max_examples=500)
@given(messages, st.data())
def test_mutated_and_truncated_decode_alike(data: bytes, draw: st.DataObject) -> None:
    i = draw.draw(st.integers(0, len(data) - 1))
    mutated = bytearray(data)
    mutated[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(data)))
    for candidate in (bytes(mutated), data[:cut], data + draw.draw(st.binary(max_size=8))):
        assert outcome(decode_message, candidate) == outcome(reference_decode, candidate)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_decode_alike(data: bytes) -> None:
    for candidate in (data, b"\x13" + data[1:], b"\x03" + data[1:]):
        assert outcome(decode_message, candidate) == outcome(reference_decode, candidate)


@given(st.integers(0, 100), st.binary(max_size=8), st.binary(max_size=8), st.data())
def test_ipv4_entries_equal_per_entry_decoding(n: int, head: bytes, tail: bytes, draw: st.DataObject) -> None:
    body = draw.draw(st.binary(min_size=6 * n, max_size=6 * n))
    data = head + body + tail
    expected = tuple(decode_ipv4_address(body[i : i + 6]) for i in range(0, 6 * n, 6))
    assert ipv4_entries(data, len(head), n) == expected
    assert ipv4_entries(data, len(head), n) == expected  # memoised the second time
    arr = bytes([n]) + body if n <= 0xFC else b""
    if arr:
        assert Decoder(arr + tail).ipv4_array() == expected


@given(lookup_replies.map(r.encode_lookup_reply), st.binary(max_size=40))
def test_lookup_value_memo_decodes_like_the_codec(value: bytes, junk: bytes) -> None:
    """hyper/node's memo of LOOKUP reply values: the same result as decode_lookup_reply, cold and warm;
    undecodable values give None and are not remembered."""
    want = r.decode_lookup_reply(value)
    assert map_lookup(value) == (want.peers, want.bump)
    assert map_lookup(value) == (want.peers, want.bump)
    try:
        good = r.decode_lookup_reply(junk)
    except DecodeError:
        assert map_lookup(junk) is None
        assert map_lookup(junk) is None
    else:
        assert map_lookup(junk) == (good.peers, good.bump)


@given(st.one_of(st.integers(0, 0x1_0000), st.integers(0, 2**53 - 1)))
def test_inline_uint_equals_the_encoder(n: int) -> None:
    """messages._uint writes one- and three-byte uints itself: byte for byte compact-encoding's."""
    buf = bytearray()
    _uint(buf, n)
    enc = Encoder()
    enc.uint(n)
    assert bytes(buf) == enc.getvalue()


def test_finished_requests_are_freed_without_the_cyclic_gc() -> None:
    """A request is one object and its query's callbacks are not closures: once operations are done, nothing
    of theirs is left for the cyclic GC (a request that held itself as its table context once made every
    request a reference cycle: ~9,000 cyclic objects per 20 bench rounds)."""
    import gc

    from test_hyper_node_fakenet import FakeNet

    from peerdht.hyper.crypto import KeyPair

    net = FakeNet(seed=3)
    members = net.testnet(8)
    client = net.add(bootstrap=[members[0].server])
    op = client.node.bootstrap(net.now)
    net.run_until(lambda: client.result(op) is not None)
    kp = KeyPair.generate()
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for start in (
            lambda: client.node.lookup(bytes(32), net.now),
            lambda: client.node.announce(bytes(32), kp, [], net.now),
            lambda: client.node.mutable_put(kp, b"v", 1, net.now),
            lambda: client.node.mutable_get(kp.public_key, net.now),
            lambda: client.node.find_node(bytes(range(32)), net.now),
        ):
            op = start()
            net.run_until(lambda op=op: client.result(op) is not None)  # type: ignore[misc]
            assert client.result(op) is not None
        garbage = gc.collect()
    finally:
        if was:
            gc.enable()
    assert garbage < 20, garbage
