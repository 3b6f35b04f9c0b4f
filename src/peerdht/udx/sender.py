"""The send side of one UDX stream: packetizing, retransmission, acks and SACKs taken, loss
detection, RTT/RTO, tail-loss probes and the MTU search (internal to ``peerdht.udx``).

Functions over a :class:`~peerdht.udx.state.StreamState` that append the datagrams they send to
``out`` (the core's send list). The sender is our own (sender behaviour is local, only the wire
format is libudx's): SACK/FACK loss detection with a duplicate threshold of 3, retransmission loss
by transmission order (RACK-like), RFC 6298 RTO, tail-loss probes (RFC 8985 7), and the MTU search
of libudx ``src/udx.c`` (padded probes, 32 bytes up at a time). Times are seconds.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Final

from peerdht.udx.packet import (
    DATA,
    END,
    HEADER,
    HEADER_SIZE,
    HEARTBEAT,
    IPV4_OVERHEAD,
    IPV6_OVERHEAD,
    MTU_BASE,
    MTU_MAX,
    MTU_MAX_PROBES,
    MTU_STEP,
)
from peerdht.udx.state import (
    INITIAL_RTO,
    MTU_STATE_BASE,
    MTU_STATE_DONE,
    MTU_STATE_SEARCH,
    Addr,
    SentPacket,
    StreamState,
)

_M: Final = 0xFFFFFFFF
_PACK_HEADER = HEADER.pack
MIN_RTO: Final = 0.2
MAX_RTO: Final = 30.0
MIN_PTO: Final = 0.01
MIN_RTT_WINDOW: Final = 10.0
DUP_THRESH: Final = 3


def send_lost(
    st: StreamState, out: list[tuple[bytes, Addr]], now: float, cwnd: int, rwnd: int, ackv: int
) -> int:
    """Retransmit packets marked lost, in order, while the congestion window allows; returns how many."""
    outgoing = st.outgoing
    append = out.append
    lost_q = st.lost_q
    sent = 0
    while lost_q and st.inflight < cwnd:
        seq = lost_q.popleft()
        pkt = outgoing.get(seq)
        if pkt is None or not pkt.lost:
            continue
        if seq == st.probe_seq:
            probe_failed(st)
        pkt.lost = False
        pkt.retrans = True
        st.xmit += 1
        pkt.xmit = st.xmit
        pkt.time_sent = now
        st.retrans_q.append((st.xmit, seq))
        st.inflight += 1
        st.retransmits += 1
        append((_PACK_HEADER(255, 1, pkt.flags, 0, pkt.rid, rwnd, seq & _M, ackv) + pkt.payload, pkt.addr))
        sent += 1
    return sent


def send_new(
    st: StreamState, out: list[tuple[bytes, Addr]], now: float, window: int, rwnd: int, ackv: int
) -> int:
    """Packetize queued writes (and END) while fewer than ``window`` packets are in flight; the
    first full-size packet carries the MTU probe's padding when one is wanted. Returns how many."""
    # hot loop: locals only, state written back once
    append = out.append
    outgoing = st.outgoing
    size = st.payload_size
    q = st.write_q
    rid = st.remote_id
    addr = st.addr
    queued = st.queued
    woff = st.write_off
    inflight = st.inflight
    seq = st.seq
    xmit = st.xmit
    end_pending = st.ending and not st.end_sent
    probe_wanted = st.probe_wanted and not st.remote_changing
    pack = _PACK_HEADER
    new_pkt = SentPacket
    sent = 0
    while inflight < window and (queued or end_pending):
        if queued:
            head = q[0]
            avail = len(head) - woff
            if avail >= size:
                payload: bytes | memoryview = head[woff : woff + size]
                if avail == size:
                    q.popleft()
                    woff = 0
                else:
                    woff += size
            else:
                payload, woff = gather(q, woff, size)
            queued -= len(payload)
            flags = DATA
        else:
            payload = b""
            flags = 0
        if end_pending and not queued:
            flags |= END
            end_pending = False
            st.end_sent = True
        xmit += 1
        outgoing[seq] = new_pkt(seq, flags, payload, rid, addr, xmit, now)
        inflight += 1
        if probe_wanted and len(payload) == size:
            # MTU probe: same payload, padded (data_offset) up to probe_size on the wire
            probe_wanted = st.probe_wanted = False
            pad = st.probe_size - st.mtu
            st.probe_seq = seq
            probe = pack(255, 1, flags, pad, rid, rwnd, seq & _M, ackv) + bytes(pad)
            append((probe + payload, addr))
        else:
            append((pack(255, 1, flags, 0, rid, rwnd, seq & _M, ackv) + payload, addr))
        seq += 1
        sent += 1
    st.queued = queued
    st.write_off = woff
    st.inflight = inflight
    st.seq = seq
    st.xmit = xmit
    return sent


