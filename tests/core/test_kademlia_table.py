"""Tests for peerdht.kademlia.table: rows (dht-rpc) and BEP 5 splitting buckets."""

from __future__ import annotations

import os
import random
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import LocalProtocolError
from peerdht.kademlia import table as table_module
from peerdht.kademlia.ids import common_prefix_length, distance, random_id_in_bucket
from peerdht.kademlia.table import Contact, RoutingTable


def contact(id: bytes, port: int = 1000) -> Contact:
    return Contact(id, "10.0.0.1", port)


def id_with_prefix(local: bytes, cpl: int, rng: random.Random) -> bytes:
    return random_id_in_bucket(local, cpl, rng)


def brute_closest(table: RoutingTable, target: bytes, n: int) -> list[bytes]:
    return sorted((c.id for c in table), key=lambda i: distance(i, target))[:n]


# -- contact ---------------------------------------------------------------------------------


def test_contact_addr_and_mutability() -> None:
    c = Contact(b"\x01" * 32, "127.0.0.1", 4000)
    assert c.addr == ("127.0.0.1", 4000)
    c.seen = 5.0
    assert c.seen == 5.0
    assert (c.added, c.pinged) == (0.0, 0.0)


# -- row mode (kademlia-routing-table) ------------------------------------------------------


def test_rows_layout_and_bucket_index() -> None:
    local = bytes(32)
    t = RoutingTable(local)
    assert t.k == 20 and t.local_id == local
    assert t.bucket_count == 256
    assert t.bucket_index(b"\x80" + bytes(31)) == 0
    assert t.bucket_index(bytes(31) + b"\x01") == 255
    assert t.bucket_index(local) == 255  # as kademlia-routing-table _diff
    with pytest.raises(LocalProtocolError):
        t.bucket_index(bytes(20))


def test_add_sets_timestamps_and_refreshes() -> None:
    rng = random.Random(1)
    t = RoutingTable(rng.randbytes(32))
    c = contact(rng.randbytes(32))
    assert t.add(c, now=10.0) is None
    assert len(t) == 1 and c.id in t and t.get(c.id) is c
    assert (c.added, c.seen) == (10.0, 10.0)
    # re-adding a copy refreshes the stored object (seen, address), keeps `added`
    again = Contact(c.id, "10.9.9.9", 7)
    assert t.add(again, now=12.0) is None
    assert len(t) == 1 and t.get(c.id) is c
    assert (c.added, c.seen, c.addr) == (10.0, 12.0, ("10.9.9.9", 7))
    t.touch(c.id, 20.0)
    assert c.seen == 20.0
    t.touch(b"\x00" * 32, 21.0)  # unknown: ignored


def test_never_adds_local_id() -> None:
    local = random.Random(2).randbytes(32)
    t = RoutingTable(local)
    assert t.add(contact(local), 1.0) is None
    assert len(t) == 0 and local not in t


def test_wrong_length_id_rejected() -> None:
    t = RoutingTable(bytes(32))
    with pytest.raises(LocalProtocolError):
        t.add(contact(bytes(20)), 0.0)


def test_full_row_returns_least_recently_pinged_then_replace() -> None:
    rng = random.Random(3)
    local = rng.randbytes(32)
    t = RoutingTable(local, k=4)
    row = [contact(id_with_prefix(local, 0, rng), port=i + 1) for i in range(4)]
    for i, c in enumerate(row):
        assert t.add(c, now=float(i)) is None
    row[0].pinged, row[1].pinged, row[2].pinged, row[3].pinged = 5.0, 2.0, 7.0, 3.0
    newcomer = contact(id_with_prefix(local, 0, rng), port=99)
    victim = t.add(newcomer, now=10.0)
    assert victim is row[1]
    assert newcomer.id not in t and len(t) == 4
    # other rows are unaffected by a full row 0
    assert t.add(contact(id_with_prefix(local, 1, rng)), now=10.0) is None
    # victim dead: replace
    t.replace(victim.id, newcomer, now=11.0)
    assert victim.id not in t and newcomer.id in t
    assert newcomer.added == 11.0
    assert len(t.bucket(0)) == 4


def test_full_row_ties_broken_by_added() -> None:
    rng = random.Random(4)
    local = bytes(20)
    t = RoutingTable(local, k=3)
    cs = [contact(id_with_prefix(local, 2, rng)) for _ in range(3)]
    t.add(cs[2], 1.0)
    t.add(cs[0], 2.0)
    t.add(cs[1], 3.0)
    assert t.add(contact(id_with_prefix(local, 2, rng)), 4.0) is cs[2]


