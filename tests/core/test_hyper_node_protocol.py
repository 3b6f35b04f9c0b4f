"""HyperDHT node core: wire-level behaviour (tokens, internal commands, ids, NAT, persistence)."""

from __future__ import annotations

import struct

from test_hyper_node_fakenet import FakeNet

from peerdht.hyper.constants import Command, InternalCommand
from peerdht.hyper.crypto import KeyPair, node_id, sign_announce
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.events import PersistentChanged
from peerdht.hyper.messages import Request, Response, decode_message, encode_request, encode_response
from peerdht.hyper.node import CLIENT, SERVER, HyperDHTNode
from peerdht.hyper.records import Announce, Peer, encode_announce


def _one_reply(node: HyperDHTNode, now: float) -> tuple[Response, tuple[str, int], int]:
    out = node.datagrams_to_send(now)
    assert len(out) == 1, out
    data, addr, sock = out[0]
    msg = decode_message(data)
    assert isinstance(msg, Response)
    return msg, addr, sock


def _persistent_node() -> tuple[FakeNet, HyperDHTNode]:
    net = FakeNet(seed=11)
    (m,) = net.testnet(1)
    return net, m.node


REQ_FROM = ("10.7.7.7", 5555)


def test_ping_reply_shape_and_id_from_server_socket_only() -> None:
    net, node = _persistent_node()
    req = Request(tid=1, to=("10.0.0.2", 10000), internal=True, command=InternalCommand.PING)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, addr, sock = _one_reply(node, net.now)
    assert (addr, sock) == (REQ_FROM, SERVER)
    assert msg.tid == 1 and msg.to == REQ_FROM and msg.error == 0
    assert msg.id == node.id and msg.token is None and msg.closer_nodes == ()
    # the same request on the client socket: answered from there, without id
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, CLIENT)
    msg, addr, sock = _one_reply(node, net.now)
    assert sock == CLIENT and msg.id is None


def test_request_carrying_wrong_id_is_handled_without_it() -> None:
    net, node = _persistent_node()
    req = Request(tid=2, to=("10.0.0.2", 10000), id=b"\x01" * 32, internal=True, command=InternalCommand.PING)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, _, _ = _one_reply(node, net.now)
    assert msg.error == 0
    assert node.stats["dropped"]["bad_id"] == 1  # type: ignore[index]
    assert len(node.table) == 0  # not added: id failed validation
    # a correct id gets the sender into the table
    req = Request(
        tid=3, to=("10.0.0.2", 10000), id=node_id(*REQ_FROM), internal=True, command=InternalCommand.PING
    )
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    _one_reply(node, net.now)
    assert node.table.get(node_id(*REQ_FROM)) is not None


def test_find_node_reply_has_closer_nodes_no_token() -> None:
    net = FakeNet(seed=2)
    members = net.testnet(5)
    node = members[0].node
    req = Request(
        tid=9, to=members[0].server, internal=True, command=InternalCommand.FIND_NODE, target=b"\x00" * 32
    )
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, _, _ = _one_reply(node, net.now)
    assert msg.token is None
    assert set(msg.closer_nodes) == {m.server for m in members[1:]}


