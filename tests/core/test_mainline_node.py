"""The sans-IO Mainline node: many nodes on a fake network with an explicit clock."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.encoding.bencode import decode, encode
from peerdht.errors import LocalProtocolError, RemoteError, RequestError, RequestTimeout
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import KeyPair, immutable_target, mutable_target, sign_mutable
from peerdht.mainline.events import (
    AnnounceResult,
    Bootstrapped,
    GetResult,
    Item,
    LookupResult,
    OpDone,
    OpFailed,
    PeersFound,
    PingResult,
    PutResult,
    SampleResult,
)
from peerdht.mainline.node import MainlineNode
from peerdht.testing import FakeNet as Net

Addr = tuple[str, int]


class FakeNet:
    """Nodes at 127.0.0.x:6881 on :class:`peerdht.testing.FakeNet` (fixed latency, in order)."""

    def __init__(self, seed: int = 1, latency: float = 0.001) -> None:
        self.net = Net(random.Random(seed), delay=latency, start=0.0)
        self.rng = random.Random(seed)
        self.nodes: dict[Addr, MainlineNode] = {}
        self.events = self.net.events
        self.dead = self.net.down
        self.sniffed: list[tuple[bytes, Addr, Addr]] = []
        self.net.tap = lambda data, src, dst: self.sniffed.append((data, src, dst))

    @property
    def now(self) -> float:
        return self.net.now

    def add(self, **kwargs: Any) -> tuple[Addr, MainlineNode]:
        addr = (f"127.0.{len(self.nodes) // 250}.{len(self.nodes) % 250 + 1}", 6881)
        kwargs.setdefault("rate_limit", None)
        node = MainlineNode(rng=random.Random(self.rng.getrandbits(64)), now=self.now, **kwargs)
        self.nodes[addr] = node
        self.net.add(addr, node, events=True)
        return addr, node

    def flush(self, addr: Addr) -> None:
        self.net.collect(addr)

    def inject(self, data: bytes, src: Addr, dest: Addr) -> None:
        self.net.inject(data, src, dest)

    def run(self, until: float | None = None) -> None:
        """Deliver datagrams and fire request timers until nothing is in flight (or ``until``)."""
        self.net.settle(lambda node: len(node.requests) > 0, until=until)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every node's timer (maintenance) on the way."""
        self.net.run_for(seconds)

    def result(self, addr: Addr, op: int) -> object:
        for ev in self.events[addr]:
            if isinstance(ev, (OpDone, OpFailed)) and ev.op == op:
                return ev.result if isinstance(ev, OpDone) else ev.error
        raise AssertionError(f"op {op} of {addr} did not finish")

    def do(self, addr: Addr, method: str, *args: Any, **kwargs: Any) -> Any:
        node = self.nodes[addr]
        op = getattr(node, method)(*args, self.now, **kwargs)
        self.net.touch(addr)
        self.run()
        return self.result(addr, op)


