"""dht-rpc datagrams: requests (``0x03``) and responses (``0x13``).

Mirrors dht-rpc 6.27 ``lib/io.js`` (``Request.decode``, ``_encodeRequest``, ``_sendReply``,
``decodeReply``) and ``lib/peer.js``. Layout::

    request : 0x03 | flags | tid u16 | to ipv4Address | [id 32] | [token 32] | command uint
              | [target 32] | [value buffer]          flags: 1 id, 2 token, 4 internal, 8 target, 16 value
    response: 0x13 | flags | tid u16 | to ipv4Address | [id 32] | [token 32] | [closerNodes ipv4[]]
              | [error uint] | [value buffer]          flags: 1 id, 2 token, 4 closerNodes, 8 error, 16 value

Semantics kept from JS:

* ``value`` is ``None`` when the flag is absent; a present but empty value decodes as ``b""``
  (compact-encoding 3.x ``c.buffer``), and ``b""`` is encoded with the flag set and length 0
  (an empty JS Buffer is truthy).
* ``closer_nodes`` and ``error`` are only written when non-empty / non-zero; a response with the
  closerNodes flag and zero nodes decodes as ``()``.
* Unknown flag bits and trailing bytes are ignored, as in JS. ``id`` is returned as sent; checking
  it against the sender address (``validateId``) is the node's job (see
  :func:`peerdht.hyper.crypto.validate_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.encoding.compact import (
    Address,
    Decoder,
    Encoder,
    decode_ipv4_address,
    encode_ipv4_address,
    encode_ipv4_list,
    ipv4_entries,
)
from peerdht.errors import DecodeError, LocalProtocolError

__all__ = [
    "REQUEST_ID",
    "RESPONSE_ID",
    "Request",
    "Response",
    "decode_message",
    "encode_request",
    "encode_request_fields",
    "encode_response",
]

REQUEST_ID = 0x03
"""First byte of a request: type 0 << 4 | version 3."""

RESPONSE_ID = 0x13
"""First byte of a response: type 1 << 4 | version 3."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """A dht-rpc request datagram.

    Attributes:
        tid: transaction id, 0..65535.
        to: the address the datagram is sent to (how the sender sees the receiver), IPv4.
        id: the sender's 32-byte node id (persistent nodes on their server socket only) or None.
        token: 32-byte write token echoed from an earlier reply, or None.
        internal: True for dht-rpc's own commands (PING, FIND_NODE, ...).
        command: command number (see :mod:`peerdht.hyper.constants`).
        target: 32-byte key of the request, or None.
        value: command payload, or None (``b""`` is a present, empty payload).
    """

    tid: int
    to: Address
    id: bytes | None = None
    token: bytes | None = None
    internal: bool = False
    command: int
    target: bytes | None = None
    value: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    """A dht-rpc response datagram.

    Attributes:
        tid: transaction id of the request answered, 0..65535.
        to: the requester's address as seen by the responder, IPv4.
        id: the responder's 32-byte node id, or None.
        token: 32-byte write token for the requester, or None.
        closer_nodes: IPv4 addresses of nodes closer to the target (``()`` for none).
        error: 0 for success, else an error code (:class:`peerdht.hyper.constants.Error`).
        value: reply payload, or None (``b""`` is a present, empty payload).
    """

    tid: int
    to: Address
    id: bytes | None = None
    token: bytes | None = None
    closer_nodes: tuple[Address, ...] = ()
    error: int = 0
    value: bytes | None = None


def _fixed32(buf: bytearray, b: bytes, what: str) -> None:
    if len(b) != 32:
        raise LocalProtocolError(f"{what} must be 32 bytes, got {len(b)}")
    buf += b


def _uint(buf: bytearray, n: int) -> None:
    """Append a compact ``uint`` (the one-byte case inline: commands, errors, short lengths)."""
    if type(n) is int and 0 <= n <= 0xFC:
        buf.append(n)
    elif type(n) is int and 0xFC < n <= 0xFFFF:  # lengths of values over 252 bytes
        buf += b"\xfd%c%c" % (n & 0xFF, n >> 8)
    else:
        enc = Encoder()
        enc.uint(n)  # validates, raises LocalProtocolError
        buf += enc.getvalue()


def _head(kind: int, flags: int, tid: int, to: Address) -> bytearray:
    if type(tid) is not int or not 0 <= tid <= 0xFFFF:
        raise LocalProtocolError(f"tid must be an int in [0, 65535], got {tid!r}")
    host, port = to
    buf = bytearray((kind, flags, tid & 0xFF, tid >> 8))
    buf += encode_ipv4_address(host, port)
    return buf


# The encoders below write the bytes directly (no Encoder round trip): they run for every datagram
# a node sends. The layout is the one of the module docstring; test_hyper_codec_js.py checks it
# byte for byte against dht-rpc.


def encode_request(m: Request) -> bytes:
    """Encode a request datagram exactly as dht-rpc ``_encodeRequest`` does.

    Raises:
        LocalProtocolError: a field is out of range (tid, id/token/target length, address).
    """
    return encode_request_fields(m.tid, m.to, m.id, m.token, m.internal, m.command, m.target, m.value)


def encode_request_fields(
    tid: int,
    to: Address,
    id: bytes | None,
    token: bytes | None,
    internal: bool,
    command: int,
    target: bytes | None,
    value: bytes | None,
) -> bytes:
    """:func:`encode_request` of the fields of a :class:`Request`, without building one (a node's
    send path: one object less per datagram).

    Raises:
        LocalProtocolError: a field is out of range (tid, id/token/target length, address).
    """
    buf = _head(
        REQUEST_ID,
        (1 if id is not None else 0)
        | (2 if token is not None else 0)
        | (4 if internal else 0)
        | (8 if target is not None else 0)
        | (16 if value is not None else 0),
        tid,
        to,
    )
    if id is not None:
        _fixed32(buf, id, "id")
    if token is not None:
        _fixed32(buf, token, "token")
    _uint(buf, command)
    if target is not None:
        _fixed32(buf, target, "target")
    if value is not None:
        _uint(buf, len(value))
        buf += value
    return bytes(buf)


def encode_response(m: Response) -> bytes:
    """Encode a response datagram exactly as dht-rpc ``_sendReply`` does.

    Raises:
        LocalProtocolError: a field is out of range.
    """
    error = m.error
    if error < 0:
        raise LocalProtocolError(f"error code must be >= 0, got {error}")
    id_, token, closer, value = m.id, m.token, m.closer_nodes, m.value
    buf = _head(
        RESPONSE_ID,
        (1 if id_ is not None else 0)
        | (2 if token is not None else 0)
        | (4 if closer else 0)
        | (8 if error > 0 else 0)
        | (16 if value is not None else 0),
        m.tid,
        m.to,
    )
    if id_ is not None:
        _fixed32(buf, id_, "id")
    if token is not None:
        _fixed32(buf, token, "token")
    if closer:
        _uint(buf, len(closer))
        buf += encode_ipv4_list(closer)
    if error > 0:
        _uint(buf, error)
    if value is not None:
        _uint(buf, len(value))
        buf += value
    return bytes(buf)


def decode_message(data: bytes | bytearray | memoryview) -> Request | Response:
    """Decode a dht-rpc datagram.

    Accepts what dht-rpc ``onmessage`` accepts: at least 2 bytes, type byte 0x03 or 0x13,
    all fields present; trailing bytes and unknown flag bits are ignored.

    Raises:
        DecodeError: anything dht-rpc would drop (short, unknown type, truncated, values out
            of range).
    """
    if len(data) < 2:
        raise DecodeError("datagram shorter than 2 bytes")
    if not isinstance(data, bytes):
        data = bytes(data)
    kind = data[0]
    if kind != REQUEST_ID and kind != RESPONSE_ID:
        raise DecodeError(f"unknown message type 0x{kind:02x}")
    # Every datagram a node receives comes through here, so the common shapes are read in place: one-byte
    # uints (flags, command, counts, error, lengths < 0xFD) and the closer nodes by one struct call. Any
    # multi-byte uint goes through the Decoder, which gives the same values and the same errors.
    flags = data[1]
    n = len(data)
    if flags > 0xFC:
        dec = Decoder(data, 1)
        flags = dec.uint()
        tid = dec.uint16()
        to = dec.ipv4_address()
        o = dec.offset
    else:
        if n < 10:
            raise DecodeError("out of bounds")
        tid = data[2] | (data[3] << 8)
        to = decode_ipv4_address(data[4:10])
        o = 10
    id_ = token = None
    if flags & 1:
        if o + 32 > n:
            raise DecodeError("out of bounds")
        id_ = data[o : o + 32]
        o += 32
    if flags & 2:
        if o + 32 > n:
            raise DecodeError("out of bounds")
        token = data[o : o + 32]
        o += 32
    if kind == REQUEST_ID:
        if o < n and data[o] <= 0xFC:
            command = data[o]
            o += 1
        else:
            dec = Decoder(data, o)
            command = dec.uint()
            o = dec.offset
        target = None
        if flags & 8:
            if o + 32 > n:
                raise DecodeError("out of bounds")
            target = data[o : o + 32]
            o += 32
        value = _buffer(data, o, n)[0] if flags & 16 else None
        return _request(tid, to, id_, token, bool(flags & 4), command, target, value)
    closer: tuple[Address, ...] = ()
    if flags & 4:
        if o < n and data[o] <= 0xFC:
            count = data[o]
            o += 1
        else:
            dec = Decoder(data, o)
            count = dec.array_length()
            o = dec.offset
        end = o + 6 * count
        if end > n:
            raise DecodeError("out of bounds")
        closer = ipv4_entries(data, o, count)
        o = end
    error = 0
    if flags & 8:
        if o < n and data[o] <= 0xFC:
            error = data[o]
            o += 1
        else:
            dec = Decoder(data, o)
            error = dec.uint()
            o = dec.offset
    value = _buffer(data, o, n)[0] if flags & 16 else None
    return _response(tid, to, id_, token, closer, error, value)


def _buffer(data: bytes, o: int, n: int) -> tuple[bytes, int]:
    """compact-encoding ``buffer`` at offset ``o`` of ``data`` (``n`` bytes long): (bytes, next offset)."""
    if o < n and data[o] <= 0xFC:
        end = o + 1 + data[o]
        if end > n:
            raise DecodeError("out of bounds")
        return data[o + 1 : end], end
    dec = Decoder(data, o)
    value = dec.buffer()
    return value, dec.offset


# Frozen dataclasses set each field through object.__setattr__ in their generated __init__ (~1.2 us for a
# Response called with keywords). The decoder builds the very same objects, immutable as ever, by setting
# the slots directly (~0.4 us): these run for every datagram a node receives.
_new = object.__new__
_SET_REQ = tuple(Request.__dict__[f].__set__ for f in Request.__slots__)
_SET_RES = tuple(Response.__dict__[f].__set__ for f in Response.__slots__)
assert Request.__slots__ == ("tid", "to", "id", "token", "internal", "command", "target", "value")
assert Response.__slots__ == ("tid", "to", "id", "token", "closer_nodes", "error", "value")


def _request(
    tid: int,
    to: Address,
    id_: bytes | None,
    token: bytes | None,
    internal: bool,
    command: int,
    target: bytes | None,
    value: bytes | None,
) -> Request:
    """``Request(tid=tid, to=to, ...)``, built as the docstring above this function says."""
    m: Request = _new(Request)
    s_tid, s_to, s_id, s_token, s_internal, s_command, s_target, s_value = _SET_REQ
    s_tid(m, tid)
    s_to(m, to)
    s_id(m, id_)
    s_token(m, token)
    s_internal(m, internal)
    s_command(m, command)
    s_target(m, target)
    s_value(m, value)
    return m


def _response(
    tid: int,
    to: Address,
    id_: bytes | None,
    token: bytes | None,
    closer: tuple[Address, ...],
    error: int,
    value: bytes | None,
) -> Response:
    """``Response(tid=tid, to=to, ...)``, built as the comment above :func:`_request` says."""
    m: Response = _new(Response)
    s_tid, s_to, s_id, s_token, s_closer, s_error, s_value = _SET_RES
    s_tid(m, tid)
    s_to(m, to)
    s_id(m, id_)
    s_token(m, token)
    s_closer(m, closer)
    s_error(m, error)
    s_value(m, value)
    return m
