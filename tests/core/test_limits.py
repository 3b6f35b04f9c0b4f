"""Bounded O(1) state for untrusted work (peerdht.hyper.limits), with an explicit clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.hyper.limits import FairSlots, KeyedBuckets


def test_buckets_refill_and_forget_least_recent() -> None:
    b: KeyedBuckets[str] = KeyedBuckets(rate=10.0, burst=5.0, max_keys=2)
    assert all(b.allow("x", 0.0) for _ in range(5))
    assert not b.allow("x", 0.0)
    assert b.allow("x", 0.1)  # one token back after 0.1 s
    assert not b.allow("x", 0.1)
    b.allow("y", 0.1)
    b.allow("z", 0.1)  # x is forgotten (least recently used): it comes back full
    assert all(b.allow("x", 0.1) for _ in range(5))


def test_fair_slots_evict_own_oldest_then_global_oldest() -> None:
    s: FairSlots[str, str] = FairSlots(max_total=4, max_per_key=2)
    a1, ev = s.take("a", "a1")
    assert ev == []
    s.take("a", "a2")
    _, ev = s.take("a", "a3")
    assert ev == ["a1"] and s.count("a") == 2  # a flooder churns its own slots
    b1, _ = s.take("b", "b1")
    s.take("b", "b2")
    _, ev = s.take("c", "c1")
    assert ev == ["a2"]  # full: the oldest overall
    assert s.release(a1) is None  # already evicted
    assert s.release(b1) == "b1" and len(s) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.booleans()), max_size=300))
def test_fair_slots_never_exceed_bounds(ops: list[tuple[str, bool]]) -> None:
    s: FairSlots[str, int] = FairSlots(max_total=5, max_per_key=2)
    held: list[int] = []
    for i, (key, release) in enumerate(ops):
        if release and held:
            s.release(held.pop(0))
        else:
            slot, _ = s.take(key, i)
            held.append(slot)
        assert len(s) <= 5 and all(s.count(k) <= 2 for k in "abcdefgh")