def network(n: int, seed: int = 1, **kwargs: Any) -> FakeNet:
    net = FakeNet(seed)
    first, _ = net.add(**kwargs)
    for _ in range(n - 1):
        net.add(bootstrap=[first], **kwargs)
    for addr in list(net.nodes)[1:]:
        net.do(addr, "bootstrap")
    # a second round so early nodes learn of later ones
    for addr in list(net.nodes)[: n // 2]:
        net.do(addr, "bootstrap")
    return net


def query(net: FakeNet, dest: Addr, wire: bytes, src: Addr = ("127.9.9.9", 1234)) -> dict[bytes, Any]:
    """Send raw bytes to ``dest`` and return the decoded reply to ``src``."""
    start = len(net.sniffed)
    net.inject(wire, src, dest)
    net.run()
    replies = [d for d, s, to in net.sniffed[start:] if to == src and b"1:y1:q" not in d]
    assert len(replies) == 1, replies
    out = decode(replies[0], sorted_keys=True)
    assert isinstance(out, dict)
    return out


def q(method: str, a: dict[bytes, Any], t: bytes = b"tt") -> bytes:
    return encode({b"t": t, b"y": b"q", b"q": method.encode(), b"a": a})


def test_ping_and_bootstrap() -> None:
    net = FakeNet()
    a, na = net.add()
    b, nb = net.add(bootstrap=[a])
    res = net.do(b, "ping", a)
    assert res == PingResult(id=na.id, addr=a)
    net.do(b, "bootstrap")
    assert any(isinstance(e, Bootstrapped) for e in net.events[b])
    assert na.id in nb.table
    # a pinged b back (querier verification) and added it
    assert nb.id in na.table


def test_lookup_finds_announced_peer() -> None:
    net = network(40)
    addrs = list(net.nodes)
    ih = bytes(range(20))
    res = net.do(addrs[5], "announce_peer", ih, 7777)
    assert isinstance(res, AnnounceResult)
    assert res.stored >= 6
    res2 = net.do(addrs[30], "get_peers", ih)
    assert isinstance(res2, LookupResult)
    assert (addrs[5][0], 7777) in res2.peers
    found = [e for e in net.events[addrs[30]] if isinstance(e, PeersFound)]
    assert found and (addrs[5][0], 7777) in found[0].peers
    # stored on the nodes closest to the info hash
    holders = [a for a, n in net.nodes.items() if n.peers.get(ih, net.now) is not None]
    closest = sorted(
        net.nodes.items(), key=lambda kv: int.from_bytes(kv[1].id, "big") ^ int.from_bytes(ih, "big")
    )
    assert {a for a, _ in closest[:3]} <= set(holders)
    # implied port: the UDP source port is stored
    net.do(addrs[6], "announce_peer", ih, 0, implied_port=True)
    res3 = net.do(addrs[31], "get_peers", ih)
    assert (addrs[6][0], 6881) in res3.peers


def test_find_node_converges() -> None:
    net = network(60, seed=3)
    addrs = list(net.nodes)
    target = net.nodes[addrs[42]].id
    res = net.do(addrs[1], "find_node", target)
    assert isinstance(res, LookupResult)
    assert res.nodes[0].id == target
    ids = sorted(
        (n.id for n in net.nodes.values()),
        key=lambda i: int.from_bytes(i, "big") ^ int.from_bytes(target, "big"),
    )
    assert [n.id for n in res.nodes] == ids[:8]


def test_immutable_put_get() -> None:
    net = network(30, seed=4)
    addrs = list(net.nodes)
    res = net.do(addrs[3], "put", b"Hello World!")
    assert isinstance(res, PutResult)
    assert res.target.hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"
    assert res.stored >= 6
    got = net.do(addrs[20], "get", res.target)
    assert got.item == Item(v=b"Hello World!")
    missing = net.do(addrs[20], "get", b"\x01" * 20)
    assert missing == GetResult(item=None)


def test_mutable_put_get_seq_cas_salt() -> None:
    net = network(30, seed=5)
    addrs = list(net.nodes)
    kp = KeyPair.from_seed(bytes(32))
    r1 = net.do(addrs[2], "put_mutable", kp, b"one", salt=b"foobar")
    assert r1.seq == 1 and r1.stored >= 6
    assert r1.target == mutable_target(kp.public_key, b"foobar")
    r2 = net.do(addrs[9], "put_mutable", kp, b"two", salt=b"foobar")
    assert r2.seq == 2 and r2.stored >= 6
    got = net.do(addrs[25], "get_mutable", kp.public_key, salt=b"foobar")
    assert got.item is not None and got.item.v == b"two" and got.item.seq == 2
    # unsalted is another item
    assert net.do(addrs[25], "get_mutable", kp.public_key).item is None
    # stale seq: every storer refuses with 302
    r3 = net.do(addrs[4], "put_mutable", kp, b"old", salt=b"foobar", seq=1)
    assert r3.stored == 0 and set(r3.errors) == {m.ERROR_SEQ_TOO_LOW}
    # cas mismatch: 301
    r4 = net.do(addrs[4], "put_mutable", kp, b"three", salt=b"foobar", seq=3, cas=1)
    assert r4.stored == 0 and set(r4.errors) == {m.ERROR_CAS_MISMATCH}
    r5 = net.do(addrs[4], "put_mutable", kp, b"three", salt=b"foobar", seq=3, cas=2)
    assert r5.stored >= 6


def test_server_errors_and_tokens() -> None:
    net = FakeNet()
    a, _node = net.add()
    me = b"m" * 20
    # unknown method -> 204, malformed args -> 203
    assert query(net, a, q("vote", {b"id": me}))[b"e"][0] == 204
    assert query(net, a, q("get_peers", {b"id": me, b"info_hash": 5}))[b"e"][0] == 203
    # bad token -> 203
    ann = {b"id": me, b"info_hash": b"i" * 20, b"port": 1, b"token": b"nope"}
    assert query(net, a, q("announce_peer", ann))[b"e"][0] == 203
    # a token issued to one IP is refused from another
    r = query(net, a, q("get_peers", {b"id": me, b"info_hash": b"i" * 20}))
    token = r[b"r"][b"token"]
    assert r[b"ip"] == m.encode_compact_addr(("127.9.9.9", 1234))
    assert r[b"v"] == b"PD\x00\x01"
    assert query(net, a, q("announce_peer", {**ann, b"token": token}), src=("127.8.8.8", 1))[b"e"][0] == 203
    assert b"r" in query(net, a, q("announce_peer", {**ann, b"token": token}))
    # tokens stay valid for one rotation (5-10 min), not two
    net.advance(310)
    assert b"r" in query(net, a, q("announce_peer", {**ann, b"token": token}))
    net.advance(310)
    assert query(net, a, q("announce_peer", {**ann, b"token": token}))[b"e"][0] == 203


def test_bep44_server_errors() -> None:
    net = FakeNet()
    a, _node = net.add()
    me = b"m" * 20
    kp = KeyPair.from_seed(b"\x07" * 32)
    tok = query(net, a, q("get", {b"id": me, b"target": b"x" * 20}))[b"r"][b"token"]

    def put(**a: Any) -> dict[bytes, Any]:
        return query(
            net, a_addr, q("put", {b"id": me, b"token": tok, **{k.encode(): v for k, v in a.items()}})
        )

    a_addr = a
    assert put(v=b"x" * 1000)[b"e"][0] == 205
    assert b"r" in put(v=b"x" * 990)
    v = encode(b"val")

    def mput(seq: int, value: bytes = b"val", salt: bytes = b"", **extra: Any) -> dict[bytes, Any]:
        sig = sign_mutable(kp, encode(value), seq, salt)
        args: dict[str, Any] = {"v": value, "k": kp.public_key, "sig": sig, "seq": seq, **extra}
        if salt:
            args["salt"] = salt
        return put(**args)

    assert mput(1, salt=b"s" * 65)[b"e"][0] == 207
    bad = put(v=b"val", k=kp.public_key, sig=b"\x00" * 64, seq=1)
    assert bad[b"e"][0] == 206
    assert b"r" in mput(5)
    assert mput(4)[b"e"][0] == 302
    assert mput(5, b"other")[b"e"][0] == 302
    assert b"r" in mput(5)  # same seq and value: refresh
    assert mput(6, cas=4)[b"e"][0] == 301
    assert b"r" in mput(6, cas=5)
    # get returns the item; with seq >= stored only seq
    target = mutable_target(kp.public_key)
    r = query(net, a, q("get", {b"id": me, b"target": target}))[b"r"]
    assert r[b"seq"] == 6 and r[b"k"] == kp.public_key and r[b"v"] == b"val" and len(r[b"sig"]) == 64
    assert v == encode(r[b"v"])
    r = query(net, a, q("get", {b"id": me, b"target": target, b"seq": 6}))[b"r"]
    assert r[b"seq"] == 6 and b"v" not in r
    # items expire after 2 hours
    net.advance(2 * 3600 + 10)
    r = query(net, a, q("get", {b"id": me, b"target": target}))[b"r"]
    assert b"v" not in r


def test_reply_sizes_bounded() -> None:
    net = network(40, seed=6)
    a = next(iter(net.nodes))
    node = net.nodes[a]
    ih = b"h" * 20
    me = b"m" * 20
    for i in range(300):  # many announcers from distinct IPs
        src = (f"10.{i // 250}.{i % 250}.1", 1000 + i)
        tok = query(net, a, q("get_peers", {b"id": me, b"info_hash": ih}), src=src)[b"r"][b"token"]
        query(net, a, q("announce_peer", {b"id": me, b"info_hash": ih, b"port": 80, b"token": tok}), src=src)
    start = len(net.sniffed)
    net.inject(q("get_peers", {b"id": me, b"info_hash": ih, b"want": [b"n4", b"n6"]}), ("127.9.9.9", 1), a)
    net.run()
    out = [d for d, s, to in net.sniffed[start:] if to == ("127.9.9.9", 1) and b"1:y1:q" not in d]
    assert len(out) == 1 and len(out[0]) <= 1024
    r = decode(out[0])[b"r"]  # type: ignore[index]
    assert 30 <= len(r[b"values"]) <= 50
    assert len(r[b"nodes"]) == 26 * 8
    out2 = query(net, a, q("find_node", {b"id": me, b"target": ih}))
    assert len(out2[b"r"][b"nodes"]) == 26 * 8
    assert node.stats["announces_stored"] == 300
    # BEP 51: samples of stored info hashes
    res = net.do(list(net.nodes)[3], "sample_infohashes", a)
    assert isinstance(res, SampleResult)
    assert res.samples == (ih,) and res.num == 1 and res.interval == 21600


def test_read_only_node() -> None:
    net = FakeNet()
    a, na = net.add()
    b, nb = net.add(bootstrap=[a], read_only=True)
    net.do(b, "bootstrap")
    assert na.id in nb.table
    assert nb.id not in na.table  # BEP 43: not added
    assert all(b"2:roi1e" in d for d, s, _ in net.sniffed if s == b)
    # it does not answer queries
    start = len(net.sniffed)
    net.inject(q("ping", {b"id": b"m" * 20}), ("127.9.9.9", 1), b)
    net.run()
    assert not [d for d, s, _ in net.sniffed[start:] if s == b]
    assert nb.stats["dropped_read_only"] == 1


def test_own_id_dropped_and_stray_responses() -> None:
    net = FakeNet()
    a, na = net.add()
    start = len(net.sniffed)
    net.inject(q("ping", {b"id": na.id}), ("127.9.9.9", 1), a)
    net.inject(encode({b"t": b"zz", b"y": b"r", b"r": {b"id": b"q" * 20}}), ("127.9.9.9", 1), a)
    net.inject(encode({b"t": b"zz", b"y": b"e", b"e": [201, b"x"]}), ("127.9.9.9", 1), a)
    net.run()
    assert not [d for d, s, _ in net.sniffed[start:] if s == a]
    assert na.stats["dropped_own_id"] == 1
    assert na.stats["dropped_unexpected"] == 2


def test_rate_limit_per_ip() -> None:
    net = FakeNet()
    a, na = net.add(rate_limit=(10.0, 20.0))
    start = len(net.sniffed)
    for i in range(100):
        net.inject(q("ping", {b"id": b"m" * 20}, t=b"%02d" % i), ("127.9.9.9", 1000 + i), a)
    net.run()
    answered = [d for d, s, to in net.sniffed[start:] if s == a and to[0] == "127.9.9.9" and b"1:y1:r" in d]
    assert 20 <= len(answered) <= 22
    assert na.stats["dropped_rate_limited"] >= 78
    # another IP is not affected; and the bucket refills
    assert b"r" in query(net, a, q("ping", {b"id": b"m" * 20}), src=("127.7.7.7", 1))
    net.advance(5)
    assert b"r" in query(net, a, q("ping", {b"id": b"m" * 20}), src=("127.9.9.9", 1))


def test_malformed_barrage_then_ping() -> None:
    net = FakeNet()
    a, na = net.add()
    rng = random.Random(9)
    me = b"m" * 20
    barrage = [
        b"",
        b"d",
        b"i99999999999999999999999999999999999999999999999999999999999999999999e",
        b"l" * 10000,
        b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id" + b"99999999999:x" + b"ee",
        q("find_node", {b"id": me, b"target": 7}),
        q("get_peers", {b"id": me, b"info_hash": 12345}),
        q("get", {b"id": me, b"target": [b"x"]}),
        q("announce_peer", {b"id": me, b"info_hash": b"i" * 20, b"port": 1, b"token": 5}),
        q("put", {b"id": me, b"token": 5, b"v": b"x"}),
        q("put", {b"id": me, b"token": b"x", b"v": {b"a": [[[[[[]]]]]]}}),
        encode({b"t": b"aa", b"y": b"q", b"a": {b"id": me}}),
        encode({b"t": b"aa", b"y": b"q", b"q": b"ping"}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": me, b"nodes": 5}}),
        encode({b"t": b"aa", b"y": b"e", b"e": [b"x"]}),
        q("sample_infohashes", {b"id": me, b"target": b"short"}),
        q("x" * 1000, {b"id": me}),
    ]
    for _ in range(300):
        barrage.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80))))
        good = bytearray(q("get_peers", {b"id": me, b"info_hash": b"i" * 20}))
        good[rng.randrange(len(good))] = rng.getrandbits(8)
        barrage.append(bytes(good))
    for i, data in enumerate(barrage):
        net.inject(data, (f"127.5.{i // 250}.{i % 250}", 9), a)
    net.run()
    assert na.stats["dropped_malformed"] >= 300
    assert query(net, a, q("ping", {b"id": me}))[b"r"][b"id"] == na.id


