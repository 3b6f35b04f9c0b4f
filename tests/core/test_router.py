"""The PEER_HANDSHAKE / PEER_HOLEPUNCH router (hyperdht lib/router.js) on a bare node core.

A server hosted on the node is not called: the node emits HandshakeReceived / HolepunchReceived and
the test answers through ``node.answer`` / ``node.decline`` with an explicit clock."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.hyper.constants import Command
from peerdht.hyper.events import HandshakeReceived, HolepunchReceived
from peerdht.hyper.messages import Request, Response, decode_message, encode_request
from peerdht.hyper.node import CLIENT, SERVER, HyperDHTNode
from peerdht.hyper.records import (
    Handshake,
    Holepunch,
    decode_handshake,
    decode_holepunch,
    encode_handshake,
    encode_holepunch,
)
from peerdht.hyper.router import (
    ANSWER_TIMEOUT,
    FROM_CLIENT,
    FROM_RELAY,
    FROM_SECOND_RELAY,
    FROM_SERVER,
    MAX_WAITING,
    REPLY,
)
from peerdht.hyper.storage import Forward

ME = ("10.0.0.1", 1000)
CLIENT_ADDR = ("10.0.0.2", 2000)
SERVER_ADDR = ("10.0.0.3", 3000)
OTHER_RELAY = ("10.0.0.4", 4000)
TARGET = b"\x42" * 32


def node() -> HyperDHTNode:
    n = HyperDHTNode(rng=random.Random(1), secrets=bytes(64), ephemeral=False, firewalled=False, host=ME[0])
    n.bind(ME, ("10.0.0.1", 1001), 0.0)
    n.datagrams_to_send(0.0)
    return n


def send(
    n: HyperDHTNode, frm: tuple[str, int], command: int, value: bytes | None, tid: int = 7, now: float = 1.0
) -> list:  # type: ignore[type-arg]
    req = Request(tid=tid, to=ME, command=command, target=TARGET, value=value)
    n.receive_datagram(encode_request(req), frm, now, socket=SERVER)
    return [(decode_message(d), a) for d, a, _s in n.datagrams_to_send(now)]


def sent(n: HyperDHTNode, now: float) -> list:  # type: ignore[type-arg]
    return [(decode_message(d), a, s) for d, a, s in n.datagrams_to_send(now)]


def events(n: HyperDHTNode) -> list:  # type: ignore[type-arg]
    out = []
    while (ev := n.next_event()) is not None:
        out.append(ev)
    return out


def test_client_handshake_is_relayed_to_the_announcing_server() -> None:
    n = node()
    n.storage.router.put(TARGET, Forward(relay=SERVER_ADDR, record=b""), 1.0)
    out = send(
        n, CLIENT_ADDR, Command.PEER_HANDSHAKE, encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"n1"))
    )
    assert len(out) == 1
    msg, to = out[0]
    assert to == SERVER_ADDR and isinstance(msg, Request) and msg.tid == 7
    hs = decode_handshake(msg.value)
    assert hs.mode == FROM_RELAY and hs.noise == b"n1" and hs.peer_address == CLIENT_ADDR


def test_server_reply_goes_back_to_the_client() -> None:
    n = node()
    value = encode_handshake(Handshake(mode=FROM_SERVER, noise=b"n2", peer_address=CLIENT_ADDR))
    out = send(n, SERVER_ADDR, Command.PEER_HANDSHAKE, value)
    msg, to = out[0]
    assert to == CLIENT_ADDR and isinstance(msg, Response) and msg.tid == 7
    hs = decode_handshake(msg.value)
    assert hs.mode == REPLY and hs.noise == b"n2" and hs.peer_address == SERVER_ADDR


def test_unknown_target_answers_without_value_and_relay_hops() -> None:
    n = node()
    out = send(
        n, CLIENT_ADDR, Command.PEER_HANDSHAKE, encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"x"))
    )
    msg, to = out[0]
    assert to == CLIENT_ADDR and isinstance(msg, Response) and msg.value is None
    # FROM_RELAY to a node that knows the server: second relay hop
    n.storage.router.put(TARGET, Forward(relay=SERVER_ADDR, record=b""), 1.0)
    value = encode_handshake(Handshake(mode=FROM_RELAY, noise=b"x", peer_address=CLIENT_ADDR))
    msg, to = send(n, OTHER_RELAY, Command.PEER_HANDSHAKE, value)[0]
    hs = decode_handshake(msg.value)
    assert to == SERVER_ADDR and hs.mode == FROM_SECOND_RELAY and hs.relay_address == OTHER_RELAY


def test_local_server_handshake_is_an_event_answered_through_the_request() -> None:
    n = node()
    n.router.listen(TARGET)
    # direct: no datagram until the application answers
    assert send(
        n, CLIENT_ADDR, Command.PEER_HANDSHAKE, encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"a"))
    ) == []
    (ev,) = events(n)
    assert ev == HandshakeReceived(
        request_id=ev.request_id, target=TARGET, noise=b"a", peer_address=None, from_addr=CLIENT_ADDR, socket=SERVER
    )
    assert n.router.waiting == 1
    assert n.answer(ev.request_id, b"reply:a", 1.5)
    ((msg, to, sock),) = sent(n, 1.5)
    assert isinstance(msg, Response) and msg.tid == 7 and to == CLIENT_ADDR and sock == SERVER
    assert decode_handshake(msg.value) == Handshake(mode=REPLY, noise=b"reply:a")
    assert not n.answer(ev.request_id, b"again", 1.6) and sent(n, 1.6) == []  # answered once
    assert n.router.stats["served"] == 1 and n.router.waiting == 0
    # relayed: the answer goes back to the relay as FROM_SERVER, from the socket we choose
    value = encode_handshake(Handshake(mode=FROM_RELAY, noise=b"b", peer_address=CLIENT_ADDR))
    assert send(n, OTHER_RELAY, Command.PEER_HANDSHAKE, value, tid=8) == []
    (ev,) = events(n)
    assert isinstance(ev, HandshakeReceived)
    assert ev.peer_address == CLIENT_ADDR and ev.from_addr == OTHER_RELAY and ev.noise == b"b"
    assert n.answer(ev.request_id, b"reply:b", 2.0, socket=CLIENT)
    ((msg, to, sock),) = sent(n, 2.0)
    assert isinstance(msg, Request) and msg.tid == 8 and to == OTHER_RELAY and sock == CLIENT
    assert decode_handshake(msg.value) == Handshake(mode=FROM_SERVER, noise=b"reply:b", peer_address=CLIENT_ADDR)
    n.router.unlisten(TARGET)
    assert TARGET not in n.router.servers


def test_second_relay_answer_goes_to_the_first_relay() -> None:
    n = node()
    n.router.listen(TARGET)
    value = encode_handshake(
        Handshake(mode=FROM_SECOND_RELAY, noise=b"c", peer_address=CLIENT_ADDR, relay_address=OTHER_RELAY)
    )
    assert send(n, SERVER_ADDR, Command.PEER_HANDSHAKE, value) == []
    (ev,) = events(n)
    assert ev.peer_address == CLIENT_ADDR and ev.from_addr == SERVER_ADDR
    assert n.answer(ev.request_id, b"r", 1.0)
    ((msg, to, _s),) = sent(n, 1.0)
    assert isinstance(msg, Request) and to == OTHER_RELAY
    assert decode_handshake(msg.value) == Handshake(mode=FROM_SERVER, noise=b"r", peer_address=CLIENT_ADDR)
    # no relay address: dropped by the router, no event
    bad = encode_handshake(Handshake(mode=FROM_SECOND_RELAY, noise=b"c", peer_address=CLIENT_ADDR))
    assert send(n, SERVER_ADDR, Command.PEER_HANDSHAKE, bad) == [] and events(n) == []
    assert n.router.stats["dropped"] == 1


def test_declined_handshake_sends_nothing_and_is_counted() -> None:
    n = node()
    n.router.listen(TARGET)
    send(n, CLIENT_ADDR, Command.PEER_HANDSHAKE, encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"x")))
    (ev,) = events(n)
    assert n.decline(ev.request_id, 1.0)
    assert sent(n, 1.0) == [] and n.router.stats["dropped"] == 1
    assert not n.decline(ev.request_id, 1.0) and not n.answer(ev.request_id, b"late", 1.0)
    assert not n.answer(12345, b"never issued", 1.0)


def test_holepunch_round_is_answered_later_through_the_relay() -> None:
    n = node()
    n.router.listen(TARGET)
    value = encode_holepunch(Holepunch(mode=FROM_RELAY, id=1, payload=b"r", peer_address=CLIENT_ADDR))
    assert send(n, OTHER_RELAY, Command.PEER_HOLEPUNCH, value, tid=9) == []
    (ev,) = events(n)
    assert ev == HolepunchReceived(
        request_id=ev.request_id,
        target=TARGET,
        id=1,
        payload=b"r",
        peer_address=CLIENT_ADDR,
        from_addr=OTHER_RELAY,
        socket=SERVER,
    )
    n.handle_timer(5.0)  # the server samples its NAT meanwhile
    sent(n, 5.0)
    assert n.answer(ev.request_id, b"hp:r", 6.0)
    ((msg, to, _s),) = sent(n, 6.0)
    assert isinstance(msg, Request) and msg.tid == 9 and to == OTHER_RELAY
    assert decode_holepunch(msg.value) == Holepunch(mode=FROM_SERVER, id=0, payload=b"hp:r", peer_address=CLIENT_ADDR)
    # a round for a target we do not host is dropped without an event
    n.router.unlisten(TARGET)
    send(n, OTHER_RELAY, Command.PEER_HOLEPUNCH, value)
    assert events(n) == [] and n.router.stats["dropped"] == 1


def test_unanswered_requests_expire_and_are_bounded() -> None:
    n = node()
    n.router.listen(TARGET)
    hs = encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"x"))
    send(n, CLIENT_ADDR, Command.PEER_HANDSHAKE, hs, now=1.0)
    (ev,) = events(n)
    assert not n.answer(ev.request_id, b"too late", 1.0 + ANSWER_TIMEOUT)
    assert sent(n, 1.0 + ANSWER_TIMEOUT) == []
    # a flood that nobody answers holds at most MAX_WAITING requests; the oldest go first
    t = 100.0
    for i in range(MAX_WAITING + 10):
        send(n, ("10.0.1.1", 1 + i), Command.PEER_HANDSHAKE, hs, tid=i & 0xFFFF, now=t)
    evs = events(n)
    assert len(evs) == MAX_WAITING + 10 and n.router.waiting == MAX_WAITING
    assert n.router.stats["unanswered"] == 1 + 10
    assert not n.answer(evs[0].request_id, b"evicted", t)
    assert n.answer(evs[-1].request_id, b"newest", t)
    ((msg, to, _s),) = sent(n, t)
    assert isinstance(msg, Response) and to == ("10.0.1.1", MAX_WAITING + 10)


@settings(max_examples=300, deadline=None)
@given(
    command=st.sampled_from([Command.PEER_HANDSHAKE, Command.PEER_HOLEPUNCH]),
    value=st.one_of(st.none(), st.binary(max_size=80)),
    listen=st.booleans(),
    forward=st.booleans(),
)
def test_garbage_never_crashes(command: int, value: bytes | None, listen: bool, forward: bool) -> None:
    n = node()
    if listen:
        n.router.listen(TARGET)
    if forward:
        n.storage.router.put(TARGET, Forward(relay=SERVER_ADDR, record=b""), 1.0)
    send(n, CLIENT_ADDR, command, value)
    for ev in events(n):
        assert isinstance(ev, HandshakeReceived | HolepunchReceived) and listen
        assert n.answer(ev.request_id, b"answer", 2.0)
    sent(n, 2.0)
    assert n.stats["dropped"].get("internal_error", 0) == 0  # type: ignore[attr-defined]
