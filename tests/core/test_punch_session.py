"""The sans-IO punch sessions (peerdht.holepunch.client / server / session) with a fake clock and a
fake network: a ClientPunch and a ServerPunch talk through a simulated relay, each socket behind a
modelled NAT, and every strategy and timeout is walked without a socket or an event loop."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from peerdht.errors import (
    HolepunchAborted,
    HolepunchDoubleRandomized,
    HolepunchInvalid,
    HolepunchProbeTimeout,
    RemoteAborted,
    RemoteNotHolepunchable,
    RemoteNotHolepunching,
)
from peerdht.holepunch.client import SERVER_ANALYSIS_WAIT, ClientPunch
from peerdht.holepunch.events import (
    Connected,
    PingWanted,
    PunchFailed,
    PunchStarted,
    RoundAnswered,
    RoundWanted,
    SocketWanted,
)
from peerdht.holepunch.server import ServerPunch
from peerdht.holepunch.session import PunchSession
from peerdht.holepunch.strategy import (
    BIRTHDAY_SOCKETS,
    CONSISTENT_INTERVAL,
    CONSISTENT_TRIES,
    RANDOM_INTERVAL,
    RANDOM_TRIES,
    RandomPunchLimit,
    Strategy,
)
from peerdht.holepunch.upgrade import (
    CHECK_INTERVAL,
    DirectMove,
    FallBackToRelay,
    MoveState,
    RelayNoLongerNeeded,
)
from peerdht.hyper.constants import Firewall, HandshakeMode
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.records import Holepunch, HolepunchPayload, RelayInfo, decode_holepunch, encode_holepunch

Address = tuple[str, int]
LATENCY = 0.01
RELAY: Address = ("9.9.9.9", 49737)
NODES = [(f"9.9.9.{i}", 49737) for i in range(10, 18)]
SECRET = bytes(range(32))
PUNCH = 1


class Nat:
    """One socket's NAT: ``open`` (no NAT, one port), ``cone`` (one mapping for every destination,
    filtered by source host), ``symmetric`` (a mapping per destination), ``silent`` (drops everything
    and answers no ping: the class stays UNKNOWN)."""

    def __init__(self, kind: str, ip: str, rng: random.Random) -> None:
        self.kind, self.ip, self.rng = kind, ip, rng
        self.maps: dict[object, int] = {}
        self.allowed: set[tuple[int, str]] = set()

    def send(self, dst: Address) -> Address:
        key = dst if self.kind == "symmetric" else "all"
        port = self.maps.setdefault(key, self.rng.randrange(20000, 60000))
        self.allowed.add((port, dst[0]))
        return (self.ip, port)

    def accepts(self, port: int, src_host: str) -> bool:
        if self.kind == "open":
            return port in self.maps.values()
        return self.kind != "silent" and (port, src_host) in self.allowed


@dataclass
class Side:
    name: str
    ip: str
    kind: str
    session: PunchSession
    nats: dict[int, Nat] = field(default_factory=dict)
    events: list[object] = field(default_factory=list)
    next_socket: int = 100


class Net:
    """A discrete-event loop: the sessions' timers and the datagrams, rounds and pings in flight."""

    def __init__(
        self,
        client_kind: str,
        server_kind: str,
        *,
        seed: int = 1,
        relayed: bool = False,
        limit: RandomPunchLimit | None = None,
        server_limit: RandomPunchLimit | None = None,
        relay_drops: bool = False,
    ) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.relay_drops = relay_drops
        rb = random.Random(seed + 1000)
        server = ServerPunch(
            secret=SECRET,
            firewalled=server_kind != "open",
            punch_socket=PUNCH,
            sample_nodes=NODES[:4],
            limit=server_limit or RandomPunchLimit(),
            random_bytes=rb.randbytes,
            remote_firewall=Firewall.UNKNOWN,
        )
        self.server = Side("server", "2.0.0.2", server_kind, server)
        self.server.nats[PUNCH] = Nat(server_kind, "2.0.0.2", self.rng)
        self.client_nat = Nat(client_kind, "1.0.0.1", self.rng)
        server_seen = self.server.nats[PUNCH].send(RELAY)  # the server announced itself to the relay
        client = ClientPunch(
            hp_id=7,
            relays=[RelayInfo(relay_address=RELAY, peer_address=server_seen)],
            relay=RELAY,
            server_address=server_seen,
            remote_firewall=Firewall.UNKNOWN,
            secret=SECRET,
            firewalled=client_kind != "open",
            punch_socket=PUNCH,
            sample_nodes=NODES[:4],
            limit=limit or RandomPunchLimit(),
            random_bytes=rb.randbytes,
            relayed=relayed,
        )
        self.client = Side("client", "1.0.0.1", client_kind, client)
        self.client.nats[PUNCH] = self.client_nat
        self.requests: dict[int, Callable[[bytes], None]] = {}

    # ------------------------------------------------------------------ the loop

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, fn))

    def pump(self, side: Side) -> None:
        s = side.session
        for probe in s.datagrams_to_send():
            self.deliver(side, probe.addr, probe.socket, probe.ttl)
        while (ev := s.next_event()) is not None:
            side.events.append(ev)
            self.handle(side, ev)

    def run(self, until: float) -> None:
        self.server.session.start(self.now)
        self.client.session.start(self.now)
        self.pump(self.server)
        self.pump(self.client)
        while True:
            timers = [(t, side) for side in (self.client, self.server) if (t := side.session.get_timer()) is not None]
            nxt_timer = min(timers, key=lambda x: x[0]) if timers else None
            nxt_q = self.queue[0][0] if self.queue else None
            if nxt_timer is None and nxt_q is None:
                return
            t = min(x for x in (nxt_timer[0] if nxt_timer else None, nxt_q) if x is not None)
            if t > until:
                return
            self.now = t
            if nxt_q is not None and nxt_q <= t:
                _, _, fn = heapq.heappop(self.queue)
                fn()
            else:
                assert nxt_timer is not None
                nxt_timer[1].session.handle_timer(t)
                self.pump(nxt_timer[1])

    # ------------------------------------------------------------------ I/O

    def other(self, side: Side) -> Side:
        return self.server if side is self.client else self.client

    def deliver(self, side: Side, dst: Address, socket: int, ttl: int | None) -> None:
        src = side.nats[socket].send(dst)
        if ttl is not None and ttl < 64:
            return  # a low TTL only opens our own mapping
        peer = self.other(side)
        for index, nat in peer.nats.items():
            if nat.ip == dst[0] and dst[1] in nat.maps.values() and nat.accepts(dst[1], src[0]):

                def arrive(peer: Side = peer, index: int = index) -> None:
                    peer.session.receive_datagram(b"\x00", src, index, self.now)
                    self.pump(peer)

                self.later(LATENCY, arrive)
                return

    def handle(self, side: Side, ev: object) -> None:
        s = side.session
        if isinstance(ev, PingWanted):
            nat = side.nats[s.socket]
            if nat.kind == "silent":
                self.later(1.0, lambda: (s.ping_failed(self.now), self.pump(side)))
                return
            seen = nat.send(ev.addr)
            self.later(LATENCY, lambda: (s.ping_answered(seen, ev.addr, self.now), self.pump(side)))
        elif isinstance(ev, SocketWanted):
            index = side.next_socket
            side.next_socket += 1
            side.nats[index] = Nat(side.kind, side.ip, self.rng)
            self.later(0.001, lambda: (s.socket_opened(index, self.now), self.pump(side)))
        elif isinstance(ev, RoundWanted):
            self.forward_round(side, ev)
        elif isinstance(ev, RoundAnswered):
            self.requests.pop(ev.request_id)(ev.value)
        elif isinstance(ev, Connected):
            # the client's first UDX packet reaches the server through the punched path
            self.later(LATENCY, lambda: (self.server.session.connected(self.now), self.pump(self.server)))  # type: ignore[attr-defined]

    def forward_round(self, side: Side, ev: RoundWanted) -> None:
        client: ClientPunch = side.session  # type: ignore[assignment]
        client_seen = side.nats[PUNCH].send(ev.relay)
        msg = decode_holepunch(ev.value)
        assert msg.mode == HandshakeMode.FROM_CLIENT and msg.id == 7
        if self.relay_drops:
            if not ev.abort:
                self.later(1.0, lambda: (client.round_failed("timed out", self.now), self.pump(side)))
            return
        rid = self.seq + 1_000_000

        def reply(value: bytes) -> None:
            server_seen = self.server.nats[PUNCH].send(RELAY)
            out = encode_holepunch(
                Holepunch(mode=HandshakeMode.REPLY, id=7, payload=value, peer_address=server_seen)
            )
            if not ev.abort:
                self.later(LATENCY, lambda: (client.round_reply(out, client_seen, RELAY, self.now), self.pump(side)))

        def at_server() -> None:
            self.requests[rid] = reply
            server: ServerPunch = self.server.session  # type: ignore[assignment]
            assert server.receive_round(rid, msg.payload, client_seen, trusted=True, now=self.now)
            self.pump(self.server)

        self.later(LATENCY, at_server)