def test_timeouts_and_dead_nodes() -> None:
    net = FakeNet()
    a, na = net.add()
    dead = ("127.66.66.66", 1)
    res = net.do(a, "ping", dead)
    assert isinstance(res, RequestTimeout)
    assert net.now == pytest.approx(2.0, abs=0.01)  # 1 s timeout, one resend
    res = net.do(a, "find_node", b"t" * 20)
    assert isinstance(res, RequestTimeout)  # empty table, no bootstrap
    # a node that stops answering leaves the table after two failures
    b, nb = net.add(bootstrap=[a])
    net.do(b, "bootstrap")
    assert na.id in nb.table
    net.dead.add(a)
    net.do(b, "find_node", b"t" * 20)
    net.do(b, "find_node", b"u" * 20)
    assert na.id not in nb.table


def test_error_reply_to_ping() -> None:
    net = FakeNet()
    _a, _na = net.add()
    b, nb = net.add(read_only=False)
    # b pings a fake node that answers with an error
    op = nb.ping(("127.9.9.9", 5), net.now)
    net.flush(b)
    sent = [d for d, s, to in net.sniffed if to == ("127.9.9.9", 5)]
    t = decode(sent[-1])[b"t"]  # type: ignore[index]
    net.inject(encode({b"t": t, b"y": b"e", b"e": [202, b"busy"]}), ("127.9.9.9", 5), b)
    net.run()
    err = net.result(b, op)
    assert isinstance(err, RemoteError) and err.code == 202


