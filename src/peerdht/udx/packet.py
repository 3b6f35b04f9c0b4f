"""The UDX packet: a 20-byte header, optional SACK blocks and padding, then the payload.

Wire layout (libudx ``include/udx.h`` and ``src/udx.c``: ``udx_write_header``, ``send_ack``,
``process_packet``; all integers little-endian)::

    0      1        2      3            4..8        8..12        12..16  16..20
    magic  version  type   data_offset  stream id   recv window  seq     ack
    0xFF   1        flags  u8           u32LE       u32LE        u32LE   u32LE

``stream id`` is the *receiver's* stream id (the sender's ``remote_id``). ``type`` is a bit set of
:data:`DATA`, :data:`END`, :data:`SACK`, :data:`MESSAGE`, :data:`DESTROY`, :data:`HEARTBEAT`
(0 is a pure ACK). After the header come ``data_offset`` bytes that are not payload: SACK blocks
(pairs of u32LE ``start``, ``end`` sequence numbers, ``end`` exclusive) and/or zero padding (MTU probes).
libudx writes SACK-only packets with ``data_offset == 0`` and the blocks as the whole rest of the packet;
when ``data_offset`` is 0 or not smaller than the rest, every byte after the header counts as SACK space.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from peerdht.errors import DecodeError

MAGIC = 0xFF
VERSION = 1
HEADER_SIZE = 20

DATA = 0b000001
END = 0b000010
SACK = 0b000100
MESSAGE = 0b001000
DESTROY = 0b010000
HEARTBEAT = 0b100000

MTU_BASE = 1200
"""Base MTU in bytes (``UDX_MTU_BASE``)."""
MTU_MAX = 1500
"""Largest MTU probed (``UDX_MTU_MAX``)."""
MTU_STEP = 32
"""MTU probe step in bytes (``UDX_MTU_STEP``)."""
MTU_MAX_PROBES = 3
"""Failed probes of one size before the search stops (``UDX_MTU_MAX_PROBES``)."""
IPV4_OVERHEAD = 20 + 8 + HEADER_SIZE
IPV6_OVERHEAD = 40 + 8 + HEADER_SIZE
MAX_SACKS = 50
"""At most this many SACK blocks per packet (``UDX_MAX_SACKS``)."""

HEADER = struct.Struct("<BBBBIIII")
_U32 = 0xFFFFFFFF


@dataclass(frozen=True, kw_only=True, slots=True)
class Packet:
    """One decoded UDX packet.

    Attributes:
        type: bit set of the type flags (``DATA | END | SACK | MESSAGE | DESTROY | HEARTBEAT``).
        stream_id: the receiving stream's id (u32).
        recv_window: the sender's receive window in bytes (u32).
        seq: sequence number (u32, counts packets, not bytes).
        ack: next sequence number the sender expects (u32, cumulative).
        sacks: SACK blocks ``(start, end)``, ``end`` exclusive (only when ``type & SACK``).
        padding: bytes of ``data_offset`` beyond the SACK blocks (MTU probe padding).
        payload: the data after ``data_offset``.
    """

    type: int
    stream_id: int
    recv_window: int
    seq: int
    ack: int
    sacks: tuple[tuple[int, int], ...] = ()
    padding: int = 0
    payload: bytes = field(default=b"")


def is_udx_packet(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram looks like UDX (first byte 0xFF, second byte version 1, at least 20 bytes).

    HyperDHT shares one UDP socket between dht-rpc and UDX and demultiplexes on these bytes
    (libudx ``process_packet``).
    """
    return len(data) >= HEADER_SIZE and data[0] == MAGIC and data[1] == VERSION


def encode_packet(packet: Packet) -> bytes:
    """Encode a packet.

    ``data_offset`` is 0 for packets whose only extra bytes are SACK blocks (as libudx writes them),
    otherwise ``8 * len(sacks) + padding``.

    Raises:
        LocalProtocolError: (never) -- invalid fields raise ``ValueError`` from ``struct``.
        ValueError: a field is out of range, or SACK blocks plus padding exceed 255 bytes.
    """
    t = packet.type
    sacks = packet.sacks
    sack_bytes = b"".join(struct.pack("<II", s & _U32, e & _U32) for s, e in sacks)
    if sacks:
        t |= SACK
    if packet.padding or (sacks and packet.payload):
        offset = len(sack_bytes) + packet.padding
        if offset > 255:
            raise ValueError("SACK blocks and padding exceed 255 bytes")
    else:
        offset = 0
    head = HEADER.pack(
        MAGIC, VERSION, t, offset, packet.stream_id, packet.recv_window, packet.seq, packet.ack
    )
    return head + sack_bytes + bytes(packet.padding) + packet.payload


def decode_packet(data: bytes | bytearray | memoryview) -> Packet:
    """Decode one UDX packet, following libudx ``process_packet``.

    Args:
        data: the whole UDP payload.

    Returns:
        The packet. Trailing bytes of the SACK space that do not form a whole 8-byte block are
        ignored, as libudx does.

    Raises:
        DecodeError: shorter than 20 bytes, wrong magic byte or version, or ``data_offset`` beyond the end.
    """
    n = len(data)
    if n < HEADER_SIZE:
        raise DecodeError(f"UDX packet too short: {n} bytes")
    magic, version, t, offset, sid, rwnd, seq, ack = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise DecodeError("not a UDX packet (magic/version)")
    rest = n - HEADER_SIZE
    if offset > rest:
        raise DecodeError(f"data_offset {offset} beyond the packet end ({rest} bytes)")
    sacks: tuple[tuple[int, int], ...] = ()
    sack_len = 0
    if t & SACK:
        space = offset if 0 < offset < rest else rest
        count = space // 8
        sack_len = count * 8
        vals = struct.unpack_from(f"<{2 * count}I", data, HEADER_SIZE)
        sacks = tuple((vals[i], vals[i + 1]) for i in range(0, 2 * count, 2))
    if offset:
        padding = max(0, offset - sack_len)
        payload = bytes(data[HEADER_SIZE + offset :])
    else:
        padding = 0
        payload = b"" if t & SACK else bytes(data[HEADER_SIZE:])
    return Packet(
        type=t,
        stream_id=sid,
        recv_window=rwnd,
        seq=seq,
        ack=ack,
        sacks=sacks,
        padding=padding,
        payload=payload,
    )
