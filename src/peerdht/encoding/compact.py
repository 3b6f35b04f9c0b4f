"""compact-encoding and compact-encoding-net, byte-compatible with the npm modules.

Mirrors ``compact-encoding`` 3.5.2 ``index.js`` (the encoding dht-rpc and hyperdht use) and the
address codecs of ``compact-encoding-net`` 1.3.0. Written from the JS sources, not copied.

Wire rules:

* ``uint``: ``n <= 0xFC`` is one byte; otherwise a marker byte ``0xFD``/``0xFE``/``0xFF`` then
  ``n`` as uint16/uint32/uint64 little-endian. Decoding accepts non-minimal forms (as JS does)
  and rejects values above ``2**53 - 1`` (JS ``validateSafeUint``).
* ``buffer``: ``uint`` length then the bytes. compact-encoding 3.x decodes length 0 as an
  **empty** buffer (not ``null``; that is ``optionalBuffer``), so :meth:`Decoder.buffer` returns
  ``b""`` and :meth:`Decoder.optional_buffer` returns ``None`` for length 0.
* ``ipv4Address``: 4 address bytes then the port as uint16 **little-endian** (6 bytes).
* ``ipv6Address``: 16 address bytes in network order (each group big-endian) then the port as
  uint16 little-endian (18 bytes).
* ``array``: ``uint`` count (JS rejects more than ``0x100000``) then the items.

JS decoders never reject trailing bytes (``c.decode`` does not check ``state.end``); the
message decoders built on this module therefore ignore trailing bytes too. :meth:`Decoder.end`
is there for callers that want to be stricter.

Decoders raise :class:`peerdht.errors.DecodeError` and nothing else. Encoders raise
:class:`peerdht.errors.LocalProtocolError` for values JS would refuse or mangle (out of range
integers, malformed addresses, wrong fixed lengths).
"""

from __future__ import annotations

import ipaddress
import struct

from peerdht.errors import DecodeError, LocalProtocolError

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_SAFE_INTEGER",
    "Address",
    "Decoder",
    "Encoder",
    "decode_ipv4_address",
    "encode_ipv4_address",
    "encode_ipv4_list",
    "ipv4_entries",
    "uint_length",
]

Address = tuple[str, int]
"""A UDP address: ``(host, port)``; host is a dotted quad (IPv4) or an IPv6 literal."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest ``uint`` JS can decode (``Number.MAX_SAFE_INTEGER``)."""

