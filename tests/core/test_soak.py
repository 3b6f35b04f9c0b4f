"""A simulated day of steady load on one node of each profile: every table expires or is bounded.

The full soak (10,000 addresses, 2 clients/s) is ``bench/soak.py``; this is the same machinery at a lower
rate (~2,600 clients over 24 fake hours). Asserts state, never time.
"""

from __future__ import annotations

import pytest

from peerdht.kademlia.store import ExpiringCache
from peerdht.testing.soak import Soak, container_sizes

pytestmark = pytest.mark.soak

HOURS = 24.0


def caches(obj: object, path: str = "", depth: int = 3) -> dict[str, ExpiringCache[object, object]]:
    """Every ExpiringCache reachable through peerdht objects' attributes, by dotted path."""
    out: dict[str, ExpiringCache[object, object]] = {}
    for name in dir(obj):
        if name.startswith("__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if isinstance(value, ExpiringCache):
            out[path + name] = value
        elif depth > 0 and type(value).__module__.startswith("peerdht.") and not callable(value):
            out.update(caches(value, f"{path}{name}.", depth - 1))
    return out


@pytest.mark.parametrize("profile", ["mainline", "hyper"])
def test_a_simulated_day_leaves_bounded_state(profile: str) -> None:
    soak = Soak(profile, addresses=2_000, rate=0.03, seed=5)
    samples = soak.run(HOURS, sample_every=3600.0)
    now = soak.net.now
    assert soak.done > 2_000 and soak.failed < soak.done // 20
    node = soak.node
    found = caches(node)
    assert found, "no store found on the node"
    for path, cache in found.items():
        assert len(cache) <= cache.max_size, path
        for key in list(cache._data):
            stored = cache.stored_at(key)
            assert stored is not None
            # expired entries are pruned by periodic maintenance, at most a tick late
            assert now - stored < cache.max_age + 60.0, (path, now - stored, cache.max_age)
    sizes = container_sizes(node)
    # nothing in flight at the end of a quiet moment, and no per-address table keeps 2,000 hosts
    for path, n in sizes.items():
        assert n < 1_000, (path, n)
    # memory is flat once every store with a lifetime under 12 h has turned over: compare hour 12 and 24
    # (HyperDHT keeps mutable/immutable records 48 h, as hyperdht does: those are bounded by size above)
    long_lived = ("storage.mutables", "storage.immutables")
    mid = next(s for s in samples if s.t >= 12 * 3600)
    end = samples[-1]
    for path, n in end.sizes.items():
        if path.startswith(long_lived):
            continue
        assert n <= 1.5 * mid.sizes.get(path, 0) + 16, (path, mid.sizes.get(path), n)