def test_full_row_alive_victim_touch() -> None:
    rng = random.Random(5)
    local = bytes(20)
    t = RoutingTable(local, k=2)
    a, b = (contact(id_with_prefix(local, 0, rng)) for _ in range(2))
    t.add(a, 1.0)
    t.add(b, 2.0)
    new = contact(id_with_prefix(local, 0, rng))
    victim = t.add(new, 3.0)
    assert victim is a
    victim.pinged = 3.0
    t.touch(victim.id, 3.5)  # it answered
    assert a.seen == 3.5
    # next time the other one is the least recently pinged
    assert t.add(new, 4.0) is b


def test_remove() -> None:
    rng = random.Random(6)
    t = RoutingTable(bytes(32))
    c = contact(rng.randbytes(32))
    t.add(c, 0.0)
    assert t.remove(c.id) is True
    assert t.remove(c.id) is False
    assert len(t) == 0 and t.get(c.id) is None
    assert t.closest(c.id) == []


def test_closest_matches_brute_force_large_table() -> None:
    rng = random.Random(7)
    local = rng.randbytes(32)
    t = RoutingTable(local, k=20)
    # a dense table: many ids close to local so that many rows fill
    for i in range(3000):
        cpl = min(int(rng.expovariate(0.25)), 255)
        t.add(contact(id_with_prefix(local, cpl, rng), port=i % 60000 + 1), now=float(i))
    assert len(t) > 200
    targets = [rng.randbytes(32) for _ in range(50)] + [local] + [next(iter(t)).id]
    targets += [id_with_prefix(local, c, rng) for c in range(0, 40, 3)]
    for target in targets:
        for n in (1, 8, 20, 100, 10_000):
            got = [c.id for c in t.closest(target, n)]
            assert got == brute_closest(t, target, n)
    assert len(t.closest(local)) == 20  # default n = k


def test_iter_len_contains() -> None:
    rng = random.Random(8)
    t = RoutingTable(bytes(20), k=8)
    ids = {rng.randbytes(20) for _ in range(30)}
    for i in ids:
        t.add(contact(i), 0.0)
    assert {c.id for c in t} == {i for i in ids if i in t}
    assert len(list(t)) == len(t)
    assert 42 not in t  # any object


def test_oldest() -> None:
    rng = random.Random(9)
    t = RoutingTable(bytes(32))
    cs = [contact(rng.randbytes(32)) for _ in range(10)]
    for i, c in enumerate(cs):
        t.add(c, now=100.0 - i)
    assert [c.seen for c in t.oldest(3)] == [91.0, 92.0, 93.0]
    assert t.oldest(0) == []
    assert len(t.oldest(100)) == 10


def test_stale_buckets_rows() -> None:
    rng = random.Random(10)
    local = bytes(32)
    t = RoutingTable(local, now=0.0)
    assert t.stale_buckets(1000.0, 900.0) == []  # empty table: nothing to refresh
    t.add(contact(id_with_prefix(local, 0, rng)), now=100.0)
    t.add(contact(id_with_prefix(local, 3, rng)), now=500.0)
    # rows 0..3 considered; rows 1, 2 never changed since creation
    assert t.stale_buckets(950.0, 900.0) == [1, 2]
    assert t.stale_buckets(1000.0, 900.0) == [0, 1, 2]
    assert t.stale_buckets(1400.0, 900.0) == [0, 1, 2, 3]
    t.mark_refreshed(1, 1400.0)
    assert t.stale_buckets(1400.0, 900.0) == [0, 2, 3]
    c = t.bucket(0)[0]
    t.touch(c.id, 1400.0)
    assert t.stale_buckets(1400.0, 900.0) == [2, 3]


def test_rebuild_new_local_id() -> None:
    rng = random.Random(11)
    old = rng.randbytes(32)
    t = RoutingTable(old, k=20)
    cs = [contact(rng.randbytes(32), port=i + 1) for i in range(300)]
    for i, c in enumerate(cs):
        t.add(c, now=float(i))
    before = {c.id: (c.added, c.seen) for c in t}
    new_local = cs[5].id if cs[5].id in t else rng.randbytes(32)
    t.rebuild(new_local)
    assert t.local_id == new_local
    assert new_local not in t
    for c in t:
        assert t.bucket_index(c.id) == min(common_prefix_length(new_local, c.id), 255)
        assert (c.added, c.seen) == before[c.id]  # timestamps preserved
    assert all(len(t.bucket(i)) <= 20 for i in range(t.bucket_count))
    assert {c.id for c in t} <= set(before)
    target = rng.randbytes(32)
    assert [c.id for c in t.closest(target)] == brute_closest(t, target, 20)
    with pytest.raises(LocalProtocolError):
        t.rebuild(bytes(20))


