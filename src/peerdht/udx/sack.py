"""The receiving end's acknowledgements: the ACK packet and the SACK ranges it carries, as libudx.

The receiver keeps sorted ``[start, end)`` ranges of unwrapped sequence numbers it holds beyond its
cumulative ack and sends the first ``MAX_SACKS`` of them as u32 pairs after the header of a SACK
packet (libudx ``src/udx.c`` ``udx__send_ack``); the sender's side is ``sender.take_sacked``.
"""

from __future__ import annotations

import struct

from peerdht.udx.packet import HEADER, MAX_SACKS, SACK
from peerdht.udx.state import Addr, StreamState

_M = 0xFFFFFFFF
_PACK_HEADER = HEADER.pack


def add_range(ranges: list[list[int]], seq: int) -> None:
    """Insert ``seq`` into sorted, disjoint, non-adjacent ``[start, end)`` ranges."""
    # fast path: extends the last range or goes after it
    if ranges:
        last = ranges[-1]
        if last[1] == seq:
            last[1] = seq + 1
            return
        if last[1] < seq:
            ranges.append([seq, seq + 1])
            return
    else:
        ranges.append([seq, seq + 1])
        return
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        if ranges[mid][0] <= seq:
            lo = mid + 1
        else:
            hi = mid
    i = lo  # first range starting after seq
    prev = ranges[i - 1] if i > 0 else None
    if prev is not None and prev[0] <= seq < prev[1]:
        return
    nxt = ranges[i] if i < len(ranges) else None
    if prev is not None and prev[1] == seq:
        prev[1] = seq + 1
        if nxt is not None and nxt[0] == seq + 1:
            prev[1] = nxt[1]
            del ranges[i]
    elif nxt is not None and nxt[0] == seq + 1:
        nxt[0] = seq
    else:
        ranges.insert(i, [seq, seq + 1])


def sack_body(ranges: list[list[int]]) -> bytes:
    """The SACK blocks of the first ``MAX_SACKS`` ranges, as little-endian u32 ``start, end`` pairs."""
    return b"".join(struct.pack("<II", s & _M, e & _M) for s, e in ranges[:MAX_SACKS])


def send_ack(st: StreamState, out: list[tuple[bytes, Addr]], now: float) -> None:
    """Append the stream's ACK to ``out``: cumulative ack, receive window, and SACK blocks while
    out-of-order packets are held; ``now`` (seconds) is when it is sent."""
    st.need_ack = False
    rwnd = st.rwnd()
    st.advertised = rwnd
    ranges = st.ranges
    if ranges and st.ooo:
        body = sack_body(ranges)
        head = _PACK_HEADER(255, 1, SACK, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M)
        out.append((head + body, st.addr))
    else:
        out.append((_PACK_HEADER(255, 1, 0, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M), st.addr))
    st.packets_tx += 1
    st.last_tx = now
