"""Noise IK/XX byte for byte against JS noise-handshake + noise-curve-ed, and hyperdht's NoiseWrap."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from jsproc import JSProcess, start_js
from peerdht.errors import RemoteProtocolError
from peerdht.secure import (
    NS_PEER_HANDSHAKE,
    KeyPair,
    NoiseState,
    holepunch_secret,
    peer_handshake,
    stream_id,
)

pytestmark = pytest.mark.interop


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@pytest.fixture
async def js() -> AsyncIterator[JSProcess]:
    p = await start_js("secure-noise.js")
    assert (await p.line()) == {"ready": True}
    try:
        yield p
    finally:
        await p.close()


async def call(js: JSProcess, **cmd: object) -> dict[str, object]:
    await js.send(cmd)
    reply = await js.line()
    assert "error" not in reply, reply
    return reply


PAYLOADS = [b"first payload", b"", b"third \x00 payload"]


@pytest.mark.parametrize(
    ("pattern", "prologue"), [("IK", NS_PEER_HANDSHAKE), ("XX", b""), ("XX", b"prologue"), ("NN", b"")]
)
async def test_same_bytes_as_js_in_both_roles(js: JSProcess, pattern: str, prologue: bytes) -> None:
    """Python and JS, given the same keys, write identical messages; each talks to the other."""
    init_s, resp_s = KeyPair.from_seed(seed("init")), KeyPair.from_seed(seed("resp"))
    remote = resp_s.public_key if pattern == "IK" else None
    py_i = NoiseState(
        pattern,
        initiator=True,
        static_key_pair=init_s,
        remote_static=remote,
        prologue=prologue,
        ephemeral_seed=seed("init-e"),
    )
    py_r = NoiseState(
        pattern, initiator=False, static_key_pair=resp_s, prologue=prologue, ephemeral_seed=seed("resp-e")
    )
    common = {"pattern": pattern, "prologue": prologue.hex()}
    await call(
        js,
        op="new",
        id="i",
        initiator=True,
        seed=seed("init").hex(),
        eseed=seed("init-e").hex(),
        remote=remote.hex() if remote else None,
        **common,
    )
    await call(
        js,
        op="new",
        id="r",
        initiator=False,
        seed=seed("resp").hex(),
        eseed=seed("resp-e").hex(),
        remote=None,
        **common,
    )
    sides = [(py_i, "i", py_r, "r"), (py_r, "r", py_i, "i")]
    step = 0
    while not py_i.complete:
        py_w, js_w, py_rd, js_rd = sides[step % 2]
        payload = PAYLOADS[step]
        ours = py_w.send(payload)
        theirs = await call(js, op="send", id=js_w, payload=payload.hex())
        assert ours.hex() == theirs["msg"], f"message {step} differs"
        # cross-feed: JS reads ours, we read theirs
        got = await call(js, op="recv", id=js_rd, msg=ours.hex())
        assert got["payload"] == payload.hex()
        assert py_rd.recv(bytes.fromhex(str(theirs["msg"]))) == payload
        step += 1
    assert py_r.complete
    for py, js_id in ((py_i, "i"), (py_r, "r")):
        final = await call(js, op="state", id=js_id)
        assert final["complete"] is True
        assert final["hash"] == py.handshake_hash.hex()
        assert final["tx"] == py.tx_key.hex()
        assert final["rx"] == py.rx_key.hex()
        assert final["rs"] == (py.remote_public_key.hex() if py.remote_public_key else None)
    assert py_i.tx_key == py_r.rx_key and py_i.rx_key == py_r.tx_key
    if pattern != "NN":
        assert py_i.remote_public_key == resp_s.public_key
        assert py_r.remote_public_key == init_s.public_key


async def test_hyperdht_noisewrap_responder(js: JSProcess) -> None:
    """Our IK initiator against hyperdht lib/noise-wrap.js: payload, keys, holepunch secret, stream ids."""
    client, server = KeyPair.from_seed(seed("client")), KeyPair.from_seed(seed("server"))
    hs = peer_handshake(client, server.public_key, seed("client-e"))
    # noisePayload v1: flags udx|secretStream, error 0, firewall 0, udx{v1, features 0, id 7, seq 0}, ss{v1}
    payload = bytes([1, 8 | 16, 0, 0, 1, 0, 7, 0, 1])
    msg1 = hs.send(payload)
    assert len(msg1) == 96 + len(payload)
    r = await call(
        js, op="wrap-respond", seed=seed("server").hex(), eseed=seed("server-e").hex(), msg=msg1.hex()
    )
    assert r["payload"] == payload.hex()
    assert r["remotePublicKey"] == client.public_key.hex()
    assert hs.recv(bytes.fromhex(str(r["msg"]))) == payload
    res = hs.result()
    assert r["hash"] == res.handshake_hash.hex()
    assert r["tx"] == res.rx_key.hex() and r["rx"] == res.tx_key.hex()
    assert r["holepunchSecret"] == res.holepunch_secret.hex() == holepunch_secret(res.handshake_hash).hex()
    # the server's remoteId is the id our (initiator's) header carries
    assert r["remoteId"] == res.secret_stream_id.hex() == stream_id(res.handshake_hash, True).hex()
    assert r["id"] == res.remote_secret_stream_id.hex()


async def test_tampered_messages_fail_on_both_sides(js: JSProcess) -> None:
    client, server = KeyPair.from_seed(seed("c")), KeyPair.from_seed(seed("s"))
    py_i = NoiseState(
        "IK",
        initiator=True,
        static_key_pair=client,
        remote_static=server.public_key,
        prologue=NS_PEER_HANDSHAKE,
        ephemeral_seed=seed("ce"),
    )
    await call(
        js,
        op="new",
        id="r",
        pattern="IK",
        initiator=False,
        seed=seed("s").hex(),
        eseed=seed("se").hex(),
        remote=None,
        prologue=NS_PEER_HANDSHAKE.hex(),
    )
    msg1 = bytearray(py_i.send(b"hi"))
    msg1[50] ^= 1
    assert "failed" in await call(js, op="recv", id="r", msg=msg1.hex())
    # and ours rejects a tampered reply, then still accepts the genuine one
    py_r = NoiseState(
        "IK", initiator=False, static_key_pair=server, prologue=NS_PEER_HANDSHAKE, ephemeral_seed=seed("se")
    )
    msg1[50] ^= 1
    assert py_r.recv(bytes(msg1)) == b"hi"
    msg2 = py_r.send(b"yo")
    bad = bytearray(msg2)
    bad[-1] ^= 0x80
    with pytest.raises(RemoteProtocolError):
        py_i.recv(bytes(bad))
    assert py_i.recv(msg2) == b"yo"
    assert py_i.handshake_hash == py_r.handshake_hash
