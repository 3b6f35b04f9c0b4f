"""UDX relay splicing (libudx ``udx_stream_relay_to``) in the sans-IO core: three cores on a
simulated network, client A <-> relay R <-> client B."""

from __future__ import annotations

from peerdht.relay.pairing import TokenBucket
from peerdht.udx.events import StreamData, StreamEnd, StreamTerminated
from peerdht.udx.stream import UDXSocketCore

A, R, B = ("10.0.0.1", 1000), ("10.0.0.9", 9000), ("10.0.0.2", 2000)


class Net:
    def __init__(self) -> None:
        self.cores = {A: UDXSocketCore(), R: UDXSocketCore(), B: UDXSocketCore()}
        self.now = 0.0
        self.seen_by_relay: list[bytes] = []

    def run(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            moved = False
            for src, core in self.cores.items():
                for data, dst in core.datagrams_to_send(self.now):
                    if dst == R:
                        self.seen_by_relay.append(data)
                    self.cores[dst].receive_datagram(data, src, self.now)
                    moved = True
            self.now += 0.001
            for core in self.cores.values():
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)
                    moved = True
            if not moved:
                return

    def events(self, addr: tuple[str, int]) -> list[object]:
        out: list[object] = []
        core = self.cores[addr]
        while (ev := core.next_event()) is not None:
            out.append(ev)
        return out


def splice(limiter: TokenBucket | None = None) -> Net:
    n = Net()
    a, r, b = n.cores[A], n.cores[R], n.cores[B]
    a.create_stream(1)
    b.create_stream(2)
    r.create_stream(10)
    r.create_stream(11)
    a.connect(1, 10, R)
    b.connect(2, 11, R)
    r.connect(10, 1, A)
    r.connect(11, 2, B)
    r.relay_to(10, r, 11, limiter=limiter)
    r.relay_to(11, r, 10, limiter=limiter)
    return n


def data_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, StreamData))


def test_relay_carries_both_ways_and_closes_cleanly() -> None:
    n = splice()
    a, b = n.cores[A], n.cores[B]
    payload = bytes(range(256)) * 40
    a.send(1, payload)
    b.send(2, b"pong")
    n.run()
    assert data_of(n.events(B)) == payload
    assert data_of(n.events(A)) == b"pong"
    assert any(payload[:100] in d for d in n.seen_by_relay)  # the relay forwards bytes as they came
    a.end(1)
    b.end(2)
    n.run()
    assert any(isinstance(e, StreamTerminated) and e.error is None for e in n.events(A))
    assert n.cores[R].stream_stats(10)["relayed_bytes"] > len(payload)


def test_destroy_passes_through_and_closes_the_splice() -> None:
    n = splice()
    n.cores[A].destroy(1)
    n.run()
    assert any(isinstance(e, StreamTerminated) and e.error is not None for e in n.events(B))
    closed = {e.stream_id for e in n.events(R) if isinstance(e, StreamTerminated)}
    assert closed == {10, 11}


def test_relay_drops_packets_from_other_addresses() -> None:
    n = splice()
    r = n.cores[R]
    forged = UDXSocketCore()
    forged.create_stream(7)
    forged.connect(7, 11, R)
    forged.send(7, b"inject")
    for data, _dst in forged.datagrams_to_send(0.0):
        r.receive_datagram(data, ("10.0.0.66", 6666), 0.0)
    assert r.dropped >= 1
    assert r.datagrams_to_send(0.0) == []


def test_relay_rate_limit_drops_but_udx_recovers() -> None:
    tb = TokenBucket(200_000.0, burst=20_000.0)
    n = splice(tb)
    payload = b"x" * 200_000
    n.cores[A].send(1, payload)
    got = b""
    for _ in range(200):
        n.run(400)
        got += data_of(n.events(B))
        if len(got) == len(payload):
            break
        n.now += 0.2
        for core in n.cores.values():
            core.handle_timer(n.now)
    assert got == payload
    assert tb.dropped > 0


