"""Tests for peerdht.kademlia.store: ExpiringCache expiry and size bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.kademlia.store import ExpiringCache


def test_get_put_delete() -> None:
    c: ExpiringCache[bytes, str] = ExpiringCache(max_size=10, max_age=60.0)
    assert c.get(b"a", 0.0) is None
    c.put(b"a", "A", 0.0)
    assert c.get(b"a", 1.0) == "A"
    assert b"a" in c and len(c) == 1
    assert c.stored_at(b"a") == 0.0
    c.delete(b"a")
    c.delete(b"a")  # absent: fine
    assert c.get(b"a", 1.0) is None and len(c) == 0
    assert c.stored_at(b"a") is None


def test_expiry_and_renewal() -> None:
    c: ExpiringCache[str, int] = ExpiringCache(max_size=10, max_age=10.0)
    c.put("x", 1, now=100.0)
    assert c.get("x", 109.999) == 1
    assert c.get("x", 110.0) is None  # lifetime is [put, put + max_age)
    assert "x" not in c  # dropped on read
    c.put("y", 2, now=100.0)
    c.put("y", 3, now=105.0)  # overwrite renews
    assert c.get("y", 114.0) == 3
    assert c.get("y", 115.0) is None


def test_size_bound_evicts_least_recently_put() -> None:
    c: ExpiringCache[int, int] = ExpiringCache(max_size=3, max_age=100.0)
    for i in range(3):
        c.put(i, i, float(i))
    c.put(0, 0, 3.0)  # renew 0: now 1 is the oldest
    c.put(3, 3, 4.0)
    assert len(c) == 3
    assert c.get(1, 4.0) is None
    assert [k for k, _ in c.items(4.0)] == [2, 0, 3]


def test_prune_and_items() -> None:
    c: ExpiringCache[int, str] = ExpiringCache(max_size=100, max_age=5.0)
    for i in range(10):
        c.put(i, str(i), float(i))
    assert c.prune(4.0) == 0
    assert c.prune(7.0) == 3  # 0, 1, 2 (put at <= 2.0)
    assert len(c) == 7
    assert c.items(9.0) == [(5, "5"), (6, "6"), (7, "7"), (8, "8"), (9, "9")]
    assert c.prune(100.0) == 5 and len(c) == 0


def test_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        ExpiringCache(max_size=0, max_age=1.0)
    with pytest.raises(LocalProtocolError):
        ExpiringCache(max_size=1, max_age=0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.floats(0, 4)), max_size=100), st.integers(1, 8))
def test_property_matches_model(ops: list[tuple[int, float]], max_size: int) -> None:
    """Against a dict model: live entries are the last max_size puts younger than max_age."""
    c: ExpiringCache[int, float] = ExpiringCache(max_size=max_size, max_age=5.0)
    now = 0.0
    model: dict[int, float] = {}  # key -> time put (latest)
    for key, dt in ops:
        now += dt
        c.put(key, now, now)
        model.pop(key, None)
        model[key] = now
        while len(model) > max_size:
            del model[next(iter(model))]
        assert len(c) <= max_size
        probe = (key * 7) % 16
        expected = model.get(probe)
        if expected is not None and now - expected >= 5.0:
            expected = None
        assert c.get(probe, now) == expected
        if expected is None:
            model.pop(probe, None)
    live = [(k, t) for k, t in model.items() if now - t < 5.0]
    assert c.items(now) == live