def test_non_internal_reply_carries_token_and_writes_need_it() -> None:
    net, node = _persistent_node()
    topic = blake2b(b"tok")
    # LOOKUP: reply carries a token bound to our host
    req = Request(tid=4, to=("10.0.0.2", 10000), command=Command.LOOKUP, target=topic)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, _, _ = _one_reply(node, net.now)
    assert msg.token is not None and msg.error == 0 and msg.value is None
    token = msg.token
    key = KeyPair.from_seed(b"\x05" * 32)
    peer = Peer(public_key=key.public_key)

    def announce(tok: bytes, tid: int, src: tuple[str, int] = REQ_FROM) -> Response:
        node_id_ = node.id
        assert node_id_ is not None
        sig = sign_announce(topic, node_id_, tok, peer, None, key)
        value = encode_announce(Announce(peer=peer, signature=sig))
        r = Request(
            tid=tid, to=("10.0.0.2", 10000), command=Command.ANNOUNCE, target=topic, value=value, token=tok
        )
        node.receive_datagram(encode_request(r), src, net.now, SERVER)
        return _one_reply(node, net.now)[0]

    # a forged token: INVALID_TOKEN (2), with a fresh token in the error reply
    bad = announce(b"\x00" * 32, 5)
    assert bad.error == 2 and bad.token is not None
    assert node.stats["dropped"]["invalid_token"] == 1  # type: ignore[index]
    # a token given to another IP is refused too (tokens bind the host)
    other = announce(token, 6, ("10.7.7.8", 5555))
    assert other.error == 2
    # the right token works; the record is stored
    ok = announce(token, 7)
    assert ok.error == 0 and ok.token is None
    assert node.storage.records.get(topic, 20, net.now, net.rng) != []
    # tokens survive one rotation (7.5 s), not two
    net.run_for(8)
    assert announce(token, 8).error == 0
    net.run_for(8)
    assert announce(token, 9).error == 2


def test_announce_with_bad_signature_gets_no_reply() -> None:
    net, node = _persistent_node()
    topic = blake2b(b"sig")
    req = Request(tid=4, to=("10.0.0.2", 10000), command=Command.LOOKUP, target=topic)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    token = _one_reply(node, net.now)[0].token
    assert token is not None
    key = KeyPair.from_seed(b"\x06" * 32)
    peer = Peer(public_key=key.public_key)
    # signed for another node id: hyperdht stays silent
    sig = sign_announce(topic, b"\x00" * 32, token, peer, None, key)
    value = encode_announce(Announce(peer=peer, signature=sig))
    r = Request(
        tid=5, to=("10.0.0.2", 10000), command=Command.ANNOUNCE, target=topic, value=value, token=token
    )
    node.receive_datagram(encode_request(r), REQ_FROM, net.now, SERVER)
    assert node.datagrams_to_send(net.now) == []
    assert len(node.storage.records) == 0


def test_ping_nat_replies_to_requested_port() -> None:
    net, node = _persistent_node()
    req = Request(
        tid=3,
        to=("10.0.0.2", 10000),
        internal=True,
        command=InternalCommand.PING_NAT,
        value=struct.pack("<H", 4242),
    )
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, addr, sock = _one_reply(node, net.now)
    assert addr == ("10.7.7.7", 4242) and sock == SERVER
    assert msg.to == ("10.7.7.7", 4242)
    # missing / zero port: no reply
    for value in (None, b"\x01", b"\x00\x00"):
        req = Request(
            tid=4, to=("10.0.0.2", 10000), internal=True, command=InternalCommand.PING_NAT, value=value
        )
        node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
        assert node.datagrams_to_send(net.now) == []


def test_delayed_ping_uses_timer() -> None:
    net = FakeNet()
    a = net.add(public_host=True)
    b = net.add()
    start = net.now
    op = b.node.delayed_ping(a.server, 2.5, net.now)
    net.run_until(lambda: b.result(op) is not None)
    b.done(op)
    assert 2.5 <= net.now - start < 2.6
    assert b.node.stats["requests"]["retries"] == 0  # type: ignore[index]
    # above 10 s: ignored
    req = Request(
        tid=1,
        to=a.server,
        internal=True,
        command=InternalCommand.DELAYED_PING,
        value=struct.pack("<I", 10001),
    )
    a.node.receive_datagram(encode_request(req), b.server, net.now, SERVER)
    net.run_for(11)
    assert a.node.stats["dropped"]["bad_value"] == 1  # type: ignore[index]


def test_unknown_internal_and_app_commands() -> None:
    net, node = _persistent_node()
    req = Request(tid=1, to=("10.0.0.2", 10000), internal=True, command=99, target=b"\x00" * 32)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, _, _ = _one_reply(node, net.now)
    assert msg.error == 1
    req = Request(tid=2, to=("10.0.0.2", 10000), command=55)
    node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    msg, _, _ = _one_reply(node, net.now)
    assert msg.error == 1