def test_rebuild_keeps_freshest_when_rows_overflow() -> None:
    rng = random.Random(12)
    t = RoutingTable(bytes(20), k=2)
    # 3 contacts in 3 different rows under the old id, all in row 0 under the new one
    new_local = b"\xff" * 20
    cs = [contact(id_with_prefix(bytes(20), i + 1, rng)) for i in range(3)]
    for i, c in enumerate(cs):
        t.add(c, now=float(i))
    t.rebuild(new_local)
    assert {c.id for c in t} == {cs[1].id, cs[2].id}


# -- split mode (BEP 5) ---------------------------------------------------------------------


def test_split_starts_with_one_bucket() -> None:
    t = RoutingTable(bytes(20), k=8, split=True)
    assert t.bucket_count == 1
    assert t.bucket_index(b"\xff" * 20) == 0
    assert t.bucket_index(bytes(19) + b"\x01") == 0


def test_split_far_bucket_does_not_split() -> None:
    """BEP 5: only the bucket covering our own id splits; a full far bucket stays full."""
    rng = random.Random(13)
    local = bytes(20)
    t = RoutingTable(local, k=8, split=True)
    far = [contact(id_with_prefix(local, 0, rng), port=i + 1) for i in range(8)]
    for c in far:
        assert t.add(c, 1.0) is None
    assert t.bucket_count == 1
    # 9th far contact: the single bucket covers local -> split into [cpl 0] and [cpl >= 1];
    # the far half is still full and does not split again.
    ninth = contact(id_with_prefix(local, 0, rng))
    victim = t.add(ninth, 2.0)
    assert victim is not None and victim in far
    assert t.bucket_count == 2
    assert len(t.bucket(0)) == 8 and len(t.bucket(1)) == 0
    for _ in range(20):
        assert t.add(contact(id_with_prefix(local, 0, rng)), 3.0) is not None
    assert t.bucket_count == 2 and len(t) == 8
    # near contacts go to the near bucket, which splits as it fills
    for i in range(40):
        t.add(contact(id_with_prefix(local, 1 + i % 6, rng)), 4.0)
    assert t.bucket_count > 2
    for i in range(t.bucket_count):
        assert len(t.bucket(i)) <= 8
        for c in t.bucket(i):
            cpl = common_prefix_length(local, c.id)
            assert cpl == i or (i == t.bucket_count - 1 and cpl >= i)


def test_split_bucket_holding_local_splits_repeatedly() -> None:
    """All k contacts deep in the local half: one add may split several times."""
    rng = random.Random(14)
    local = bytes(20)
    t = RoutingTable(local, k=8, split=True)
    for _ in range(8):
        t.add(contact(id_with_prefix(local, 10, rng)), 0.0)
    assert t.bucket_count == 1
    assert t.add(contact(id_with_prefix(local, 12, rng)), 1.0) is None
    assert len(t) == 9
    assert t.bucket_count == 12  # buckets 0..10 split off; the last covers cpl >= 11
    assert len(t.bucket(10)) == 8 and len(t.bucket(11)) == 1


def test_split_max_depth() -> None:
    """With 1-byte ids the last bucket stops splitting at depth 7."""
    t = RoutingTable(b"\x00", k=1, split=True)
    assert t.add(contact(b"\x01"), 0.0) is None
    assert t.add(contact(b"\x02"), 0.0) is None
    assert t.add(contact(b"\x03"), 0.0) is not None  # same bucket (cpl 6) as 0x02, full, far
    assert t.bucket_count == 8
    assert t.bucket_index(b"\x01") == 7


def test_split_replace_and_closest() -> None:
    rng = random.Random(15)
    local = rng.randbytes(20)
    t = RoutingTable(local, k=8, split=True)
    for i in range(2000):
        c = contact(rng.randbytes(20) if i % 2 else id_with_prefix(local, int(rng.expovariate(0.3)), rng))
        victim = t.add(c, float(i))
        if victim is not None and i % 3 == 0:
            t.replace(victim.id, c, float(i))
            assert c.id in t and victim.id not in t
    for _ in range(30):
        target = rng.randbytes(20)
        assert [c.id for c in t.closest(target, 8)] == brute_closest(t, target, 8)
    assert [c.id for c in t.closest(local, 1000)] == brute_closest(t, local, 1000)