def outcome(side: Side) -> object:
    done = [e for e in side.events if isinstance(e, (Connected, PunchFailed))]
    assert len(done) <= 1, done
    return done[0] if done else None


def strategy_of(side: Side) -> object:
    started = [e.strategy for e in side.events if isinstance(e, PunchStarted)]
    return started[0] if started else None


# ---------------------------------------------------------------------------------- strategies


def test_consistent_both_sides_fast_open() -> None:
    """Two cone NATs: the server probes back the client's session probe ("fast mode") and the
    client connects in a few round trips, before probing even starts."""
    net = Net("cone", "cone")
    net.run(until=30)
    got = outcome(net.client)
    assert isinstance(got, Connected), net.client.events
    assert got.addr[0] == "2.0.0.2" and got.socket == PUNCH
    assert got.addr[1] in net.server.nats[PUNCH].maps.values()
    assert net.server.session.is_connected  # type: ignore[attr-defined]
    assert net.client.session.nat.firewall == Firewall.CONSISTENT
    assert net.client.session.done and net.client.session.get_timer() is None


def test_consistent_probing_rounds_connect_once_probes_get_through() -> None:
    """Nothing reaches the client before t = 2.5 s (so fast open fails): both sides run the
    CONSISTENT strategy, one probe round per interval, and the first round after 2.5 s connects."""
    net = Net("cone", "cone")
    accepts = net.client_nat.accepts
    net.client_nat.accepts = lambda port, host: net.now >= 2.5 and accepts(port, host)  # type: ignore[method-assign]
    net.run(until=30)
    got = outcome(net.client)
    assert isinstance(got, Connected)
    assert strategy_of(net.client) is Strategy.CONSISTENT and strategy_of(net.server) is Strategy.CONSISTENT
    assert 2.5 <= net.now < 2.5 + CONSISTENT_INTERVAL + 0.1