def test_save_restore() -> None:
    net = network(20, seed=7)
    a = list(net.nodes)[4]
    node = net.nodes[a]
    state = node.save_state()
    nid, nodes = MainlineNode.parse_state(state)
    assert nid == node.id
    assert {n.id for n in nodes} == {c.id for c in node.table}
    fresh = MainlineNode(rng=random.Random(1), node_id=nid)
    assert fresh.load_state(state, 0.0) == len(node.table)
    with pytest.raises(m.DecodeError):
        MainlineNode.parse_state(b"garbage")


def test_bep42_id_and_enforcement() -> None:
    from peerdht.mainline.crypto import node_id_matches_ip

    node = MainlineNode(rng=random.Random(1), external_ip="203.0.113.7")
    assert node_id_matches_ip(node.id, "203.0.113.7")
    with pytest.raises(LocalProtocolError):
        MainlineNode(rng=random.Random(1), node_id=b"short")
    with pytest.raises(LocalProtocolError):
        node.put(b"x" * 1000, 0.0)
    with pytest.raises(LocalProtocolError):
        node.announce_peer(b"i" * 20, 0, 0.0)


def test_lossy_network_still_finds_peers() -> None:
    net = network(30, seed=8)
    addrs = list(net.nodes)
    ih = b"\x42" * 20
    assert net.do(addrs[1], "announce_peer", ih, 1111).stored >= 4
    # 20% of the datagrams to a few nodes get lost
    lossy = set(addrs[10:16])
    net.net.filter = lambda data, src, dst: not (dst in lossy and net.rng.random() < 0.2)
    res = net.do(addrs[20], "get_peers", ih)
    assert (addrs[1][0], 1111) in res.peers


