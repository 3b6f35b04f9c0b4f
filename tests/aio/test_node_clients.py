"""A long-lived HyperDHT node keeps no state for clients that came and went (issue 14 item 4).

The simulated soak (``tests/core/test_soak.py``) bounds the sans-IO core's tables; this runs the asyncio
layer too: a persistent node on 127.0.0.1 (what ``peerdht node --persistent`` runs) serves short-lived client
nodes, each bound to its own loopback address, one operation each (announce, lookup, mutable put,
mutable get, as ``bench/soak_live.py`` does), over a workload small enough that the warm-up fills the
stores. After more clients the node's containers (op table, futures, tasks, request table, router,
UDX streams, reactor deadlines, stores, ...) have the lengths they had after the warm-up, and no type of
peerdht or asyncio object has multiplied: a leak of one entry per client shows as +CLIENTS or
+CLIENTS/4. The process-wide address memos (``encoding/compact.py``, ``hyper/rpc_requests.py``) are
bounded by their own size and not part of the node.
"""

from __future__ import annotations

import asyncio
import collections
import gc

from peerdht.aio.hyperdht import HyperDHT
from peerdht.hyper.crypto import KeyPair
from peerdht.testing.soak import container_sizes

TIMEOUT = 30
WARM_UP = 16  # every (topic, key) announce and both mutable keys once
CLIENTS = 200
SLACK = 4  # per object type: a timer or a reply in flight, never one per client


def _objects() -> collections.Counter[str]:
    """Live peerdht and asyncio objects by type; not the cancelled timer handles the loop drops lazily (at
    their deadline, or all at once when they outnumber the live ones): here mostly the test's own
    ``wait_for`` timeouts. A type's ``__module__`` is not always a str: a fresh-clone CI run met one whose
    ``__module__`` was a getset descriptor (which type, or whether the compiled build made it, was not found:
    not reproduced in tests/aio alone, pure or compiled); such types are not counted."""
    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        module = getattr(type(o), "__module__", None)
        if not isinstance(module, str) or not module.startswith(("peerdht", "asyncio", "_asyncio")):
            continue
        if isinstance(o, asyncio.TimerHandle) and o.cancelled():
            continue
        counts[f"{module}.{type(o).__qualname__}"] += 1
    return counts


async def test_clients_that_came_and_went_leave_nothing_on_the_node() -> None:
    node = HyperDHT(host="127.0.0.1", ephemeral=False, firewalled=False, public_host="127.0.0.1")
    async with node:
        await asyncio.wait_for(node.fully_bootstrapped(), TIMEOUT)
        assert not node.ephemeral
        boot = [node.local_address()]
        topics = [bytes([t]) * 32 for t in (1, 2)]
        keys = [KeyPair.from_seed(bytes([k]) * 32) for k in (1, 2)]
        seq = 0

        async def client(i: int) -> None:
            nonlocal seq
            topic, kp = topics[(i // 4) % 2], keys[(i // 8) % 2]
            dht = HyperDHT(bootstrap=boot, host=f"127.4.{i // 250}.{i % 250 + 1}", ephemeral=True)
            async with dht:
                await dht.fully_bootstrapped()
                if i % 4 == 0:
                    assert await dht.announce(topic, kp) == 1
                elif i % 4 == 1:
                    async for _ in dht.lookup(topic):
                        pass
                elif i % 4 == 2:
                    seq += 1
                    await dht.mutable_put(kp, b"value %d" % seq, seq=seq)
                else:
                    await dht.mutable_get(kp.public_key)

        async def clients(start: int, n: int) -> None:
            for i in range(start, start + n, 8):
                batch = [client(k) for k in range(i, min(i + 8, start + n))]
                await asyncio.wait_for(asyncio.gather(*batch), TIMEOUT)

        await clients(0, WARM_UP)
        await asyncio.sleep(0)
        sizes, objects = container_sizes(node, depth=5), _objects()
        await clients(WARM_UP, CLIENTS)
        await asyncio.sleep(0)
        sizes_after, objects_after = container_sizes(node, depth=5), _objects()

    grown = {k: (v, sizes_after.get(k)) for k, v in sizes.items() if sizes_after.get(k) != v}
    assert not grown, grown
    assert sizes_after.keys() == sizes.keys()
    more = {k: (objects[k], n) for k, n in objects_after.items() if n > objects[k] + SLACK}
    assert not more, more