def test_random_probes_from_the_client_and_birthday_sockets_on_the_server() -> None:
    """Client CONSISTENT, server RANDOM (symmetric NAT): the client sprays random ports of the
    server's verified host while the server opens birthday sockets probing the client and echoes;
    one of the client's probes hits a birthday socket's mapping and the echo connects the client."""
    net = Net("cone", "symmetric", seed=3)
    net.run(until=60)
    assert strategy_of(net.client) is Strategy.RANDOM_PROBES
    assert strategy_of(net.server) is Strategy.BIRTHDAY
    got = outcome(net.client)
    assert isinstance(got, Connected), net.client.events[-3:]
    assert got.addr[0] == "2.0.0.2" and got.socket == PUNCH
    assert len(net.server.session.sockets) == BIRTHDAY_SOCKETS
    assert net.now < 3 + RANDOM_TRIES * RANDOM_INTERVAL
    # the node-wide random punch slot is given back on both sides
    assert net.client.session.limit.running == 0 and net.client.session.limit.last_ended > 0
    assert net.server.session.limit.running == 0


def test_birthday_sockets_on_the_client() -> None:
    """Client RANDOM, server CONSISTENT: the client opens 256 sockets with low-TTL probes to the
    server's verified address, then probes round-robin; the server sprays the client's host; a probe
    reaching a birthday socket connects there."""
    net = Net("symmetric", "cone", seed=5)
    net.run(until=60)
    assert strategy_of(net.client) is Strategy.BIRTHDAY
    assert strategy_of(net.server) is Strategy.RANDOM_PROBES
    got = outcome(net.client)
    assert isinstance(got, Connected), net.client.events[-3:]
    assert got.socket in net.client.session.sockets and got.socket != PUNCH
    assert len(net.client.session.sockets) == BIRTHDAY_SOCKETS


def test_double_random_aborts_and_tells_the_server() -> None:
    net = Net("symmetric", "symmetric")
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchDoubleRandomized)
    aborts = [e for e in net.client.events if isinstance(e, RoundWanted) and e.abort]
    assert len(aborts) == 1
    assert net.server.session.strategy is None  # the server never started punching


def test_server_that_cannot_classify_its_nat_aborts() -> None:
    """The server's NAT class stays UNKNOWN (its pings go unanswered): it answers ABORTED once its
    sampling is over (1 s here), and the client fails with RemoteAborted."""
    net = Net("cone", "silent")
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, RemoteAborted)
    assert net.now >= 1.0