def test_stats_snapshot() -> None:
    net = network(5)
    snap = net.nodes[next(iter(net.nodes))].snapshot()
    assert snap["table"] == 4
    assert snap["received"] > 0 and snap["sent"] > 0


def test_item_target_property() -> None:
    assert Item(v=b"Hello World!").target == immutable_target(b"12:Hello World!")


_junk = st.recursive(
    st.binary(max_size=30) | st.integers(min_value=-(2**70), max_value=2**70),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.binary(max_size=10), c, max_size=4),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"v",
        b"k",
        b"sig",
        b"seq",
        b"salt",
        b"cas",
        b"want",
        b"nodes",
        b"values",
        b"samples",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.builds(
                lambda t, y, q, a: encode({b"t": t, b"y": y, b"q": q, b"a": a, b"r": a}),
                st.binary(min_size=1, max_size=3),
                st.sampled_from([b"q", b"r", b"e", b"x"]),
                st.sampled_from(
                    [
                        b"ping",
                        b"find_node",
                        b"get_peers",
                        b"announce_peer",
                        b"get",
                        b"put",
                        b"sample_infohashes",
                        b"zz",
                    ]
                ),
                st.dictionaries(_keys, _junk | st.binary(min_size=20, max_size=20), max_size=6),
            ),
        ),
        max_size=8,
    )
)
def test_fuzz_node_never_raises(datagrams: list[bytes]) -> None:
    node = MainlineNode(rng=random.Random(0), rate_limit=None)
    node.ping(("127.0.0.2", 1), 0.0)  # so that some responses match a request in flight
    sent = node.datagrams_to_send(0.0)
    tid = decode(sent[0][0])[b"t"]  # type: ignore[index]
    for i, data in enumerate(datagrams):
        node.receive_datagram(data, ("127.0.0.2", 1), float(i))
        node.receive_datagram(data, ("127.0.0.3", 2), float(i))
        node.handle_timer(float(i))
    node.receive_datagram(
        encode({b"t": tid, b"y": b"r", b"r": {b"id": b"x" * 20, b"nodes": b"bad"}}), ("127.0.0.2", 1), 9.0
    )
    node.datagrams_to_send(10.0)
    while node.next_event() is not None:
        pass
    # still answers a ping
    node.receive_datagram(q("ping", {b"id": b"m" * 20}, t=b"ok"), ("127.0.0.9", 9), 11.0)
    replies = [decode(d) for d, a in node.datagrams_to_send(11.0) if a == ("127.0.0.9", 9)]
    assert any(r[b"t"] == b"ok" and r[b"y"] == b"r" for r in replies)  # type: ignore[index]