def gather(q: deque[memoryview], woff: int, size: int) -> tuple[bytes, int]:
    """A payload of up to ``size`` bytes that spans queued writes: the rest of the head write (from
    offset ``woff``) joined with what follows. Returns it and the offset into the new head write."""
    parts = [q.popleft()[woff:]]
    need = size - len(parts[0])
    woff = 0
    while need and q:
        h = q[0]
        if len(h) <= need:
            parts.append(h)
            need -= len(h)
            q.popleft()
        else:
            parts.append(h[:need])
            woff = need
            need = 0
    return b"".join(parts), woff


def take_acked(
    st: StreamState, start: int, end: int, rack_xmit: int, latest_sent: float
) -> tuple[int, int, int, float]:
    """Take packets ``start`` .. ``end - 1`` (unwrapped seqs) out of flight as acknowledged.

    Returns (packets, payload bytes, the highest transmission number among them or ``rack_xmit``,
    the send time of that transmission or ``latest_sent``; -1.0 when it was a retransmission).
    """
    newly = acked_bytes = 0
    pop = st.outgoing.pop
    for p in range(start, end):
        pkt = pop(p, None)
        if pkt is None:
            continue
        newly += 1
        acked_bytes += len(pkt.payload)
        if pkt.lost:
            pkt.lost = False
        else:
            st.inflight -= 1
        if pkt.xmit > rack_xmit:
            rack_xmit = pkt.xmit
            latest_sent = -1.0 if pkt.retrans else pkt.time_sent
    return newly, acked_bytes, rack_xmit, latest_sent


def take_sacked(
    st: StreamState, data: bytes | memoryview, off: int, rack_xmit: int, latest_sent: float
) -> tuple[int, int, int, float]:
    """SACK blocks (``[start, end)`` u32 pairs after the header, before any padding): take the
    packets they cover out of flight and move the forward ack. Blocks outside what is in flight
    are ignored. Returns (packets, bytes, rack_xmit, latest_sent) as :func:`take_acked`."""
    space = len(data) - HEADER_SIZE
    if 0 < off < space:
        space = off
    cnt = space // 8
    newly = acked_bytes = 0
    if not cnt:
        return newly, acked_bytes, rack_xmit, latest_sent
    vals = struct.unpack_from(f"<{2 * cnt}I", data, HEADER_SIZE)
    top = st.seq
    base = st.remote_acked
    fack = st.fack
    for i in range(0, 2 * cnt, 2):
        s = base + ((vals[i] - base) & _M)
        e = base + ((vals[i + 1] - base) & _M)
        if not base <= s < e <= top:
            continue
        if e > fack:
            fack = e
        n, b, rack_xmit, latest_sent = take_acked(st, s, e, rack_xmit, latest_sent)
        newly += n
        acked_bytes += b
    st.fack = fack
    return newly, acked_bytes, rack_xmit, latest_sent


def detect_loss(st: StreamState) -> None:
    outgoing = st.outgoing
    lost_any = 0
    limit = st.fack - DUP_THRESH
    p = st.loss_scan
    if p < st.remote_acked:
        p = st.remote_acked
    while p < limit:
        pkt = outgoing.get(p)
        if pkt is not None and not pkt.lost and not pkt.retrans:
            pkt.lost = True
            st.inflight -= 1
            st.lost_q.append(p)
            lost_any += 1
        p += 1
    if p > st.loss_scan:
        st.loss_scan = p
    rq = st.retrans_q
    bound = st.rack_xmit - DUP_THRESH
    while rq and rq[0][0] <= bound:
        xmit, seq = rq.popleft()
        pkt = outgoing.get(seq)
        if pkt is not None and pkt.xmit == xmit and not pkt.lost:
            pkt.lost = True
            st.inflight -= 1
            st.lost_q.append(seq)
            lost_any += 1
    if lost_any:
        st.fast_recoveries += 1
        st.cc.on_loss(lost_any)


def requeue_all(st: StreamState) -> None:
    """Count every packet in flight as lost and queue all of them for retransmission, in order."""
    st.lost_q.clear()
    st.retrans_q.clear()
    for seq in sorted(st.outgoing):
        pkt = st.outgoing[seq]
        if not pkt.lost:
            pkt.lost = True
            st.inflight -= 1
        st.lost_q.append(seq)