def test_client_that_cannot_classify_its_nat_times_out() -> None:
    """Our own pings go unanswered: after the probe round we abort (the server is told) with
    HolepunchProbeTimeout."""
    net = Net("silent", "cone")
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchProbeTimeout)
    assert [e.abort for e in net.client.events if isinstance(e, RoundWanted)] == [False, True]


def _drive(c: ClientPunch, now: float) -> list[RoundWanted]:
    """Answer the session's pings (a CONSISTENT mapping); return the rounds it asked for."""
    out: list[RoundWanted] = []
    for ev in iter(c.next_event, None):  # (also yields what the answers queue meanwhile)
        if isinstance(ev, PingWanted):
            c.ping_answered(("1.0.0.1", 5000), ev.addr, now)
        elif isinstance(ev, RoundWanted):
            out.append(ev)
    return out


def _reply(c: ClientPunch, hp: HolepunchPayload, now: float) -> None:
    sealed = c.payload.encrypt(hp, bytes(24))
    value = encode_holepunch(Holepunch(mode=HandshakeMode.REPLY, id=7, payload=sealed, peer_address=None))
    c.round_reply(value, ("1.0.0.1", 5000), RELAY, now)


def test_unknown_server_class_waits_then_retries_then_times_out() -> None:
    """A server (a JS one, still analysing) answers the probe round with class UNKNOWN: the client
    waits SERVER_ANALYSIS_WAIT, sends one more probe round, and gives up with HolepunchProbeTimeout
    when the class is still unknown (telling the server)."""
    c: ClientPunch = Net("cone", "cone").client.session  # type: ignore[assignment]
    c.start(0.0)
    first = _drive(c, 0.0)
    assert len(first) == 1 and c.nat.firewall == Firewall.CONSISTENT
    _reply(c, HolepunchPayload(firewall=Firewall.UNKNOWN, round=0), 0.05)
    assert c.get_timer() == pytest.approx(0.05 + SERVER_ANALYSIS_WAIT)
    assert _drive(c, 0.05) == []
    c.handle_timer(0.5)  # early: nothing
    assert _drive(c, 0.5) == []
    c.handle_timer(1.05)
    second = _drive(c, 1.05)
    assert len(second) == 1 and not second[0].abort
    assert [p.addr for p in c.datagrams_to_send()][-1] == c.server_address  # the session probe again
    _reply(c, HolepunchPayload(firewall=Firewall.UNKNOWN, round=1), 1.1)
    c.handle_timer(2.1)
    rest = [e for e in iter(c.next_event, None)]
    assert [type(e) for e in rest] == [RoundWanted, PunchFailed]
    assert isinstance(rest[0], RoundWanted) and rest[0].abort
    assert isinstance(rest[1], PunchFailed) and isinstance(rest[1].error, HolepunchProbeTimeout)


def test_consistent_probing_gives_up_after_ten_rounds() -> None:
    """Both CONSISTENT but no probe ever gets through (the client's NAT silently drops them): the
    client probes CONSISTENT_TRIES times, one interval apart, then fails with HolepunchAborted."""
    net = Net("cone", "cone")
    net.client_nat.accepts = lambda port, host: False  # type: ignore[method-assign]
    net.run(until=120)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchAborted)
    started = net.client.session.probes_sent
    assert started >= CONSISTENT_TRIES
    assert CONSISTENT_TRIES * CONSISTENT_INTERVAL <= net.now < CONSISTENT_TRIES * CONSISTENT_INTERVAL + 3


def test_random_probing_gives_up_after_its_tries() -> None:
    net = Net("cone", "symmetric", seed=3)
    net.client_nat.accepts = lambda port, host: False  # type: ignore[method-assign]
    net.run(until=120)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchAborted)
    assert strategy_of(net.client) is Strategy.RANDOM_PROBES
    assert net.now >= RANDOM_TRIES * RANDOM_INTERVAL
    assert net.client.session.limit.running == 0


# ---------------------------------------------------------------------------------- refusals


def test_random_punch_limit_refuses_a_second_random_punch() -> None:
    """The node-wide limit: another random punch ran less than RANDOM_PUNCH_INTERVAL ago."""
    limit = RandomPunchLimit()
    limit.begin()
    limit.end(0.0)
    net = Net("cone", "symmetric", limit=limit)
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchAborted)
    assert "20 s" in str(got.error)