def test_unsolicited_and_misaddressed_responses_are_dropped() -> None:
    net = FakeNet()
    a = net.add(public_host=True)
    b = net.add()
    b.node.ping(a.server, net.now)
    sent = b.node.datagrams_to_send(net.now)
    req = decode_message(sent[0][0])
    assert isinstance(req, Request)
    fake = Response(tid=(req.tid + 1) % 65536, to=b.server)
    b.node.receive_datagram(encode_response(fake), a.server, net.now, SERVER)
    assert b.node.stats["dropped"]["unknown_tid"] == 1  # type: ignore[index]
    spoof = Response(tid=req.tid, to=b.server)
    b.node.receive_datagram(encode_response(spoof), ("10.66.66.66", a.server[1]), net.now, SERVER)
    assert b.node.stats["dropped"]["wrong_address"] == 1  # type: ignore[index]
    assert b.node.stats["requests"]["active"] == 1  # type: ignore[index]


def test_down_hint_evicts_dead_node() -> None:
    net = FakeNet(seed=4)
    members = net.testnet(6)
    net.run_for(6)
    a, dead = members[1], members[4]
    dead_id = dead.node.id
    assert dead_id is not None and a.node.table.get(dead_id) is not None
    net.down.add(dead.server)
    net.down.add(dead.client)
    # someone tells a that `dead` is down
    value = dead.server[0].encode()  # placeholder to keep mypy quiet
    from peerdht.encoding.compact import encode_ipv4_address

    value = encode_ipv4_address(*dead.server)
    req = Request(tid=1, to=a.server, internal=True, command=InternalCommand.DOWN_HINT, value=value)
    a.node.receive_datagram(encode_request(req), REQ_FROM, net.now, SERVER)
    out = a.node.datagrams_to_send(net.now)
    replies = [decode_message(d) for d, _, _ in out]
    assert any(isinstance(r, Response) and r.error == 0 for r in replies)
    pings = [r for r in replies if isinstance(r, Request) and r.command == InternalCommand.PING]
    assert len(pings) == 1
    for d, dst, s in out:
        net.deliver(d, a.server if s == SERVER else a.client, dst)
    net.run_for(5)
    assert a.node.table.get(dead_id) is None


def test_query_sends_down_hint_to_referrer() -> None:
    net = FakeNet(seed=5)
    members = net.testnet(8)
    net.run_for(6)
    dead = members[6]
    net.down.add(dead.server)
    net.down.add(dead.client)
    asker = net.add(bootstrap=[members[0].server], ephemeral=True)
    op = asker.node.bootstrap(net.now)
    net.run_until(lambda: asker.result(op) is not None)
    op = asker.node.find_node(dead.node.id, net.now)  # type: ignore[arg-type]
    net.run_until(lambda: asker.result(op) is not None)
    assert asker.node.stats["commands"]["downHint"]["tx"] >= 1  # type: ignore[index]
    # referrers pinged the dead node and dropped it
    net.run_for(5)
    holders = [m for m in members if m is not dead and m.node.table.get(dead.node.id) is not None]  # type: ignore[arg-type]
    assert len(holders) < 6


def test_persistent_transition_adaptive() -> None:
    """ephemeral=None: quick firewall check at bootstrap, persistent after the stable ticks."""
    net = FakeNet(seed=6)
    members = net.testnet(6)
    m = net.add(bootstrap=[members[0].server], ephemeral=None, firewalled=True)
    op = m.node.bootstrap(net.now)
    net.run_until(lambda: m.result(op) is not None)
    assert m.node.ephemeral and m.node.id is None
    # PING_NAT replies arrive on our server socket: not firewalled any more
    assert not m.node.firewalled
    assert m.node.host == m.server[0]
    # ~20 minutes of stable ticks later: persistent with the id of its address
    net.run_until(lambda: not m.node.ephemeral, timeout=25 * 60)
    assert m.node.id == node_id(*m.server)
    assert PersistentChanged(ephemeral=False) in m.events
    # others learn about it: at its next refresh or ping, not at once (the quick firewall check at bootstrap
    # already gave the table this id, and dht-rpc's _updateNetworkState refreshes only when the id changes)
    net.run_until(lambda: any(m.node.id in x.node.table for x in members), timeout=15 * 60)
    op = members[2].node.find_node(m.node.id, net.now)  # type: ignore[arg-type]
    net.run_until(lambda: members[2].result(op) is not None)
    assert m.node.id in {c.id for c in members[2].done(op)}  # type: ignore[attr-defined]