def rtt_sample(st: StreamState, sample: float, now: float) -> None:
    """Smoothed RTT, variance and RTO (RFC 6298), and the windowed minimum RTT."""
    if st.srtt == 0:
        st.srtt = sample
        st.rttvar = sample / 2
    else:
        st.rttvar = 0.75 * st.rttvar + 0.25 * abs(st.srtt - sample)
        st.srtt = 0.875 * st.srtt + 0.125 * sample
    rto = st.srtt + 4 * st.rttvar
    st.rto = MIN_RTO if rto < MIN_RTO else MAX_RTO if rto > MAX_RTO else rto
    if sample < st.min_rtt or now - st.min_rtt_stamp > MIN_RTT_WINDOW or not st.min_rtt:
        st.min_rtt = sample
        st.min_rtt_stamp = now


def pto(st: StreamState) -> float:
    if not st.srtt:
        return INITIAL_RTO
    pto = 2 * st.srtt
    return MIN_PTO if pto < MIN_PTO else pto


def probe_tail(st: StreamState, out: list[tuple[bytes, Addr]], now: float) -> None:
    """Tail loss probe (RFC 8985 7, with QUIC's backoff): no ACK progress for two RTTs --
    retransmit the oldest outstanding packet (usually the hole whose retransmission was lost, or
    whose ACK was). Probes back off exponentially; the RTO stays the backstop."""
    st.pto_count += 1
    st.pto_deadline = now + pto(st) * (1 << min(st.pto_count, 10))
    pkt = st.outgoing.get(st.remote_acked)
    if pkt is None:
        if not st.outgoing:
            return
        pkt = st.outgoing[min(st.outgoing)]
    if pkt.lost:
        pkt.lost = False
        st.inflight += 1
    if pkt.seq == st.probe_seq:
        probe_failed(st)
    pkt.retrans = True
    st.xmit += 1
    pkt.xmit = st.xmit
    pkt.time_sent = now
    st.retrans_q.append((st.xmit, pkt.seq))
    st.retransmits += 1
    st.packets_tx += 1
    head = _PACK_HEADER(255, 1, pkt.flags, 0, pkt.rid, st.rwnd(), pkt.seq & _M, st.ack & _M)
    out.append((head + pkt.payload, pkt.addr))


def reset_mtu(st: StreamState, probing: bool) -> None:
    st.overhead = IPV6_OVERHEAD if ":" in st.addr[0] else IPV4_OVERHEAD
    st.mtu = MTU_BASE
    st.payload_size = MTU_BASE - st.overhead
    st.mtu_state = MTU_STATE_BASE if probing else MTU_STATE_DONE
    st.probe_size = MTU_BASE
    st.probe_wanted = False
    st.probe_seq = -1
    st.probe_failures = 0


def mtu_on_ack(st: StreamState) -> None:
    """MTU search: the padded probe was acknowledged (step up), or start searching."""
    ps = st.probe_seq
    if ps >= 0:
        if ps not in st.outgoing:  # the padded probe arrived: the path carries probe_size
            st.mtu = st.probe_size
            st.payload_size = st.mtu - st.overhead
            st.probe_seq = -1
            st.probe_failures = 0
            if st.mtu >= MTU_MAX:
                st.mtu_state = MTU_STATE_DONE
            else:
                st.probe_size = min(st.mtu + MTU_STEP, MTU_MAX)
                st.probe_wanted = True
    elif st.mtu_state == MTU_STATE_BASE:
        st.mtu_state = MTU_STATE_SEARCH
        st.probe_size = MTU_BASE + MTU_STEP
        st.probe_wanted = True


def probe_failed(st: StreamState) -> None:
    st.probe_seq = -1
    st.probe_failures += 1
    if st.probe_failures >= MTU_MAX_PROBES:
        st.mtu_state = MTU_STATE_DONE
    else:
        st.probe_wanted = True


def send_heartbeat(st: StreamState, out: list[tuple[bytes, Addr]], now: float) -> None:
    """Append a HEARTBEAT to ``out`` (the peer ACKs it at once, libudx ``send_probe``): keepalive and
    zero-window probe; ``now`` (seconds) is when it is sent."""
    out.append(
        (_PACK_HEADER(255, 1, HEARTBEAT, 0, st.remote_id, st.rwnd(), st.seq & _M, st.ack & _M), st.addr)
    )
    st.packets_tx += 1
    st.last_tx = now
