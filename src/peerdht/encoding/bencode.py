"""Strict bencode (BEP 3), the wire format of KRPC (BEP 5).

Own codec rather than ``fastbencode``: a DHT node parses bytes from anyone, and the decoder must
reject every malformed input with :class:`~peerdht.errors.DecodeError` only (never ``ValueError``
from ``int()``, ``RecursionError`` or ``IndexError``), bound nesting depth and integer size, and
tell canonical from non-canonical dictionaries. It is pure Python; KRPC datagrams are at most a few
kilobytes, so speed is not the constraint here.

Value model::

    bytes                  byte string  ``<len>:<bytes>``
    int                    integer      ``i<digits>e`` (no leading zeros, no ``-0``)
    list[Value]            list         ``l...e``
    dict[bytes, Value]     dictionary   ``d...e`` (keys are byte strings, sorted, unique)

:func:`encode` additionally accepts ``str`` (encoded as UTF-8), ``tuple`` and ``bytearray``/
``memoryview``, and dictionaries keyed by ``str``; it always writes sorted keys. ``bool`` is refused
(it would silently become ``i1e``).

Strict decoding guarantees ``encode(decode(x)) == x`` (the property the tests check), which BEP 44
relies on: the signature covers the bencoded ``v`` exactly as received.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from peerdht.errors import DecodeError, LocalProtocolError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "Value", "decode", "decode_prefix", "encode"]

Value: TypeAlias = "bytes | int | list[Value] | dict[bytes, Value]"
"""A decoded bencode value."""

MAX_DEPTH = 64
"""Default bound on list/dictionary nesting (the decoder raises ``DecodeError`` beyond it)."""

MAX_INT_DIGITS = 64
"""Default bound on the number of digits of an integer (``i...e``)."""

_MAX_LEN_DIGITS = 10  # a byte string longer than 9_999_999_999 cannot be in any datagram or file we read

_DIGITS = frozenset(b"0123456789")


class _Decoder:
    __slots__ = ("data", "max_depth", "max_int_digits", "sorted_keys")

    def __init__(self, data: bytes, max_depth: int, max_int_digits: int, sorted_keys: bool) -> None:
        self.data = data
        self.max_depth = max_depth
        self.max_int_digits = max_int_digits
        self.sorted_keys = sorted_keys

    def value(self, i: int, depth: int) -> tuple[Value, int]:
        data = self.data
        if i >= len(data):
            raise DecodeError("bencode: truncated")
        c = data[i]
        if c == 0x69:  # i
            return self.integer(i + 1)
        if c in _DIGITS:
            return self.string(i)
        if c == 0x6C:  # l
            if depth >= self.max_depth:
                raise DecodeError("bencode: nested too deeply")
            out: list[Value] = []
            i += 1
            while True:
                if i >= len(data):
                    raise DecodeError("bencode: truncated list")
                if data[i] == 0x65:  # e
                    return out, i + 1
                item, i = self.value(i, depth + 1)
                out.append(item)
        if c == 0x64:  # d
            if depth >= self.max_depth:
                raise DecodeError("bencode: nested too deeply")
            # the hot loop of every KRPC datagram: byte-string keys and values are parsed inline
            # (same checks and errors as :meth:`string`)
            d: dict[bytes, Value] = {}
            last: bytes | None = None
            sorted_keys = self.sorted_keys
            n = len(data)
            i += 1
            while True:
                if i >= n:
                    raise DecodeError("bencode: truncated dictionary")
                c = data[i]
                if c == 0x65:
                    return d, i + 1
                if not 0x30 <= c <= 0x39:
                    raise DecodeError("bencode: dictionary key is not a byte string")
                colon = data.find(b":", i, i + _MAX_LEN_DIGITS + 1)
                if colon < 0:
                    raise DecodeError("bencode: string length unterminated or too long")
                digits = data[i:colon]
                if not digits.isdigit():
                    raise DecodeError("bencode: malformed string length")
                if c == 0x30 and colon - i > 1:
                    raise DecodeError("bencode: string length with leading zero")
                i = colon + 1 + int(digits)
                if i > n:
                    raise DecodeError("bencode: string longer than the input")
                key = data[colon + 1 : i]
                if key in d:
                    raise DecodeError("bencode: duplicate dictionary key")
                if sorted_keys and last is not None and key < last:
                    raise DecodeError("bencode: dictionary keys not sorted")
                last = key
                if i < n and 0x30 <= data[i] <= 0x39:
                    d[key], i = self.string(i)
                else:
                    d[key], i = self.value(i, depth + 1)
        raise DecodeError(f"bencode: unexpected byte 0x{c:02x}")

    def integer(self, i: int) -> tuple[int, int]:
        data = self.data
        end = data.find(b"e", i, i + self.max_int_digits + 2)
        if end < 0:
            raise DecodeError("bencode: integer unterminated or too long")
        digits = data[i:end]
        neg = digits[:1] == b"-"
        body = digits[1:] if neg else digits
        if not body or len(body) > self.max_int_digits or not body.isdigit():
            raise DecodeError("bencode: malformed integer")
        if body[0] == 0x30 and (len(body) > 1 or neg):
            raise DecodeError("bencode: integer with leading zero or -0")
        value = int(body)
        return (-value if neg else value), end + 1

    def string(self, i: int) -> tuple[bytes, int]:
        data = self.data
        colon = data.find(b":", i, i + _MAX_LEN_DIGITS + 1)
        if colon < 0:
            raise DecodeError("bencode: string length unterminated or too long")
        digits = data[i:colon]
        if not digits.isdigit():  # bytes.isdigit: non-empty and ASCII 0-9 only
            raise DecodeError("bencode: malformed string length")
        if digits[0] == 0x30 and len(digits) > 1:
            raise DecodeError("bencode: string length with leading zero")
        n = int(digits)
        start = colon + 1
        if n > len(data) - start:
            raise DecodeError("bencode: string longer than the input")
        return data[start : start + n], start + n


def decode(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_int_digits: int = MAX_INT_DIGITS,
    sorted_keys: bool = True,
) -> Value:
    """Decode exactly one bencoded value that fills ``data``.

    Args:
        data: the encoded bytes (trailing bytes are an error).
        max_depth: maximum nesting of lists and dictionaries.
        max_int_digits: maximum digits in an integer.
        sorted_keys: require dictionary keys in ascending byte order (canonical form). Duplicate keys are
            always rejected. KRPC envelopes from other implementations are decoded with ``False`` to be
            liberal in what we accept.

    Returns:
        The decoded value (see the module docstring for the value model).

    Raises:
        DecodeError: for any malformed input, and for nothing else.
    """
    value, end = decode_prefix(
        data, max_depth=max_depth, max_int_digits=max_int_digits, sorted_keys=sorted_keys
    )
    if end != len(data):
        raise DecodeError("bencode: trailing bytes")
    return value


def decode_prefix(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_int_digits: int = MAX_INT_DIGITS,
    sorted_keys: bool = True,
) -> tuple[Value, int]:
    """Decode one bencoded value at the start of ``data``.

    Returns:
        ``(value, end)`` where ``end`` is the offset just past the value.

    Raises:
        DecodeError: for any malformed input, and for nothing else.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    return _Decoder(data, max_depth, max_int_digits, sorted_keys).value(0, 0)


