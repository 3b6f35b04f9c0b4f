"""Tests for peerdht.kademlia.lookup: the iterative lookup engine.

The network tests simulate 500 nodes in pure Python (no sockets, no clock): every node has a
real :class:`RoutingTable`, replies carry ``table.closest(target)``, replies are delivered in a
random order, and some nodes are dead (their requests fail).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.ids import distance
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.table import Contact, RoutingTable


@dataclass
class SimNode:
    contact: Contact
    table: RoutingTable
    alive: bool = True


class SimNet:
    """``n`` nodes, each knowing every other node its routing table has room for."""

    def __init__(self, n: int, *, id_len: int, k: int, split: bool, seed: int, dead: float = 0.0) -> None:
        rng = random.Random(seed)
        self.k = k
        self.id_len = id_len
        self.nodes: dict[tuple[str, int], SimNode] = {}
        contacts = [Contact(rng.randbytes(id_len), f"10.{i >> 8}.{i & 255}.1", 1000 + i) for i in range(n)]
        for c in contacts:
            t = RoutingTable(c.id, k=k, split=split)
            others = contacts[:]
            rng.shuffle(others)
            for o in others:
                t.add(Contact(o.id, o.host, o.port), 0.0)
            self.nodes[c.addr] = SimNode(c, t)
        for node in rng.sample(list(self.nodes.values()), int(dead * n)):
            node.alive = False

    def live_closest(self, target: bytes, n: int) -> list[bytes]:
        ids = [x.contact.id for x in self.nodes.values() if x.alive]
        return sorted(ids, key=lambda i: distance(i, target))[:n]


def run_lookup(
    net: SimNet, target: bytes, start: list[Contact], *, concurrency: int, rng: random.Random
) -> tuple[Lookup, list[tuple[Contact, Contact | None]]]:
    """Drive a lookup to completion; returns it and the (failed, referrer) pairs."""
    q = Lookup(target, k=net.k, concurrency=concurrency)
    q.add_candidates(start)
    inflight: list[Contact] = []
    failures: list[tuple[Contact, Contact | None]] = []
    steps = 0
    while True:
        batch = q.next_to_query()
        # closest first within a batch
        dists = [distance(c.id, target) if c.id else -1 for c in batch]  # unknown ids go first
        assert dists == sorted(dists)
        inflight.extend(batch)
        assert q.inflight == len(inflight) <= concurrency
        if not inflight:
            break
        c = inflight.pop(rng.randrange(len(inflight)))
        node = net.nodes[c.addr]
        if node.alive:
            closer = [Contact(x.id, x.host, x.port) for x in node.table.closest(target, net.k)]
            q.on_reply(
                Contact(node.contact.id, node.contact.host, node.contact.port), closer, data=("tok", c.port)
            )
        else:
            failures.append((c, q.on_failure(c)))
        steps += 1
        assert steps < 10_000
    assert q.done
    assert q.queried == q.replies + q.failures
    return q, failures


@pytest.fixture(scope="module")
def hyper_net() -> SimNet:
    return SimNet(500, id_len=32, k=20, split=False, seed=1)


@pytest.fixture(scope="module")
def mainline_net() -> SimNet:
    return SimNet(500, id_len=20, k=8, split=True, seed=2, dead=0.1)


@pytest.mark.parametrize("from_bootstrap", [False, True])
def test_converges_to_true_k_closest_hyperdht_profile(hyper_net: SimNet, from_bootstrap: bool) -> None:
    rng = random.Random(3)
    nodes = list(hyper_net.nodes.values())
    for _ in range(25):
        target = rng.randbytes(32)
        entry = rng.choice(nodes)
        if from_bootstrap:  # one bootstrap address, id unknown
            start = [Contact(b"", entry.contact.host, entry.contact.port)]
        else:  # as dht-rpc _addFromTable
            start = entry.table.closest(target, 20)
        q, failures = run_lookup(hyper_net, target, start, concurrency=10, rng=rng)
        assert failures == []
        assert [c.id for c in q.closest_nodes()] == hyper_net.live_closest(target, 20)
        replies = q.closest_replies()
        assert len(replies) == 20
        assert all(data == ("tok", c.port) for c, data in replies)
        assert q.queried < 200  # far from a flood of the 500 nodes


def test_converges_with_dead_nodes_mainline_profile(mainline_net: SimNet) -> None:
    rng = random.Random(4)
    live = [n for n in mainline_net.nodes.values() if n.alive]
    total_failures = 0
    for _ in range(25):
        target = rng.randbytes(20)
        entry = rng.choice(live)
        # bootstrap-like start: a few random nodes with ids unknown to us
        start = [Contact(b"", n.contact.host, n.contact.port) for n in rng.sample(live, 3)]
        start += entry.table.closest(target, 8)
        q, failures = run_lookup(mainline_net, target, start, concurrency=3, rng=rng)
        assert [c.id for c in q.closest_nodes()] == mainline_net.live_closest(target, 8)
        total_failures += len(failures)
        for failed, ref in failures:
            assert not mainline_net.nodes[failed.addr].alive
            # every dead node came from some reply or from the entry node's table
            if ref is not None:
                assert failed.id in {c.id for c in mainline_net.nodes[ref.addr].table.closest(target, 8)}
    assert total_failures > 0


def test_concurrency_respected_and_on_slow() -> None:
    target = bytes(20)
    q = Lookup(target, k=8, concurrency=3)
    cands = [Contact(bytes(19) + bytes([i]), "10.0.0.1", 100 + i) for i in range(1, 11)]
    q.add_candidates(reversed(cands))
    first = q.next_to_query()
    assert first == cands[:3]  # closest first
    assert q.inflight == 3 and q.queried == 3
    assert q.next_to_query() == []
    q.on_slow(first[0])
    q.on_slow(first[0])  # idempotent
    assert q.next_to_query() == [cands[3]]
    assert q.inflight == 4
    q.on_reply(first[0], [])  # the slow one answers: no more slack
    assert q.next_to_query() == []
    q.on_reply(first[1], [])
    assert q.next_to_query() == [cands[4]]


def test_dedup_by_id_and_addr() -> None:
    q = Lookup(bytes(32), k=20, concurrency=10)
    a = Contact(b"\x01" * 32, "10.0.0.1", 1)
    q.add_candidates([a, Contact(a.id, "10.0.0.2", 2), Contact(b"\x02" * 32, "10.0.0.1", 1)])
    assert q.next_to_query() == [a]
    q.on_reply(a, [a, Contact(a.id, "10.0.0.9", 9)])  # lists itself: nothing new
    assert q.next_to_query() == []
    assert q.done


def test_not_closer_than_kth_reply_is_not_queried() -> None:
    target = bytes(20)
    q = Lookup(target, k=2, concurrency=1)
    near1 = Contact(bytes(19) + b"\x01", "10.0.0.1", 1)
    near2 = Contact(bytes(19) + b"\x02", "10.0.0.1", 2)
    far = Contact(b"\xff" * 20, "10.0.0.1", 3)
    q.add_candidates([far, near2, near1])
    assert q.next_to_query() == [near1]
    q.on_reply(near1, [])
    assert q.next_to_query() == [near2]
    q.on_reply(near2, [Contact(b"\xfe" * 20, "10.0.0.1", 4)])  # farther than both replies: ignored
    assert not q.inflight
    assert q.done
    assert q.next_to_query() == []
    assert q.queried == 2
    assert [c for c, _ in q.closest_replies()] == [near1, near2]


def test_counts_false_uses_closer_but_not_as_reply() -> None:
    target = bytes(20)
    q = Lookup(target, k=4, concurrency=2)
    eph = Contact(bytes(19) + b"\x01", "10.0.0.1", 1)
    other = Contact(bytes(19) + b"\x05", "10.0.0.2", 2)
    q.add_candidates([eph])
    q.next_to_query()
    q.on_reply(eph, [other], data="x", counts=False)
    assert q.replies == 1
    assert q.closest_replies() == []
    assert q.next_to_query() == [other]
    q.on_reply(other, [], data="y")
    assert q.closest_replies() == [(other, "y")]
    assert q.done


def test_unknown_id_bootstrap_queried_first_and_counted_with_real_id() -> None:
    target = bytes(20)
    q = Lookup(target, k=4, concurrency=1)
    boot = Contact(b"", "10.0.0.1", 6881)
    known = Contact(bytes(19) + b"\x01", "10.0.0.2", 1)
    q.add_candidates([known, boot])
    assert q.next_to_query() == [boot]
    real = Contact(b"\x80" + bytes(19), "10.0.0.1", 6881)
    q.on_reply(real, [])
    assert q.closest_nodes() == [real]
    assert q.next_to_query() == [known]


def test_failure_referrer_bookkeeping_and_down_hints() -> None:
    target = bytes(20)
    q = Lookup(target, k=8, concurrency=1)
    a = Contact(b"\x40" + bytes(19), "10.0.0.1", 1)
    b = Contact(b"\x30" + bytes(19), "10.0.0.2", 2)
    x = Contact(b"\x01" + bytes(19), "10.0.0.3", 3)
    c = Contact(b"\x20" + bytes(19), "10.0.0.4", 4)
    q.add_candidates([a, b])
    assert q.next_to_query() == [b]
    q.on_reply(b, [x])  # b refers x
    assert q.next_to_query() == [x]
    q.on_reply(Contact(b.id, b.host, b.port), [x])  # duplicate reply from b: ignored
    assert q.replies == 1
    assert q.referrers(x) == [b]
    assert q.on_failure(x) is b
    assert q.failures == 1
    assert q.on_failure(x) is None  # not in flight any more
    assert q.take_down_hints() == []
    assert q.next_to_query() == [a]
    q.on_reply(a, [x, c])  # a also lists the dead x: dht-rpc would DOWN_HINT a about x
    assert q.take_down_hints() == [(a, x)]
    assert q.take_down_hints() == []
    # late reply from x after its failure is ignored
    q.on_reply(x, [])
    assert x not in q.closest_nodes()
    assert q.next_to_query() == [c]
    assert q.on_failure(c) is a  # referred by a only
    assert q.done
    assert q.closest_nodes() == [b, a]


def test_multiple_referrers_first_is_returned() -> None:
    target = bytes(20)
    q = Lookup(target, k=8, concurrency=2)
    a = Contact(b"\x40" + bytes(19), "10.0.0.1", 1)
    b = Contact(b"\x30" + bytes(19), "10.0.0.2", 2)
    x = Contact(b"\x01" + bytes(19), "10.0.0.3", 3)
    q.add_candidates([a, b])
    q.next_to_query()
    q.on_reply(a, [x])
    q.on_reply(b, [x])
    assert q.referrers(x) == [a, b]
    assert q.next_to_query() == [x]
    assert q.on_failure(x) is a
    assert q.referrers(Contact(b"", "1.1.1.1", 1)) == []


def test_empty_lookup_is_done() -> None:
    q = Lookup(bytes(32))
    assert q.done and q.next_to_query() == [] and q.closest_replies() == []


def test_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        Lookup(bytes(32), k=0)
    with pytest.raises(LocalProtocolError):
        Lookup(bytes(32), concurrency=0)
    q = Lookup(bytes(32))
    with pytest.raises(LocalProtocolError):
        q.add_candidates([Contact(bytes(20), "10.0.0.1", 1)])


def test_local_id_is_never_a_candidate() -> None:
    me = b"\x00" * 19 + b"\x01"
    q = Lookup(bytes(20), k=8, concurrency=4, local_id=me)
    other = Contact(b"\x00" * 19 + b"\x02", "10.0.0.2", 2)
    q.add_candidates([Contact(me, "10.0.0.1", 1), other])
    assert q.next_to_query() == [other]
    q.on_reply(other, [Contact(me, "10.0.0.1", 1)])
    assert q.next_to_query() == []
    assert q.done


@settings(max_examples=int(os.environ.get("KAD_EXAMPLES", "80")), deadline=None)
@given(seed=st.integers(0, 2**32), k=st.integers(1, 6), concurrency=st.integers(1, 4))
def test_property_lookup_invariants(seed: int, k: int, concurrency: int) -> None:
    """Random replies, failures, slow marks and stray replies: the bookkeeping stays consistent."""
    rng = random.Random(seed)
    target = rng.randbytes(2)
    pool = [Contact(rng.randbytes(2), "10.0.0.1", 1 + i) for i in range(40)]
    q = Lookup(target, k=k, concurrency=concurrency)
    q.add_candidates(rng.sample(pool, 5))
    inflight: list[Contact] = []
    slow: set[tuple[str, int]] = set()
    for _ in range(300):
        batch = q.next_to_query()
        assert not {c.addr for c in batch} & {c.addr for c in inflight}
        inflight += batch
        assert q.inflight == len(inflight) <= concurrency + len(slow)
        assert q.queried == q.replies + q.failures + q.inflight
        dists = [distance(c.id, target) for c in q.closest_nodes()]
        assert dists == sorted(dists) and len(dists) <= k
        assert len({c.id for c in q.closest_nodes()}) == len(dists)
        if not inflight:
            assert q.done
            break
        assert not q.done
        stray = rng.choice(pool)
        if stray.addr not in {c.addr for c in inflight}:
            before = (q.replies, q.inflight)
            q.on_reply(stray, [])  # not in flight: ignored
            assert (q.replies, q.inflight) == before
        c = rng.choice(inflight)
        r = rng.random()
        if r < 0.1 and c.addr not in slow:
            q.on_slow(c)
            slow.add(c.addr)
            continue
        inflight.remove(c)
        slow.discard(c.addr)
        if r < 0.25:
            q.on_failure(c)
        else:
            q.on_reply(c, rng.sample(pool, rng.randint(0, 6)), counts=rng.random() < 0.9)
    else:
        raise AssertionError("lookup did not finish")
    assert q.done and q.next_to_query() == []


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32), mixed=st.booleans())
def test_property_add_addresses_equals_add_candidates(seed: int, mixed: bool) -> None:
    # add_addresses (closer nodes as bare addresses, ids derived on demand) must drive a lookup
    # exactly as on_reply with the equivalent contacts does -- also when a lookup gets some replies one way
    # and some the other (``mixed``): add_addresses keeps its referrers per reply, read back in order
    rng = random.Random(seed)
    target = rng.randbytes(8)
    addrs = [(f"10.0.0.{i}", 1000 + i) for i in range(24)]
    ids = {a: rng.randbytes(8) for a in addrs}
    own = addrs[0]  # plays our own id: id_of skips it

    def id_of(h: str, p: int) -> bytes | None:
        return None if (h, p) == own else ids[(h, p)]

    def contact(a: tuple[str, int]) -> Contact:
        return Contact(ids[a], a[0], a[1])

    one = Lookup(target, k=4, concurrency=3)
    two = Lookup(target, k=4, concurrency=3)
    seeds = [contact(a) for a in rng.sample(addrs[1:], 3)]
    one.add_candidates(seeds)
    two.add_candidates(seeds)
    inflight: list[Contact] = []
    for _ in range(60):
        sent = one.next_to_query()
        assert two.next_to_query() == sent
        inflight += sent
        if not inflight:
            break
        c = inflight.pop(rng.randrange(len(inflight)))
        if rng.random() < 0.2:
            assert one.on_failure(c) == two.on_failure(c)
            continue
        closer = [rng.choice(addrs) for _ in range(rng.randrange(8))]
        counts = rng.random() < 0.8
        as_contacts = [contact(a) for a in closer if a != own]
        one.on_reply(c, as_contacts, c, counts=counts)
        if mixed and rng.random() < 0.5:
            two.on_reply(c, as_contacts, c, counts=counts)
        elif two.on_reply(c, (), c, counts=counts):
            two.add_addresses(closer, c, id_of)
        assert one.take_down_hints() == two.take_down_hints()
        if rng.random() < 0.5:  # referrers read now or later: the same either way
            for a in addrs:
                assert one.referrers(contact(a)) == two.referrers(contact(a))
    for a in addrs:
        assert one.referrers(contact(a)) == two.referrers(contact(a))
    assert one.closest_replies() == two.closest_replies()
    assert one.done == two.done
