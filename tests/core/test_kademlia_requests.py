"""Tests for peerdht.kademlia.requests: transaction ids, retries, timeouts, congestion window."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.requests import RequestTable, Window

A = ("127.0.0.1", 4000)
B = ("127.0.0.1", 4001)


def test_tid_unique_among_inflight() -> None:
    rt = RequestTable(random.Random(1), tid_space=64)
    tids = set()
    for i in range(64):
        tid = rt.new_tid()
        assert tid not in tids and 0 <= tid < 64
        rt.add(tid, A, b"x", now=0.0, context=i)
        tids.add(tid)
    assert len(rt) == 64
    with pytest.raises(LocalProtocolError):
        rt.new_tid()
    # freeing one makes exactly that one available again
    some = sorted(tids)[17]
    assert rt.pop(some) is not None
    assert rt.new_tid() == some


def test_add_rejects_duplicate_or_out_of_range_tid() -> None:
    rt = RequestTable(random.Random(2))
    rt.add(5, A, b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        rt.add(5, B, b"y", 0.0)
    with pytest.raises(LocalProtocolError):
        rt.add(1 << 16, A, b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        rt.add(-1, A, b"x", 0.0)


def test_pop_matches_tid_and_checks_addr() -> None:
    rt = RequestTable(random.Random(3))
    req = rt.add(7, A, b"ping", now=1.0, context="ctx")
    assert (req.tries, req.sent, req.deadline, req.retries, req.first_sent) == (1, 1.0, 2.0, 3, 1.0)
    assert 7 in rt and rt.get(7) is req
    assert rt.pop(7, B) is None  # wrong source: stays
    assert len(rt) == 1
    assert rt.pop(8) is None
    assert rt.pop(7, A) is req
    assert rt.pop(7, A) is None
    assert len(rt) == 0
    assert rt.next_deadline() is None


def test_retries_then_timeout() -> None:
    rt = RequestTable(random.Random(4), timeout=1.0, retries=3)
    req = rt.add(1, A, b"payload", now=0.0, context="q")
    assert rt.next_deadline() == 1.0
    assert rt.expired(0.999) == ([], [])
    sends = 1
    now = 1.0
    for expected_tries in (2, 3, 4):
        resend, dead = rt.expired(now)
        assert resend == [req] and dead == []
        assert req.tries == expected_tries and req.sent == now and req.deadline == now + 1.0
        sends += 1
        now += 1.0
        assert rt.next_deadline() == now
    resend, dead = rt.expired(now)
    assert resend == [] and dead == [req]
    assert sends == 4  # 1 + retries, as dht-rpc (`sent > retries`)
    assert len(rt) == 0 and rt.next_deadline() is None
    assert rt.pop(1) is None


def test_per_request_timeout_and_zero_retries() -> None:
    rt = RequestTable(random.Random(5), timeout=1.0, retries=3)
    fast = rt.add(1, A, b"a", now=0.0, timeout=0.25, retries=0)
    slow = rt.add(2, B, b"b", now=0.0)
    assert rt.next_deadline() == 0.25
    resend, dead = rt.expired(0.5)
    assert resend == [] and dead == [fast]
    assert rt.next_deadline() == 1.0
    resend, dead = rt.expired(5.0)  # late timer: one resend per call, not a burst
    assert resend == [slow] and dead == [] and slow.deadline == 6.0


def test_response_between_retries_cancels() -> None:
    rt = RequestTable(random.Random(6))
    req = rt.add(3, A, b"x", 0.0)
    rt.expired(1.0)
    assert req.tries == 2
    assert rt.pop(3, A) is req
    assert rt.expired(100.0) == ([], [])


def test_cancel_by_context() -> None:
    rt = RequestTable(random.Random(7))
    ctx = object()
    rt.add(1, A, b"", 0.0, ctx)
    rt.add(2, A, b"", 0.0, "other")
    rt.add(3, B, b"", 0.0, ctx)
    assert {r.tid for r in rt.cancel(ctx)} == {1, 3}
    assert [r.tid for r in rt] == [2]
    assert rt.next_deadline() == 1.0


def test_next_deadline_compacts_stale_entries() -> None:
    rt = RequestTable(random.Random(8))
    for i in range(1000):
        rt.add(i, A, b"", float(i))
        rt.pop(i)
    rt.add(5000, A, b"", 3.0)
    assert rt.next_deadline() == 4.0
    assert len(rt._heap) < 100


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["add", "pop", "tick"]), st.floats(0, 3)), max_size=80),
    st.integers(0, 99),
)
def test_property_every_request_ends_once(ops: list[tuple[str, float]], seed: int) -> None:
    """Each request is answered or times out exactly once, after at most retries+1 sends."""
    rng = random.Random(seed)
    rt = RequestTable(rng, tid_space=32, timeout=1.0, retries=2)
    now = 0.0
    ended: list[int] = []
    live: set[int] = set()
    for op, dt in ops:
        now += dt
        if op == "add" and len(rt) < 32:
            tid = rt.new_tid()
            assert tid not in live
            rt.add(tid, A, b"", now)
            live.add(tid)
        elif op == "pop" and live:
            tid = rng.choice(sorted(live))
            assert rt.pop(tid, A) is not None
            live.discard(tid)
            ended.append(tid)
        else:
            resend, dead = rt.expired(now)
            for r in resend:
                assert r.tries <= 3 and r.deadline > now
            for r in dead:
                assert r.tries == 3
                live.discard(r.tid)
                ended.append(r.tid)
        assert len(rt) == len(live)
        nd = rt.next_deadline()
        assert (nd is None) == (not live)
    resend, dead = rt.expired(now + 100.0)
    assert len(dead) + len(resend) == len(live)


# -- congestion window ------------------------------------------------------------------------


def test_window_slot_limit_and_drain() -> None:
    w = Window(80, slot=0.75)
    now = 10.0
    for _ in range(80):
        assert not w.full(now)
        w.send(now)
    assert w.full(now)
    w.recv(now)  # a response frees one
    assert not w.full(now)
    w.send(now)
    assert w.full(now)
    nxt = w.next_slot(now)
    assert nxt > now and w.full(nxt - 1e-9)
    assert not w.full(nxt)  # next 750 ms slot


def test_window_total_limit_over_four_slots() -> None:
    w = Window(10, slot=1.0)
    t = 0.0
    for _ in range(10):
        w.send(t)
    t = 1.0
    for _ in range(10):
        w.send(t)
    t = 2.0
    assert w.full(t)  # 2 * max_window outstanding in the last slots
    t = 3.0
    assert w.full(t)  # the first slot is still one of the 4 remembered (current + 3 before)
    t = 4.0
    assert not w.full(t)  # entering slot 4 drains slot 0 (dht-rpc drain clears the oldest)
    w.clear()
    assert not w.full(t)


def test_window_long_idle_forgets_everything() -> None:
    w = Window(5, slot=0.75)
    for _ in range(5):
        w.send(0.0)
    assert w.full(0.0)
    assert not w.full(1000.0)
    w.recv(1000.0)  # nothing outstanding in this slot: no underflow
    for _ in range(5):
        w.send(1000.0)
    assert w.full(1000.0)


def test_sequential_tids_count_up_wrap_and_skip_inflight() -> None:
    """dht-rpc io.js: tids count up from a random start (this._tid++), wrapping at the space."""
    rt = RequestTable(random.Random(3), tid_space=8, sequential=True)
    first = rt.new_tid()
    rt.add(first, A, b"x", now=0.0)
    seq = [first]
    for _ in range(5):
        tid = rt.new_tid()
        rt.add(tid, A, b"x", now=0.0)
        seq.append(tid)
    assert seq == [(first + i) % 8 for i in range(6)]
    # two ids left; free one of the early ones: the counter skips what is still in flight
    rt.pop(seq[1])
    a, b = rt.new_tid(), None
    rt.add(a, A, b"x", now=0.0)
    b = rt.new_tid()
    rt.add(b, A, b"x", now=0.0)
    c = rt.new_tid()
    assert {a, b, c} == {(first + 6) % 8, (first + 7) % 8, seq[1]}
    assert c == seq[1]
    rt.add(c, A, b"x", now=0.0)
    with pytest.raises(LocalProtocolError):
        rt.new_tid()


@settings(max_examples=50)
@given(st.lists(st.booleans(), max_size=300), st.integers(0, 2**32))
def test_sequential_tids_unique_among_inflight(ops: list[bool], seed: int) -> None:
    rt = RequestTable(random.Random(seed), tid_space=16, sequential=True)
    rng = random.Random(seed)
    for add in ops:
        if add and len(rt) < 16:
            tid = rt.new_tid()
            assert tid not in rt and 0 <= tid < 16
            rt.add(tid, A, b"x", now=0.0)
        elif len(rt):
            rt.pop(rng.choice([p.tid for p in rt]))
