"""HyperDHT record storage (``lib/persistent.js`` rules), driven directly."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.hyper.constants import Command
from peerdht.hyper.crypto import KeyPair, sign_announce, sign_mutable
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.records import (
    Announce,
    MutablePutRequest,
    Peer,
    decode_lookup_reply,
    decode_mutable_get_response,
    decode_peer,
    encode_announce,
    encode_mutable_put_request,
)
from peerdht.hyper.storage import Reply, Storage, encode_seq

NODE_ID = blake2b(b"node")
TOKEN = blake2b(b"token")
FROM = ("10.0.0.9", 4000)
TOPIC = blake2b(b"topic")


def kp(i: int) -> KeyPair:
    return KeyPair.from_seed(i.to_bytes(32, "big"))


def store() -> Storage:
    return Storage(random.Random(1))


def announce(
    s: Storage,
    key: KeyPair,
    *,
    topic: bytes = TOPIC,
    relays: tuple[tuple[str, int], ...] = (),
    now: float = 0.0,
    unannounce: bool = False,
    refresh: bytes | None = None,
    bump: int = 0,
) -> Reply | None:
    peer = Peer(public_key=key.public_key, relay_addresses=relays)
    sig = sign_announce(topic, NODE_ID, TOKEN, peer, refresh, key, unannounce=unannounce)
    value = encode_announce(Announce(peer=peer, signature=sig, refresh=refresh, bump=bump))
    cmd = Command.UNANNOUNCE if unannounce else Command.ANNOUNCE
    return s.handle(cmd, target=topic, token=TOKEN, value=value, from_addr=FROM, node_id=NODE_ID, now=now)


def lookup(s: Storage, topic: bytes = TOPIC, now: float = 0.0) -> list[bytes]:
    r = s.handle(
        Command.LOOKUP, target=topic, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=now
    )
    assert r is not None and r.token and r.closer_nodes
    if r.value is None:
        return []
    return [p.public_key for p in decode_lookup_reply(r.value).peers]


def test_announce_lookup_unannounce() -> None:
    s = store()
    r = announce(s, kp(1), relays=(("1.1.1.1", 1), ("1.1.1.2", 2), ("1.1.1.3", 3), ("1.1.1.4", 4)))
    assert r == Reply(token=False, closer_nodes=False)
    assert lookup(s) == [kp(1).public_key]
    # relay addresses capped at 3
    got = s.handle(
        Command.LOOKUP, target=TOPIC, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=0
    )
    assert got is not None and got.value is not None
    assert len(decode_lookup_reply(got.value).peers[0].relay_addresses) == 3
    assert announce(s, kp(1), unannounce=True) == Reply(token=False, closer_nodes=False)
    assert lookup(s) == []


def test_lookup_returns_at_most_20_random() -> None:
    s = store()
    for i in range(30):
        announce(s, kp(i + 1))
    a = lookup(s)
    b = lookup(s)
    assert len(a) == 20 and len(set(a)) == 20
    assert a != b  # random sample


def test_records_expire_after_20_minutes_and_refresh_on_reannounce() -> None:
    s = store()
    announce(s, kp(1), now=0)
    announce(s, kp(2), now=0)
    announce(s, kp(2), now=1000)
    assert set(lookup(s, now=1199)) == {kp(1).public_key, kp(2).public_key}
    assert lookup(s, now=1201) == [kp(2).public_key]
    assert lookup(s, now=2201) == []


def test_bad_signature_or_missing_token_is_silent() -> None:
    s = store()
    key = kp(1)
    peer = Peer(public_key=key.public_key)
    sig = sign_announce(TOPIC, blake2b(b"other node"), TOKEN, peer, None, key)
    value = encode_announce(Announce(peer=peer, signature=sig))
    assert (
        s.handle(
            Command.ANNOUNCE, target=TOPIC, token=TOKEN, value=value, from_addr=FROM, node_id=NODE_ID, now=0
        )
        is None
    )
    good = encode_announce(
        Announce(peer=peer, signature=sign_announce(TOPIC, NODE_ID, TOKEN, peer, None, key))
    )
    assert (
        s.handle(
            Command.ANNOUNCE, target=TOPIC, token=None, value=good, from_addr=FROM, node_id=NODE_ID, now=0
        )
        is None
    )
    assert (
        s.handle(
            Command.ANNOUNCE, target=None, token=TOKEN, value=good, from_addr=FROM, node_id=NODE_ID, now=0
        )
        is None
    )
    # an announce signature does not work as an unannounce
    s.handle(Command.ANNOUNCE, target=TOPIC, token=TOKEN, value=good, from_addr=FROM, node_id=NODE_ID, now=0)
    assert (
        s.handle(
            Command.UNANNOUNCE, target=TOPIC, token=TOKEN, value=good, from_addr=FROM, node_id=NODE_ID, now=0
        )
        is None
    )
    assert lookup(s) == [key.public_key]


def test_self_announce_goes_to_router() -> None:
    s = store()
    key = kp(5)
    target = blake2b(key.public_key)
    assert announce(s, key, topic=target, relays=(("2.2.2.2", 22),)) is not None
    fwd = s.router.get(target, 0)
    assert fwd is not None and fwd.relay == FROM
    assert len(s.records) == 0
    r = s.handle(
        Command.FIND_PEER, target=target, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=0
    )
    assert r is not None and r.value is not None
    assert decode_peer(r.value) == Peer(public_key=key.public_key, relay_addresses=(("2.2.2.2", 22),))
    assert lookup(s, target) == [key.public_key]
    announce(s, key, topic=target, unannounce=True)
    assert s.router.get(target, 0) is None


def test_refresh_announce() -> None:
    s = store()
    key = kp(6)
    secret = b"\x42" * 32
    announce(s, key, refresh=blake2b(secret), now=0)
    # a refresh-only announce with the preimage renews the record
    value = encode_announce(Announce(refresh=secret))
    r = s.handle(
        Command.ANNOUNCE, target=TOPIC, token=TOKEN, value=value, from_addr=FROM, node_id=NODE_ID, now=1000
    )
    assert r == Reply(token=False, closer_nodes=False)
    assert lookup(s, now=1500) == [key.public_key]


def test_bump() -> None:
    s = store()
    announce(s, kp(1), bump=5)
    r = s.handle(Command.LOOKUP, target=TOPIC, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=0)
    assert r is not None and r.value is not None and decode_lookup_reply(r.value).bump == 5
    s.wall_clock_offset = 0.0
    announce(s, kp(2), bump=10**12)  # far in the future: ignored when the wall clock is known
    r = s.handle(Command.LOOKUP, target=TOPIC, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=0)
    assert r is not None and r.value is not None and decode_lookup_reply(r.value).bump == 5


def mput(s: Storage, key: KeyPair, seq: int, value: bytes, now: float = 0.0) -> Reply | None:
    req = MutablePutRequest(
        public_key=key.public_key, seq=seq, value=value, signature=sign_mutable(seq, value, key)
    )
    return s.handle(
        Command.MUTABLE_PUT,
        target=blake2b(key.public_key),
        token=TOKEN,
        value=encode_mutable_put_request(req),
        from_addr=FROM,
        node_id=NODE_ID,
        now=now,
    )


def mget(s: Storage, key: KeyPair, seq: int = 0, now: float = 0.0) -> tuple[int, bytes] | None:
    r = s.handle(
        Command.MUTABLE_GET,
        target=blake2b(key.public_key),
        token=None,
        value=encode_seq(seq),
        from_addr=FROM,
        node_id=NODE_ID,
        now=now,
    )
    assert r is not None and r.token
    if r.value is None:
        return None
    m = decode_mutable_get_response(r.value)
    return (m.seq, m.value)


def test_mutable_seq_rules() -> None:
    s = store()
    key = kp(7)
    assert mput(s, key, 3, b"a") == Reply()
    assert mget(s, key) == (3, b"a")
    assert mput(s, key, 3, b"a") == Reply()  # same seq, same value: fine
    assert mput(s, key, 3, b"b") == Reply(error=16, token=False)
    assert mput(s, key, 2, b"c") == Reply(error=17, token=False)
    assert mput(s, key, 4, b"d") == Reply()
    assert mget(s, key) == (4, b"d")
    assert mget(s, key, seq=5) is None
    # bad signature / wrong target / empty value: silent
    req = MutablePutRequest(public_key=key.public_key, seq=9, value=b"x", signature=b"\x00" * 64)
    assert (
        s.handle(
            Command.MUTABLE_PUT,
            target=blake2b(key.public_key),
            token=TOKEN,
            value=encode_mutable_put_request(req),
            from_addr=FROM,
            node_id=NODE_ID,
            now=0,
        )
        is None
    )
    # values live 48 h
    assert mget(s, key, now=48 * 3600 - 1) == (4, b"d")
    assert mget(s, key, now=48 * 3600 + 1) is None


def test_immutable() -> None:
    s = store()
    v = b"some value"
    h = blake2b(v)
    assert (
        s.handle(
            Command.IMMUTABLE_PUT, target=h, token=TOKEN, value=v, from_addr=FROM, node_id=NODE_ID, now=0
        )
        == Reply()
    )
    assert (
        s.handle(
            Command.IMMUTABLE_PUT, target=h, token=TOKEN, value=b"x", from_addr=FROM, node_id=NODE_ID, now=0
        )
        is None
    )
    assert (
        s.handle(Command.IMMUTABLE_PUT, target=h, token=None, value=v, from_addr=FROM, node_id=NODE_ID, now=0)
        is None
    )
    r = s.handle(
        Command.IMMUTABLE_GET, target=h, token=None, value=None, from_addr=FROM, node_id=NODE_ID, now=0
    )
    assert r == Reply(value=v)


def test_size_bound_evicts_oldest() -> None:
    s = Storage(random.Random(2), max_size=10)
    for i in range(15):
        announce(s, kp(i + 1), topic=blake2b(bytes([i])), now=float(i))
    assert len(s.records) == 10
    assert lookup(s, blake2b(bytes([0]))) == []
    assert lookup(s, blake2b(bytes([14]))) == [kp(15).public_key]


@settings(max_examples=300, deadline=None)
@given(
    command=st.integers(0, 12),
    target=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
    token=st.one_of(st.none(), st.just(TOKEN)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_arbitrary_requests_never_raise(
    command: int, target: bytes | None, token: bytes | None, value: bytes | None
) -> None:
    s = store()
    s.handle(command, target=target, token=token, value=value, from_addr=FROM, node_id=NODE_ID, now=0)