def test_firewalled_node_stays_ephemeral_when_server_port_unreachable() -> None:
    net = FakeNet(seed=7)
    members = net.testnet(6)
    m = net.add(bootstrap=[members[0].server], ephemeral=None, firewalled=True)
    # a NAT that drops unsolicited datagrams to the server socket
    net.filter = lambda data, src, dst: dst != m.server
    op = m.node.bootstrap(net.now)
    net.run_until(lambda: m.result(op) is not None)
    net.run_for(21 * 60)
    assert m.node.firewalled and m.node.ephemeral
    assert m.node.remote_address() is None


def test_full_bucket_replaces_dead_least_recently_pinged() -> None:
    net, node = _persistent_node()
    # fill the row of ids sharing 0 prefix bits with many synthetic nodes that send us pings
    local = node.table.local_id
    added = []
    i = 0
    while len(added) < 21:
        i += 1
        addr = (f"10.50.{i // 250}.{i % 250 + 1}", 7000)
        nid = node_id(*addr)
        if (nid[0] ^ local[0]) & 0x80 == 0:
            continue
        added.append(addr)
    for addr in added[:20]:
        req = Request(
            tid=1, to=("10.0.0.1", 10000), id=node_id(*addr), internal=True, command=InternalCommand.PING
        )
        node.receive_datagram(encode_request(req), addr, net.now, SERVER)
    node.datagrams_to_send(net.now)
    assert len(node.table) == 20
    net.run_for(6)  # new tick: the oldest is no longer "pinged this tick"
    node.datagrams_to_send(net.now)
    new = added[20]
    req = Request(
        tid=1, to=("10.0.0.1", 10000), id=node_id(*new), internal=True, command=InternalCommand.PING
    )
    node.receive_datagram(encode_request(req), new, net.now, SERVER)
    out = node.datagrams_to_send(net.now)
    pings = [(decode_message(d), dst) for d, dst, _ in out if isinstance(decode_message(d), Request)]
    assert len(pings) == 1  # the least recently pinged one is checked
    net.run_for(5)  # nobody answers: replaced
    assert node.table.get(node_id(*new)) is not None
    assert node.table.get(node_id(*pings[0][1])) is None


def test_congestion_window_limits_new_requests() -> None:
    net = FakeNet(seed=8)
    a = net.add()
    ops = [a.node.ping((f"10.99.{i // 200}.{i % 200 + 1}", 1000), net.now) for i in range(200)]
    first = a.node.datagrams_to_send(net.now)
    assert len(first) == 80  # io.js MAX_WINDOW per 750 ms slot
    assert a.node.stats["requests"]["active"] == 200  # type: ignore[index]
    net.run_until(lambda: all(a.result(op) is not None for op in ops), timeout=120)
    assert all(type(a.failed(op)).__name__ == "RequestTimeout" for op in ops)
    assert a.node.stats["requests"]["active"] == 0  # type: ignore[index]