def test_server_answers_try_later_when_its_random_slot_is_busy() -> None:
    server_limit = RandomPunchLimit()
    server_limit.begin()  # another connection's random punch is running on the server
    net = Net("cone", "symmetric", server_limit=server_limit)
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchAborted)
    assert "TRY_LATER" in str(got.error)
    assert any(isinstance(e, RoundAnswered) and e.error == Err.TRY_LATER for e in net.server.events)


def test_relayed_stream_is_not_moved_to_birthday_sockets() -> None:
    """Upgrade mode: we are RANDOM, so the punch would need birthday sockets, which a relayed stream
    cannot move to: abort (the server is told) and stay on the relay."""
    net = Net("symmetric", "cone", relayed=True)
    net.run(until=60)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, RemoteNotHolepunchable)
    assert not net.client.session.sockets


def test_relayed_stream_upgrades_with_consistent_probes() -> None:
    net = Net("cone", "cone", relayed=True)
    net.run(until=30)
    assert isinstance(outcome(net.client), Connected)


def test_round_request_failure_aborts() -> None:
    net = Net("cone", "cone", relay_drops=True)
    net.run(until=30)
    got = outcome(net.client)
    assert isinstance(got, PunchFailed) and isinstance(got.error, HolepunchAborted)
    assert "request failed" in str(got.error)


def test_bad_replies_aborted_servers_and_servers_not_punching() -> None:
    net = Net("cone", "cone")
    c: ClientPunch = net.client.session  # type: ignore[assignment]
    c.start(0.0)
    for ev in iter(c.next_event, None):
        if isinstance(ev, PingWanted):
            c.ping_answered(("1.0.0.1", 5000), ev.addr, 0.0)
    # a reply that did not come from the relay we asked, then one that does not decrypt
    bad = encode_holepunch(Holepunch(mode=HandshakeMode.REPLY, id=7, payload=b"x" * 60, peer_address=None))
    c.round_reply(bad, ("1.0.0.1", 5000), ("6.6.6.6", 1), 0.1)
    assert isinstance(c.error, HolepunchInvalid)

    def reply_with(hp: HolepunchPayload) -> ClientPunch:
        n = Net("cone", "cone")
        cl: ClientPunch = n.client.session  # type: ignore[assignment]
        cl.start(0.0)
        for ev in iter(cl.next_event, None):
            if isinstance(ev, PingWanted):
                cl.ping_answered(("1.0.0.1", 5000), ev.addr, 0.0)
        sealed = cl.payload.encrypt(hp, bytes(24))
        cl.round_reply(
            encode_holepunch(Holepunch(mode=HandshakeMode.REPLY, id=7, payload=sealed, peer_address=None)),
            ("1.0.0.1", 5000),
            RELAY,
            0.1,
        )
        return cl

    assert isinstance(reply_with(HolepunchPayload(error=Err.ABORTED, firewall=0, round=0)).error, RemoteAborted)
    # a consistent server that answers the punch round without punching
    cl = reply_with(
        HolepunchPayload(firewall=Firewall.CONSISTENT, round=0, addresses=(("2.0.0.2", 4000),), token=bytes(32))
    )
    assert cl.error is None
    ev = [e for e in iter(cl.next_event, None) if isinstance(e, RoundWanted)]
    assert len(ev) == 1 and not ev[0].abort  # the punch round
    sealed = cl.payload.encrypt(
        HolepunchPayload(firewall=Firewall.CONSISTENT, round=1, addresses=(("2.0.0.2", 4000),)), bytes(24)
    )
    cl.round_reply(
        encode_holepunch(Holepunch(mode=HandshakeMode.REPLY, id=7, payload=sealed, peer_address=None)),
        ("1.0.0.1", 5000),
        RELAY,
        0.2,
    )
    assert isinstance(cl.error, RemoteNotHolepunching)