MAX_ARRAY_LENGTH = 0x100000
"""Largest item count ``c.array(...).decode`` accepts."""

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def uint_length(n: int) -> int:
    """Return the encoded size of ``uint`` ``n`` in bytes (1, 3, 5 or 9)."""
    if n <= 0xFC:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def _check_int(n: int, maximum: int, what: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= maximum:
        raise LocalProtocolError(f"{what} must be an int in [0, {maximum}], got {n!r}")


_OCTET_TEXT = tuple(str(v) for v in range(256))
"""``str(v)`` for every byte value: the text of a dotted quad's parts."""

_OCTET_VALUE: dict[str, int] = {f"{v:0{w}d}": v for w in (1, 2, 3) for v in range(min(256, 10**w))}
"""Every part a dotted quad may have, to its value: one to three ASCII digits (leading zeros allowed,
``"007"``) worth at most 255; 366 entries, fixed. A lookup here validates and converts a part at once."""


def _ipv4_bytes(host: str) -> bytes:
    """The 4 address bytes of a dotted quad: four parts of 1-3 ASCII digits, each at most 255.

    Raises:
        LocalProtocolError: ``host`` is anything else.
    """
    if isinstance(host, str):
        parts = host.split(".")
        if len(parts) == 4:
            value = _OCTET_VALUE
            try:
                return bytes((value[parts[0]], value[parts[1]], value[parts[2]], value[parts[3]]))
            except KeyError:
                pass
    raise LocalProtocolError(f"not an IPv4 address: {host!r}")


# Addresses repeat endlessly in a DHT (every reply lists up to 20 nodes, every request names its
# receiver): memoise both directions. Only validated entries are stored; the caches are cleared when
# full, so hostile input costs at most one re-validation per entry. A node that talks to more than
# 16,384 addresses (a large network; the 30k-100k simulations of bench/scale.py) misses most of the
# time, so a miss is kept cheap too: table lookups (_OCTET_VALUE, _OCTET_TEXT), no parsing.
_CACHE_MAX = 1 << 14
_IPV4_ENC: dict[tuple[str, int], bytes] = {}
_IPV4_DEC: dict[bytes, Address] = {}


def encode_ipv4_address(host: str, port: int) -> bytes:
    """Return the 6-byte ``ipv4Address`` encoding of ``(host, port)``.

    Raises:
        LocalProtocolError: ``host`` is not a dotted quad or ``port`` is not in [0, 65535].
    """
    if type(port) is int and type(host) is str:  # a bool port must not hit the cache of 0/1
        b = _IPV4_ENC.get((host, port))
        if b is not None:
            return b
    _check_int(port, 0xFFFF, "port")
    b = _ipv4_bytes(host) + _U16.pack(port)
    if type(host) is str:
        if len(_IPV4_ENC) >= _CACHE_MAX:
            _IPV4_ENC.clear()
        _IPV4_ENC[(host, port)] = b
    return b


def encode_ipv4_list(addrs: tuple[Address, ...] | list[Address]) -> bytes:
    """Return the ``ipv4Address`` encodings of ``addrs`` concatenated (6 bytes each, no count).

    Raises:
        LocalProtocolError: an address is not a dotted quad with a port in [0, 65535].
    """
    for a in addrs:
        if a.__class__ is not tuple or len(a) != 2 or a[1].__class__ is not int:  # bool port: no memo
            break
    else:
        try:
            return b"".join(map(_IPV4_ENC.__getitem__, addrs))
        except KeyError:  # some not memoised yet
            pass
    return b"".join([encode_ipv4_address(host, port) for host, port in addrs])


def decode_ipv4_address(b: bytes) -> Address:
    """Decode one ``ipv4Address`` from exactly 6 bytes (the caller checks the length).

    Returns:
        ``(dotted quad, port)``; memoised, so the same tuple may be returned again.
    """
    a = _IPV4_DEC.get(b)
    if a is None:
        text = _OCTET_TEXT
        a = f"{text[b[0]]}.{text[b[1]]}.{text[b[2]]}.{text[b[3]]}", b[4] | (b[5] << 8)
        if len(_IPV4_DEC) >= _CACHE_MAX:
            _IPV4_DEC.clear()
        _IPV4_DEC[b] = a
    return a


_ENTRIES: dict[int, struct.Struct] = {}  # n -> Struct("<6s6s..."): n 6-byte entries in one call


def ipv4_entries(data: bytes, start: int, n: int) -> tuple[Address, ...]:
    """Decode ``n`` consecutive ``ipv4Address`` entries of ``data`` from offset ``start`` (the caller has
    checked that ``6 * n`` bytes are there): the items of ``c.array(ipv4Address)`` after its count.

    The 6-byte entries are cut by one ``struct`` call and looked up in the same memo as
    :func:`decode_ipv4_address` (every dht-rpc reply carries up to 20; they recur endlessly).
    """
    if n <= 64:
        unpack = _ENTRIES.get(n)
        if unpack is None:
            unpack = _ENTRIES[n] = struct.Struct("<" + "6s" * n)
        chunks: tuple[bytes, ...] | list[bytes] = unpack.unpack_from(data, start)
    else:
        chunks = [data[o : o + 6] for o in range(start, start + 6 * n, 6)]
    try:
        return tuple(map(_IPV4_DEC.__getitem__, chunks))
    except KeyError:  # some not memoised yet
        return tuple(map(decode_ipv4_address, chunks))


class Encoder:
    """Append compact-encoding values to a growing buffer.

    Example::

        enc = Encoder()
        enc.uint(300)
        enc.buffer(b"hi")
        data = enc.getvalue()
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        """Return everything encoded so far."""
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def uint(self, n: int) -> None:
        """Variable-length unsigned int, 0 <= n <= 2**53 - 1 (1, 3, 5 or 9 bytes)."""
        _check_int(n, MAX_SAFE_INTEGER, "uint")
        if n <= 0xFC:
            self._buf.append(n)
        elif n <= 0xFFFF:
            self._buf.append(0xFD)
            self._buf += _U16.pack(n)
        elif n <= 0xFFFFFFFF:
            self._buf.append(0xFE)
            self._buf += _U32.pack(n)
        else:
            self._buf.append(0xFF)
            self._buf += _U64.pack(n)

    def uint8(self, n: int) -> None:
        """One byte."""
        _check_int(n, 0xFF, "uint8")
        self._buf.append(n)

    def uint16(self, n: int) -> None:
        """Two bytes, little-endian."""
        _check_int(n, 0xFFFF, "uint16")
        self._buf += _U16.pack(n)

    def uint24(self, n: int) -> None:
        """Three bytes, little-endian."""
        _check_int(n, 0xFFFFFF, "uint24")
        self._buf += n.to_bytes(3, "little")

    def uint32(self, n: int) -> None:
        """Four bytes, little-endian."""
        _check_int(n, 0xFFFFFFFF, "uint32")
        self._buf += _U32.pack(n)

    def uint64(self, n: int) -> None:
        """Eight bytes, little-endian; limited to 2**53 - 1 like JS."""
        _check_int(n, MAX_SAFE_INTEGER, "uint64")
        self._buf += _U64.pack(n)

    def bool(self, b: bool) -> None:
        """One byte, 1 or 0."""
        self._buf.append(1 if b else 0)

    def fixed(self, b: bytes, n: int) -> None:
        """Exactly ``n`` raw bytes (``c.fixed(n)``, e.g. ``fixed32``, ``fixed64``)."""
        if len(b) != n:
            raise LocalProtocolError(f"expected {n} bytes, got {len(b)}")
        self._buf += b

    def raw(self, b: bytes) -> None:
        """Raw bytes without a length prefix (``c.raw``)."""
        self._buf += b

    def buffer(self, b: bytes | None) -> None:
        """``uint`` length then the bytes; ``None`` is written as length 0."""
        if b is None:
            self._buf.append(0)
            return
        self.uint(len(b))
        self._buf += b

    def string(self, s: str) -> None:
        """UTF-8 ``string``: ``uint`` byte length then the bytes.

        Raises:
            LocalProtocolError: ``s`` holds lone surrogates (not valid UTF-8).
        """
        try:
            data = s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise LocalProtocolError(f"string is not valid unicode: {e}") from None
        self.uint(len(data))
        self._buf += data

    def array_length(self, n: int) -> None:
        """Item count of an ``array`` (a ``uint``)."""
        self.uint(n)

    def ipv4_address(self, addr: Address) -> None:
        """``ipv4Address``: 4 address bytes + uint16 LE port (6 bytes)."""
        host, port = addr
        self._buf += encode_ipv4_address(host, port)

    def ipv6_address(self, addr: Address) -> None:
        """``ipv6Address``: 16 address bytes (network order) + uint16 LE port (18 bytes)."""
        host, port = addr
        _check_int(port, 0xFFFF, "port")
        try:
            packed = ipaddress.IPv6Address(host).packed
        except (ipaddress.AddressValueError, ValueError, TypeError):
            raise LocalProtocolError(f"not an IPv6 address: {host!r}") from None
        self._buf += packed
        self._buf += _U16.pack(port)

    def ipv4_array(self, addrs: tuple[Address, ...] | list[Address]) -> None:
        """``c.array(ipv4Address)``: count then 6 bytes per address."""
        self.uint(len(addrs))
        self._buf += encode_ipv4_list(addrs)

    def ipv6_array(self, addrs: tuple[Address, ...] | list[Address]) -> None:
        """``c.array(ipv6Address)``: count then 18 bytes per address."""
        self.uint(len(addrs))
        for a in addrs:
            self.ipv6_address(a)


class Decoder:
    """Read compact-encoding values from untrusted bytes.

    Every method raises :class:`~peerdht.errors.DecodeError` (and nothing else) when the
    input is truncated or holds a value JS would reject.

    Args:
        data: the bytes to read (copied once if not ``bytes``).
        start: offset of the first byte to read.
    """

    __slots__ = ("_data", "_end", "offset")

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0) -> None:
        self._data = data if isinstance(data, bytes) else bytes(data)
        self._end = len(self._data)
        if not 0 <= start <= self._end:
            raise DecodeError("start offset out of bounds")
        self.offset = start
        """Offset of the next byte to read."""

    def _take(self, n: int) -> bytes:
        start = self.offset
        if self._end - start < n:
            raise DecodeError("out of bounds")
        self.offset = start + n
        return self._data[start : start + n]

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return self._end - self.offset

    def at_end(self) -> bool:
        """Return True when every byte has been read."""
        return self.offset >= self._end

    def end(self) -> None:
        """Raise DecodeError if unread bytes remain (stricter than JS, which ignores them)."""
        if self.offset != self._end:
            raise DecodeError(f"{self._end - self.offset} trailing bytes")

    def uint8(self) -> int:
        """One byte."""
        if self.offset >= self._end:
            raise DecodeError("out of bounds")
        v = self._data[self.offset]
        self.offset += 1
        return v

    def uint16(self) -> int:
        """Two bytes, little-endian."""
        v: int = _U16.unpack(self._take(2))[0]
        return v

    def uint24(self) -> int:
        """Three bytes, little-endian."""
        return int.from_bytes(self._take(3), "little")

    def uint32(self) -> int:
        """Four bytes, little-endian."""
        v: int = _U32.unpack(self._take(4))[0]
        return v

    def uint64(self) -> int:
        """Eight bytes, little-endian; values above 2**53 - 1 are rejected (as JS does)."""
        v: int = _U64.unpack(self._take(8))[0]
        if v > MAX_SAFE_INTEGER:
            raise DecodeError("uint64 above 2**53 - 1")
        return v

    def uint(self) -> int:
        """Variable-length unsigned int (non-minimal forms accepted, as in JS)."""
        a = self.uint8()
        if a <= 0xFC:
            return a
        if a == 0xFD:
            return self.uint16()
        if a == 0xFE:
            return self.uint32()
        return self.uint64()

    def bool(self) -> bool:
        """One byte; only 1 is true (as JS ``c.bool``)."""
        return self.uint8() == 1

    def fixed(self, n: int) -> bytes:
        """Exactly ``n`` raw bytes."""
        return self._take(n)

    def raw(self) -> bytes:
        """All remaining bytes (``c.raw``)."""
        return self._take(self._end - self.offset)

    def buffer(self) -> bytes:
        """``uint`` length then bytes; length 0 gives ``b""`` (compact-encoding 3.x ``c.buffer``)."""
        return self._take(self.uint())

    def optional_buffer(self) -> bytes | None:
        """Like :meth:`buffer` but length 0 gives ``None`` (``c.optionalBuffer``)."""
        n = self.uint()
        if n == 0:
            return None
        return self._take(n)

    def string(self) -> str:
        """UTF-8 string; invalid sequences become U+FFFD (as ``b4a.toString`` does)."""
        return self._take(self.uint()).decode("utf-8", errors="replace")

    def array_length(self, max_items: int = MAX_ARRAY_LENGTH) -> int:
        """Item count of an ``array``; more than ``max_items`` raises DecodeError.

        The count is also checked against the bytes left, assuming at least one byte per
        item, so a tiny datagram cannot announce a huge array.
        """
        n = self.uint()
        if n > max_items:
            raise DecodeError(f"array of {n} items is too big (max {max_items})")
        if n > self._end - self.offset:
            raise DecodeError("out of bounds")
        return n

    def ipv4_address(self) -> Address:
        """6 bytes: dotted quad + uint16 LE port."""
        return decode_ipv4_address(self._take(6))

    def ipv6_address(self) -> Address:
        """18 bytes: IPv6 (network order) + uint16 LE port.

        The host is returned in Python's compressed form (``"::1"``); JS returns eight
        uncompressed groups (``"0:0:0:0:0:0:0:1"``) for the same bytes.
        """
        b = self._take(18)
        return str(ipaddress.IPv6Address(b[:16])), b[16] | (b[17] << 8)

    def ipv4_array(self, max_items: int = MAX_ARRAY_LENGTH) -> tuple[Address, ...]:
        """``c.array(ipv4Address)``."""
        n = self.array_length(max_items)
        start = self.offset
        end = start + 6 * n
        if end > self._end:
            raise DecodeError("out of bounds")
        self.offset = end
        return ipv4_entries(self._data, start, n)

    def ipv6_array(self, max_items: int = MAX_ARRAY_LENGTH) -> tuple[Address, ...]:
        """``c.array(ipv6Address)``."""
        n = self.array_length(max_items)
        if n * 18 > self.remaining:
            raise DecodeError("out of bounds")
        return tuple(self.ipv6_address() for _ in range(n))