def test_destroy_of_relay_stream_is_silent_and_closes_partner() -> None:
    n = splice()
    r = n.cores[R]
    r.destroy(10)
    assert r.datagrams_to_send(0.0) == []
    assert {e.stream_id for e in n.events(R) if isinstance(e, StreamTerminated)} == {10, 11}
    assert not any(isinstance(e, StreamEnd) for e in n.events(A))


def test_watch_remote_address_reports_a_moved_peer_once() -> None:
    from peerdht.udx.events import RemoteAddress

    n = splice()
    b = n.cores[B]
    b.watch_remote_address(2)
    n.cores[A].send(1, b"via relay")
    n.run()
    assert not any(isinstance(e, RemoteAddress) for e in n.events(B))  # relayed packets: the known remote
    # A moves to B directly (a late punch): B hears A's address, once
    n.cores[A].change_remote(1, 2, B)
    n.cores[A].send(1, b"direct")
    n.run()
    evs = n.events(B)
    assert [e for e in evs if isinstance(e, RemoteAddress)] == [RemoteAddress(stream_id=2, addr=A)]
    assert data_of(evs) == b"direct"
    b.change_remote(2, 1, A)
    n.cores[A].send(1, b"more")
    n.run()
    assert not any(isinstance(e, RemoteAddress) for e in n.events(B))


class DeadRelayNet(Net):
    """The relay vanished: datagrams to it are lost."""

    def run(self, rounds: int = 2000) -> None:
        for _ in range(rounds):
            for src, core in self.cores.items():
                for data, dst in core.datagrams_to_send(self.now):
                    if dst in self.cores and dst != R:
                        self.cores[dst].receive_datagram(data, src, self.now)
            self.now += 0.01
            for core in self.cores.values():
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)


def _moved_with_dead_relay(resend: bool) -> bytes:
    n = splice()
    a, b = n.cores[A], n.cores[B]
    n.__class__ = DeadRelayNet  # from now on the relay drops everything
    a.send(1, b"sent via the relay, which died")
    n.run(5)
    a.change_remote(1, 2, B, resend=resend)
    b.change_remote(2, 1, A)
    a.send(1, b"; sent direct")
    n.run()
    return data_of(n.events(B))


def test_change_remote_with_resend_moves_in_flight_packets_to_the_new_path() -> None:
    """The peer left the relay (its punch won first): what we sent into the relay must be resent on
    the direct path, with the peer's direct stream id, or the stream stalls head-of-line."""
    assert _moved_with_dead_relay(resend=True) == b"sent via the relay, which died; sent direct"
    assert _moved_with_dead_relay(resend=False) == b""  # libudx's way: in flight stays on the old path


def test_after_our_move_the_peers_first_direct_packet_is_reported() -> None:
    from peerdht.udx.events import RemoteAddress

    n = splice()
    a, b = n.cores[A], n.cores[B]
    a.watch_remote_address(1)
    a.change_remote(1, 2, B)
    a.send(1, b"direct")
    n.run()
    assert not any(isinstance(e, RemoteAddress) for e in n.events(A))  # B still answers via the relay
    b.change_remote(2, 1, A)
    b.send(2, b"me too")
    n.run()
    evs = n.events(A)
    assert [e for e in evs if isinstance(e, RemoteAddress)] == [RemoteAddress(stream_id=1, addr=B)]
    assert data_of(evs) == b"me too"


def test_a_watched_stream_ignores_destroy_from_a_path_it_left() -> None:
    from peerdht.udx.packet import DESTROY, Packet, encode_packet

    n = splice()
    a, b = n.cores[A], n.cores[B]
    b.watch_remote_address(2)
    a.change_remote(1, 2, B)
    b.change_remote(2, 1, A)
    a.send(1, b"hi")
    n.run()
    n.events(B)
    stale = encode_packet(Packet(type=DESTROY, stream_id=2, recv_window=0, seq=1000, ack=0))
    b.receive_datagram(stale, R, n.now)  # the relay tearing its splice down, from the old path
    a.send(1, b" there")
    n.run()
    evs = n.events(B)
    assert not any(isinstance(e, StreamTerminated) for e in evs)
    assert data_of(evs) == b" there"
    b.receive_datagram(stale, A, n.now)  # from the current remote it counts
    assert any(isinstance(e, StreamTerminated) for e in n.events(B))