def test_adopts_bep42_id_from_ip_votes() -> None:
    from peerdht.mainline.crypto import node_id_matches_ip

    node = MainlineNode(rng=random.Random(3))
    old = node.id
    public = ("203.0.113.7", 6881)
    for i in range(8):
        addr = (f"127.1.0.{i + 1}", 7000)
        node.ping(addr, 0.0)
        data, _ = node.datagrams_to_send(0.0)[-1]
        t = decode(data)[b"t"]  # type: ignore[index]
        reply = m.encode_response(t, m.IdResponse(id=bytes([i + 1]) * 20), ip=public)  # type: ignore[arg-type]
        node.receive_datagram(reply, addr, 0.1)
    assert node.external_address == public
    assert node.id != old and node_id_matches_ip(node.id, "203.0.113.7")
    assert node.stats["id_changes"] == 1
    assert node.table.local_id == node.id and len(node.table) == 8
    # an explicit id is never replaced
    fixed = MainlineNode(rng=random.Random(3), node_id=old)
    assert not fixed.auto_id


def test_no_free_tid_fails_single_requests_at_once() -> None:
    """A ping or sample_infohashes whose send finds every transaction id in flight fails at once with
    RequestError (it used to wait forever and stay in the op table); lookups skip the contact and end."""
    net = FakeNet()
    a, na = net.add()
    b, nb = net.add(bootstrap=[a])
    net.do(b, "bootstrap")
    dead = ("127.66.66.66", 1)
    na.requests.tid_space = 3  # the node keeps one id spare: two requests in flight fill it
    busy = [na.ping(dead, net.now), na.ping(dead, net.now)]
    assert len(na.requests) == 2
    ops = {
        "ping": na.ping(b, net.now),
        "sample": na.sample_infohashes(b, net.now),
    }
    net.flush(a)  # drain a's events (no clock moves)
    for name, op in ops.items():
        err = next(e.error for e in net.events[a] if isinstance(e, OpFailed) and e.op == op)
        assert type(err) is RequestError, name
        assert "transaction id" in str(err)
        assert op not in na._ops, name
    assert na.stats["dropped_no_tid"] == 2
    # a lookup cannot send either: it ends (no node answered) instead of hanging
    look = na.find_node(b"t" * 20, net.now)
    net.flush(a)
    err = next(e.error for e in net.events[a] if isinstance(e, OpFailed) and e.op == look)
    assert isinstance(err, RequestTimeout)
    assert look not in na._ops
    # the two pings in flight still time out normally, and a later ping gets through
    net.run()
    for op in busy:
        assert isinstance(net.result(a, op), RequestTimeout)
    assert net.do(a, "ping", b) == PingResult(id=nb.id, addr=b)
    assert na._ops == {}


def test_no_free_tid_in_store_phase_still_ends() -> None:
    """Writes that find no transaction id free are skipped: the announce still ends (nothing tried)."""
    net = FakeNet()
    a, na = net.add()
    b, _nb = net.add(bootstrap=[a])
    net.do(b, "bootstrap")
    busy = na.ping(("127.66.66.66", 1), net.now)

    def fill(data: bytes, src: Addr, dst: Addr) -> None:
        if src == b and dst == a and b"1:y1:r" in data:  # b's get_peers reply: a's ids run out before it
            na.requests.tid_space = 2  # only the busy ping may be in flight once the reply is matched

    net.net.tap = fill
    res = net.do(a, "announce_peer", b"i" * 20, 6881)
    assert res == AnnounceResult(stored=0, tried=0)
    assert na.stats["dropped_no_tid"] == 1
    assert isinstance(net.result(a, busy), RequestTimeout)  # net.do ran until nothing was in flight
    assert na._ops == {}