def test_server_drops_rounds_that_do_not_decrypt_and_answers_aborts_at_once() -> None:
    net = Net("cone", "cone")
    s: ServerPunch = net.server.session  # type: ignore[assignment]
    s.start(0.0)
    assert not s.receive_round(1, b"\x00" * 80, ("1.0.0.1", 5000), trusted=True, now=0.0)
    assert s.bad_payloads == 1
    abort = s.payload.encrypt(HolepunchPayload(error=Err.ABORTED, firewall=0, round=3), bytes(24))
    assert s.receive_round(2, abort, ("1.0.0.1", 5000), trusted=True, now=0.0)
    answers = [e for e in iter(s.next_event, None) if isinstance(e, RoundAnswered)]
    assert [a.request_id for a in answers] == [2] and answers[0].error == Err.ABORTED
    # a normal round waits for the NAT sampling, then is answered with our class
    normal = s.payload.encrypt(HolepunchPayload(firewall=Firewall.CONSISTENT, round=4), bytes(24))
    assert s.receive_round(3, normal, ("1.0.0.1", 5000), trusted=False, now=0.0)
    assert s.next_event() is None
    for n in NODES[:3]:
        s.ping_answered(("2.0.0.2", 7000), n, 0.1)
    ans = s.next_event()
    assert isinstance(ans, RoundAnswered) and ans.request_id == 3 and ans.socket == PUNCH
    hp = s.payload.decrypt(ans.value)
    assert hp is not None and hp.firewall == Firewall.CONSISTENT and hp.token is None  # not via our relay


def test_close_stops_everything() -> None:
    net = Net("cone", "symmetric", seed=3)
    net.client_nat.accepts = lambda port, host: False  # type: ignore[method-assign]
    net.run(until=5)  # mid-punch
    c = net.client.session
    assert c.punching and c.limit.running == 1
    c.close(net.now)
    assert c.get_timer() is None and not c.punching and c.limit.running == 0
    c.handle_timer(net.now + 100)
    assert c.datagrams_to_send() == []  # nothing new queued after close
    c.receive_datagram(b"\x00", ("2.0.0.2", 1), PUNCH, net.now)
    assert c.next_event() is None


@pytest.mark.parametrize("seed", range(8))
def test_every_cone_pair_connects_whatever_the_seed(seed: int) -> None:
    for ck in ("open", "cone"):
        for sk in ("open", "cone"):
            net = Net(ck, sk, seed=seed)
            net.run(until=30)
            assert isinstance(outcome(net.client), Connected), (ck, sk, seed, net.client.events)


# ---------------------------------------------------------------------------------- relay -> direct move


def test_direct_move_confirmed_once_a_direct_packet_is_acked_and_the_peer_is_seen() -> None:
    m = DirectMove(timeout=10.0)
    m.moved(100.0, seq=50)
    assert m.state is MoveState.MOVING and m.get_timer() == pytest.approx(100.0 + CHECK_INTERVAL)
    m.progress(100.2, seq=55, acked=50)  # only what was sent before the move is acknowledged
    m.handle_timer(100.2)
    assert m.state is MoveState.MOVING and m.next_event() is None
    m.progress(100.4, seq=56, acked=52)
    assert m.state is MoveState.DIRECT and m.get_timer() is None
    assert m.next_event() is None  # the peer is not on the direct path yet: keep the relay
    m.peer_seen(101.0)
    assert isinstance(m.next_event(), RelayNoLongerNeeded) and m.next_event() is None


def test_direct_move_stall_falls_back_to_the_relay() -> None:
    """The stall after the move: packets sent on the direct path are never acknowledged; at the
    deadline (not before) the stream goes back to the relay, once."""
    m = DirectMove(timeout=10.0)
    m.moved(0.0, seq=7)
    t = 0.0
    while (nxt := m.get_timer()) is not None:
        t = nxt
        m.progress(t, seq=9, acked=7)
        m.handle_timer(t)
        if t < 10.0:
            assert m.next_event() is None and m.state is MoveState.MOVING
    assert t == pytest.approx(10.0)
    assert m.state is MoveState.FELL_BACK
    assert isinstance(m.next_event(), FallBackToRelay) and m.next_event() is None
    m.progress(11.0, seq=9, acked=9)  # a late ack changes nothing
    assert m.state is MoveState.FELL_BACK


def test_direct_move_waits_while_nothing_is_sent() -> None:
    """Nothing sent since the move: nothing to prove, the deadline moves on; the first unacknowledged
    packet then gets a full timeout from the deadline it missed."""
    m = DirectMove(timeout=10.0)
    m.moved(0.0, seq=3)
    m.progress(10.0, seq=3, acked=3)
    m.handle_timer(10.0)
    assert m.state is MoveState.MOVING and m.next_event() is None
    m.progress(12.0, seq=4, acked=3)
    m.handle_timer(12.0)
    assert m.state is MoveState.MOVING
    m.progress(20.0, seq=4, acked=3)
    m.handle_timer(20.0)
    assert m.state is MoveState.FELL_BACK
