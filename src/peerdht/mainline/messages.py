"""KRPC messages of the Mainline DHT (BEP 5, 32, 42, 43, 44, 51).

Two layers, as in pubky/mainline:

* the **wire layer** is the bencoded KRPC envelope with its one-letter keys (``t``, ``y``, ``q``,
  ``a``, ``r``, ``e``, top-level ``v`` client version, BEP 42 ``ip``, BEP 43 ``ro``);
* the **meaning layer** is one frozen dataclass per query and per response kind, with every field
  type- and range-checked when parsed from untrusted bytes.

:func:`decode_message` turns a datagram into :class:`QueryMessage`, :class:`ResponseMessage` or
:class:`ErrorMessage` (or raises :class:`~peerdht.errors.DecodeError`). A KRPC response does not name
its method, so :func:`parse_response` reads the ``r`` dictionary once the caller knows which query it
answers. A query whose envelope is fine but whose arguments are not raises :class:`BadQuery`
(a ``DecodeError`` that still carries the transaction id, so a node can answer error 203), and an
unknown method parses to :class:`UnknownQuery` (answered with 204).

Semantic limits that have their own BEP 44 error codes (value > 1000 bytes: 205, salt > 64 bytes: 207,
bad signature: 206) are checked by the node, not here, so that it can answer with the right code.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeAlias

from peerdht.encoding.bencode import Value, decode, encode
from peerdht.errors import DecodeError, LocalProtocolError

__all__ = [
    "ERROR_CAS_MISMATCH",
    "ERROR_GENERIC",
    "ERROR_INVALID_SIGNATURE",
    "ERROR_METHOD_UNKNOWN",
    "ERROR_PROTOCOL",
    "ERROR_SALT_TOO_BIG",
    "ERROR_SEQ_TOO_LOW",
    "ERROR_SERVER",
    "ERROR_V_TOO_BIG",
    "MAX_SALT",
    "MAX_SEQ",
    "MAX_VALUE",
    "AnnouncePeer",
    "BadQuery",
    "ErrorMessage",
    "FindNode",
    "FindNodeResponse",
    "Get",
    "GetPeers",
    "GetPeersResponse",
    "GetResponse",
    "IdResponse",
    "NodeInfo",
    "Ping",
    "Put",
    "Query",
    "QueryMessage",
    "Response",
    "ResponseMessage",
    "SampleInfohashes",
    "SampleInfohashesResponse",
    "UnknownQuery",
    "decode_compact_addr",
    "decode_message",
    "decode_nodes",
    "encode_compact_addr",
    "encode_error",
    "encode_nodes",
    "encode_query",
    "encode_response",
    "method_of",
    "parse_response",
]

Addr: TypeAlias = tuple[str, int]

# BEP 5 error codes
ERROR_GENERIC = 201
ERROR_SERVER = 202
ERROR_PROTOCOL = 203
ERROR_METHOD_UNKNOWN = 204
# BEP 44 error codes
ERROR_V_TOO_BIG = 205
ERROR_INVALID_SIGNATURE = 206
ERROR_SALT_TOO_BIG = 207
ERROR_CAS_MISMATCH = 301
ERROR_SEQ_TOO_LOW = 302

MAX_VALUE = 1000
"""BEP 44: largest bencoded ``v`` a storer must accept (bytes)."""
MAX_SALT = 64
"""BEP 44: largest salt (bytes)."""
MAX_SEQ = (1 << 63) - 1
"""BEP 44: sequence numbers are signed 64-bit; negative ones are refused."""

MAX_TID = 32
"""Longest transaction id we accept (bytes); it is echoed, so an unbounded one would amplify."""
MAX_TOKEN = 64
"""Longest token we accept (bytes). bittorrent-dht uses 20, libtorrent 4; rtorrent crashed on 1370."""
MAX_VERSION = 16
"""Longer client versions are ignored (treated as absent)."""
MAX_MESSAGE_LEN = 1 << 16
"""Longest datagram we try to parse (bytes)."""


# ------------------------------------------------------------------------------------------------
# compact formats (BEP 5, BEP 32)


@lru_cache(maxsize=1 << 14)
def _packed(host: str) -> bytes | None:
    """The 4- or 16-byte packed form of an IP address string, or None (cached: hosts recur)."""
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        return None


@lru_cache(maxsize=1 << 12)
def _ip6_text(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def _ip4_text(data: bytes, i: int) -> str:
    """What ``str(IPv4Address(data[i:i + 4]))`` gives, without building the object."""
    return f"{data[i]}.{data[i + 1]}.{data[i + 2]}.{data[i + 3]}"


def encode_compact_addr(addr: Addr) -> bytes:
    """Compact peer info: 4-byte IPv4 or 16-byte IPv6 address + 2-byte port, big-endian.

    Raises:
        LocalProtocolError: the host is not an IP address or the port is out of range.
    """
    host, port = addr
    packed = _packed(host) if isinstance(host, str) else None
    if packed is None:
        raise LocalProtocolError(f"not an IP address: {host!r}")
    if not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port out of range: {port}")
    return packed + port.to_bytes(2, "big")


def decode_compact_addr(data: bytes) -> Addr:
    """Parse 6-byte (IPv4) or 18-byte (IPv6) compact peer info.

    Raises:
        DecodeError: any other length.
    """
    if len(data) == 6:
        return _ip4_text(data, 0), int.from_bytes(data[4:], "big")
    if len(data) == 18:
        return _ip6_text(bytes(data[:16])), int.from_bytes(data[16:], "big")
    raise DecodeError(f"compact address of {len(data)} bytes")


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeInfo:
    """A node as carried in ``nodes``/``nodes6``: 20-byte id, host, UDP port."""

    id: bytes
    host: str
    port: int

    @property
    def addr(self) -> Addr:
        return (self.host, self.port)


def encode_nodes(nodes: list[NodeInfo], *, v6: bool = False) -> bytes:
    """Compact node info (BEP 5: 26 bytes each; BEP 32 ``nodes6``: 38 bytes each).

    Nodes whose host is not an address of the requested family are skipped.
    """
    out = []
    size = 16 if v6 else 4
    for n in nodes:
        packed = _packed(n.host) if isinstance(n.host, str) else None
        if packed is None or len(packed) != size or not 0 < n.port <= 0xFFFF:
            continue
        out.append(n.id + packed + n.port.to_bytes(2, "big"))
    return b"".join(out)


def decode_nodes(data: bytes, *, v6: bool = False) -> list[NodeInfo]:
    """Parse compact node info; entries with port 0 are dropped.

    Raises:
        DecodeError: the length is not a multiple of 26 (38 for ``v6``).
    """
    size = 38 if v6 else 26
    if len(data) % size:
        raise DecodeError(f"{'nodes6' if v6 else 'nodes'} length {len(data)} not a multiple of {size}")
    data = bytes(data)  # the very object if bytes already; memo keys must be hashable
    out = []
    for i in range(0, len(data), size):
        chunk = data[i : i + size]
        if (node := _NODE_MEMO.get(chunk)) is None:  # first sight of this entry (nodes recur in reply after reply)
            port = int.from_bytes(chunk[size - 2 :], "big")
            if port == 0:
                continue
            host = _ip6_text(chunk[20:36]) if v6 else _ip4_text(chunk, 20)
            node = NodeInfo(id=chunk[:20], host=host, port=port)
            if len(_NODE_MEMO) >= 1 << 13:  # bounded: ~1.5 MiB at most
                _NODE_MEMO.clear()
            _NODE_MEMO[chunk] = node
        out.append(node)
    return out


_NODE_MEMO: dict[bytes, NodeInfo] = {}  # compact entry -> NodeInfo: decoding one costs ~1.6 us, this ~0.1 us


# ------------------------------------------------------------------------------------------------
# queries (meaning layer)


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """BEP 5 ``ping``."""

    id: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class FindNode:
    """BEP 5 ``find_node``; ``want`` is BEP 32 (``{"n4", "n6"}``, empty = not sent)."""

    id: bytes
    target: bytes
    want: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class GetPeers:
    """BEP 5 ``get_peers`` (``info_hash`` 20 bytes)."""

    id: bytes
    info_hash: bytes
    want: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnouncePeer:
    """BEP 5 ``announce_peer``; with ``implied_port`` the receiver uses the UDP source port."""

    id: bytes
    info_hash: bytes
    port: int
    token: bytes
    implied_port: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Get:
    """BEP 44 ``get``; ``seq``: only return a mutable value newer than this."""

    id: bytes
    target: bytes
    seq: int | None = None
    want: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class Put:
    """BEP 44 ``put``: immutable when ``k`` is ``None``, else mutable (``k``, ``sig``, ``seq`` set).

    ``v`` is the stored value as decoded; ``salt`` may exceed 64 bytes here (the node answers 207).
    """

    id: bytes
    token: bytes
    v: Value
    k: bytes | None = None
    sig: bytes | None = None
    seq: int | None = None
    salt: bytes = b""
    cas: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleInfohashes:
    """BEP 51 ``sample_infohashes``."""

    id: bytes
    target: bytes
    want: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownQuery:
    """A query with a method we do not implement (answered with error 204)."""

    method: bytes
    id: bytes | None = None


Query: TypeAlias = Ping | FindNode | GetPeers | AnnouncePeer | Get | Put | SampleInfohashes | UnknownQuery

_METHODS: dict[type, str] = {
    Ping: "ping",
    FindNode: "find_node",
    GetPeers: "get_peers",
    AnnouncePeer: "announce_peer",
    Get: "get",
    Put: "put",
    SampleInfohashes: "sample_infohashes",
}


def method_of(query: Query) -> str:
    """The KRPC method name (``q``) of a query."""
    if isinstance(query, UnknownQuery):
        return query.method.decode("latin-1")
    return _METHODS[type(query)]


# ------------------------------------------------------------------------------------------------
# responses (meaning layer)


@dataclass(frozen=True, kw_only=True, slots=True)
class IdResponse:
    """Response carrying only the responder id (``ping``, ``announce_peer``, ``put``)."""

    id: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class FindNodeResponse:
    """``find_node`` response: ``nodes`` (IPv4) and ``nodes6`` (BEP 32)."""

    id: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class GetPeersResponse:
    """``get_peers`` response: ``token`` (absent = no announces accepted), ``values`` (peers), nodes."""

    id: bytes
    token: bytes | None = None
    values: tuple[Addr, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class GetResponse:
    """BEP 44 ``get`` response; ``v`` set when the item was found; ``k``/``seq``/``sig`` for mutable."""

    id: bytes
    token: bytes | None = None
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    v: Value | None = None
    k: bytes | None = None
    seq: int | None = None
    sig: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleInfohashesResponse:
    """BEP 51 response: ``interval`` (seconds, 0..21600), ``num`` stored, ``samples`` (20 bytes each)."""

    id: bytes
    interval: int = 0
    num: int = 0
    samples: tuple[bytes, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()


Response: TypeAlias = (
    IdResponse | FindNodeResponse | GetPeersResponse | GetResponse | SampleInfohashesResponse
)


# ------------------------------------------------------------------------------------------------
# envelope


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryMessage:
    """A KRPC query (``y = q``). ``read_only`` is BEP 43 ``ro``; ``version`` the client ``v``."""

    t: bytes
    query: Query
    read_only: bool = False
    version: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseMessage:
    """A KRPC response (``y = r``); ``body`` is the raw ``r`` dict, ``id`` its checked ``r.id``.

    ``ip`` is BEP 42's view of our own address as the responder saw it.
    """

    t: bytes
    id: bytes
    body: dict[bytes, Value] = field(repr=False)
    ip: Addr | None = None
    version: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorMessage:
    """A KRPC error (``y = e``): ``code`` (201..207, 301, 302) and ``message``."""

    t: bytes
    code: int
    message: str = ""
    ip: Addr | None = None
    version: bytes | None = None


Message: TypeAlias = QueryMessage | ResponseMessage | ErrorMessage


class BadQuery(DecodeError):
    """A query whose envelope parsed but whose arguments did not (answer with error 203).

    Attributes:
        t: the transaction id to echo.
        method: the query method.
    """

    def __init__(self, t: bytes, method: bytes, reason: str) -> None:
        super().__init__(reason)
        self.t = t
        self.method = method


# ------------------------------------------------------------------------------------------------
# field readers (raise DecodeError)


def _bytes(
    d: dict[bytes, Value], key: bytes, *, size: int | None = None, max_size: int | None = None
) -> bytes:
    v = d.get(key)
    if not isinstance(v, bytes):
        raise DecodeError(f"{key.decode()}: missing or not a byte string")
    if size is not None and len(v) != size:
        raise DecodeError(f"{key.decode()}: {len(v)} bytes, expected {size}")
    if max_size is not None and len(v) > max_size:
        raise DecodeError(f"{key.decode()}: longer than {max_size} bytes")
    return v


def _opt_bytes(
    d: dict[bytes, Value], key: bytes, *, size: int | None = None, max_size: int | None = None
) -> bytes | None:
    if key not in d:
        return None
    return _bytes(d, key, size=size, max_size=max_size)


def _int(d: dict[bytes, Value], key: bytes, lo: int, hi: int) -> int:
    v = d.get(key)
    if not isinstance(v, int):
        raise DecodeError(f"{key.decode()}: missing or not an integer")
    if not lo <= v <= hi:
        raise DecodeError(f"{key.decode()}: {v} out of range [{lo}, {hi}]")
    return v


def _opt_int(d: dict[bytes, Value], key: bytes, lo: int, hi: int) -> int | None:
    if key not in d:
        return None
    return _int(d, key, lo, hi)


def _want(d: dict[bytes, Value]) -> frozenset[str]:
    if b"want" not in d:
        return frozenset()
    w = d[b"want"]
    if not isinstance(w, list) or len(w) > 8:
        raise DecodeError("want: not a short list")
    out = set()
    for item in w:
        if not isinstance(item, bytes):
            raise DecodeError("want: item not a byte string")
        if item in (b"n4", b"n6"):  # BEP 32: unknown strings are ignored
            out.add(item.decode())
    return frozenset(out)


def _nodes(d: dict[bytes, Value]) -> tuple[tuple[NodeInfo, ...], tuple[NodeInfo, ...]]:
    n4 = decode_nodes(_bytes(d, b"nodes")) if b"nodes" in d else []
    n6 = decode_nodes(_bytes(d, b"nodes6"), v6=True) if b"nodes6" in d else []
    return tuple(n4), tuple(n6)


def _parse_query(method: bytes, a: dict[bytes, Value]) -> Query:
    if method == b"ping":
        return Ping(id=_bytes(a, b"id", size=20))
    if method == b"find_node":
        return FindNode(id=_bytes(a, b"id", size=20), target=_bytes(a, b"target", size=20), want=_want(a))
    if method == b"get_peers":
        return GetPeers(
            id=_bytes(a, b"id", size=20), info_hash=_bytes(a, b"info_hash", size=20), want=_want(a)
        )
    if method == b"announce_peer":
        implied = _opt_int(a, b"implied_port", -(1 << 63), 1 << 63)
        implied_port = bool(implied)
        port = _opt_int(a, b"port", 0, 0xFFFF)
        if port is None:
            if not implied_port:
                raise DecodeError("port: missing")
            port = 0
        if port == 0 and not implied_port:
            raise DecodeError("port: 0 without implied_port")
        return AnnouncePeer(
            id=_bytes(a, b"id", size=20),
            info_hash=_bytes(a, b"info_hash", size=20),
            port=port,
            token=_bytes(a, b"token", max_size=MAX_TOKEN),
            implied_port=implied_port,
        )
    if method == b"get":
        return Get(
            id=_bytes(a, b"id", size=20),
            target=_bytes(a, b"target", size=20),
            seq=_opt_int(a, b"seq", -(1 << 63), MAX_SEQ),
            want=_want(a),
        )
    if method == b"put":
        if b"v" not in a:
            raise DecodeError("v: missing")
        k = _opt_bytes(a, b"k", size=32)
        sig = _opt_bytes(a, b"sig", size=64)
        seq = _opt_int(a, b"seq", 0, MAX_SEQ)
        if k is not None and (sig is None or seq is None):
            raise DecodeError("mutable put without sig or seq")
        if k is None and sig is not None:
            raise DecodeError("sig without k")
        return Put(
            id=_bytes(a, b"id", size=20),
            token=_bytes(a, b"token", max_size=MAX_TOKEN),
            v=a[b"v"],
            k=k,
            sig=sig,
            seq=seq if k is not None else None,
            salt=_opt_bytes(a, b"salt") or b"",
            cas=_opt_int(a, b"cas", 0, MAX_SEQ),
        )
    if method == b"sample_infohashes":
        return SampleInfohashes(
            id=_bytes(a, b"id", size=20), target=_bytes(a, b"target", size=20), want=_want(a)
        )
    qid = a.get(b"id")
    return UnknownQuery(method=method[:64], id=qid if isinstance(qid, bytes) and len(qid) == 20 else None)


def _version(msg: dict[bytes, Value]) -> bytes | None:
    v = msg.get(b"v")
    if isinstance(v, bytes) and len(v) <= MAX_VERSION:
        return v
    return None


def _ip(msg: dict[bytes, Value]) -> Addr | None:
    ip = msg.get(b"ip")
    if isinstance(ip, bytes) and len(ip) in (6, 18):
        return decode_compact_addr(ip)
    return None


def decode_message(data: bytes) -> Message:
    """Parse one KRPC datagram.

    Args:
        data: the datagram (dictionary keys may be unsorted; duplicate keys are refused).

    Returns:
        A :class:`QueryMessage`, :class:`ResponseMessage` or :class:`ErrorMessage`.

    Raises:
        BadQuery: a query with a valid ``t`` and method but bad arguments.
        DecodeError: anything else malformed.
    """
    if len(data) > MAX_MESSAGE_LEN:
        raise DecodeError("datagram too long")
    msg = decode(data, sorted_keys=False, max_depth=32)
    if not isinstance(msg, dict):
        raise DecodeError("KRPC message is not a dictionary")
    t = msg.get(b"t")
    if not isinstance(t, bytes) or not 0 < len(t) <= MAX_TID:
        raise DecodeError("t: missing, empty or too long")
    y = msg.get(b"y")
    if y == b"q":
        q = msg.get(b"q")
        if not isinstance(q, bytes) or not q:
            raise DecodeError("q: missing or not a byte string")
        a = msg.get(b"a")
        if not isinstance(a, dict):
            raise BadQuery(t, q, "a: missing or not a dictionary")
        try:
            query = _parse_query(q, a)
        except BadQuery:
            raise
        except DecodeError as exc:
            raise BadQuery(t, q, f"{q.decode('latin-1')}: {exc}") from None
        ro = msg.get(b"ro")
        return QueryMessage(
            t=t, query=query, read_only=isinstance(ro, int) and ro == 1, version=_version(msg)
        )
    if y == b"r":
        r = msg.get(b"r")
        if not isinstance(r, dict):
            raise DecodeError("r: missing or not a dictionary")
        return ResponseMessage(t=t, id=_bytes(r, b"id", size=20), body=r, ip=_ip(msg), version=_version(msg))
    if y == b"e":
        e = msg.get(b"e")
        if not isinstance(e, list) or not e or not isinstance(e[0], int):
            raise DecodeError("e: not a list starting with an integer code")
        text = e[1] if len(e) > 1 and isinstance(e[1], bytes) else b""
        return ErrorMessage(
            t=t, code=e[0], message=text[:200].decode("utf-8", "replace"), ip=_ip(msg), version=_version(msg)
        )
    raise DecodeError("y: not q, r or e")


def parse_response(method: str, body: dict[bytes, Value]) -> Response:
    """Read the ``r`` dictionary of a response to a ``method`` query.

    Raises:
        DecodeError: a field is missing, wrongly typed or out of range.
    """
    rid = _bytes(body, b"id", size=20)
    if method in ("ping", "announce_peer", "put"):
        return IdResponse(id=rid)
    nodes, nodes6 = _nodes(body)
    if method == "find_node":
        return FindNodeResponse(id=rid, nodes=nodes, nodes6=nodes6)
    token = _opt_bytes(body, b"token", max_size=MAX_TOKEN)
    if method == "get_peers":
        values: list[Addr] = []
        raw = body.get(b"values", [])
        if not isinstance(raw, list):
            raise DecodeError("values: not a list")
        for item in raw:
            if not isinstance(item, bytes) or len(item) not in (6, 18):
                raise DecodeError("values: item is not compact peer info")
            addr = decode_compact_addr(item)
            if addr[1]:
                values.append(addr)
        return GetPeersResponse(id=rid, token=token, values=tuple(values), nodes=nodes, nodes6=nodes6)
    if method == "get":
        k = _opt_bytes(body, b"k", size=32)
        sig = _opt_bytes(body, b"sig", size=64)
        seq = _opt_int(body, b"seq", -(1 << 63), MAX_SEQ)
        return GetResponse(
            id=rid, token=token, nodes=nodes, nodes6=nodes6, v=body.get(b"v"), k=k, seq=seq, sig=sig
        )
    if method == "sample_infohashes":
        samples = _opt_bytes(body, b"samples") or b""
        if len(samples) % 20:
            raise DecodeError("samples: length not a multiple of 20")
        interval = _opt_int(body, b"interval", -(1 << 63), 1 << 63) or 0
        return SampleInfohashesResponse(
            id=rid,
            interval=max(0, min(interval, 21600)),
            num=max(0, _opt_int(body, b"num", -(1 << 63), 1 << 63) or 0),
            samples=tuple(samples[i : i + 20] for i in range(0, len(samples), 20)),
            nodes=nodes,
            nodes6=nodes6,
        )
    raise LocalProtocolError(f"no response parser for {method!r}")


# ------------------------------------------------------------------------------------------------
# encoders (our own messages: arguments are trusted, shapes are asserted)


def _want_list(want: frozenset[str]) -> list[bytes]:
    return sorted(w.encode() for w in want)


def _query_args(query: Query) -> dict[bytes, Value]:
    if isinstance(query, Ping):
        return {b"id": query.id}
    if isinstance(query, (FindNode, SampleInfohashes)):
        a: dict[bytes, Value] = {b"id": query.id, b"target": query.target}
        if query.want:
            a[b"want"] = list(_want_list(query.want))
        return a
    if isinstance(query, GetPeers):
        a = {b"id": query.id, b"info_hash": query.info_hash}
        if query.want:
            a[b"want"] = list(_want_list(query.want))
        return a
    if isinstance(query, AnnouncePeer):
        return {
            b"id": query.id,
            b"info_hash": query.info_hash,
            b"port": query.port,
            b"token": query.token,
            b"implied_port": 1 if query.implied_port else 0,
        }
    if isinstance(query, Get):
        a = {b"id": query.id, b"target": query.target}
        if query.seq is not None:
            a[b"seq"] = query.seq
        if query.want:
            a[b"want"] = list(_want_list(query.want))
        return a
    if isinstance(query, Put):
        a = {b"id": query.id, b"token": query.token, b"v": query.v}
        if query.k is not None:
            if query.sig is None or query.seq is None:
                raise LocalProtocolError("mutable put needs sig and seq")
            a[b"k"] = query.k
            a[b"sig"] = query.sig
            a[b"seq"] = query.seq
            if query.salt:
                a[b"salt"] = query.salt
            if query.cas is not None:
                a[b"cas"] = query.cas
        return a
    raise LocalProtocolError(f"cannot encode {type(query).__name__}")


def encode_query(t: bytes, query: Query, *, read_only: bool = False, version: bytes | None = None) -> bytes:
    """Bencode a KRPC query (BEP 43: ``ro=1`` when ``read_only``)."""
    msg: dict[bytes, Value] = {b"t": t, b"y": b"q", b"q": method_of(query).encode(), b"a": _query_args(query)}
    if read_only:
        msg[b"ro"] = 1
    if version is not None:
        msg[b"v"] = version
    return encode(msg)


def _response_body(resp: Response) -> dict[bytes, Value]:
    r: dict[bytes, Value] = {b"id": resp.id}
    if isinstance(resp, IdResponse):
        return r
    if resp.nodes:
        r[b"nodes"] = encode_nodes(list(resp.nodes))
    if resp.nodes6:
        r[b"nodes6"] = encode_nodes(list(resp.nodes6), v6=True)
    if isinstance(resp, FindNodeResponse):
        if not resp.nodes and not resp.nodes6:
            r[b"nodes"] = b""
        return r
    if isinstance(resp, SampleInfohashesResponse):
        r[b"interval"] = resp.interval
        r[b"num"] = resp.num
        r[b"samples"] = b"".join(resp.samples)
        if b"nodes" not in r and b"nodes6" not in r:
            r[b"nodes"] = b""
        return r
    if resp.token is not None:
        r[b"token"] = resp.token
    if isinstance(resp, GetPeersResponse):
        if resp.values:
            r[b"values"] = [encode_compact_addr(a) for a in resp.values]
        elif b"nodes" not in r and b"nodes6" not in r:
            r[b"nodes"] = b""
        return r
    if resp.v is not None:
        r[b"v"] = resp.v
    if resp.k is not None:
        r[b"k"] = resp.k
    if resp.seq is not None:
        r[b"seq"] = resp.seq
    if resp.sig is not None:
        r[b"sig"] = resp.sig
    return r


def encode_response(
    t: bytes, response: Response, *, ip: Addr | None = None, version: bytes | None = None
) -> bytes:
    """Bencode a KRPC response; ``ip`` is BEP 42's compact view of the requester's address."""
    msg: dict[bytes, Value] = {b"t": t, b"y": b"r", b"r": _response_body(response)}
    if ip is not None:
        with contextlib.suppress(LocalProtocolError):  # non-IP transport address: nothing to tell
            msg[b"ip"] = encode_compact_addr(ip)
    if version is not None:
        msg[b"v"] = version
    return encode(msg)


def encode_error(
    t: bytes, code: int, message: str, *, ip: Addr | None = None, version: bytes | None = None
) -> bytes:
    """Bencode a KRPC error ``[code, message]``."""
    msg: dict[bytes, Value] = {b"t": t, b"y": b"e", b"e": [code, message.encode()]}
    if ip is not None:
        with contextlib.suppress(LocalProtocolError):
            msg[b"ip"] = encode_compact_addr(ip)
    if version is not None:
        msg[b"v"] = version
    return encode(msg)