B_PUNCH = ("10.0.0.2", 2001)
"""B's punch socket: same host (same NAT, same public IP) as its relay connection ``B``, another port."""


class SocketMoveNet(Net):
    """B behaves as libudx when its stream moves to its punch socket (udx-native ``changeRemote`` with
    another socket, hyperdht lib/server.js ``onsocket``): every packet it sends from then on leaves from
    that socket, including the ones it had in flight before the move, which keep the old destination
    (the relay) and the old remote id (libudx ``udx_stream_change_remote`` switches ``stream->socket``;
    ``_send_packet`` sends to ``pkt->remote_addr``)."""

    def __init__(self) -> None:
        super().__init__()
        self.b_from = B

    def run(self, rounds: int = 20_000) -> None:
        for _ in range(rounds):
            for src, core in list(self.cores.items()):
                for data, dst in core.datagrams_to_send(self.now):
                    self.cores[B if dst == B_PUNCH else dst].receive_datagram(
                        data, self.b_from if src == B else src, self.now
                    )
            self.now += 0.01
            for core in self.cores.values():
                t = core.get_timer()
                if t is not None and t <= self.now:
                    core.handle_timer(self.now)


def test_relay_passes_in_flight_packets_a_peer_resends_from_its_punch_socket() -> None:
    """The js-py natlab upgrade flake (tests/natlab/test_natlab_upgrade.py): the JS server's first
    packet (its secret-stream header, sent into the relay) was still unacknowledged when its punch
    connected and it moved the stream to its punch socket; libudx then sends that packet to the relay
    from the punch socket. A relay that accepts a splice's packets only from the exact address its
    remote connected from dropped every retransmission, so the client never got seq 0: the stream
    stalled head-of-line until it timed out. The same host on another port is the same peer."""
    from peerdht.udx.events import RemoteChanged

    n = SocketMoveNet()
    a, r, b = n.cores[A], n.cores[R], n.cores[B]
    for core, sid in ((a, 1), (b, 2), (r, 10), (r, 11)):
        core.create_stream(sid)
    a.connect(1, 10, R)
    b.connect(2, 11, R)
    r.connect(10, 1, A)
    r.connect(11, 2, B)
    r.relay_to(10, r, 11)
    r.relay_to(11, r, 10)
    a.watch_remote_address(1)  # as peerdht's relayed streams are (aio/hyperdht/relay.py)
    b.send(2, b"header")
    held = b.datagrams_to_send(n.now)  # packetized for the relay path, not out yet when B moves
    assert [dst for _, dst in held] == [R]
    # B's punch connects: its stream moves to the punch socket and to A's direct address (libudx:
    # what is in flight stays addressed to the relay); A, which punched B's punch socket, moves too
    n.b_from = B_PUNCH
    b.change_remote(2, 1, A)
    a.change_remote(1, 2, B_PUNCH, resend=True)
    for data, _dst in held:
        r.receive_datagram(data, B_PUNCH, n.now)
    b.send(2, b" and what follows, direct")
    n.run(3000)
    assert data_of(n.events(A)) == b"header and what follows, direct"
    assert any(isinstance(e, RemoteChanged) for e in n.events(B))  # everything sent before the move acked
    assert r.dropped == 0


def test_relay_still_drops_packets_from_another_host_for_a_splice() -> None:
    n = splice()
    a, r = n.cores[A], n.cores[R]
    a.send(1, b"x")
    for data, _dst in a.datagrams_to_send(0.0):
        r.receive_datagram(data, ("10.0.0.3", A[1]), 0.0)  # A's port, another host
    assert r.dropped == 1
    assert r.datagrams_to_send(0.0) == []
