"""dht-rpc datagrams and hyperdht payloads: vectors, round trips, DecodeError-only decoding."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hyper_messages_strategies import (
    announces,
    handshakes,
    holepunch_payloads,
    holepunches,
    lookup_replies,
    mutable_gets,
    mutable_puts,
    noise_payloads,
    peer_lists,
    peers,
    plugin_requests,
    requests,
    responses,
)

from peerdht.errors import DecodeError, LocalProtocolError
from peerdht.hyper import records as r
from peerdht.hyper.messages import (
    REQUEST_ID,
    RESPONSE_ID,
    Request,
    Response,
    decode_message,
    encode_request,
    encode_response,
)

K = bytes(range(32))

# ---------------------------------------------------------------- dht-rpc datagrams


def test_request_vector() -> None:
    # flags 4|8|16 (internal, target, value), tid 5, to 1.2.3.4:99, FIND_NODE, empty value
    m = Request(tid=5, to=("1.2.3.4", 99), internal=True, command=2, target=bytes(32), value=b"")
    data = encode_request(m)
    assert data.hex() == "031c05000102030463000200" + "00" * 31 + "00"
    assert decode_message(data) == m


def test_response_vector() -> None:
    m = Response(
        tid=7,
        to=("1.2.3.4", 99),
        id=K,
        token=bytes(32),
        closer_nodes=(("5.6.7.8", 1),),
        error=3,
        value=b"x",
    )
    data = encode_response(m)
    assert data.hex() == (
        "131f0700010203046300" + K.hex() + "00" * 32 + "01" + "050607080100" + "03" + "0178"
    )
    assert decode_message(data) == m


def test_minimal_messages() -> None:
    req = Request(tid=0, to=("0.0.0.0", 0), command=0)
    assert encode_request(req) == bytes([REQUEST_ID, 0]) + bytes(8) + b"\x00"
    assert decode_message(encode_request(req)) == req
    res = Response(tid=0xFFFF, to=("255.255.255.255", 65535))
    assert encode_response(res) == bytes([RESPONSE_ID, 0]) + b"\xff" * 8
    assert decode_message(encode_response(res)) == res


def test_value_none_vs_empty() -> None:
    a = encode_request(Request(tid=1, to=("1.1.1.1", 1), command=3, value=None))
    b = encode_request(Request(tid=1, to=("1.1.1.1", 1), command=3, value=b""))
    assert a[1] == 0 and b[1] == 16 and b[-1] == 0
    assert decode_message(a).value is None
    assert decode_message(b).value == b""


def test_js_leniency_kept() -> None:
    base = encode_request(Request(tid=1, to=("1.1.1.1", 1), command=3))
    # trailing bytes ignored
    assert decode_message(base + b"junk") == decode_message(base)
    # unknown flag bits ignored (flag 32, 64, 128)
    assert decode_message(base[:1] + b"\xe0" + base[2:]) == decode_message(base)
    # flags as a non-minimal uint are read like JS c.uint
    assert decode_message(base[:1] + b"\xfd\x00\x00" + base[2:]) == decode_message(base)
    # closerNodes flag with zero nodes
    res = bytes([RESPONSE_ID, 4]) + bytes(8) + b"\x00"
    assert decode_message(res) == Response(tid=0, to=("0.0.0.0", 0))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x03",
        b"\x04\x00" + bytes(9),
        b"\x23\x00" + bytes(9),
        b"\x03\x00" + bytes(8),  # no command
        b"\x03\x01" + bytes(9),  # id flag but no id
        b"\x13\x04" + bytes(8) + b"\x02" + bytes(6),  # 2 closer nodes, 1 present
        b"\x13\x08" + bytes(8) + b"\xff" + b"\xff" * 8,  # error above 2**53
        b"\x13\x10" + bytes(8) + b"\x05abc",  # truncated value
    ],
)
def test_malformed_datagrams(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(Request(tid=70000, to=("1.1.1.1", 1), command=0))
    with pytest.raises(LocalProtocolError):
        encode_request(Request(tid=1, to=("1.1.1.1", 1), command=0, target=b"short"))
    with pytest.raises(LocalProtocolError):
        encode_response(Response(tid=1, to=("::1", 1)))
    with pytest.raises(LocalProtocolError):
        encode_response(Response(tid=1, to=("1.1.1.1", 1), token=bytes(31)))
    with pytest.raises(LocalProtocolError):
        encode_response(Response(tid=1, to=("1.1.1.1", 1), error=-1))


@given(requests)
def test_request_round_trip(m: Request) -> None:
    assert decode_message(encode_request(m)) == m


@given(responses)
def test_response_round_trip(m: Response) -> None:
    assert decode_message(encode_response(m)) == m


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_decode_message_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@given(st.one_of(requests.map(encode_request), responses.map(encode_response)), st.data())
def test_decode_mutated_only_decode_error(data: bytes, draw: st.DataObject) -> None:
    i = draw.draw(st.integers(0, len(data) - 1))
    mutated = bytearray(data)
    mutated[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(data)))
    for candidate in (bytes(mutated), data[:cut]):
        with contextlib.suppress(DecodeError):
            decode_message(candidate)


# ---------------------------------------------------------------- hyperdht payloads

CODECS: list[tuple[st.SearchStrategy[Any], Callable[[Any], bytes], Callable[[bytes], Any]]] = [
    (peers, r.encode_peer, r.decode_peer),
    (peer_lists, r.encode_peers, r.decode_peers),
    (lookup_replies, r.encode_lookup_reply, r.decode_lookup_reply),
    (announces, r.encode_announce, r.decode_announce),
    (mutable_puts, r.encode_mutable_put_request, r.decode_mutable_put_request),
    (mutable_gets, r.encode_mutable_get_response, r.decode_mutable_get_response),
    (plugin_requests, r.encode_plugin_request, r.decode_plugin_request),
    (handshakes, r.encode_handshake, r.decode_handshake),
    (holepunches, r.encode_holepunch, r.decode_holepunch),
    (noise_payloads, r.encode_noise_payload, r.decode_noise_payload),
    (holepunch_payloads, r.encode_holepunch_payload, r.decode_holepunch_payload),
]
IDS = [c[2].__name__ for c in CODECS]


@pytest.mark.parametrize(("strategy", "encode", "decode"), CODECS, ids=IDS)
def test_payload_round_trip(
    strategy: st.SearchStrategy[Any], encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
) -> None:
    @settings(max_examples=60)
    @given(strategy)
    def check(m: Any) -> None:
        assert decode(encode(m)) == m

    check()


@pytest.mark.parametrize(("strategy", "encode", "decode"), CODECS, ids=IDS)
def test_payload_decoder_only_decode_error(
    strategy: st.SearchStrategy[Any], encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
) -> None:
    @settings(max_examples=150)
    @given(st.binary(max_size=120), strategy, st.data())
    def check(junk: bytes, m: Any, draw: st.DataObject) -> None:
        data = encode(m)
        cut = draw.draw(st.integers(0, len(data)))
        flip = bytearray(data)
        i = draw.draw(st.integers(0, len(data) - 1))
        flip[i] ^= draw.draw(st.integers(1, 255))
        for candidate in (junk, data[:cut], bytes(flip)):
            with contextlib.suppress(DecodeError):
                decode(candidate)

    check()


def test_peer_vector() -> None:
    p = r.Peer(public_key=K, relay_addresses=(("1.2.3.4", 5), ("6.7.8.9", 10)))
    assert r.encode_peer(p) == K + b"\x02" + bytes([1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10, 0])


def test_lookup_reply_bump_is_optional_trailer() -> None:
    p = r.Peer(public_key=K)
    data = r.encode_lookup_reply(r.LookupReply(peers=(p,), bump=0))
    assert data == b"\x01" + K + b"\x00" + b"\x00"
    assert r.decode_lookup_reply(data[:-1]) == r.LookupReply(peers=(p,), bump=0)
    assert r.decode_lookup_reply(data[:-1] + b"\x07").bump == 7


def test_announce_vector() -> None:
    ann = r.Announce(peer=r.Peer(public_key=K), signature=bytes(64), bump=300)
    assert r.encode_announce(ann) == b"\x0d" + K + b"\x00" + bytes(64) + b"\xfd\x2c\x01"
    assert r.encode_announce(r.Announce(refresh=K)) == b"\x02" + K
    assert r.decode_announce(b"\x00") == r.Announce()


def test_mutable_vectors() -> None:
    assert r.encode_mutable_signable(1, b"hi") == b"\x01\x02hi"
    put = r.MutablePutRequest(public_key=K, seq=1, value=b"hi", signature=bytes(64))
    assert r.encode_mutable_put_request(put) == K + b"\x01\x02hi" + bytes(64)
    get = r.MutableGetResponse(seq=1, value=b"", signature=bytes(64))
    assert r.decode_mutable_get_response(r.encode_mutable_get_response(get)) == get


def test_noise_payload_other_version() -> None:
    assert r.decode_noise_payload(b"\x02garbage") == r.NoisePayload(version=2)
    minimal = r.encode_noise_payload(r.NoisePayload(firewall=1))
    assert minimal == b"\x01\x00\x00\x01"


def test_noise_payload_vector() -> None:
    m = r.NoisePayload(
        error=0,
        firewall=2,
        holepunch=r.HolepunchInfo(
            id=3, relays=(r.RelayInfo(relay_address=("1.1.1.1", 1), peer_address=("2.2.2.2", 2)),)
        ),
        addresses4=(("3.3.3.3", 3),),
        udx=r.UdxInfo(id=9, seq=0, reusable_socket=True),
        secret_stream=r.SecretStreamInfo(),
        relay_addresses=(),
    )
    assert (
        r.encode_noise_payload(m).hex()
        == (
            "01" + "5b" + "00" + "02"  # version, flags 1|2|8|16|64, error, firewall
            "03" + "01" + "010101010100" + "020202020200"  # holepunch
            "01" + "030303030300"  # addresses4
            "01" + "01" + "09" + "00"  # udx
            "01"  # secretStream
            "00"  # relayAddresses (empty but present)
        )
    )


def test_holepunch_payload_vector() -> None:
    m = r.HolepunchPayload(firewall=2, round=1, punching=True, remote_address=("1.2.3.4", 1), token=K)
    assert r.encode_holepunch_payload(m) == b"\x1a\x00\x02\x01" + bytes([1, 2, 3, 4, 1, 0]) + K


def test_handshake_and_holepunch_vectors() -> None:
    hs = r.Handshake(mode=4, noise=b"nn", peer_address=None, relay_address=("1.2.3.4", 2))
    assert r.encode_handshake(hs) == b"\x02\x04\x02nn" + bytes([1, 2, 3, 4, 2, 0])
    hp = r.Holepunch(mode=1, id=2, payload=b"p", peer_address=("1.2.3.4", 2))
    assert r.encode_holepunch(hp) == b"\x01\x01\x02\x01p" + bytes([1, 2, 3, 4, 2, 0])


def test_payload_encoders_reject_bad_keys() -> None:
    with pytest.raises(LocalProtocolError):
        r.encode_peer(r.Peer(public_key=b"short"))
    with pytest.raises(LocalProtocolError):
        r.encode_announce(r.Announce(signature=bytes(63)))