def test_split_rebuild() -> None:
    rng = random.Random(16)
    t = RoutingTable(bytes(20), k=8, split=True)
    for i in range(200):
        t.add(contact(rng.randbytes(20)), float(i))
    n = len(t)
    new_local = rng.randbytes(20)
    t.rebuild(new_local)
    assert 0 < len(t) <= n
    for i in range(t.bucket_count):
        assert len(t.bucket(i)) <= 8
        for c in t.bucket(i):
            assert t.bucket_index(c.id) == i


def test_split_stale_buckets_includes_empty_buckets() -> None:
    rng = random.Random(17)
    local = bytes(20)
    t = RoutingTable(local, k=2, split=True, now=0.0)
    for _ in range(3):
        t.add(contact(id_with_prefix(local, 5, rng)), now=50.0)
    assert t.bucket_count > 1
    assert t.stale_buckets(60.0, 30.0) == []
    assert t.stale_buckets(100.0, 30.0) == list(range(t.bucket_count))


# -- properties ------------------------------------------------------------------------------


@settings(max_examples=int(os.environ.get("KAD_EXAMPLES", "80")), deadline=None)
@given(
    id_len=st.sampled_from([1, 2, 20]),
    k=st.integers(1, 6),
    split=st.booleans(),
    seed=st.integers(0, 2**32),
    n_add=st.integers(0, 120),
    n=st.integers(1, 40),
)
def test_property_closest_equals_brute_force(
    id_len: int, k: int, split: bool, seed: int, n_add: int, n: int
) -> None:
    rng = random.Random(seed)
    local = rng.randbytes(id_len)
    t = RoutingTable(local, k=k, split=split)
    for i in range(n_add):
        cpl = min(int(rng.expovariate(0.5)), 8 * id_len)
        id = id_with_prefix(local, cpl, rng) if i % 2 else rng.randbytes(id_len)
        victim = t.add(contact(id), float(i))
        if victim is not None and rng.random() < 0.3:
            t.replace(victim.id, contact(id), float(i))
        if rng.random() < 0.05 and len(t):
            t.remove(next(iter(t)).id)
    # invariants
    assert len(t) == len(list(t))
    for i in range(t.bucket_count):
        assert len(t.bucket(i)) <= k
        for c in t.bucket(i):
            assert t.bucket_index(c.id) == i
            assert c.id != local
    for target in (rng.randbytes(id_len), local):
        got = [c.id for c in t.closest(target, n)]
        assert got == brute_closest(t, target, n)
        with mock.patch.object(table_module, "_SORT_ALL_UP_TO", 0):  # the row walk, whatever the size
            got = [c.id for c in t.closest(target, n)]
        assert got == brute_closest(t, target, n)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), split=st.booleans())
def test_property_closest_tracks_membership_changes(seed: int, split: bool) -> None:
    # closest() caches the deepest non-empty bucket: interleave queries with adds, removes,
    # replaces and a rebuild so a stale cache would show
    rng = random.Random(seed)
    local = rng.randbytes(8)
    t = RoutingTable(local, k=3, split=split)
    for i in range(80):
        op = rng.random()
        if op < 0.55:
            cpl = min(int(rng.expovariate(0.3)), 63)
            victim = t.add(contact(id_with_prefix(local, cpl, rng)), float(i))
            if victim is not None and rng.random() < 0.5:
                t.replace(victim.id, contact(id_with_prefix(local, cpl, rng)), float(i))
        elif op < 0.85 and len(t):
            deepest = max(t, key=lambda c: t.bucket_index(c.id))
            t.remove(deepest.id if rng.random() < 0.7 else rng.choice(list(t)).id)
        elif op < 0.9:
            t.rebuild(rng.randbytes(8))
            local = t.local_id
        for target in (rng.randbytes(8), local):
            assert [c.id for c in t.closest(target, 5)] == brute_closest(t, target, 5)
            with mock.patch.object(table_module, "_SORT_ALL_UP_TO", 0):  # the row walk
                assert [c.id for c in t.closest(target, 5)] == brute_closest(t, target, 5)


def test_random_contact() -> None:
    rng = random.Random(18)
    t = RoutingTable(bytes(32))
    assert t.random(rng) is None
    cs = [contact(rng.randbytes(32)) for _ in range(5)]
    for c in cs:
        t.add(c, 0.0)
    picked = {t.random(rng).id for _ in range(200)}  # type: ignore[union-attr]
    assert picked == {c.id for c in cs}