def _key(k: object) -> bytes:
    if isinstance(k, bytes):
        return k
    if isinstance(k, str):
        return k.encode()
    raise LocalProtocolError(f"bencode: dictionary key must be bytes or str, not {type(k).__name__}")


def _encode(obj: object, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LocalProtocolError("bencode: nested too deeply to encode")
    # exact-type fast paths for what KRPC messages are made of; subclasses take the general path below
    if type(obj) is bytes:
        out.append(b"%d:%b" % (len(obj), obj))
        return
    if type(obj) is int:
        out.append(b"i%de" % obj)
        return
    if type(obj) is dict and all(type(k) is bytes for k in obj):
        append = out.append
        append(b"d")
        for k, v in sorted(obj.items()):
            append(b"%d:%b" % (len(k), k))
            if type(v) is bytes:
                append(b"%d:%b" % (len(v), v))
            else:
                _encode(v, out, depth + 1)
        append(b"e")
        return
    if isinstance(obj, bytes):
        out.append(b"%d:" % len(obj))
        out.append(obj)
    elif isinstance(obj, (bytearray, memoryview)):
        b = bytes(obj)
        out.append(b"%d:" % len(b))
        out.append(b)
    elif isinstance(obj, str):
        b = obj.encode()
        out.append(b"%d:" % len(b))
        out.append(b)
    elif isinstance(obj, bool):
        raise LocalProtocolError("bencode: bool is not encodable (use 0/1)")
    elif isinstance(obj, int):
        out.append(b"i%de" % obj)
    elif isinstance(obj, Mapping):
        items = sorted(((_key(k), v) for k, v in obj.items()), key=lambda kv: kv[0])
        out.append(b"d")
        prev: bytes | None = None
        for k, v in items:
            if k == prev:
                raise LocalProtocolError("bencode: duplicate dictionary key after str->bytes conversion")
            prev = k
            out.append(b"%d:" % len(k))
            out.append(k)
            _encode(v, out, depth + 1)
        out.append(b"e")
    elif isinstance(obj, Sequence):
        out.append(b"l")
        for v in obj:
            _encode(v, out, depth + 1)
        out.append(b"e")
    else:
        raise LocalProtocolError(f"bencode: cannot encode {type(obj).__name__}")


def encode(obj: object) -> bytes:
    """Encode ``obj`` canonically (dictionary keys sorted).

    Args:
        obj: bytes/str/int/list/tuple/dict (keys bytes or str), nested.

    Returns:
        The bencoded bytes.

    Raises:
        LocalProtocolError: for a value of an unsupported type (including ``bool``), nesting deeper than
            :data:`MAX_DEPTH` or keys colliding after UTF-8 encoding.
    """
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)