def test_requests_wait_while_every_tid_is_in_flight() -> None:
    # with every transaction id in flight a new request waits (as for a full congestion window) instead of
    # raising out of request()/handle_timer and leaving its op in the table for ever
    net = FakeNet(seed=8)
    a = net.add()
    a.node._requests.tid_space = 4  # sequential ids: restart the count inside the smaller space
    a.node._requests._next = 0
    ops = [a.node.ping((f"10.99.0.{i + 1}", 1000), net.now) for i in range(10)]
    assert len(a.node.datagrams_to_send(net.now)) == 4
    assert a.node.stats["requests"]["active"] == 10  # type: ignore[index]
    net.run_until(lambda: all(a.result(op) is not None for op in ops), timeout=120)
    assert all(type(a.failed(op)).__name__ == "RequestTimeout" for op in ops)
    assert a.node.stats["requests"]["active"] == 0  # type: ignore[index]
    assert not a.node._ops


def test_generic_request_and_cancel() -> None:
    net = FakeNet(seed=9)
    a = net.add(public_host=True)
    b = net.add()
    op = b.node.request(a.server, 77, net.now, target=b"\x01" * 32, value=b"hi")
    net.run_until(lambda: b.result(op) is not None)
    r = b.done(op)
    assert r.error == 1 and r.token is None  # type: ignore[attr-defined]
    op = b.node.ping(("10.99.0.1", 1), net.now)
    b.node.cancel(op)
    net.run_for(6)
    assert b.result(op) is None
    assert b.node.stats["requests"]["active"] == 0  # type: ignore[index]


def test_lookup_cancel_stops_events() -> None:
    net = FakeNet(seed=10)
    members = net.testnet(8)
    m = members[3]
    op = m.node.lookup(blake2b(b"c"), net.now)
    m.node.cancel(op)
    net.run_for(6)
    assert m.result(op) is None
    assert m.node.stats["queries"]["active"] == 0  # type: ignore[index]


def test_sleep_wakeup_reverts_adaptive_node_to_ephemeral() -> None:
    net = FakeNet(seed=13)
    members = net.testnet(6)
    m = net.add(bootstrap=[members[0].server], ephemeral=None, firewalled=True)
    op = m.node.bootstrap(net.now)
    net.run_until(lambda: m.result(op) is not None)
    net.run_until(lambda: not m.node.ephemeral, timeout=25 * 60)
    # the machine sleeps: the next tick comes 60 s late
    net.now += 60
    m.node.handle_timer(net.now)
    net.collect(m)
    assert m.node.ephemeral and m.node.id is None
    assert m.events[-1] == PersistentChanged(ephemeral=True)


def test_destroy_fails_pending_ops() -> None:
    net = FakeNet(seed=14)
    members = net.testnet(4)
    m = members[2]
    op1 = m.node.lookup(blake2b(b"d"), net.now)
    op2 = m.node.ping(("10.99.0.1", 1), net.now)
    m.node.destroy()
    net.collect(m)
    assert type(m.failed(op1)).__name__ == "LocalProtocolError"
    assert type(m.failed(op2)).__name__ == "LocalProtocolError"
    assert m.node.get_timer() is None and m.node.datagrams_to_send(net.now) == []
    assert m.node.stats["requests"]["active"] == 0  # type: ignore[index]
    assert m.node.stats["queries"]["active"] == 0  # type: ignore[index]


def test_stats_are_json_and_relay_keeps_tid() -> None:
    import json

    net, node = _persistent_node()
    req = Request(
        tid=4242, to=("10.0.0.2", 10000), command=Command.PEER_HANDSHAKE, target=b"\x02" * 32, value=b"x"
    )
    node.relay(req, b"new value", ("10.3.3.3", 3333), SERVER)
    (data, addr, sock), *_ = node.datagrams_to_send(net.now)
    fwd = decode_message(data)
    assert isinstance(fwd, Request)
    assert (fwd.tid, fwd.command, fwd.target, fwd.value, fwd.token) == (
        4242,
        Command.PEER_HANDSHAKE,
        b"\x02" * 32,
        b"new value",
        None,
    )
    assert fwd.to == addr == ("10.3.3.3", 3333) and sock == SERVER and fwd.id == node.id
    stats = json.loads(json.dumps(node.stats))
    assert set(stats) >= {"queries", "requests", "commands", "dropped"}
    assert set(stats["commands"]) >= {"ping", "pingNat", "findNode", "downHint"}
