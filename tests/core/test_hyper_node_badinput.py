"""Bad input: arbitrary bytes never raise out of the node, and it keeps answering PING."""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hyper_node_fakenet import FakeNet

from peerdht.hyper.constants import Command, InternalCommand
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.messages import Request, Response, decode_message, encode_request, encode_response
from peerdht.hyper.node import CLIENT, SERVER, HyperDHTNode

FROM = ("10.9.8.7", 3333)


def _node() -> HyperDHTNode:
    net = FakeNet(seed=21)
    (m,) = net.testnet(1)
    node = m.node
    node.datagrams_to_send(net.now)
    return node


def _answers_ping(node: HyperDHTNode, now: float) -> bool:
    node.datagrams_to_send(now)
    req = Request(tid=4321, to=("10.0.0.1", 10000), internal=True, command=InternalCommand.PING)
    node.receive_datagram(encode_request(req), FROM, now, SERVER)
    for data, addr, _ in node.datagrams_to_send(now):
        msg = decode_message(data)
        if isinstance(msg, Response) and msg.tid == 4321 and addr == FROM:
            return True
    return False


_NODE = _node()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"\x03" + b),
        st.binary(max_size=300).map(lambda b: b"\x13" + b),
    ),
    port=st.integers(min_value=-5, max_value=70000),
    socket=st.sampled_from([SERVER, CLIENT, 7]),
)
def test_arbitrary_bytes_never_raise(data: bytes, port: int, socket: int) -> None:
    node = _NODE
    now = 2000.0
    node.receive_datagram(data, ("10.1.1.1", port), now, socket)
    node.handle_timer(now)
    node.datagrams_to_send(now)
    assert node.stats["dropped"].get("internal_error", 0) == 0, node.last_internal_error  # type: ignore[attr-defined]
    assert _answers_ping(node, now)


@settings(max_examples=300, deadline=None)
@given(
    tid=st.integers(0, 65535),
    flags=st.integers(0, 255),
    command=st.integers(0, 300),
    internal=st.booleans(),
    target=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
    token=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
    value=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_well_formed_requests_with_odd_content(
    tid: int,
    flags: int,
    command: int,
    internal: bool,
    target: bytes | None,
    token: bytes | None,
    value: bytes | None,
) -> None:
    node = _NODE
    now = 2000.0
    req = Request(
        tid=tid,
        to=("10.0.0.1", 10000),
        internal=internal,
        command=command,
        target=target,
        token=token,
        value=value,
    )
    node.receive_datagram(encode_request(req), FROM, now, SERVER)
    node.datagrams_to_send(now)
    assert node.stats["dropped"].get("internal_error", 0) == 0, node.last_internal_error  # type: ignore[attr-defined]
    assert _answers_ping(node, now)


def test_malformed_barrage_then_ping() -> None:
    node = _node()
    rng = random.Random(99)
    now = 3000.0
    valid = encode_request(
        Request(tid=1, to=("10.0.0.1", 10000), command=Command.LOOKUP, target=blake2b(b"x"))
    )
    resp = encode_response(Response(tid=5, to=("10.0.0.1", 10000), closer_nodes=(("1.2.3.4", 5),)))
    for i in range(5000):
        kind = i % 6
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:
            data = valid[: rng.randrange(0, len(valid))]  # truncated
        elif kind == 2:
            b = bytearray(valid)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)  # bit flip
            data = bytes(b)
        elif kind == 3:
            data = resp  # unsolicited response
        elif kind == 4:
            data = b"\x03\xff\xff\xff\xff" + rng.randbytes(40)  # huge flags
        else:
            data = (
                b"\x13" + struct.pack("<B", 4) + b"\x00\x00" + b"\x00" * 6 + b"\xfe\xff\xff\xff\x7f"
            )  # huge array
        node.receive_datagram(data, (f"10.{i % 200}.1.1", 1000 + i), now, SERVER)
        node.datagrams_to_send(now)
        if i % 500 == 0:
            now += 1.0
            node.handle_timer(now)
    dropped = node.stats["dropped"]
    assert isinstance(dropped, dict)
    assert dropped.get("internal_error", 0) == 0, node.last_internal_error
    assert dropped.get("malformed", 0) > 1000
    assert dropped.get("unknown_tid", 0) >= 800
    assert _answers_ping(node, now)


def test_bad_source_addresses_are_dropped_even_after_good_ones() -> None:
    # _receive memoises source addresses that passed its checks: junk must still be caught
    node = _node()
    now = 2000.0
    ping = encode_request(Request(tid=1, to=("10.0.0.1", 10000), internal=True, command=InternalCommand.PING))
    for _ in range(2):  # the second time through the memo
        node.receive_datagram(ping, FROM, now, SERVER)
        assert [addr for _, addr, _ in node.datagrams_to_send(now)] == [FROM]
    for junk in ((["10.9.8.7"], 3333), ("10.9.8.7", 0), ("10.9.8.7", 70000), ("not-an-ip", 3333), ("10.9.8.7",)):
        node.receive_datagram(ping, junk, now, SERVER)  # type: ignore[arg-type]
        assert node.datagrams_to_send(now) == []
    dropped = node.stats["dropped"]
    assert dropped["bad_address"] == 5  # type: ignore[index]
    assert dropped.get("internal_error", 0) == 0  # type: ignore[attr-defined]
