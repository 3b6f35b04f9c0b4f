"""Protomux state machine and the relay's token-bound pairing table (pure, explicit ``now``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerdht.errors import DecodeError
from peerdht.relay.pairing import PairingError, Pairings, TokenBucket
from peerdht.relay.protomux import ChannelClosed, ChannelMessage, ChannelOpened, Mux, encode_open

T1 = b"\x01" * 32
T2 = b"\x02" * 32


def pump(a: Mux, b: Mux) -> None:
    for _ in range(10):
        moved = False
        for x, y in ((a, b), (b, a)):
            for m in x.data_to_send():
                y.receive_message(m)
                moved = True
        if not moved:
            return


def events(m: Mux) -> list[object]:
    out: list[object] = []
    while (ev := m.next_event()) is not None:
        out.append(ev)
    return out


def test_mux_open_both_orders_and_messages() -> None:
    a, b = Mux(), Mux()
    ca = a.open_channel("blind-relay", b"k", b"hs-a")
    pump(a, b)  # b has an incoming open, no local channel yet
    assert events(b) == []
    a.send(ca, 0, b"early")
    pump(a, b)
    cb = b.open_channel("blind-relay", b"k", b"hs-b")
    pump(a, b)
    assert events(b) == [ChannelOpened(channel=cb, handshake=b"hs-a"), ChannelMessage(channel=cb, type=0, payload=b"early")]
    assert events(a) == [ChannelOpened(channel=ca, handshake=b"hs-b")]
    b.send(cb, 1, b"back")
    pump(a, b)
    assert events(a) == [ChannelMessage(channel=ca, type=1, payload=b"back")]
    b.close_channel(cb)
    pump(a, b)
    assert events(a) == [ChannelClosed(channel=ca, remote=True)]
    assert events(b) == [ChannelClosed(channel=cb, remote=False)]
    assert not a.send(ca, 0, b"x")


def test_mux_different_ids_do_not_pair() -> None:
    a, b = Mux(), Mux()
    a.open_channel("blind-relay", b"k1")
    b.open_channel("blind-relay", b"k2")
    pump(a, b)
    assert events(a) == [] and events(b) == []


def test_mux_bounds_incoming_and_buffer() -> None:
    b = Mux(max_incoming=2, max_buffered=2000)
    for i in range(1, 4):
        b.receive_message(encode_open(i, "p", bytes([i])))
    assert b.data_to_send()[-1] == b"\x00\x02\x03"  # third open rejected
    with pytest.raises(DecodeError):
        for _ in range(10):
            b.receive_message(b"\x01\x00" + b"x" * 300)
    with pytest.raises(DecodeError):
        Mux().receive_message(encode_open(5, "p"))  # ids must grow by one


@given(st.lists(st.binary(max_size=60), max_size=20))
def test_mux_never_crashes_on_garbage(msgs: list[bytes]) -> None:
    m = Mux()
    m.open_channel("blind-relay", b"k")
    for data in msgs:
        try:
            m.receive_message(data)
        except DecodeError:
            return


def test_pairing_token_bound() -> None:
    p: Pairings[str] = Pairings()
    assert p.pair("a", True, T1, 11, 0.0) is None
    assert p.pair("x", True, T1, 99, 0.0) is None  # role taken: ignored, cannot replace a
    assert p.pair("b", False, T2, 22, 0.0) is None  # other token: no match
    m = p.pair("c", False, T1, 33, 0.0)
    assert m is not None
    assert (m.initiator.session, m.initiator.remote_id, m.responder.session, m.responder.remote_id) == ("a", 11, "c", 33)
    assert p.pair("x", False, T1, 1, 0.0) is None  # consumed
    assert p.active == 1 and p.pending == 1
    assert p.unpair("x", T1) is None  # not a party: untouched
    assert p.unpair("c", T1) == m and p.active == 0


def test_pairing_capacity_timeout_and_session_removal() -> None:
    p: Pairings[str] = Pairings(max_pending_per_session=2, max_links_per_session=1, timeout=15.0)
    p.pair("a", True, T1, 1, 0.0)
    p.pair("a", True, T2, 2, 0.0)
    with pytest.raises(PairingError):
        p.pair("a", True, b"\x03" * 32, 3, 0.0)
    with pytest.raises(PairingError):
        p.pair("a", True, b"short", 3, 0.0)
    assert p.pair("b", False, T1, 4, 1.0) is not None
    with pytest.raises(PairingError):
        p.pair("b", False, T2, 5, 1.0)  # a is at its link limit
    assert p.get_timer() == 15.0
    assert p.handle_timer(15.0) == [(T2, "a")]
    assert len(p.remove_session("a")) == 1 and p.active == 0 and p.links_of("b") == 0


def test_token_bucket() -> None:
    tb = TokenBucket(1000.0, burst=1500.0)
    assert tb.allow(1500, 0.0)
    assert not tb.allow(100, 0.0)
    assert tb.allow(1000, 1.0)
    assert tb.dropped == 1 and tb.passed == 2500
    assert TokenBucket(0).allow(10**9, 0.0)
