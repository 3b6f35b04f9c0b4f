"""HyperDHT wire codecs and crypto byte for byte against the npm modules.

tests/js/hyper-codec.js runs the real dht-rpc ``lib/io.js`` encode/decode paths (against a stub
IO), hyperdht ``lib/messages.js`` through compact-encoding, and hyperdht's key pair, hash and
signing functions. Checked here:

* our encoding == JS encoding, and each side decodes the other's bytes to the same value;
* differential decoding of junk (random, truncated and bit-flipped bytes): we reject exactly
  what JS rejects, and where both accept they agree on the value;
* key pairs from seeds, hashes, node ids, namespaces, announce/unannounce and mutable
  signatures equal JS's;
* a live persistent dht-rpc node on 127.0.0.1 (tests/js/hyper-codec-live.js): we decode its
  requests (with its node id) and it accepts our responses, and the other way round (including
  its token check and error replies).

``PEERDHT_CODEC_EXAMPLES=60`` runs more hypothesis batches (default 4, about 20 s in all).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.test_hyper_messages_strategies import (
    RECORD_STRATEGIES,
    addr4,
    b32,
    blobs,
    norm_js,
    peers,
    requests,
    responses,
    to_js,
)
from jsproc import JS_DIR, ROOT, require_node, start_js
from peerdht.errors import DecodeError
from peerdht.hyper import constants
from peerdht.hyper import records as r
from peerdht.hyper.constants import Error, InternalCommand
from peerdht.hyper.crypto import (
    KeyPair,
    hash,
    node_id,
    sign_announce,
    sign_mutable,
    validate_id,
    verify_mutable,
)
from peerdht.hyper.messages import Request, Response, decode_message, encode_request, encode_response

pytestmark = pytest.mark.interop

BATCH = settings(
    max_examples=int(os.environ.get("PEERDHT_CODEC_EXAMPLES", "4")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_js(ops: list[dict[str, Any]]) -> list[Any]:
    """Run one batch of ops through tests/js/hyper-codec.js; returns their results in order."""
    node = require_node()
    proc = subprocess.run(
        [node, str(JS_DIR / "hyper-codec.js")],
        input=json.dumps({"ops": ops}).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert len(results) == len(ops)
    for res, op in zip(results, ops, strict=True):
        assert "error" not in res, (op, res["error"])
    return [res["ok"] for res in results]


ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "peer": r.encode_peer,
    "peers": r.encode_peers,
    "lookupRawReply": r.encode_lookup_reply,
    "announce": r.encode_announce,
    "mutablePutRequest": r.encode_mutable_put_request,
    "mutableGetResponse": r.encode_mutable_get_response,
    "pluginRequest": r.encode_plugin_request,
    "handshake": r.encode_handshake,
    "holepunch": r.encode_holepunch,
    "noisePayload": r.encode_noise_payload,
    "holepunchPayload": r.encode_holepunch_payload,
}
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "peer": r.decode_peer,
    "peers": r.decode_peers,
    "lookupRawReply": r.decode_lookup_reply,
    "announce": r.decode_announce,
    "mutablePutRequest": r.decode_mutable_put_request,
    "mutableGetResponse": r.decode_mutable_get_response,
    "pluginRequest": r.decode_plugin_request,
    "handshake": r.decode_handshake,
    "holepunch": r.decode_holepunch,
    "noisePayload": r.decode_noise_payload,
    "holepunchPayload": r.decode_holepunch_payload,
}


def datagram_js(m: Request | Response) -> dict[str, Any]:
    out: dict[str, Any] = to_js(m)
    out["type"] = "request" if isinstance(m, Request) else "response"
    return out


def ours_decode_datagram(data: bytes) -> Any:
    try:
        return datagram_js(decode_message(data))
    except DecodeError:
        return None


def ours_decode(kind: str, data: bytes) -> Any:
    try:
        return to_js(DECODERS[kind](data))
    except DecodeError:
        return None


# ------------------------------------------------------------------------------ datagrams


@BATCH
@given(st.lists(requests, min_size=40, max_size=40), st.lists(responses, min_size=40, max_size=40))
def test_datagrams_match_js(reqs: list[Request], ress: list[Response]) -> None:
    ops = [{"op": "encode_request", "msg": to_js(m)} for m in reqs]
    ops += [{"op": "encode_response", "msg": to_js(m)} for m in ress]
    ours = [encode_request(m) for m in reqs] + [encode_response(m) for m in ress]
    ops += [{"op": "decode_datagram", "hex": b.hex()} for b in ours]
    results = run_js(ops)
    n = len(ours)
    js_bytes = [bytes.fromhex(h) for h in results[:n]]
    assert [b.hex() for b in js_bytes] == [b.hex() for b in ours]
    msgs: list[Request | Response] = [*reqs, *ress]
    assert [decode_message(b) for b in js_bytes] == msgs
    assert [norm_js(x) for x in results[n:]] == [datagram_js(m) for m in msgs]


def mutations(data: bytes, draw: st.DataObject) -> list[bytes]:
    out = [data[: draw.draw(st.integers(0, len(data)))]]
    flipped = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        i = draw.draw(st.integers(0, len(data) - 1))
        flipped[i] = draw.draw(st.integers(0, 255))
    out.append(bytes(flipped))
    out.append(data + draw.draw(st.binary(min_size=1, max_size=8)))
    return out


@BATCH
@given(
    st.lists(
        st.one_of(requests.map(encode_request), responses.map(encode_response)), min_size=30, max_size=30
    ),
    st.lists(st.binary(max_size=60).map(lambda b: bytes([0x03 if len(b) % 2 else 0x13]) + b), max_size=30),
    st.data(),
)
def test_datagram_decoding_agrees_with_js(valid: list[bytes], junk: list[bytes], draw: st.DataObject) -> None:
    cases = [*junk, b"", b"\x03", b"\x05\x00" + bytes(10)]
    for data in valid:
        cases += mutations(data, draw)
    results = run_js([{"op": "decode_datagram", "hex": b.hex()} for b in cases])
    for data, js in zip(cases, results, strict=True):
        assert ours_decode_datagram(data) == norm_js(js), data.hex()


# ------------------------------------------------------------------------------ payloads


@pytest.mark.parametrize("kind", sorted(RECORD_STRATEGIES))
def test_payloads_match_js(kind: str) -> None:
    @BATCH
    @given(st.lists(RECORD_STRATEGIES[kind], min_size=25, max_size=25))
    def check(msgs: list[Any]) -> None:
        ours = [ENCODERS[kind](m) for m in msgs]
        ops = [{"op": "encode", "type": kind, "msg": to_js(m)} for m in msgs]
        ops += [{"op": "decode", "type": kind, "hex": b.hex()} for b in ours]
        results = run_js(ops)
        n = len(msgs)
        assert results[:n] == [b.hex() for b in ours]
        assert [DECODERS[kind](bytes.fromhex(h)) for h in results[:n]] == msgs
        assert [norm_js(x) for x in results[n:]] == [to_js(m) for m in msgs]

    check()


@pytest.mark.parametrize("kind", sorted(RECORD_STRATEGIES))
def test_payload_decoding_agrees_with_js(kind: str) -> None:
    @BATCH
    @given(
        st.lists(RECORD_STRATEGIES[kind], min_size=20, max_size=20),
        st.lists(st.binary(max_size=80), max_size=20),
        st.data(),
    )
    def check(msgs: list[Any], junk: list[bytes], draw: st.DataObject) -> None:
        cases = [*junk, b""]
        for m in msgs:
            cases += mutations(ENCODERS[kind](m), draw)
        results = run_js([{"op": "decode", "type": kind, "hex": b.hex()} for b in cases])
        for data, js in zip(cases, results, strict=True):
            assert ours_decode(kind, data) == norm_js(js), data.hex()

    check()


def test_noise_payload_specials_agree_with_js() -> None:
    cases = [
        b"\x02",  # other version: JS returns a stub instead of failing
        b"\x00\xff",
        b"\x01\x7f\x00\x00",  # every flag, nothing behind it
        b"\x01\x02\x00\x00\xfe\x00\x00\x10\x00",  # 0x100000 addresses announced
        b"\x01\x02\x00\x00\xfe\x01\x00\x10\x00",  # 0x100001 addresses announced
        b"\x01\x04\x00\x00\x01" + bytes(18),  # one IPv6 address
    ]
    results = run_js([{"op": "decode", "type": "noisePayload", "hex": b.hex()} for b in cases])
    for data, js in zip(cases, results, strict=True):
        assert ours_decode("noisePayload", data) == norm_js(js), data.hex()


def test_invalid_utf8_strings_agree_with_js() -> None:
    samples = [
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
        b"\xed\xa0\x80",  # surrogate encoded in UTF-8
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xc0\xaf",  # overlong
        b"a\xf0\x9f\x98b",
        b"\xf0\x9f\x98\x80ok",
    ]
    cases = [bytes([len(s)]) + s for s in samples]
    ops = [{"op": "decode", "type": "pluginRequest", "hex": (c + b"\x00\x00\x00").hex()} for c in cases]
    results = run_js(ops)
    for c, js in zip(cases, results, strict=True):
        assert js is not None
        assert r.decode_plugin_request(c + b"\x00\x00\x00").plugin == js["plugin"]


# ------------------------------------------------------------------------------ crypto


def test_namespaces_match_js() -> None:
    (ns,) = run_js([{"op": "ns"}])
    ours = {
        "ANNOUNCE": constants.NS_ANNOUNCE,
        "UNANNOUNCE": constants.NS_UNANNOUNCE,
        "MUTABLE_PUT": constants.NS_MUTABLE_PUT,
        "PEER_HANDSHAKE": constants.NS_PEER_HANDSHAKE,
        "PEER_HOLEPUNCH": constants.NS_PEER_HOLEPUNCH,
        "PLUGIN": constants.NS_PLUGIN,
    }
    assert ns == {k: {"$b": v.hex()} for k, v in ours.items()}


@BATCH
@given(
    st.lists(b32, min_size=10, max_size=10),
    st.lists(st.binary(max_size=200), min_size=10, max_size=10),
    st.lists(addr4, min_size=10, max_size=10),
)
def test_keys_hashes_and_ids_match_js(seeds: list[bytes], blobs_: list[bytes], addrs: list[Any]) -> None:
    ops = [{"op": "keypair", "seed": {"$b": s.hex()}} for s in seeds]
    ops += [{"op": "hash", "data": {"$b": b.hex()}} for b in blobs_]
    ops += [{"op": "node_id", "host": h, "port": p} for h, p in addrs]
    results = run_js(ops)
    keys = [KeyPair.from_seed(s) for s in seeds]
    assert results[:10] == [
        {"publicKey": to_js(k.public_key), "secretKey": to_js(k.secret_key)} for k in keys
    ]
    assert results[10:20] == [to_js(hash(b)) for b in blobs_]
    assert results[20:] == [to_js(node_id(h, p)) for h, p in addrs]


@BATCH
@given(
    st.lists(
        st.tuples(b32, b32, b32, b32, peers, st.one_of(st.none(), b32), st.booleans()),
        min_size=10,
        max_size=10,
    ),
    st.lists(st.tuples(b32, st.integers(0, 2**53 - 1), blobs), min_size=10, max_size=10),
)
def test_signatures_match_js(
    anns: list[tuple[bytes, bytes, bytes, bytes, r.Peer, bytes | None, bool]],
    muts: list[tuple[bytes, int, bytes]],
) -> None:
    ops: list[dict[str, Any]] = []
    expected: list[Any] = []
    for seed, target, nid, token, peer, refresh, unann in anns:
        kp = KeyPair.from_seed(seed)
        # hyperdht signs whatever peer record it is given; use the announcer's key as it does
        peer = r.Peer(public_key=kp.public_key, relay_addresses=peer.relay_addresses)
        ops.append(
            {
                "op": "sign_announce",
                "seed": to_js(seed),
                "target": to_js(target),
                "id": to_js(nid),
                "token": to_js(token),
                "peer": to_js(peer),
                "refresh": to_js(refresh),
                "unannounce": unann,
            }
        )
        expected.append(to_js(sign_announce(target, nid, token, peer, refresh, kp, unannounce=unann)))
    for seed, seq, value in muts:
        kp = KeyPair.from_seed(seed)
        sig = sign_mutable(seq, value, kp)
        assert verify_mutable(sig, seq, value, kp.public_key)
        ops.append({"op": "sign_mutable", "seed": to_js(seed), "seq": seq, "value": to_js(value)})
        expected.append(to_js(sig))
        ops.append(
            {
                "op": "verify_mutable",
                "signature": to_js(sig),
                "seq": seq,
                "value": to_js(value),
                "publicKey": to_js(kp.public_key),
            }
        )
        expected.append(True)
    assert run_js(ops) == expected


# ------------------------------------------------------------------------------ live dht-rpc node


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self) -> tuple[Request | Response, tuple[str, int]]:
        data, addr = await asyncio.wait_for(self.queue.get(), 10)
        return decode_message(data), addr


async def test_live_dht_rpc_node_speaks_our_datagrams() -> None:
    js = await start_js("hyper-codec-live.js")
    loop = asyncio.get_running_loop()
    transport, udp = await loop.create_datagram_endpoint(_Udp, local_addr=("127.0.0.1", 0))
    try:
        ready = await js.line()
        assert ready["ready"] is True
        js_addr = ("127.0.0.1", int(ready["port"]))
        me = ("127.0.0.1", int(transport.get_extra_info("sockname")[1]))
        target, token, reply_token = b"\x07" * 32, b"\x08" * 32, b"\x09" * 32

        # JS -> us: an application request, answered by our encoder
        await js.send(
            {
                "op": "request",
                "port": me[1],
                "command": 5,
                "target": target.hex(),
                "value": "0102",
                "token": token.hex(),
            }
        )
        req, addr = await udp.recv()
        assert isinstance(req, Request)
        assert (req.command, req.internal, req.target, req.value, req.token, req.to) == (
            5,
            False,
            target,
            b"\x01\x02",
            token,
            me,
        )
        js_id = bytes.fromhex(ready["id"])  # a persistent node: it sends its id from its server socket
        assert addr == js_addr
        assert req.id == js_id == validate_id(req.id, addr) == node_id(*js_addr)
        closer = (("127.0.0.1", 1), ("10.1.2.3", 65535))
        udp.send(
            encode_response(
                Response(tid=req.tid, to=addr, token=reply_token, closer_nodes=closer, value=b"hello")
            ),
            addr,
        )
        got = (await js.line())["reply"]
        assert got == {
            "tid": req.tid,
            "to": {"host": addr[0], "port": addr[1]},  # how we see the JS node
            "id": None,
            "token": reply_token.hex(),
            "closerNodes": [{"host": h, "port": p} for h, p in closer],
            "error": 0,
            "value": b"hello".hex(),
        }

        # JS -> us: an internal PING
        await js.send({"op": "ping", "port": me[1]})
        ping, addr = await udp.recv()
        assert isinstance(ping, Request)
        assert (ping.internal, ping.command, ping.value, ping.target) == (
            True,
            InternalCommand.PING,
            None,
            None,
        )
        udp.send(encode_response(Response(tid=ping.tid, to=addr)), addr)
        assert await js.line() == {"pinged": True}

        # JS -> us: an error reply
        await js.send({"op": "request", "port": me[1], "command": 6})
        req, addr = await udp.recv()
        assert isinstance(req, Request) and req.target is None and req.value is None
        udp.send(encode_response(Response(tid=req.tid, to=addr, error=Error.SEQ_TOO_LOW)), addr)
        got = await js.line()
        assert got.get("reply", {}).get("error") == Error.SEQ_TOO_LOW, got

        # us -> JS: internal FIND_NODE
        udp.send(
            encode_request(
                Request(tid=77, to=js_addr, internal=True, command=InternalCommand.FIND_NODE, target=target)
            ),
            js_addr,
        )
        res, addr = await udp.recv()
        assert isinstance(res, Response)
        assert (res.tid, res.to, res.error, addr) == (77, me, 0, js_addr)
        assert res.id == js_id

        # us -> JS: an application command gets a value and a token; the token is then accepted,
        # a wrong one is refused with INVALID_TOKEN, an unknown command gets UNKNOWN_COMMAND
        udp.send(encode_request(Request(tid=78, to=js_addr, command=42, value=b"")), js_addr)
        res, _ = await udp.recv()
        assert isinstance(res, Response) and (res.tid, res.error, res.value) == (78, 0, b"pong")
        assert res.token is not None and len(res.token) == 32
        udp.send(encode_request(Request(tid=79, to=js_addr, command=42, token=res.token)), js_addr)
        res, _ = await udp.recv()
        assert isinstance(res, Response) and (res.tid, res.error, res.value) == (79, 0, b"pong")
        udp.send(encode_request(Request(tid=80, to=js_addr, command=42, token=bytes(32))), js_addr)
        res, _ = await udp.recv()
        assert isinstance(res, Response) and (res.tid, res.error) == (80, Error.INVALID_TOKEN)
        udp.send(encode_request(Request(tid=81, to=js_addr, command=99, target=target)), js_addr)
        res, _ = await udp.recv()
        assert isinstance(res, Response) and (res.tid, res.error) == (81, Error.UNKNOWN_COMMAND)
    finally:
        transport.close()
        await js.close()
