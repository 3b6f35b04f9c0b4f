"""Interop with libtorrent (PyPI wheel) on 127.0.0.1: routing, get_peers/announce, BEP 44 both directions.

The libtorrent session bootstraps only from our testnet (``dht_bootstrap_nodes``), binds 127.0.0.1, and has
LSD, UPnP and NAT-PMP off: no traffic leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from peerdht.aio.mainline import MainlineTestnet
from peerdht.encoding.bencode import encode
from peerdht.mainline.crypto import KeyPair, immutable_target, mutable_target

lt = pytest.importorskip("libtorrent")

pytestmark = pytest.mark.interop


def lt_secret_key(seed: bytes) -> bytes:
    """libtorrent's 64-byte ed25519 secret key (orlp/ref10 expanded form) for a 32-byte seed."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


class LT:
    def __init__(self, ses: Any) -> None:
        self.ses = ses
        self.port: int = ses.listen_port()

    async def wait(self, pred: Callable[[Any], bool], timeout: float = 20.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for alert in self.ses.pop_alerts():
                if pred(alert):
                    return alert
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("libtorrent alert did not come")
            await loop.run_in_executor(None, self.ses.wait_for_alert, int(min(remaining, 0.2) * 1000))


@pytest.fixture
async def net() -> AsyncIterator[tuple[MainlineTestnet, LT]]:
    testnet = await MainlineTestnet.create(6)
    host, port = testnet.bootstrap[0]
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": f"{host}:{port}",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 100000,
        "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.dht_operation_notification,
    }
    ses = lt.session(settings)
    peer = LT(ses)
    try:
        await peer.wait(lambda a: isinstance(a, lt.dht_bootstrap_alert), 20)
        yield testnet, peer
    finally:
        ses.pause()
        del ses
        await testnet.close()


async def test_routing(net: tuple[MainlineTestnet, LT]) -> None:
    testnet, peer = net
    lt_addr = ("127.0.0.1", peer.port)
    async with contextlib.nullcontext(
        testnet.nodes[2]
    ) as dht:  # a long-lived node: libtorrent keeps querying it
        lt_id = await dht.ping(lt_addr)
        assert len(lt_id) == 20
        # libtorrent entered our routing tables (it answered our verification ping) ...
        assert any(lt_id in n.core.table for n in testnet.nodes)
        # ... and a lookup for its id ends at it
        nodes = await dht.find_node(lt_id)
        assert nodes[0].id == lt_id and nodes[0].addr == lt_addr
    # libtorrent knows our nodes
    peer.ses.dht_live_nodes(lt.sha1_hash(lt_id))
    alert = await peer.wait(lambda a: isinstance(a, lt.dht_live_nodes_alert))
    ours = {n.address()[1] for n in testnet.nodes}
    assert ours & {n["endpoint"][1] for n in alert.nodes}


async def test_get_peers_both_ways(net: tuple[MainlineTestnet, LT]) -> None:
    testnet, peer = net
    ih = random.Random(11).randbytes(20)
    peer.ses.dht_announce(lt.sha1_hash(ih), 6001, 0)
    await peer.wait(lambda a: isinstance(a, lt.dht_announce_alert) or "announce" in a.message().lower(), 20)
    async with contextlib.nullcontext(
        testnet.nodes[2]
    ) as dht:  # a long-lived node: libtorrent keeps querying it
        found: list[tuple[str, int]] = []
        for _ in range(20):  # libtorrent announces in the background: look until it landed
            found = [p async for p in dht.get_peers(ih)]
            if ("127.0.0.1", 6001) in found:
                break
            with contextlib.suppress(TimeoutError):  # let libtorrent work for a moment
                await peer.wait(lambda a: False, 0.25)
        assert ("127.0.0.1", 6001) in found

        ih2 = random.Random(12).randbytes(20)
        assert await dht.announce_peer(ih2, 6002) >= 4
    peer.ses.dht_get_peers(lt.sha1_hash(ih2))
    alert = await peer.wait(lambda a: isinstance(a, lt.dht_get_peers_reply_alert))
    assert ("127.0.0.1", 6002) in [tuple(p) for p in alert.peers()]


async def test_immutable_both_ways(net: tuple[MainlineTestnet, LT]) -> None:
    testnet, peer = net
    target = peer.ses.dht_put_immutable_item(b"from libtorrent")
    assert target.to_bytes() == immutable_target(encode(b"from libtorrent"))
    put = await peer.wait(lambda a: isinstance(a, lt.dht_put_alert))
    assert put.num_success >= 1
    async with contextlib.nullcontext(
        testnet.nodes[2]
    ) as dht:  # a long-lived node: libtorrent keeps querying it
        assert await dht.get(target.to_bytes()) == b"from libtorrent"
        ours = await dht.put(b"from peerdht")
    peer.ses.dht_get_immutable_item(lt.sha1_hash(ours))
    got = await peer.wait(lambda a: isinstance(a, lt.dht_immutable_item_alert))
    assert got.item == b"from peerdht"


async def test_mutable_both_ways(net: tuple[MainlineTestnet, LT]) -> None:
    testnet, peer = net
    seed = bytes(range(100, 132))
    kp = KeyPair.from_seed(seed)
    salt = b"salty"
    peer.ses.dht_put_mutable_item(lt_secret_key(seed), kp.public_key, b"lt v1", salt)
    put = await peer.wait(lambda a: isinstance(a, lt.dht_put_alert))
    assert put.num_success >= 1 and put.seq == 1
    async with contextlib.nullcontext(
        testnet.nodes[2]
    ) as dht:  # a long-lived node: libtorrent keeps querying it
        item = await dht.get_mutable(kp.public_key, salt)
        assert item is not None and item.v == b"lt v1" and item.seq == 1
        res = await dht.put_mutable(kp, b"py v2", salt=salt)
        assert res.seq == 2 and res.stored >= 1
        assert res.target == mutable_target(kp.public_key, salt)
    peer.ses.dht_get_mutable_item(kp.public_key, salt)
    got = await peer.wait(lambda a: isinstance(a, lt.dht_mutable_item_alert) and a.authoritative)
    assert got.item == b"py v2" and got.seq == 2
