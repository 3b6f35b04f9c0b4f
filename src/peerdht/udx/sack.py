"""SACK ranges on the receiving end: which out-of-order packets arrived, as libudx reports them.

The receiver keeps sorted ``[start, end)`` ranges of unwrapped sequence numbers it holds beyond its
cumulative ack and sends the first ``MAX_SACKS`` of them as u32 pairs after the header of a SACK
packet (libudx ``src/udx.c`` ``udx__send_ack``); the sender's side is ``sender.take_sacked``.
"""

from __future__ import annotations

import struct

from peerdht.udx.packet import MAX_SACKS

_M = 0xFFFFFFFF


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
