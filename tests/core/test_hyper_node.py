"""HyperDHT node core on an in-memory network: bootstrap, queries, announce/lookup, records."""

from __future__ import annotations

import random

import pytest
from test_hyper_node_fakenet import FakeNet, Member

from peerdht.errors import RemoteError, RequestError
from peerdht.hyper.crypto import KeyPair, node_id
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.events import LookupResult, MutablePutResult, MutableRecord
from peerdht.kademlia.ids import distance


def kp(i: int) -> KeyPair:
    return KeyPair.from_seed(bytes([i]) * 32)


@pytest.fixture(scope="module")
def net30() -> tuple[FakeNet, list[Member]]:
    net = FakeNet(seed=30)
    members = net.testnet(30)
    net.run_for(10)
    return net, members


def results(m: Member, op: int) -> list[LookupResult]:
    return [e for e in m.events if isinstance(e, LookupResult) and e.op == op]


def test_thirty_nodes_bootstrap_persistent(net30: tuple[FakeNet, list[Member]]) -> None:
    _, members = net30
    for m in members:
        assert m.node.bootstrapped
        assert not m.node.ephemeral
        assert m.node.id == node_id(*m.server)
        assert len(m.node.table) >= 10
    assert all(m.node.stats["dropped"].get("internal_error", 0) == 0 for m in members)  # type: ignore[attr-defined]


