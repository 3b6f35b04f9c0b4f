"""Sans-IO UDX streams between two cores on FakeNet (explicit fake clock)."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError, StreamReset, StreamTimeout
from peerdht.testing import FakeNet
from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamTerminated,
    StreamWritable,
    UDXEvent,
)
from peerdht.udx.packet import DATA, END, Packet, decode_packet, encode_packet
from peerdht.udx.stream import UDXSocketCore

A = ("10.0.0.1", 1001)
B = ("10.0.0.2", 1002)


class Side:
    def __init__(self, core: UDXSocketCore, sid: int) -> None:
        self.core = core
        self.sid = sid
        self.data = bytearray()
        self.events: list[UDXEvent] = []
        self.outbox = b""
        self.pos = 0
        self.end_after = False
        self.end_sent = False

    @property
    def eof(self) -> bool:
        return any(isinstance(e, StreamEnd) for e in self.events)

    @property
    def closed(self) -> StreamTerminated | None:
        return next((e for e in self.events if isinstance(e, StreamTerminated)), None)

    def pump(self) -> None:
        while (e := self.core.next_event()) is not None:
            if isinstance(e, StreamData):
                self.data += e.data
            else:
                self.events.append(e)
        if self.closed:
            return
        while self.pos < len(self.outbox):
            ok = self.core.send(self.sid, self.outbox[self.pos : self.pos + 100_000])
            self.pos += 100_000
            if not ok:
                break
        if self.end_after and self.pos >= len(self.outbox) and not self.end_sent:
            self.end_sent = True
            self.core.end(self.sid)


def pair(net: FakeNet, *, seq_a: int = 0, seq_b: int = 0) -> tuple[Side, Side]:
    a, b = UDXSocketCore(), UDXSocketCore()
    net.add(A, a)
    net.add(B, b)
    sa = a.create_stream(1, seq=seq_a)
    sb = b.create_stream(2, seq=seq_b)
    a.connect(sa, 2, B, ack=seq_b)
    b.connect(sb, 1, A, ack=seq_a)
    return Side(a, sa), Side(b, sb)


def run(net: FakeNet, sides: tuple[Side, ...], cond: object, max_time: float = 3000) -> None:
    def until() -> bool:
        for s in sides:
            s.pump()
        return bool(cond())  # type: ignore[operator]

    net.run(until, max_time=max_time)


def transfer(net: FakeNet, size: int, **kw: int) -> tuple[Side, Side]:
    a, b = pair(net, **kw)
    a.outbox = random.Random(5).randbytes(size)
    b.outbox = random.Random(6).randbytes(size // 3)
    a.end_after = b.end_after = True
    run(net, (a, b), lambda: a.closed and b.closed)
    assert hashlib.sha256(b.data).digest() == hashlib.sha256(a.outbox).digest()
    assert a.data == b.outbox
    assert a.closed == StreamTerminated(stream_id=1) and b.closed == StreamTerminated(stream_id=2)
    return a, b


def test_clean_transfer_both_ways_and_close() -> None:
    net = FakeNet(random.Random(1), delay=0.01)
    a, _ = transfer(net, 1 << 20)
    assert not a.core.has_stream(1)
    assert net.now - 1000 < 5  # slow start reaches a useful window quickly


def test_sequence_numbers_wrap() -> None:
    net = FakeNet(random.Random(2), delay=0.005, loss=0.05)
    transfer(net, 300_000, seq_a=0xFFFFFF00, seq_b=0xFFFFFFF0)


@pytest.mark.parametrize("seed", [1, 2])
def test_chaos_4mib(seed: int) -> None:
    net = FakeNet(random.Random(seed), loss=0.1, duplicate=0.05, reorder=0.1, delay=0.01, jitter=0.003)
    transfer(net, 4 << 20)
    assert net.dropped > 100


@pytest.mark.parametrize("seed", range(10))
def test_chaos_close_handshake(seed: int) -> None:
    """Lost final ACKs are repeated from TIME_WAIT, so both ends close cleanly (no timeout reset)."""
    net = FakeNet(random.Random(seed), loss=0.2, duplicate=0.05, reorder=0.1, delay=0.01, jitter=0.003)
    transfer(net, 100_000)


def test_time_wait_repeats_final_ack() -> None:
    net = FakeNet(random.Random(12), delay=0.01)
    a, b = pair(net)
    a.core.end(a.sid)
    b.core.end(b.sid)
    run(net, (a, b), lambda: a.closed and b.closed)
    late = encode_packet(Packet(type=END, stream_id=1, recv_window=0, seq=0, ack=1))
    a.core.receive_datagram(late, B, net.now)
    ((ack, addr),) = a.core.datagrams_to_send(net.now)
    p = decode_packet(ack)
    assert addr == B and (p.type, p.stream_id, p.ack) == (0, 2, 1)
    assert a.core.next_event() is None


def test_chaos_16mib() -> None:
    net = FakeNet(random.Random(3), loss=0.1, duplicate=0.05, reorder=0.1, delay=0.01, jitter=0.003)
    transfer(net, 16 << 20)


def test_half_close_then_keep_receiving() -> None:
    net = FakeNet(random.Random(4), delay=0.01, loss=0.05)
    a, b = pair(net)
    a.core.end(a.sid)
    run(net, (a, b), lambda: b.eof)
    with pytest.raises(LocalProtocolError):
        a.core.send(a.sid, b"late")
    b.outbox = b"x" * 200_000
    run(net, (a, b), lambda: len(a.data) == 200_000)
    assert a.closed is None and b.closed is None
    b.core.end(b.sid)
    run(net, (a, b), lambda: a.closed and b.closed)
    assert a.eof and a.closed == StreamTerminated(stream_id=1)


def test_destroy_resets_peer() -> None:
    net = FakeNet(random.Random(5), delay=0.01)
    a, b = pair(net)
    a.core.send(a.sid, b"hello")
    run(net, (a, b), lambda: b.data == b"hello")
    a.core.destroy(a.sid)
    run(net, (a, b), lambda: b.closed)
    assert a.closed == StreamTerminated(stream_id=1, error=None)
    assert b.closed is not None and isinstance(b.closed.error, StreamReset)
    assert not a.core.has_stream(1) and not b.core.has_stream(2)


def test_peer_gone_times_out_with_backoff() -> None:
    net = FakeNet(random.Random(6), delay=0.01)
    a, b = pair(net)
    a.core.send(a.sid, b"x" * 5000)
    run(net, (a, b), lambda: len(b.data) == 5000)
    net.loss = 1.0
    a.core.send(a.sid, b"y" * 5000)
    start = net.now
    run(net, (a, b), lambda: a.closed)
    assert a.closed is not None and isinstance(a.closed.error, StreamReset)
    assert net.now - start > 10  # 0.2 + 0.4 + 0.8 + ... backs off exponentially


def test_messages_are_unordered_datagrams() -> None:
    net = FakeNet(random.Random(7), delay=0.01)
    a, b = pair(net)
    a.core.send_message(a.sid, b"msg1")
    run(net, (a, b), lambda: b.events)
    assert b.events == [MessageReceived(stream_id=2, data=b"msg1")]


def test_unknown_stream_and_non_udx_datagrams_surface() -> None:
    core = UDXSocketCore()
    core.receive_datagram(b"\x03dht", A, 1.0)
    pkt = encode_packet(Packet(type=DATA, stream_id=99, recv_window=0, seq=0, ack=0, payload=b"x"))
    core.receive_datagram(pkt, A, 1.0)
    assert core.next_event() == DatagramReceived(data=b"\x03dht", addr=A)
    assert core.next_event() == DatagramReceived(data=pkt, addr=A)
    assert core.next_event() is None


def test_zero_window_stops_sender_until_consumed() -> None:
    net = FakeNet(random.Random(8), delay=0.01)
    a, b = pair(net)
    b.core.set_manual_window(b.sid)
    a.outbox = random.Random(1).randbytes(6 << 20)
    a.end_after = True
    b.core._streams[b.sid].recv_window_max = 1 << 20  # small window for the test
    run(net, (a, b), lambda: len(b.data) >= 1 << 20 and net.now > 1100, max_time=200)
    assert len(b.data) < (1 << 20) + 20_000  # stopped at the window
    assert a.core.write_buffer_size(a.sid) > 0
    run(net, (a, b), lambda: (b.core.stream_consumed(b.sid, len(b.data)) or True) and b.eof, max_time=600)
    assert bytes(b.data) == a.outbox


def test_backpressure_reports_writable() -> None:
    net = FakeNet(random.Random(9), delay=0.01)
    a, b = pair(net)
    assert a.core.send(a.sid, bytes(2 << 20)) is False
    run(net, (a, b), lambda: any(isinstance(e, StreamWritable) for e in a.events))
    assert a.core.write_buffer_size(a.sid) < 2 << 20


def test_change_remote() -> None:
    net = FakeNet(random.Random(10), delay=0.01)
    a, b = pair(net)
    a.core.send(a.sid, b"x" * 50_000)
    c = UDXSocketCore()
    C = ("10.0.0.3", 1003)
    net.add(C, c)
    # B's stream moves to another address (same core): simulate by re-homing B's socket
    b.core.change_remote(b.sid, 1, A)
    run(net, (a, b), lambda: any(isinstance(e, RemoteChanged) for e in b.events))
    run(net, (a, b), lambda: len(b.data) == 50_000)
    b.core.send(b.sid, b"y" * 10_000)
    a.core.change_remote(a.sid, 2, B)
    run(net, (a, b), lambda: any(isinstance(e, RemoteChanged) for e in a.events) and len(a.data) == 10_000)


def test_keepalive_sends_heartbeats() -> None:
    net = FakeNet(random.Random(11), delay=0.01)
    a, b = pair(net)
    a.core.set_keepalive(a.sid, 5.0, net.now)
    start_sent = net.sent
    run(net, (a, b), lambda: net.now > 1031, max_time=40)
    assert net.sent - start_sent >= 12  # 6 heartbeats and 6 acks


def _half_closed_pair(net: FakeNet) -> tuple[Side, Side]:
    """a ended its side (END acknowledged), b has not: a only reads, and nothing is in flight."""
    a, b = pair(net)
    a.outbox = b"last words"
    a.end_after = True
    run(net, (a, b), lambda: b.eof and b.data == b"last words", max_time=30)
    run(net, (a, b), lambda: a.core.get_timer() is None, max_time=30)  # our END is acknowledged
    return a, b


def test_idle_timeout_reclaims_half_closed_stream_of_vanished_peer() -> None:
    net = FakeNet(random.Random(12), delay=0.01)
    a, _ = _half_closed_pair(net)
    a.core.set_keepalive(a.sid, 5.0, net.now, timeout=15.0)
    net.remove(B)  # the peer is kill -9ed: no DESTROY, no packet ever again
    start = net.now
    run(net, (a,), lambda: a.closed is not None, max_time=60)
    closed = a.closed
    assert closed is not None and isinstance(closed.error, StreamTimeout)
    assert isinstance(closed.error, TimeoutError) and isinstance(closed.error, StreamReset)
    assert 15.0 <= net.now - start <= 15.5
    assert not a.core.has_stream(a.sid) and a.core.timeouts == 1


def test_idle_timeout_spares_a_silent_live_peer() -> None:
    """A peer that sends nothing but is alive answers the heartbeats, so the stream stays open."""
    net = FakeNet(random.Random(13), delay=0.01)
    a, b = _half_closed_pair(net)
    a.core.set_keepalive(a.sid, 5.0, net.now, timeout=15.0)
    start = net.now
    run(net, (a, b), lambda: net.now - start > 120, max_time=130)
    assert a.closed is None and b.closed is None
    b.outbox = b"still here"
    b.end_after = True
    run(net, (a, b), lambda: a.closed is not None and b.closed is not None, max_time=30)
    assert a.data == b"still here" and a.closed == StreamTerminated(stream_id=1)


def test_idle_timeout_while_writing_to_a_vanished_peer() -> None:
    net = FakeNet(random.Random(14), delay=0.01)
    a, _ = pair(net)
    a.core.set_keepalive(a.sid, 5.0, net.now, timeout=15.0)
    net.remove(B)
    start = net.now
    a.outbox = b"x" * 200_000
    run(net, (a,), lambda: a.closed is not None, max_time=60)
    closed = a.closed
    assert closed is not None and isinstance(closed.error, StreamTimeout)
    assert net.now - start <= 15.5


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.integers(0, 255), st.integers(0, 63))
def test_garbage_never_raises(tail: bytes, off: int, t: int) -> None:
    core = UDXSocketCore()
    sid = core.create_stream(5)
    core.connect(sid, 6, B)
    core.send(sid, b"abc" * 1000)
    core.datagrams_to_send(1.0)
    raw = bytes([0xFF, 1, t, off]) + struct.pack("<I", 5) + tail
    core.receive_datagram(raw, B, 2.0)
    core.handle_timer(3.0)
    for data, _ in core.datagrams_to_send(3.0):
        decode_packet(data)
    while core.next_event() is not None:
        pass


def test_mtu_search_reaches_1500() -> None:
    net = FakeNet(random.Random(13), delay=0.01)
    a, _ = pair(net)
    a.core.send(a.sid, bytes(16 << 20))
    run(net, (a,), lambda: a.core.write_buffer_size(a.sid) == 0)
    st = a.core._streams[a.sid]
    assert st.mtu == 1500 and st.payload_size == 1500 - 48


@pytest.mark.parametrize("limit", [1200 - 28, 1300 - 28])
def test_mtu_search_stops_at_the_path_limit(limit: int) -> None:
    """Probes bigger than the path carries are lost three times, the search stops below the limit and
    every byte still arrives (lost probes are retransmitted unpadded)."""
    net = FakeNet(random.Random(14), delay=0.01, max_size=limit, loss=0.02)
    a, b = pair(net)
    data = random.Random(1).randbytes(2 << 20)
    a.core.send(a.sid, data)
    run(net, (a, b), lambda: len(b.data) == len(data))
    assert b.data == data
    st = a.core._streams[a.sid]
    assert st.mtu - 28 <= limit and st.mtu > limit - 28 - 32


def test_many_streams_share_a_socket_and_fail_alone() -> None:
    net = FakeNet(random.Random(15), delay=0.01, loss=0.05, reorder=0.05)
    a, b = UDXSocketCore(), UDXSocketCore()
    net.add(A, a)
    net.add(B, b)
    data = {10 + i: random.Random(i).randbytes(300_000) for i in range(4)}
    got: dict[int, bytearray] = {20 + i: bytearray() for i in range(4)}
    closed: dict[int, StreamTerminated] = {}
    ended: set[int] = set()
    for i in range(4):
        a.connect(a.create_stream(10 + i), 20 + i, B)
        b.connect(b.create_stream(20 + i), 10 + i, A)
    for sid, payload in data.items():
        if sid != 12:
            a.send(sid, payload)
            a.end(sid)
    # noise for stream 21: truncated, bad data_offset, unknown type bits; then stream 12 is destroyed
    b.receive_datagram(b"\xff\x01\x01", A, net.now)
    b.receive_datagram(bytes([0xFF, 1, DATA, 200]) + struct.pack("<IIII", 21, 0, 0, 0) + b"x", A, net.now)
    b.receive_datagram(bytes([0xFF, 1, 0xC0, 0]) + struct.pack("<IIII", 21, 0, 0, 0), A, net.now)
    a.send(12, b"doomed")
    a.destroy(12)

    def pump() -> bool:
        for core in (a, b):
            while (e := core.next_event()) is not None:
                if isinstance(e, StreamData):
                    got[e.stream_id] += e.data
                elif isinstance(e, StreamEnd):
                    ended.add(e.stream_id)
                elif isinstance(e, StreamTerminated):
                    closed[e.stream_id] = e
        return ended >= {20, 21, 23} and 22 in closed

    net.run(pump, max_time=600)
    for i in (0, 1, 3):
        assert bytes(got[20 + i]) == data[10 + i]
    assert isinstance(closed[22].error, StreamReset)
    assert b.dropped >= 1


def test_packets_before_connect_without_firewall() -> None:
    """hyperdht's client stream: the server sends first; the client learns its address from the first
    packet (PreConnectPacket), connects, and the deferred ACK goes out."""
    net = FakeNet(random.Random(16), delay=0.01)
    a, b = UDXSocketCore(), UDXSocketCore()
    net.add(A, a)
    net.add(B, b)
    sa = a.create_stream(1)
    sb = b.create_stream(2, firewall=False)
    a.connect(sa, 2, B)
    a.send(sa, b"first words")
    events: list[object] = []

    def until() -> bool:
        while (e := b.next_event()) is not None:
            events.append(e)
            if isinstance(e, PreConnectPacket):
                b.connect(sb, 1, e.addr)
                net.touch(B)  # driven from outside: the deferred ACK must be collected
        return a.write_buffer_size(sa) == 0

    net.run(until, max_time=30)
    assert events[0] == PreConnectPacket(stream_id=2, addr=A)
    assert StreamData(stream_id=2, data=b"first words") in events
    assert net.now - 1000 < 0.5  # acked without waiting for a retransmission timeout


def test_firewalled_stream_drops_packets_before_connect() -> None:
    core = UDXSocketCore()
    core.create_stream(2)
    core.receive_datagram(
        encode_packet(Packet(type=DATA, stream_id=2, recv_window=0, seq=0, ack=0, payload=b"x")), A, 1.0
    )
    assert core.next_event() is None and core.dropped == 1


def test_lost_ack_of_our_end_from_a_peer_without_time_wait() -> None:
    """libudx has no TIME_WAIT: when it closes and the ACK of our END is lost, our END is retransmitted
    into the void. We close cleanly after a few timeouts instead of resetting after six."""
    net = FakeNet(random.Random(17), delay=0.01)
    a, b = pair(net)
    b.core.end(b.sid)
    run(net, (a, b), lambda: a.eof)
    real = b.core.datagrams_to_send
    b.core.datagrams_to_send = lambda now: [] if b.closed else real(now)  # type: ignore[method-assign]
    a.core.end(a.sid)
    run(net, (a, b), lambda: b.closed)
    start = net.now
    run(net, (a, b), lambda: a.closed)
    assert a.closed == StreamTerminated(stream_id=1, error=None)
    assert net.now - start < 20  # 1 + 2 + 4 + 8 s of backed-off timeouts (no RTT sample yet)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    loss=st.floats(0, 0.3),
    duplicate=st.floats(0, 0.2),
    reorder=st.floats(0, 0.3),
    size=st.integers(0, 200_000),
)
def test_any_chaos_delivers_intact_and_closes(
    seed: int, loss: float, duplicate: float, reorder: float, size: int
) -> None:
    net = FakeNet(
        random.Random(seed), loss=loss, duplicate=duplicate, reorder=reorder, delay=0.01, jitter=0.005
    )
    transfer(net, size)
