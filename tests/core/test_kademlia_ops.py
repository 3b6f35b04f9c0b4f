"""The typed op engine (peerdht.kademlia.ops) on its own: a fake profile, a fake network, a fake clock.

The fake profile implements the engine's small protocol (send a query, send a write, forget a request, emit
events, down hints) over a simulated network of nodes with real routing tables; requests are plain objects,
time only moves when the test says so, and a "resend" is the test calling ``on_slow``. Each test checks one
part of the shared lifecycle: seeding, the concurrency bound, slow requests, failures and down hints, the end
rule, the store phase with tokens, finish / fail / cancel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from peerdht.errors import PeerDHTError, RemoteError, RequestError, RequestTimeout
from peerdht.kademlia.ids import distance
from peerdht.kademlia.ops import LookupOp, Operation
from peerdht.kademlia.table import Contact, RoutingTable

ID_LEN = 20


@dataclass(eq=False)
class FakeRequest:
    """One request on the fake wire (identity-hashed, as the profiles' request objects)."""

    kind: str  # "query" or "store"
    contact: Contact
    sent: float
    data: object = None
    aborted: bool = False


@dataclass
class Node:
    contact: Contact
    table: RoutingTable
    alive: bool = True
    stored: list[object] = field(default_factory=list)


class FakeNet:
    """``n`` nodes, each with a routing table of (almost) everyone; dead nodes never answer."""

    def __init__(self, n: int, *, k: int, seed: int, dead: float = 0.0) -> None:
        rng = random.Random(seed)
        self.k = k
        contacts = [Contact(rng.randbytes(ID_LEN), f"10.0.{i >> 8}.{i & 255}", 2000 + i) for i in range(n)]
        self.nodes: dict[tuple[str, int], Node] = {}
        for c in contacts:
            t = RoutingTable(c.id, k=k, split=True)
            for o in rng.sample(contacts, len(contacts)):
                t.add(Contact(o.id, o.host, o.port), 0.0)
            self.nodes[c.addr] = Node(c, t)
        for node in rng.sample(list(self.nodes.values()), int(dead * n)):
            node.alive = False

    def live_closest(self, target: bytes, n: int) -> list[bytes]:
        ids = [x.contact.id for x in self.nodes.values() if x.alive]
        return sorted(ids, key=lambda i: distance(i, target))[:n]


class FakeOp(LookupOp[FakeRequest]):
    """A profile in a few lines: records every call of the engine's protocol."""

    DOWN_HINTS = True

    def __init__(self, target: bytes, *, k: int = 8, concurrency: int = 3, store: bool = False) -> None:
        super().__init__(1, target, k=k, concurrency=concurrency)
        self.sent: list[FakeRequest] = []
        self.aborted: list[FakeRequest] = []
        self.hints: list[tuple[Contact, Contact]] = []
        self.data_seen: list[tuple[Contact, object, bool]] = []
        self.events: list[tuple[str, object]] = []
        self.closed_calls = 0
        self.lookup_closed_calls = 0
        self.do_store = store
        self.refuse_send: set[tuple[str, int]] = set()

    # the protocol
    def send_query(self, contact: Contact, now: float) -> FakeRequest | None:
        if contact.addr in self.refuse_send:
            return None
        req = FakeRequest("query", contact, now)
        self.sent.append(req)
        return req

    def send_store(self, contact: Contact, data: object, now: float) -> FakeRequest | None:
        req = FakeRequest("store", contact, now, data)
        self.sent.append(req)
        return req

    def abort_request(self, request: FakeRequest) -> None:
        request.aborted = True
        self.aborted.append(request)

    def emit_done(self, result: object) -> None:
        self.events.append(("done", result))

    def emit_failed(self, error: PeerDHTError) -> None:
        self.events.append(("failed", error))

    def closed(self) -> None:
        self.closed_calls += 1

    def lookup_closed(self) -> None:
        self.lookup_closed_calls += 1

    def send_down_hint(self, referrer: Contact, down: Contact, now: float) -> None:
        self.hints.append((referrer, down))

    def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
        self.data_seen.append((responder, data, fed))

    def lookup_done(self, now: float) -> None:
        replies = self.lookup.closest_replies()
        if not self.do_store:
            self.finish([c.id for c, _ in replies])
            return
        if not replies:
            self.fail(RequestError("too few nodes responded"))
            return
        self.begin_store()
        for c, token in replies:
            self.store(c, token, now)
        self.maybe_store_done(now)

    def store_done(self, now: float) -> None:
        if self.stored:
            self.finish(self.stored)
        else:
            self.fail(self.store_errors[-1] if self.store_errors else RequestError("none stored"))

    # test helpers
    def inflight(self, kind: str = "query") -> list[FakeRequest]:
        live = self.requests if kind == "query" else self.stores
        return [r for r in self.sent if r in live]


def answer(net: FakeNet, op: FakeOp, req: FakeRequest, now: float) -> None:
    node = net.nodes[req.contact.addr]
    if req.kind == "store":
        node.stored.append(req.data)
        op.on_store_reply(req, now)
        return
    closer = [Contact(c.id, c.host, c.port) for c in node.table.closest(op.target, net.k)]
    token = b"tok:" + node.contact.id[:4]
    op.on_reply(req, node.contact, token, now, closer=closer)


def drive(net: FakeNet, op: FakeOp, rng: random.Random, *, timeout: float = 1.0) -> float:
    """Answer (or time out) requests in a random order on a fake clock; returns the time at the end."""
    now = 0.0
    while not op.finished:
        live = op.inflight("query") + op.inflight("store")
        if not live:
            break
        assert len(op.inflight("query")) - len(op.slow) <= op.lookup.concurrency
        req = live[rng.randrange(len(live))]
        now += 0.01
        if net.nodes[req.contact.addr].alive:
            answer(net, op, req, now)
        else:
            now = max(now, req.sent + timeout)
            if req.kind == "store":
                op.on_store_failure(req, RequestTimeout("no reply"), now)
            else:
                op.on_failure(req, req.contact, now)
    return now


def seeds(net: FakeNet, n: int = 3) -> list[Contact]:
    return [Contact(x.contact.id, x.contact.host, x.contact.port) for x in list(net.nodes.values())[:n]]


# ------------------------------------------------------------------------------------------------ lookup


@pytest.mark.parametrize("seed", range(5))
def test_lookup_finds_the_k_closest_live_nodes(seed: int) -> None:
    net = FakeNet(200, k=8, seed=seed, dead=0.2)
    rng = random.Random(seed)
    target = rng.randbytes(ID_LEN)
    op = FakeOp(target)
    op.start(seeds(net), 0.0)
    assert len(op.sent) == 3  # concurrency, not more
    drive(net, op, rng)
    assert op.finished and op.events[0][0] == "done"
    found = op.events[0][1]
    assert isinstance(found, list) and len(found) == 8
    assert found == sorted(found, key=lambda i: distance(i, target))
    assert all(net.nodes[c.addr].alive for c, _ in op.lookup.closest_replies())
    # an iterative lookup may miss a true closest node that only dead nodes know of (k-buckets of 8)
    assert len(set(found) & set(net.live_closest(target, 8))) >= 6
    assert op.lookup_over and op.closed_calls == 1 and op.lookup_closed_calls == 1
    assert op.queries == len([r for r in op.sent if r.kind == "query"])


def test_bootstrap_contacts_are_queried_first_and_a_refused_send_counts_as_failed() -> None:
    net = FakeNet(50, k=8, seed=3)
    op = FakeOp(bytes(ID_LEN), concurrency=2)
    boot = list(net.nodes.values())[10]
    table_seed = sorted(seeds(net, 2), key=lambda c: distance(c.id, bytes(ID_LEN)))
    op.refuse_send.add(table_seed[0].addr)
    op.start(table_seed, 0.0, [Contact(b"", boot.contact.host, boot.contact.port)])
    # the unknown-id bootstrap contact goes first; the refused (closer) one is failed at once, and its
    # place is taken at the next pump
    assert [r.contact.addr for r in op.sent] == [boot.contact.addr]
    assert op.lookup.failures == 1 and op.queries == 1 and op.lookup.inflight == 1
    op.pump(0.1)
    assert [r.contact.addr for r in op.sent] == [boot.contact.addr, table_seed[1].addr]
    assert op.queries == 2


def test_no_candidates_finishes_at_start() -> None:
    op = FakeOp(bytes(ID_LEN))
    op.start([], 0.0)
    assert op.events == [("done", [])]
    assert op.sent == []


def test_slow_requests_free_concurrency_and_end_the_lookup_once_k_replied() -> None:
    net = FakeNet(100, k=4, seed=4)
    target = bytes(ID_LEN)
    op = FakeOp(target, k=4, concurrency=2)
    op.start(seeds(net, 6), 0.0)
    first = op.inflight()
    assert len(first) == 2
    # both time out once and are resent: two more go out, and they do not count against the limit
    for r in first:
        op.on_slow(r, r.contact)
    op.pump(1.0)
    assert len(op.inflight()) == 4 and len(op.slow) == 2
    # answer everything except the two slow ones until k replies are in: the lookup then ends without them
    rng = random.Random(1)
    now = 1.0
    while not op.finished:
        live = [r for r in op.inflight() if r not in first]
        assert live, "the lookup must end with only slow requests left"
        now += 0.01
        answer(net, op, live[rng.randrange(len(live))], now)
    assert op.events[0][0] == "done" and len(op.events[0][1]) == 4  # type: ignore[arg-type]
    assert set(first) <= set(op.aborted)  # the slow ones were forgotten
    assert not op.requests and not op.slow


def test_slow_requests_are_forgotten_when_the_lookup_ends_before_the_writes() -> None:
    net = FakeNet(100, k=2, seed=5)
    op = FakeOp(bytes(ID_LEN), k=2, concurrency=1, store=True)
    op.start(seeds(net, 6), 0.0)
    slow = op.inflight()[0]
    op.on_slow(slow, slow.contact)
    op.pump(1.0)
    now = 1.0
    while not op.lookup_over:
        now += 0.01
        answer(net, op, next(r for r in op.inflight() if r is not slow), now)
    assert op.storing and not op.finished and op.stores  # writes in flight
    assert slow.aborted and not op.requests and op.lookup.inflight == 1
    op.on_reply(slow, slow.contact, b"late", now)  # a late reply to it changes nothing
    assert op.lookup.replies == len([r for r in op.sent if r.kind == "query"]) - 1


def test_on_slow_ignores_writes_and_finished_lookups() -> None:
    op = FakeOp(bytes(ID_LEN), store=True)
    c = Contact(b"\x01" * ID_LEN, "10.9.9.9", 1)
    op.start([c], 0.0)
    req = op.sent[0]
    op.on_reply(req, c, b"t", 0.1)
    store = op.sent[1]
    assert store.kind == "store" and op.is_store(store) and not op.is_store(req)
    op.on_slow(store, c)
    assert not op.slow and op.lookup.inflight == 0


def test_timeouts_send_down_hints_to_every_referrer() -> None:
    target = bytes(ID_LEN)
    a = Contact(b"\x80" + bytes(ID_LEN - 1), "10.0.0.1", 1)
    b = Contact(b"\x40" + bytes(ID_LEN - 1), "10.0.0.2", 1)
    dead = Contact(b"\x01" + bytes(ID_LEN - 1), "10.0.0.3", 1)
    op = FakeOp(target, concurrency=1)
    op.start([a, b], 0.0)
    ra = op.sent[-1]
    assert ra.contact == b  # closest first
    op.on_reply(ra, b, None, 0.1, closer=[dead])
    rd = op.sent[-1]
    assert rd.contact == dead
    # a lists the dead node too while it is in flight: a second referrer
    op.lookup.concurrency = 2
    op.pump(0.2)
    rb = op.sent[-1]
    assert rb.contact == a
    op.on_reply(rb, a, None, 0.3, closer=[dead])
    op.on_failure(rd, dead, 1.2)
    assert op.hints == [(b, dead), (a, dead)]
    # a failure that is not a timeout tells nobody
    op2 = FakeOp(target)
    op2.start([a], 0.0)
    op2.on_reply(op2.sent[0], a, None, 0.1, closer=[dead])
    op2.on_failure(op2.sent[1], dead, 0.5, timed_out=False)
    assert op2.hints == []


def test_a_node_offered_again_after_it_failed_gets_its_referrer_a_down_hint() -> None:
    target = bytes(ID_LEN)
    a = Contact(b"\x80" + bytes(ID_LEN - 1), "10.0.0.1", 1)
    b = Contact(b"\x40" + bytes(ID_LEN - 1), "10.0.0.2", 1)
    dead = Contact(b"\x01" + bytes(ID_LEN - 1), "10.0.0.3", 1)
    op = FakeOp(target, concurrency=1)
    op.start([dead, a, b], 0.0)
    assert op.sent[0].contact == dead
    op.on_failure(op.sent[0], dead, 1.0)  # from the table: no referrer
    assert op.hints == []
    rb = op.sent[-1]
    op.on_reply(rb, rb.contact, None, 1.1, closer=[dead])  # lists the dead node: pump passes the hint on
    assert op.hints == [(rb.contact, dead)]


def test_replies_after_the_end_are_ignored() -> None:
    c = Contact(b"\x01" * ID_LEN, "10.0.0.1", 1)
    op = FakeOp(bytes(ID_LEN))
    op.start([c], 0.0)
    req = op.sent[0]
    op.cancel()
    assert op.finished and req.aborted and op.events == []
    op.on_reply(req, c, b"t", 0.1)
    op.on_failure(req, c, 0.1)
    assert op.data_seen == [] and op.lookup.replies == 0 and op.events == []


def test_on_data_sees_every_reply_and_may_finish_the_op() -> None:
    class FirstValue(FakeOp):
        def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
            super().on_data(responder, data, fed, now)
            self.finish(data)

    net = FakeNet(60, k=8, seed=9)
    op = FirstValue(bytes(ID_LEN))
    op.start(seeds(net), 0.0)
    first = op.sent[0]
    answer(net, op, first, 0.1)
    assert op.events == [("done", b"tok:" + first.contact.id[:4])]
    assert set(op.sent[1:3]) <= set(op.aborted)  # the others in flight are forgotten
    sent = len(op.sent)
    answer(net, op, op.sent[1], 0.2)
    assert len(op.sent) == sent and len(op.events) == 1  # nothing more after the end


# ------------------------------------------------------------------------------------------------ store


def test_store_phase_writes_to_the_closest_with_their_tokens() -> None:
    net = FakeNet(150, k=8, seed=2)
    rng = random.Random(2)
    target = rng.randbytes(ID_LEN)
    op = FakeOp(target, store=True)
    op.start(seeds(net), 0.0)
    drive(net, op, rng)
    assert op.events == [("done", 8)]
    writes = [r for r in op.sent if r.kind == "store"]
    assert sorted(r.contact.id for r in writes) == sorted(net.live_closest(target, 8))
    for r in writes:
        assert r.data == b"tok:" + r.contact.id[:4]  # each node gets the token it gave
        assert net.nodes[r.contact.addr].stored == [r.data]
    assert op.tried == 8 and op.stored == 8


def test_store_outcomes_with_errors_and_timeouts() -> None:
    cs = [Contact(bytes([i]) * ID_LEN, f"10.0.0.{i}", 1) for i in range(1, 4)]
    op = FakeOp(bytes(ID_LEN), store=True)
    op.start(cs, 0.0)
    for r in list(op.sent):
        op.on_reply(r, r.contact, b"t", 0.1)
    writes = [r for r in op.sent if r.kind == "store"]
    assert len(writes) == 3 and op.storing and not op.finished
    op.on_store_reply(writes[0], 0.2, RemoteError(301))
    op.on_store_failure(writes[1], RequestTimeout("x"), 1.2)
    assert not op.finished
    op.on_store_reply(writes[2], 1.3)
    assert op.events == [("done", 1)]
    assert [type(e) for e in op.store_errors] == [RemoteError, RequestTimeout]
    op.on_store_reply(writes[2], 1.4)  # a duplicate outcome changes nothing
    assert op.stored == 1 and len(op.events) == 1


def test_store_with_no_replies_fails_and_all_failed_writes_fail() -> None:
    op = FakeOp(bytes(ID_LEN), store=True)
    c = Contact(b"\x01" * ID_LEN, "10.0.0.1", 1)
    op.start([c], 0.0)
    op.on_failure(op.sent[0], c, 1.0)
    assert op.events[0][0] == "failed" and str(op.events[0][1]) == "too few nodes responded"
    op = FakeOp(bytes(ID_LEN), store=True)
    op.start([c], 0.0)
    op.on_reply(op.sent[0], c, b"t", 0.1)
    op.on_store_failure(op.sent[1], RequestTimeout("gone"), 1.1)
    assert op.events[0][0] == "failed" and isinstance(op.events[0][1], RequestTimeout)


def test_writes_sent_during_the_lookup_end_the_op_only_after_the_lookup() -> None:
    class StreamingWrites(FakeOp):
        def on_data(self, responder: Contact, data: object, fed: bool, now: float) -> None:
            self.store(responder, data, now)

        def lookup_done(self, now: float) -> None:
            self.begin_store()
            self.maybe_store_done(now)

    a = Contact(b"\x80" * ID_LEN, "10.0.0.1", 1)
    b = Contact(b"\x40" * ID_LEN, "10.0.0.2", 1)
    op = StreamingWrites(bytes(ID_LEN), concurrency=1)
    op.start([a, b], 0.0)
    op.on_reply(op.sent[0], op.sent[0].contact, b"t1", 0.1)
    w1 = op.sent[1]
    assert w1.kind == "store"
    op.on_store_reply(w1, 0.2)
    assert not op.finished  # the lookup is still going
    q2 = op.sent[2]
    op.on_reply(q2, q2.contact, b"t2", 0.3)
    assert not op.finished  # its write is in flight
    op.on_store_reply(op.sent[3], 0.4)
    assert op.events == [("done", 2)]


def test_fail_and_cancel_forget_every_request_and_report_once() -> None:
    cs = [Contact(bytes([i]) * ID_LEN, f"10.0.0.{i}", 1) for i in range(1, 6)]
    op = FakeOp(bytes(ID_LEN), store=True, concurrency=2)
    op.start(cs, 0.0)
    op.on_reply(op.sent[0], op.sent[0].contact, b"t", 0.1)
    inflight = op.inflight()
    op.fail(RequestError("stop"))
    op.fail(RequestError("again"))
    op.finish("late")
    assert op.events == [("failed", op.events[0][1])] and str(op.events[0][1]) == "stop"
    assert set(inflight) <= set(op.aborted) and op.closed_calls == 1 and op.lookup_closed_calls == 1
    assert not op.requests and not op.stores

    op = FakeOp(bytes(ID_LEN), store=True)
    op.start(cs[:1], 0.0)
    op.on_reply(op.sent[0], cs[0], b"t", 0.1)
    write = op.sent[1]
    op.cancel()
    assert write.aborted and op.events == [] and op.closed_calls == 1


def test_operation_without_lookup() -> None:
    class Single(Operation[FakeRequest]):
        def __init__(self) -> None:
            super().__init__(7)
            self.log: list[object] = []

        def abort_request(self, request: FakeRequest) -> None:
            self.log.append(("abort", request.kind))

        def emit_done(self, result: object) -> None:
            self.log.append(("done", result))

        def closed(self) -> None:
            self.log.append("closed")

    op = Single()
    op.requests.add(FakeRequest("query", Contact(b"", "10.0.0.1", 1), 0.0))
    op.finish(42)
    op.cancel()
    assert op.log == [("abort", "query"), "closed", ("done", 42)]
