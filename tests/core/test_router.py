"""The PEER_HANDSHAKE / PEER_HOLEPUNCH router (hyperdht lib/router.js) on a bare node core."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.hyper.constants import Command
from peerdht.hyper.messages import Request, Response, decode_message, encode_request
from peerdht.hyper.node import SERVER, HyperDHTNode
from peerdht.hyper.records import (
    Handshake,
    Holepunch,
    decode_handshake,
    decode_holepunch,
    encode_handshake,
    encode_holepunch,
)
from peerdht.hyper.router import FROM_CLIENT, FROM_RELAY, FROM_SECOND_RELAY, FROM_SERVER, REPLY, ServerAnswer
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


def send(n: HyperDHTNode, frm: tuple[str, int], command: int, value: bytes | None, tid: int = 7) -> list:  # type: ignore[type-arg]
    req = Request(tid=tid, to=ME, command=command, target=TARGET, value=value)
    n.receive_datagram(encode_request(req), frm, 1.0, socket=SERVER)
    return [(decode_message(d), a) for d, a, _s in n.datagrams_to_send(1.0)]


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


class Local:
    def __init__(self) -> None:
        self.calls: list[tuple] = []  # type: ignore[type-arg]

    def on_peer_handshake(self, noise, peer_address, from_addr, socket, now):  # type: ignore[no-untyped-def]
        self.calls.append((noise, peer_address, from_addr))
        return ServerAnswer(value=b"reply:" + noise)

    def on_peer_holepunch(self, id, payload, peer_address, from_addr, socket, now, respond):  # type: ignore[no-untyped-def]
        self.calls.append((id, payload, peer_address))
        respond(ServerAnswer(value=b"hp:" + payload))


def test_local_server_answers_direct_and_relayed() -> None:
    n = node()
    srv = Local()
    n.router.listen(TARGET, srv)
    msg, to = send(
        n, CLIENT_ADDR, Command.PEER_HANDSHAKE, encode_handshake(Handshake(mode=FROM_CLIENT, noise=b"a"))
    )[0]
    assert isinstance(msg, Response) and to == CLIENT_ADDR
    assert decode_handshake(msg.value) == Handshake(mode=REPLY, noise=b"reply:a")
    assert srv.calls[-1] == (b"a", None, CLIENT_ADDR)
    value = encode_handshake(Handshake(mode=FROM_RELAY, noise=b"b", peer_address=CLIENT_ADDR))
    msg, to = send(n, OTHER_RELAY, Command.PEER_HANDSHAKE, value)[0]
    assert isinstance(msg, Request) and to == OTHER_RELAY
    assert decode_handshake(msg.value) == Handshake(
        mode=FROM_SERVER, noise=b"reply:b", peer_address=CLIENT_ADDR
    )
    n.router.unlisten(TARGET, srv)
    assert TARGET not in n.router.servers


def test_holepunch_path() -> None:
    n = node()
    n.storage.router.put(TARGET, Forward(relay=SERVER_ADDR, record=b""), 1.0)
    value = encode_holepunch(Holepunch(mode=FROM_CLIENT, id=3, payload=b"p"))
    msg, to = send(n, CLIENT_ADDR, Command.PEER_HOLEPUNCH, value)[0]
    assert to == SERVER_ADDR and decode_holepunch(msg.value) == Holepunch(
        mode=FROM_RELAY, id=3, payload=b"p", peer_address=CLIENT_ADDR
    )
    value = encode_holepunch(Holepunch(mode=FROM_SERVER, id=0, payload=b"q", peer_address=CLIENT_ADDR))
    msg, to = send(n, SERVER_ADDR, Command.PEER_HOLEPUNCH, value)[0]
    assert to == CLIENT_ADDR and isinstance(msg, Response)
    assert decode_holepunch(msg.value) == Holepunch(mode=REPLY, id=0, payload=b"q", peer_address=SERVER_ADDR)
    # a local server answers relayed rounds through the relay
    srv = Local()
    n.router.listen(TARGET, srv)
    value = encode_holepunch(Holepunch(mode=FROM_RELAY, id=1, payload=b"r", peer_address=CLIENT_ADDR))
    msg, to = send(n, OTHER_RELAY, Command.PEER_HOLEPUNCH, value)[0]
    assert to == OTHER_RELAY and decode_holepunch(msg.value).payload == b"hp:r"


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
        n.router.listen(TARGET, Local())
    if forward:
        n.storage.router.put(TARGET, Forward(relay=SERVER_ADDR, record=b""), 1.0)
    send(n, CLIENT_ADDR, command, value)
    assert n.stats["dropped"].get("internal_error", 0) == 0  # type: ignore[attr-defined]
