"""Hypothesis strategies for the HyperDHT wire types (shared by core and interop codec tests).

Also a helper ``to_js`` that turns our values into the JSON shape tests/js/hyper-codec.js
uses (camelCase fields, ``{"$b": hex}`` buffers, ``{"host", "port"}`` addresses).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import strategies as st

from peerdht.hyper.messages import Request, Response
from peerdht.hyper.records import (
    Announce,
    Handshake,
    Holepunch,
    HolepunchInfo,
    HolepunchPayload,
    LookupReply,
    MutableGetResponse,
    MutablePutRequest,
    NoisePayload,
    Peer,
    PluginRequest,
    RelayInfo,
    RelayThroughInfo,
    SecretStreamInfo,
    UdxInfo,
)

MAX_SAFE = 2**53 - 1
BOUNDARIES = [0, 1, 0xFC, 0xFD, 0xFE, 0xFF, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x100000000, MAX_SAFE]

uints = st.one_of(st.integers(0, 0x300), st.sampled_from(BOUNDARIES), st.integers(0, MAX_SAFE))
# JS preencode counts mode/error/firewall/round of handshake, holepunch, noisePayload and
# holepunchPayload as one byte each, so JS can only encode values <= 0xFC there.
small_uints = st.one_of(st.integers(0, 20), st.just(0xFC))
ports = st.integers(0, 0xFFFF)
addr4 = st.tuples(st.ip_addresses(v=4).map(str), ports)
addr6 = st.tuples(st.ip_addresses(v=6).map(str), ports)
b32 = st.binary(min_size=32, max_size=32)
b64 = st.binary(min_size=64, max_size=64)
blobs = st.binary(max_size=300)


def opt(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s)


def addr_list(s: st.SearchStrategy[Any], n: int = 5) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(s, max_size=n).map(tuple)


requests = st.builds(
    Request,
    tid=ports,
    to=addr4,
    id=opt(b32),
    token=opt(b32),
    internal=st.booleans(),
    command=uints,
    target=opt(b32),
    value=opt(blobs),
)
responses = st.builds(
    Response,
    tid=ports,
    to=addr4,
    id=opt(b32),
    token=opt(b32),
    closer_nodes=addr_list(addr4, 20),
    error=uints,
    value=opt(blobs),
)
peers = st.builds(Peer, public_key=b32, relay_addresses=addr_list(addr4))
peer_lists = st.lists(peers, max_size=4).map(tuple)
lookup_replies = st.builds(LookupReply, peers=peer_lists, bump=uints)
announces = st.builds(Announce, peer=opt(peers), refresh=opt(b32), signature=opt(b64), bump=uints)
mutable_puts = st.builds(MutablePutRequest, public_key=b32, seq=uints, value=blobs, signature=b64)
mutable_gets = st.builds(MutableGetResponse, seq=uints, value=blobs, signature=b64)
plugin_requests = st.builds(
    PluginRequest, plugin=st.text(max_size=40), version=uints, command=uints, value=opt(blobs)
)
handshakes = st.builds(
    Handshake, mode=small_uints, noise=blobs, peer_address=opt(addr4), relay_address=opt(addr4)
)
holepunches = st.builds(Holepunch, mode=small_uints, id=uints, payload=blobs, peer_address=opt(addr4))
noise_payloads = st.builds(
    NoisePayload,
    version=st.just(1),
    error=small_uints,
    firewall=small_uints,
    holepunch=opt(
        st.builds(
            HolepunchInfo,
            id=uints,
            relays=st.lists(st.builds(RelayInfo, relay_address=addr4, peer_address=addr4), max_size=3).map(
                tuple
            ),
        )
    ),
    addresses4=addr_list(addr4),
    addresses6=addr_list(addr6),
    udx=opt(st.builds(UdxInfo, id=uints, seq=uints, reusable_socket=st.booleans())),
    secret_stream=opt(st.just(SecretStreamInfo())),
    relay_through=opt(st.builds(RelayThroughInfo, public_key=b32, token=b32)),
    relay_addresses=opt(addr_list(addr4)),
)
holepunch_payloads = st.builds(
    HolepunchPayload,
    error=small_uints,
    firewall=small_uints,
    round=small_uints,
    connected=st.booleans(),
    punching=st.booleans(),
    addresses=opt(addr_list(addr4)),
    remote_address=opt(addr4),
    token=opt(b32),
    remote_token=opt(b32),
)

# (JS name in hyperdht/lib/messages.js, strategy)
RECORD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "peer": peers,
    "peers": peer_lists,
    "lookupRawReply": lookup_replies,
    "announce": announces,
    "mutablePutRequest": mutable_puts,
    "mutableGetResponse": mutable_gets,
    "pluginRequest": plugin_requests,
    "handshake": handshakes,
    "holepunch": holepunches,
    "noisePayload": noise_payloads,
    "holepunchPayload": holepunch_payloads,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _is_addr(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], int)


def to_js(x: Any) -> Any:
    """Our value -> the JSON shape of the JS objects (IPv6 hosts written out in full)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {_camel(f.name): to_js(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, bytes):
        return {"$b": x.hex()}
    if _is_addr(x):
        host = x[0]
        if ":" in host:
            host = ipaddress.IPv6Address(host).exploded
        return {"host": host, "port": x[1]}
    if isinstance(x, (tuple, list)):
        return [to_js(i) for i in x]
    return x


def norm_js(x: Any) -> Any:
    """Normalise JS output for comparison: IPv6 hosts in full form."""
    if isinstance(x, dict):
        out = {k: norm_js(v) for k, v in x.items()}
        if isinstance(out.get("host"), str) and ":" in out["host"]:
            out["host"] = ipaddress.IPv6Address(out["host"]).exploded
        return out
    if isinstance(x, list):
        return [norm_js(i) for i in x]
    return x