def test_find_node_converges(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    rng = random.Random(5)
    for _ in range(3):
        target = rng.randbytes(32)
        asker = members[rng.randrange(len(members))]
        op = asker.node.find_node(target, net.now)
        net.run_until(lambda asker=asker, op=op: asker.result(op) is not None)  # type: ignore[misc]
        found = asker.done(op)
        assert isinstance(found, list)
        ids = {c.id for c in found}
        expected = sorted(
            (m.node.id for m in members if m is not asker and m.node.id is not None),
            key=lambda i: distance(i, target),
        )[:20]
        assert len(found) == 20
        # the true 20 closest (other than the asker itself) are found
        assert set(expected) <= ids | {asker.node.id}


def test_announce_then_lookup_from_another_node(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    topic = blake2b(b"topic one")
    a, b = members[3], members[17]
    key = kp(1)
    op = a.node.announce(topic, key, [("10.1.2.3", 4000)], net.now)
    net.run_until(lambda: a.result(op) is not None)
    stored = a.done(op)
    assert isinstance(stored, int) and stored >= 15

    op = b.node.lookup(topic, net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert b.done(op) is None
    res = results(b, op)
    assert len(res) >= 10
    for r in res:
        assert [p.public_key for p in r.peers] == [key.public_key]
        assert r.peers[0].relay_addresses == (("10.1.2.3", 4000),)

    # unannounce removes it everywhere
    op = a.node.unannounce(topic, key, net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert a.done(op) >= 15  # type: ignore[operator]
    op = b.node.lookup(topic, net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert results(b, op) == []


def test_self_announce_goes_to_router_and_find_peer(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    a, b = members[5], members[20]
    key = kp(2)
    target = blake2b(key.public_key)
    op = a.node.announce(target, key, [a.server], net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert a.done(op) >= 15  # type: ignore[operator]
    holders = [m for m in members if m.node.storage.router.get(target, net.now) is not None]
    assert len(holders) >= 15
    assert all(len(m.node.storage.records) == 0 or True for m in holders)
    fwd = holders[0].node.storage.router.get(target, net.now)
    assert fwd is not None and fwd.relay == (a.server if not a.node.firewalled else a.client)

    op = b.node.find_peer(key.public_key, net.now)
    net.run_until(lambda: b.result(op) is not None)
    res = results(b, op)
    assert len(res) >= 10
    assert all(r.peers[0].public_key == key.public_key for r in res)
    # LOOKUP of the same target also lists it (persistent.js onlookup appends the forward)
    op = b.node.lookup(target, net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert results(b, op)


def test_mutable_put_get_seq_rules(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    a, b = members[7], members[25]
    key = kp(3)

    op = a.node.mutable_put(key, b"v1", 1, net.now)
    net.run_until(lambda: a.result(op) is not None)
    put = a.done(op)
    assert isinstance(put, MutablePutResult) and put.seq == 1 and put.stored >= 15

    op = b.node.mutable_get(key.public_key, net.now)
    net.run_until(lambda: b.result(op) is not None)
    got = b.done(op)
    assert isinstance(got, MutableRecord) and (got.seq, got.value) == (1, b"v1")

    # same seq, other value -> SEQ_REUSED (16)
    op = a.node.mutable_put(key, b"other", 1, net.now)
    net.run_until(lambda: a.result(op) is not None)
    err = a.failed(op)
    assert isinstance(err, RemoteError) and err.code == 16

    # lower seq -> SEQ_TOO_LOW (17)
    op = a.node.mutable_put(key, b"old", 0, net.now)
    net.run_until(lambda: a.result(op) is not None)
    err = a.failed(op)
    assert isinstance(err, RemoteError) and err.code == 17

    # same seq same value is fine; higher seq replaces
    op = a.node.mutable_put(key, b"v2", 2, net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert a.done(op).seq == 2  # type: ignore[attr-defined]
    op = b.node.mutable_get(key.public_key, net.now, latest=False)
    net.run_until(lambda: b.result(op) is not None)
    got = b.done(op)
    assert isinstance(got, MutableRecord) and (got.seq, got.value) == (2, b"v2")

    # asking for a seq above what exists finds nothing
    op = b.node.mutable_get(key.public_key, net.now, seq=3)
    net.run_until(lambda: b.result(op) is not None)
    assert b.done(op) is None


def test_immutable_put_get(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    a, b = members[9], members[28]
    value = b"hello immutable world"
    op = a.node.immutable_put(value, net.now)
    net.run_until(lambda: a.result(op) is not None)
    h = a.done(op)
    assert h == blake2b(value)
    op = b.node.immutable_get(h, net.now)  # type: ignore[arg-type]
    net.run_until(lambda: b.result(op) is not None)
    assert b.done(op) == value
    op = b.node.immutable_get(blake2b(b"missing"), net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert b.done(op) is None


def test_immutable_get_rejects_wrong_value(net30: tuple[FakeNet, list[Member]]) -> None:
    net, members = net30
    # a node that stores garbage under a hash cannot fool the getter
    h = blake2b(b"genuine")
    for m in members:
        m.node.storage.immutables.put(h, b"forged", net.now)
    b = members[2]
    op = b.node.immutable_get(h, net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert b.done(op) is None
    for m in members:
        m.node.storage.immutables.delete(h)


def test_query_without_nodes_fails_commit() -> None:
    net = FakeNet()
    a = net.add()
    op = a.node.immutable_put(b"x", net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert isinstance(a.failed(op), RequestError)


def test_ephemeral_node_serves_no_records() -> None:
    net = FakeNet(seed=3)
    members = net.testnet(5)
    eph = net.add(bootstrap=[members[0].server], ephemeral=True, firewalled=True)
    op = eph.node.bootstrap(net.now)
    net.run_until(lambda: eph.result(op) is not None)
    assert eph.node.ephemeral and eph.node.id is None
    assert not eph.node.firewalled  # the quick firewall check still runs (dht-rpc)
    # nobody adds an ephemeral node to its table
    for m in members:
        assert eph.node.table.local_id not in m.node.table
        assert all(c.addr not in (eph.server, eph.client) for c in m.node.table)
    # storage commands get UNKNOWN_COMMAND from it
    from peerdht.hyper.constants import Command
    from peerdht.hyper.messages import Request, Response, decode_message, encode_request

    probe = members[1]
    req = Request(tid=77, to=eph.server, command=Command.LOOKUP, target=blake2b(b"t"))
    eph.node.receive_datagram(encode_request(req), probe.client, net.now, 0)
    out = eph.node.datagrams_to_send(net.now)
    assert len(out) == 1
    reply = decode_message(out[0][0])
    assert isinstance(reply, Response) and reply.error == 1 and reply.id is None
    # and a mutable put through the network never lands on it
    key = kp(4)
    op = eph.node.mutable_put(key, b"x", 0, net.now)
    net.run_until(lambda: eph.result(op) is not None)
    assert eph.done(op).stored >= 4  # type: ignore[attr-defined]
    assert len(eph.node.storage.mutables) == 0


def test_lossy_network_announce_lookup() -> None:
    net = FakeNet(seed=12, loss=0.15)
    members = net.testnet(25)
    a, b = members[4], members[19]
    topic = blake2b(b"lossy")
    key = kp(9)
    op = a.node.announce(topic, key, [], net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert a.done(op) >= 10  # type: ignore[operator]
    op = b.node.lookup(topic, net.now)
    net.run_until(lambda: b.result(op) is not None)
    assert len(results(b, op)) >= 5
    assert all(m.node.stats["dropped"].get("internal_error", 0) == 0 for m in members)  # type: ignore[attr-defined]


def test_query_does_not_wait_for_dead_nodes_once_k_replied() -> None:
    net = FakeNet(seed=15)
    members = net.testnet(30)
    target = blake2b(b"dead ones")
    asker = members[0]
    # the asker believes in 3 nodes right next to the target that do not exist
    ghosts = []
    i = 0
    while len(ghosts) < 3:
        i += 1
        addr = (f"10.200.{i // 250}.{i % 250 + 1}", 9000)
        if node_id(*addr)[0] == target[0]:
            ghosts.append(addr)
            asker.node.add_node(addr, net.now)
    start = net.now
    op = asker.node.find_node(target, net.now)
    net.run_until(lambda: asker.result(op) is not None)
    found = asker.done(op)
    assert isinstance(found, list) and len(found) == 20
    # query.js: requests that timed out once no longer hold the query back once k replied
    assert net.now - start < 1.5
