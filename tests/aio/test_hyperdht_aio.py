"""The asyncio HyperDHT on a Python testnet (loopback, port 0)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerdht.aio.hyperdht import HyperDHT
from peerdht.aio.hyperdht.testnet import Testnet
from peerdht.errors import LocalProtocolError, RemoteError
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256
from peerdht.hyper.messages import Request, encode_request

TIMEOUT = 20


@pytest.fixture
async def testnet() -> AsyncIterator[Testnet]:
    net = await asyncio.wait_for(Testnet.create(8), TIMEOUT)
    yield net
    await net.destroy()


async def _client(testnet: Testnet) -> HyperDHT:
    dht = testnet.node()
    await dht.open()
    await asyncio.wait_for(dht.fully_bootstrapped(), TIMEOUT)
    return dht


async def test_testnet_nodes_are_persistent_and_know_each_other(testnet: Testnet) -> None:
    for node in testnet.nodes:
        assert not node.ephemeral
        assert node.id == blake2b256(bytes([127, 0, 0, 1]) + node.local_address()[1].to_bytes(2, "little"))
    assert len(testnet.nodes[0].to_array()) >= 5


async def test_announce_lookup_unannounce(testnet: Testnet) -> None:
    alice, bob = await _client(testnet), await _client(testnet)
    kp = KeyPair.from_seed(os.urandom(32))
    topic = blake2b256(b"aio announce")
    relay = ("127.0.0.1", 4000)
    assert await asyncio.wait_for(alice.announce(topic, kp, [relay]), TIMEOUT) >= 1

    peers = {}
    async for reply in bob.lookup(topic):
        for p in reply.peers:
            peers[p.public_key] = p.relay_addresses
    assert peers[kp.public_key] == (relay,)

    await asyncio.wait_for(alice.unannounce(topic, kp), TIMEOUT)
    found = set()
    async for reply in bob.lookup(topic):
        found.update(p.public_key for p in reply.peers)
    assert kp.public_key not in found


async def test_lookup_can_stop_early(testnet: Testnet) -> None:
    alice = await _client(testnet)
    topic = blake2b256(b"early stop")
    await alice.announce(topic, KeyPair.generate())
    async for _reply in alice.lookup(topic):
        break
    # the node still works after an abandoned lookup
    assert await asyncio.wait_for(alice.immutable_put(b"x"), TIMEOUT) == blake2b256(b"x")


async def test_records(testnet: Testnet) -> None:
    alice, bob = await _client(testnet), await _client(testnet)
    digest = await asyncio.wait_for(alice.immutable_put(b"immutable"), TIMEOUT)
    assert await asyncio.wait_for(bob.immutable_get(digest), TIMEOUT) == b"immutable"
    assert await asyncio.wait_for(bob.immutable_get(blake2b256(b"never stored")), TIMEOUT) is None

    kp = KeyPair.generate()
    await asyncio.wait_for(alice.mutable_put(kp, b"one", seq=1), TIMEOUT)
    await asyncio.wait_for(alice.mutable_put(kp, b"two", seq=2), TIMEOUT)
    rec = await asyncio.wait_for(bob.mutable_get(kp.public_key), TIMEOUT)
    assert rec is not None and (rec.seq, rec.value) == (2, b"two")
    with pytest.raises(RemoteError) as info:
        await asyncio.wait_for(alice.mutable_put(kp, b"older", seq=1), TIMEOUT)
    assert info.value.code == RemoteError.SEQ_TOO_LOW
    assert await asyncio.wait_for(bob.mutable_get(KeyPair.generate().public_key), TIMEOUT) is None


async def test_api_misuse_is_a_local_error(testnet: Testnet) -> None:
    dht = testnet.node()
    with pytest.raises(LocalProtocolError):
        await dht.immutable_get(bytes(32))  # not open
    await dht.open()
    with pytest.raises(LocalProtocolError):
        await dht.lookup(b"short").__anext__()
    await dht.destroy()
    with pytest.raises(LocalProtocolError):
        await dht.immutable_get(bytes(32))


def _garbage_datagrams(rng: random.Random) -> list[bytes]:
    valid = encode_request(
        Request(tid=7, to=("127.0.0.1", 1), id=None, token=None, internal=True, command=0, target=None, value=None)
    )
    out = [b"", b"\x03", b"\x13", b"\xff\x01", bytes(2000), b"\x03" + bytes(30), valid[:-1], valid + b"x"]
    for _ in range(300):
        kind = rng.randrange(4)
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(1, 200)))
        elif kind == 1:
            out.append(bytes([rng.choice([0x03, 0x13])]) + rng.randbytes(rng.randrange(0, 120)))
        elif kind == 2:
            b = bytearray(valid)
            b[rng.randrange(len(b))] = rng.randrange(256)
            out.append(bytes(b))
        else:
            out.append(valid[: rng.randrange(len(valid))])
    return out


async def test_malformed_barrage_then_ping(testnet: Testnet) -> None:
    target = testnet.nodes[1]
    addr = target.local_address()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data in _garbage_datagrams(random.Random(1)):
            sock.sendto(data, addr)
    finally:
        sock.close()
    client = await _client(testnet)
    reply = await asyncio.wait_for(client.ping(addr), TIMEOUT)
    assert reply.id == target.id
    dropped = target.stats["dropped"]
    assert sum(dropped.values()) > 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=20))
def test_arbitrary_datagrams_never_stop_a_node(datagrams: list[bytes]) -> None:
    async def run() -> None:
        async with HyperDHT(host="127.0.0.1", ephemeral=False, firewalled=False, public_host="127.0.0.1") as node:
            await node.fully_bootstrapped()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for d in datagrams:
                sock.sendto(d, node.local_address())
            sock.close()
            async with HyperDHT(host="127.0.0.1", bootstrap=[node.local_address()], ephemeral=True) as c:
                await asyncio.wait_for(c.fully_bootstrapped(), TIMEOUT)
                await asyncio.wait_for(c.ping(node.local_address()), TIMEOUT)

    asyncio.run(run())


async def test_close_cancels_the_nodes_background_tasks(testnet: Testnet) -> None:
    """Background tasks (relay holders, relay -> direct upgrades) belong to the node: close() ends them
    (issue 13: no module-global task sets that outlive destroy())."""
    dht = await _client(testnet)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = dht.spawn(asyncio.wait_for(never, 3600))
    cleaned: list[str] = []

    async def with_cleanup() -> None:
        try:
            await asyncio.wait_for(never, 3600)
        finally:
            await asyncio.sleep(0)  # cleanup that takes a loop turn still runs before close() returns
            cleaned.append("done")

    other = dht.spawn(with_cleanup())
    await asyncio.sleep(0)
    await dht.close()
    assert task.done() and task.cancelled()  # ended by the time close() returns, not just asked to
    assert other.done() and cleaned == ["done"]
