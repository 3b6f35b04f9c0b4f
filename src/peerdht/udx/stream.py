"""Sans-IO UDX: many reliable streams multiplexed on one UDP socket, wire-compatible with libudx.

Shape of aioquic: feed ``receive_datagram(data, addr, now)`` and ``handle_timer(now)``, send what
``datagrams_to_send(now)`` returns, sleep until ``get_timer()``, read ``next_event()``. No clock, no I/O.

Behaviour mirrors libudx ``src/udx.c`` (udx-native 1.21.3):

* sequence numbers count packets (u32, wrapping); ``ack`` is cumulative, SACK blocks report
  out-of-order packets; every DATA/END packet is acknowledged (we coalesce the acks of one batch of
  received datagrams into one, since acks are cumulative and carry SACK);
* END is a packet with its own sequence number (alone, or on the last data packet); the stream closes
  cleanly once our END is acknowledged and the peer's END has been delivered; DESTROY resets it;
* HEARTBEAT asks for an immediate ACK (keepalive and zero-window probes);
* MESSAGE packets are unordered datagrams on the stream, not acknowledged;
* packets for an unknown stream id (and non-UDX datagrams) are handed on as :class:`DatagramReceived`.

The sender is our own (sender behaviour is local): SACK/FACK loss detection with a duplicate threshold
of 3, retransmission-loss detection by transmission order (RACK-like), RTO with exponential backoff
(six timeouts of the same packet reset the stream, as libudx), AIMD congestion control
(``congestion.py``), a fixed MTU of 1200 (payload 1152 bytes over IPv4, 1132 over IPv6), zero-window
probes and optional keepalives. Times are seconds.
"""

from __future__ import annotations

import heapq
import struct
from collections import deque
from typing import Final, Protocol

from peerdht.errors import LocalProtocolError, StreamClosed, StreamReset, StreamTimeout
from peerdht.udx.congestion import Congestion
from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamWritable,
    UDXEvent,
)
from peerdht.udx.events import StreamClosed as StreamClosedEvent
from peerdht.udx.packet import (
    DATA,
    DESTROY,
    END,
    HEADER,
    HEADER_SIZE,
    HEARTBEAT,
    IPV4_OVERHEAD,
    IPV6_OVERHEAD,
    MAX_SACKS,
    MESSAGE,
    MTU_BASE,
    MTU_MAX,
    MTU_MAX_PROBES,
    MTU_STEP,
    SACK,
)

Addr = tuple[str, int]

_M: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
_FULL: Final = 0x100000000
DEFAULT_RECV_WINDOW: Final = 4 * 1024 * 1024
"""Receive window advertised (bytes), libudx ``UDX_DEFAULT_RWND_MAX``."""
HIGH_WATERMARK: Final = 262144
"""libudx ``UDX_HIGH_WATERMARK``: writes beyond this plus the send window report backpressure."""
INITIAL_RTO: Final = 1.0
MIN_RTO: Final = 0.2
MAX_RTO: Final = 30.0
MAX_RTO_TIMEOUTS: Final = 6
END_RTO_TIMEOUTS: Final = 3
"""Timeouts of a lone END (peer already ended) after which the stream closes cleanly."""
MIN_PTO: Final = 0.01
MIN_RTT_WINDOW: Final = 10.0
TIME_WAIT: Final = 30.0
"""Seconds a cleanly closed stream keeps acknowledging retransmissions of the peer's last packets."""
DUP_THRESH: Final = 3
_PACK_HEADER = HEADER.pack
_UNPACK_HEADER = HEADER.unpack_from
_DATA_OR_END: Final = DATA | END
_SEQUENCED: Final = DATA | END | DESTROY
_MTU_BASE: Final = 0
_MTU_SEARCH: Final = 1
_MTU_DONE: Final = 2


class RelayLimiter(Protocol):
    """What :meth:`UDXSocketCore.relay_to` accepts as a rate limit (e.g.
    :class:`peerdht.relay.pairing.TokenBucket`)."""

    def allow(self, nbytes: int, now: float) -> bool:
        """Whether ``nbytes`` may pass at time ``now`` (seconds)."""
        ...


class _Pkt:
    __slots__ = (
        "addr",
        "flags",
        "lost",
        "payload",
        "retrans",
        "rid",
        "rto_count",
        "seq",
        "time_sent",
        "xmit",
    )

    def __init__(
        self,
        seq: int,
        flags: int,
        payload: bytes | memoryview,
        rid: int,
        addr: Addr,
        xmit: int,
        time_sent: float,
    ) -> None:
        self.seq = seq
        self.flags = flags
        self.payload = payload
        self.rid = rid
        self.addr = addr
        self.time_sent = time_sent
        self.xmit = xmit
        self.lost = False
        self.retrans = False
        self.rto_count = 0


class _Stream:
    """All state of one stream. Internal: use the ``UDXSocketCore`` commands."""

    def __init__(self, local_id: int, recv_window: int) -> None:
        self.local_id = local_id
        self.remote_id = 0
        self.addr: Addr = ("", 0)
        self.payload_size = MTU_BASE - IPV4_OVERHEAD
        self.overhead = IPV4_OVERHEAD
        # MTU search (RFC 8899 style, as libudx): probe with padded packets, 32 bytes up at a time
        self.mtu = MTU_BASE
        self.mtu_state = _MTU_BASE
        self.probe_size = MTU_BASE
        self.probe_wanted = False
        self.probe_seq = -1
        self.probe_failures = 0
        self.connected = False
        self.closed = False
        self.firewall = True
        self.seen: set[Addr] = set()
        # receive side
        self.ack = 0  # next expected seq (unwrapped)
        self.ooo: dict[int, tuple[int, bytes]] = {}
        self.ranges: list[list[int]] = []  # sorted [start, end) of received out-of-order seqs
        self.remote_end: int | None = None
        self.ended_remote = False
        self.need_ack = False
        self.rx_chunks: list[bytes | memoryview] = []
        self.rx_marked = False
        self.recv_window_max = recv_window
        self.manual_window = False
        self.unread = 0
        self.advertised = recv_window
        # send side
        self.seq = 0  # next seq to send (unwrapped)
        self.remote_acked = 0
        self.outgoing: dict[int, _Pkt] = {}
        self.inflight = 0
        self.lost_q: deque[int] = deque()
        self.retrans_q: deque[tuple[int, int]] = deque()
        self.xmit = 0
        self.rack_xmit = 0
        self.fack = 0
        self.loss_scan = 0
        self.write_q: deque[memoryview] = deque()
        self.write_off = 0
        self.queued = 0  # bytes not yet packetized
        self.unacked = 0  # bytes written and not yet acknowledged
        self.hit_hwm = False
        self.ending = False
        self.end_sent = False
        self.ended = False
        self.send_rwnd = DEFAULT_RECV_WINDOW
        self.wl1 = 0
        self.wl2 = 0
        self.cc = Congestion()
        self.min_rtt = 0.0
        self.min_rtt_stamp = 0.0
        self.srtt = 0.0
        self.rttvar = 0.0
        self.rto = INITIAL_RTO
        self.backoff = 1
        self.rto_deadline: float | None = None
        self.pto_deadline: float | None = None
        self.pto_count = 0
        self.zwp_deadline: float | None = None
        self.keepalive = 0.0
        self.keepalive_deadline: float | None = None  # the liveness timer: heartbeat and idle timeout
        self.timer_at: float | None = None  # the earliest deadline, as armed in the core's timer heap
        self.idle_timeout = 0.0
        self.last_rx = 0.0  # when a packet of this stream last arrived from the peer (seconds)
        self.last_tx = 0.0  # when we last sent a packet on it
        self.remote_changing = False
        self.seq_on_change = 0
        # counters
        self.retransmits = 0
        self.rto_count = 0
        self.fast_recoveries = 0
        self.packets_rx = 0
        self.packets_tx = 0
        # relaying (libudx udx_stream_relay_to): packets received here go to another stream's remote
        self.relay: tuple[UDXSocketCore, _Stream, RelayLimiter | None] | None = None
        self.relayed_by: list[tuple[UDXSocketCore, _Stream]] = []
        self.relayed_bytes = 0
        self.relay_drops = 0
        self.watch_addr = False


class UDXSocketCore:
    """All UDX streams of one UDP socket (libudx ``udx_socket_t`` plus its streams), sans-IO.

    Args:
        recv_window: bytes advertised as receive window per stream (libudx default 4 MiB).
        mtu_probing: search the path MTU from 1200 up to 1500 bytes in 32-byte steps with padded
            probe packets (libudx does the same); off: every packet fits 1200 bytes.

    Commands raise :class:`~peerdht.errors.LocalProtocolError` on misuse (unknown stream id, wrong
    state) and :class:`~peerdht.errors.StreamClosed` when the stream is already closed.
    """

    def __init__(self, *, recv_window: int = DEFAULT_RECV_WINDOW, mtu_probing: bool = True) -> None:
        self._recv_window = recv_window
        self.mtu_probing = mtu_probing
        self._streams: dict[int, _Stream] = {}
        self._events: deque[UDXEvent | _Stream] = deque()
        self._out: list[tuple[bytes, Addr]] = []
        self._dirty: set[_Stream] = set()
        # timers: a heap of (deadline, seq, stream), stale entries skipped; streams whose deadlines may
        # have changed are re-armed before the heap is read (O(log n) per change, not O(streams) per
        # event: a server holding many streams must not pay for all of them on every datagram)
        self._heap: list[tuple[float, int, _Stream]] = []
        self._heap_seq = 0
        self._touched: set[_Stream] = set()
        self._next_id = 1
        # cleanly closed streams answer retransmissions for a while (TIME_WAIT; libudx has a TODO):
        # local id -> (expiry, remote id, addr, seq, ack), all wire values
        self._time_wait: dict[int, tuple[float, int, Addr, int, int]] = {}
        self._now = 0.0
        self.dropped = 0
        """Datagrams dropped as malformed or unexpected (counted, never raised)."""
        self.timeouts = 0
        """Streams closed because the peer went silent (:meth:`set_keepalive` ``timeout``)."""

    # ------------------------------------------------------------------ commands

    def create_stream(self, stream_id: int | None = None, *, seq: int = 0, firewall: bool = True) -> int:
        """Create a stream with local id ``stream_id`` (u32; allocated when None) and return the id.

        ``seq`` is the first sequence number to send (udx-native ``createStream(id, {seq})``).
        With ``firewall`` (udx-native's default) the stream drops every packet until :meth:`connect`.
        Without it, packets that arrive before connect are processed (data is delivered, the ACK waits
        for connect) and each new source address is reported once as :class:`PreConnectPacket` --
        what hyperdht's ``firewall`` hook in ``lib/connect.js`` uses to learn where to connect.
        """
        if stream_id is None:
            while self._next_id in self._streams:
                self._next_id = (self._next_id + 1) & _M or 1
            stream_id = self._next_id
            self._next_id = (self._next_id + 1) & _M or 1
        if not 0 <= stream_id <= _M:
            raise LocalProtocolError(f"stream id out of range: {stream_id}")
        if stream_id in self._streams:
            raise LocalProtocolError(f"stream id {stream_id} in use")
        self._time_wait.pop(stream_id, None)
        st = _Stream(stream_id, self._recv_window)
        st.firewall = firewall
        st.seq = st.remote_acked = st.wl2 = st.fack = st.loss_scan = seq & _M
        self._streams[stream_id] = st
        return stream_id

    def connect(self, stream_id: int, remote_id: int, addr: Addr, *, ack: int | None = None) -> None:
        """Connect a stream to stream ``remote_id`` (u32) at ``addr`` (libudx ``udx_stream_connect``).

        ``ack`` is the first sequence number expected from the peer (udx-native ``connect(..., {ack})``;
        default 0, or wherever packets received before connect left it).
        """
        st = self._get(stream_id)
        if st.connected:
            raise LocalProtocolError("stream already connected")
        if not 0 <= remote_id <= _M or not 0 < addr[1] < 65536:
            raise LocalProtocolError("bad remote id or port")
        st.connected = True
        if ack is not None:
            st.ack = st.wl1 = ack & _M
        st.remote_id = remote_id
        st.addr = addr
        st.last_rx = max(st.last_rx, self._now)
        self._reset_mtu(st)
        if st.need_ack:  # data arrived before connect
            self._dirty.add(st)

    def change_remote(self, stream_id: int, remote_id: int, addr: Addr, *, resend: bool = False) -> None:
        """Move a connected stream to a new remote (relay -> direct upgrade; libudx ``udx_stream_change_remote``).

        New packets go to the new remote at once; packets already in flight are retransmitted to the
        old one (as libudx), or with ``resend`` moved to the new remote and retransmitted there at once
        (when the old path may be gone: the peer left the relay). :class:`RemoteChanged` is emitted
        once everything sent before the change is acknowledged. On a watched stream the first packet
        from ``addr`` is reported as :class:`RemoteAddress` (the peer is on the new path too).
        """
        st = self._get(stream_id)
        if not st.connected:
            raise LocalProtocolError("stream not connected")
        st.remote_id = remote_id
        st.addr = addr
        if resend and st.outgoing:
            for pkt in st.outgoing.values():
                pkt.rid = remote_id
                pkt.addr = addr
                pkt.rto_count = 0
            self._requeue_all(st)
            st.backoff = 1
            self._dirty.add(st)
        self._reset_mtu(st)
        if st.seq != st.remote_acked:
            st.remote_changing = True
            st.seq_on_change = st.seq
        else:
            self._events.append(RemoteChanged(stream_id=stream_id))

    def relay_to(
        self,
        stream_id: int,
        destination: UDXSocketCore,
        destination_id: int,
        *,
        limiter: RelayLimiter | None = None,
    ) -> None:
        """Forward every packet stream ``stream_id`` receives to the remote of stream
        ``destination_id`` of core ``destination`` (may be this core), without decrypting or
        acknowledging anything (libudx ``udx_stream_relay_to``, what a blind relay splices with).

        Only the header's stream id is rewritten (to the destination's remote id); the packet leaves
        through the destination's socket (read it from ``destination.datagrams_to_send``). Both
        streams must be connected: packets from any address other than this stream's remote are
        dropped (a third party cannot inject into a splice). ``limiter`` may refuse packets (dropped
        and counted; UDX retransmits). A DESTROY passes through and closes this stream; closing a
        stream closes the streams relaying into it (as libudx). Relay both ways for a splice.

        Raises:
            LocalProtocolError: not connected, or already relaying.
            StreamClosed: a stream is closed.
        """
        st = self._get(stream_id)
        dst = destination._get(destination_id)
        if not st.connected or not dst.connected:
            raise LocalProtocolError("relay needs connected streams")
        if st.relay is not None:
            raise LocalProtocolError("stream already relays")
        st.relay = (destination, dst, limiter)
        dst.relayed_by.append((self, st))
        st.keepalive = 0.0
        st.keepalive_deadline = None

    def watch_remote_address(self, stream_id: int) -> None:
        """Report packets of this connected stream that come from an address other than its remote's
        (and other than any remote it had) as :class:`RemoteAddress`, once per address -- how a
        relayed stream learns that the peer moved to a direct path."""
        st = self._get(stream_id)
        st.watch_addr = True
        st.seen.add(st.addr)

    def send(self, stream_id: int, data: bytes | bytearray | memoryview) -> bool:
        """Queue bytes on the stream (libudx ``udx_stream_write``).

        Returns:
            False when the bytes not yet acknowledged exceed the high-water mark (256 KiB plus the send
            window): stop writing until :class:`StreamWritable`. True otherwise.
        """
        st = self._get(stream_id)
        if not st.connected:
            raise LocalProtocolError("stream not connected")
        if st.ending:
            raise LocalProtocolError("write after end")
        n = len(data)
        if n:
            mv = memoryview(data)
            if mv.readonly is False:
                mv = memoryview(bytes(mv))
            st.write_q.append(mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv)
            st.queued += n
            st.unacked += n
            self._dirty.add(st)
        return self._below_hwm(st)

    def end(self, stream_id: int) -> None:
        """Half-close: send END after the queued bytes (libudx ``udx_stream_write_end``)."""
        st = self._get(stream_id)
        if not st.connected:
            raise LocalProtocolError("stream not connected")
        if st.ending:
            return
        st.ending = True
        self._dirty.add(st)

    def destroy(self, stream_id: int) -> None:
        """Reset the stream: send DESTROY and close it at once (libudx ``udx_stream_destroy``).

        Emits :class:`StreamClosed` with ``error=None``. Does nothing if the stream is already closed.
        """
        st = self._streams.get(stream_id)
        if st is None or st.closed:
            return
        if st.connected and st.relay is None:  # a relaying stream closes silently (libudx)
            rwnd = self._rwnd(st)
            self._out.append(
                (_PACK_HEADER(255, 1, DESTROY, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M), st.addr)
            )
            st.seq += 1
        self._close(st, None)

    def send_message(self, stream_id: int, data: bytes) -> None:
        """Send an unordered, unacknowledged MESSAGE datagram on the stream (udx-native ``stream.send``)."""
        st = self._get(stream_id)
        if not st.connected:
            raise LocalProtocolError("stream not connected")
        head = _PACK_HEADER(255, 1, MESSAGE, 0, st.remote_id, self._rwnd(st), st.seq & _M, st.ack & _M)
        self._out.append((head + data, st.addr))

    def set_keepalive(self, stream_id: int, interval: float, now: float, *, timeout: float = 0.0) -> None:
        """Keep the path open and notice a peer that vanished (libudx ``set_keepalive``, secret-stream
        ``setTimeout``).

        Args:
            interval: seconds; a HEARTBEAT (which the peer ACKs at once, libudx ``send_probe``) goes out
                when nothing was sent, or nothing received, for that long. 0 disables.
            timeout: seconds; once nothing at all arrived from the peer for that long the stream closes
                with :class:`~peerdht.errors.StreamTimeout`, whatever its half-close state (a peer that
                is alive answers the heartbeats, so set ``interval`` well below it). 0 disables.
        """
        st = self._get(stream_id)
        st.keepalive = max(interval, 0.0)
        st.idle_timeout = max(timeout, 0.0)
        st.last_rx = max(st.last_rx, now)
        st.last_tx = max(st.last_tx, now)
        self._arm_liveness(st, now)

    def _arm_liveness(self, st: _Stream, now: float) -> None:
        at: float | None = None
        if st.keepalive:
            at = min(st.last_rx, st.last_tx) + st.keepalive
            if at <= now:
                at = now + st.keepalive
        if st.idle_timeout:
            limit = st.last_rx + st.idle_timeout
            at = limit if at is None or limit < at else at
        st.keepalive_deadline = at

    def _on_liveness(self, st: _Stream, now: float) -> None:
        """The keepalive timer: time the stream out when the peer went silent, else heartbeat."""
        if st.connected:
            silent = now - st.last_rx
            if st.idle_timeout and silent >= st.idle_timeout:
                self.timeouts += 1
                self._close(
                    st,
                    StreamTimeout(
                        f"nothing from the peer for {silent:.1f} s (timeout {st.idle_timeout:g} s)"
                    ),
                )
                return
            ka = st.keepalive
            if ka and (silent >= ka or now - st.last_tx >= ka):
                self._send_heartbeat(st)
        self._arm_liveness(st, now)

    def set_manual_window(self, stream_id: int, enabled: bool = True) -> None:
        """Advertise ``recv_window - unread`` where unread bytes are released with :meth:`stream_consumed`.

        Without this the full window is always advertised (as udx-native does).
        """
        self._get(stream_id).manual_window = enabled

    def stream_consumed(self, stream_id: int, nbytes: int) -> None:
        """The application consumed ``nbytes`` of delivered data (manual window mode)."""
        st = self._streams.get(stream_id)
        if st is None or st.closed:
            return
        st.unread = max(0, st.unread - nbytes)
        if st.advertised < st.recv_window_max // 2 <= self._rwnd(st):
            st.need_ack = True  # window update
            self._dirty.add(st)

    def write_buffer_size(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged (0 for unknown streams)."""
        st = self._streams.get(stream_id)
        return 0 if st is None else st.unacked

    def stream_stats(self, stream_id: int) -> dict[str, float]:
        """Counters and estimates of a stream (cwnd in packets, srtt/rto in seconds, ...)."""
        st = self._get(stream_id)
        return {
            "cwnd": st.cc.cwnd,
            "srtt": st.srtt,
            "rto": st.rto,
            "inflight": st.inflight,
            "retransmits": st.retransmits,
            "rto_count": st.rto_count,
            "fast_recoveries": st.fast_recoveries,
            "packets_rx": st.packets_rx,
            "packets_tx": st.packets_tx,
            "relayed_bytes": st.relayed_bytes,
            "relay_drops": st.relay_drops,
        }

    def has_stream(self, stream_id: int) -> bool:
        """Whether a stream with this local id exists and is not closed."""
        return stream_id in self._streams

    # ------------------------------------------------------------------ sans-IO API

    def next_event(self) -> UDXEvent | None:
        """The next event, or None."""
        events = self._events
        if not events:
            return None
        ev = events.popleft()
        if isinstance(ev, _Stream):
            chunks = ev.rx_chunks
            ev.rx_chunks = []
            ev.rx_marked = False
            return StreamData(
                stream_id=ev.local_id, data=bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            )
        return ev

    def _rearm(self) -> None:
        touched = self._touched
        if not touched:
            return
        heap = self._heap
        for st in touched:
            at: float | None = None
            if not st.closed:
                for t in (st.rto_deadline, st.pto_deadline, st.zwp_deadline, st.keepalive_deadline):
                    if t is not None and (at is None or t < at):
                        at = t
            if at != st.timer_at:
                st.timer_at = at
                if at is not None:
                    self._heap_seq += 1
                    heapq.heappush(heap, (at, self._heap_seq, st))
        touched.clear()

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (seconds, same clock as ``now``), or None."""
        self._rearm()
        heap = self._heap
        while heap:
            at, _, st = heap[0]
            if st.closed or st.timer_at != at:
                heapq.heappop(heap)  # stale: the stream re-armed or closed since
                continue
            return at
        return None

    def handle_timer(self, now: float) -> None:
        """Run the timers that are due: retransmission timeout, zero-window probe, keepalive."""
        self._now = now
        self._rearm()
        heap = self._heap
        due: list[_Stream] = []
        while heap and heap[0][0] <= now:
            at, _, st = heapq.heappop(heap)
            if not st.closed and st.timer_at == at:
                st.timer_at = None
                due.append(st)
        self._touched.update(due)
        for st in due:
            if st.closed:
                continue
            if st.rto_deadline is not None and now >= st.rto_deadline:
                self._on_rto(st, now)
                if st.closed:
                    continue
            elif st.pto_deadline is not None and now >= st.pto_deadline:
                self._on_pto(st, now)
            if st.zwp_deadline is not None and now >= st.zwp_deadline:
                if st.send_rwnd == 0 and (st.queued or (st.ending and not st.end_sent)):
                    self._send_heartbeat(st)
                    st.zwp_deadline = now + st.rto * 2
                else:
                    st.zwp_deadline = None
            if st.keepalive_deadline is not None and now >= st.keepalive_deadline:
                self._on_liveness(st, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Datagrams to send now, as ``(data, addr)``: retransmissions, new data allowed by the windows, ACKs."""
        self._now = now
        if self._dirty:
            dirty = self._dirty
            self._dirty = set()
            for st in dirty:
                if not st.closed and st.connected:
                    self._flush(st, now)
        out = self._out
        self._out = []
        return out

    def receive_datagram(self, data: bytes | memoryview, addr: Addr, now: float) -> None:
        """Process one received datagram (never raises for bad input: it is dropped and counted).

        The header is checked here (not UDX, unknown stream, relay splice, firewall and source
        address, data offset); then the packet goes by what it carries: HEARTBEAT, the sequenced
        part (DATA / END / DESTROY), MESSAGE, and the ack with its SACK blocks (the send side).
        """
        self._now = now
        if len(data) < HEADER_SIZE or data[0] != 255 or data[1] != 1:
            self._events.append(DatagramReceived(data=bytes(data), addr=addr))
            return
        _m, _v, t, off, sid, rwnd, wseq, wack = _UNPACK_HEADER(data, 0)
        st = self._streams.get(sid)
        if st is None:
            self._handle_unknown_stream(data, addr, t, sid, now)
            return
        self._touched.add(st)
        if st.relay is not None:
            self._relay_packet(st, data, addr, t, now)
            return
        if (not st.connected or st.watch_addr) and not self._check_source(st, addr, t):
            return
        st.packets_rx += 1
        st.last_rx = now
        if t & HEARTBEAT:
            self._handle_heartbeat(st)
            return
        start = HEADER_SIZE
        if off:
            if off > len(data) - HEADER_SIZE:
                self.dropped += 1
                return
            start += off
        if t & _SEQUENCED and not self._handle_sequenced(st, t, data, start, wseq):
            return
        if t & MESSAGE:
            self._events.append(MessageReceived(stream_id=sid, data=bytes(data[start:])))
        if t & _DATA_OR_END:
            st.need_ack = True
            self._dirty.add(st)
        remote_end = st.remote_end
        if remote_end is not None and st.ack > remote_end and not self._handle_remote_end(st):
            return
        self._handle_ack(st, t, off, data, rwnd, wseq, wack, now)

    # ------------------------------------------------------------------ receive handlers

    def _handle_unknown_stream(
        self, data: bytes | memoryview, addr: Addr, t: int, sid: int, now: float
    ) -> None:
        """A packet for no open stream: repeat the final ACK of a stream in TIME_WAIT, else hand it on."""
        tw = self._time_wait.get(sid) if self._time_wait else None
        if tw is None:
            self._events.append(DatagramReceived(data=bytes(data), addr=addr))
        elif now > tw[0]:
            del self._time_wait[sid]
            self._events.append(DatagramReceived(data=bytes(data), addr=addr))
        elif t & _DATA_OR_END:
            # our final ACK was lost: repeat it so the peer can close cleanly too
            self._out.append((_PACK_HEADER(255, 1, 0, 0, tw[1], self._recv_window, tw[3], tw[4]), tw[2]))

    def _check_source(self, st: _Stream, addr: Addr, t: int) -> bool:
        """Firewall (before connect) and watched addresses (relay -> direct); False drops the packet."""
        if not st.connected:
            if st.firewall:
                self.dropped += 1  # udx-native's default firewall drops packets before connect
                return False
            if addr not in st.seen:
                st.seen.add(addr)
                self._events.append(PreConnectPacket(stream_id=st.local_id, addr=addr))
        elif addr not in st.seen:
            # a new path of the peer's, or the remote we moved to (the peer is there too)
            st.seen.add(addr)
            self._events.append(RemoteAddress(stream_id=st.local_id, addr=addr))
        elif t & DESTROY and addr != st.addr:
            self.dropped += 1  # from a path we left: the relay tearing down its splice
            return False
        return True

    def _handle_heartbeat(self, st: _Stream) -> None:
        """HEARTBEAT (keepalive, zero-window probe): ACK at once, nothing else in it counts."""
        st.need_ack = True
        self._dirty.add(st)

    def _handle_sequenced(self, st: _Stream, t: int, data: bytes | memoryview, start: int, wseq: int) -> bool:
        """DATA, END and DESTROY, which take a sequence number: deliver in order, keep up to 16384
        packets ahead out of order, note the peer's END, reset on DESTROY. Old packets are ignored
        (the ack that follows repeats ours). Returns False when the stream closed."""
        ack0 = st.ack
        d = (wseq - ack0) & _M
        if d >= _HALF:  # seq < ack: already delivered
            return True
        seq = ack0 + d
        if t & _DATA_OR_END and not st.ended_remote:
            if d == 0:
                if t & DATA and len(data) > start:
                    self._deliver(st, data[start:])
                if st.ooo:
                    self._drain_ooo(st, ack0 + 1)
                else:
                    st.ack = ack0 + 1
            elif seq not in st.ooo and d < 16384:
                st.ooo[seq] = (t, bytes(data[start:]) if t & DATA else b"")
                _add_range(st.ranges, seq)
        if t & END:
            st.remote_end = seq
        if t & DESTROY:
            self._close(st, StreamReset("stream destroyed by the peer"))
            return False
        return True

    def _drain_ooo(self, st: _Stream, ack: int) -> None:
        """The hole before the out-of-order packets closed at ``ack``: deliver what now follows."""
        ooo = st.ooo
        while ack in ooo:
            pt, pdata = ooo.pop(ack)
            if pt & DATA and pdata:
                self._deliver(st, pdata)
            ack += 1
        ranges = st.ranges
        while ranges and ranges[0][0] < ack:
            if ranges[0][1] <= ack:
                ranges.pop(0)
            else:
                ranges[0][0] = ack
        st.ack = ack

    def _handle_remote_end(self, st: _Stream) -> bool:
        """Everything up to the peer's END arrived (first time only): StreamEnd, and close if ours is
        acknowledged too. Returns False when the stream closed."""
        if st.ended_remote:
            return True
        st.ended_remote = True
        st.ooo.clear()
        st.ranges.clear()
        self._events.append(StreamEnd(stream_id=st.local_id))
        if st.ended:
            self._send_ack(st)
            self._close(st, None)
            return False
        return True

    def _handle_ack(
        self,
        st: _Stream,
        t: int,
        off: int,
        data: bytes | memoryview,
        rwnd: int,
        wseq: int,
        wack: int,
        now: float,
    ) -> None:
        """The send side of every packet: the peer's window, its cumulative ack and SACK blocks."""
        ra = st.remote_acked
        da = (wack - ra) & _M
        if da >= _HALF or ra + da > st.seq:
            return  # old or out-of-bounds ack
        ack = ra + da
        # window update (RFC 793 SND.WL1/WL2 rules, as libudx)
        dw = (wseq - st.wl1) & _M
        if (0 < dw < _HALF) or (dw == 0 and ((wack - st.wl2) & _M) < _HALF):
            if rwnd and st.zwp_deadline is not None:
                st.zwp_deadline = None
            st.send_rwnd = rwnd
            st.wl1 = wseq
            st.wl2 = wack
            if rwnd:
                self._dirty.add(st)
        if st.remote_changing and ack >= st.seq_on_change:
            st.remote_changing = False
            self._events.append(RemoteChanged(stream_id=st.local_id))
        if not st.outgoing:
            if ack > ra:
                st.remote_acked = ack
            return
        newly = acked_bytes = 0
        rack_xmit = st.rack_xmit
        latest_sent = -1.0
        if ack > ra:
            newly, acked_bytes, rack_xmit, latest_sent = _take_acked(st, ra, ack, rack_xmit, latest_sent)
            st.remote_acked = ack
            st.backoff = 1
        if t & SACK:
            sn, sb, rack_xmit, latest_sent = self._handle_sack(st, data, off, rack_xmit, latest_sent)
            newly += sn
            acked_bytes += sb
        if newly:
            self._on_acked(st, acked_bytes, newly, rack_xmit, latest_sent, now)

    @staticmethod
    def _handle_sack(
        st: _Stream, data: bytes | memoryview, off: int, rack_xmit: int, latest_sent: float
    ) -> tuple[int, int, int, float]:
        """SACK blocks (``[start, end)`` u32 pairs after the header, before any padding): take the
        packets they cover out of flight and move the forward ack. Blocks outside what is in flight
        are ignored. Returns (packets, bytes, rack_xmit, latest_sent) as :func:`_take_acked`."""
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
            n, b, rack_xmit, latest_sent = _take_acked(st, s, e, rack_xmit, latest_sent)
            newly += n
            acked_bytes += b
        st.fack = fack
        return newly, acked_bytes, rack_xmit, latest_sent

    def _on_acked(
        self, st: _Stream, acked_bytes: int, newly: int, rack_xmit: int, latest_sent: float, now: float
    ) -> None:
        """``newly`` packets left flight: RTT, MTU search, loss detection, congestion window, timers,
        backpressure and a clean close once our END is acknowledged."""
        st.rack_xmit = rack_xmit
        st.unacked -= acked_bytes
        if latest_sent >= 0:
            # RTT of the most recently sent packet this ack covers, unless that was a retransmission
            # (Karn); the oldest one would include the time its earlier ACKs spent being lost
            self._rtt_sample(st, now - latest_sent, now)
        outgoing = st.outgoing
        if st.mtu_state != _MTU_DONE:
            self._mtu_on_ack(st)
        if st.fack > st.remote_acked or st.retrans_q:
            self._detect_loss(st)
        st.cc.on_ack(newly, max(st.remote_acked, st.fack), st.seq, st.srtt > 1.25 * st.min_rtt + 0.005)
        if outgoing:
            st.rto_deadline = now + st.rto * st.backoff
            st.pto_count = 0
            st.pto_deadline = now + self._pto(st)
        else:
            st.rto_deadline = st.pto_deadline = None
        if st.hit_hwm and self._below_hwm(st):
            st.hit_hwm = False
            self._events.append(StreamWritable(stream_id=st.local_id))
        if st.end_sent and not outgoing:  # END and everything before it acknowledged
            st.ended = True
            if st.ended_remote:
                self._close(st, None)
                return
        self._dirty.add(st)

    @staticmethod
    def _rtt_sample(st: _Stream, rtt_sample: float, now: float) -> None:
        """Smoothed RTT, variance and RTO (RFC 6298), and the windowed minimum RTT."""
        if st.srtt == 0:
            st.srtt = rtt_sample
            st.rttvar = rtt_sample / 2
        else:
            st.rttvar = 0.75 * st.rttvar + 0.25 * abs(st.srtt - rtt_sample)
            st.srtt = 0.875 * st.srtt + 0.125 * rtt_sample
        rto = st.srtt + 4 * st.rttvar
        st.rto = MIN_RTO if rto < MIN_RTO else MAX_RTO if rto > MAX_RTO else rto
        if rtt_sample < st.min_rtt or now - st.min_rtt_stamp > MIN_RTT_WINDOW or not st.min_rtt:
            st.min_rtt = rtt_sample
            st.min_rtt_stamp = now

    @staticmethod
    def _mtu_on_ack(st: _Stream) -> None:
        """MTU search: the padded probe was acknowledged (step up), or start searching."""
        ps = st.probe_seq
        if ps >= 0:
            if ps not in st.outgoing:  # the padded probe arrived: the path carries probe_size
                st.mtu = st.probe_size
                st.payload_size = st.mtu - st.overhead
                st.probe_seq = -1
                st.probe_failures = 0
                if st.mtu >= MTU_MAX:
                    st.mtu_state = _MTU_DONE
                else:
                    st.probe_size = min(st.mtu + MTU_STEP, MTU_MAX)
                    st.probe_wanted = True
        elif st.mtu_state == _MTU_BASE:
            st.mtu_state = _MTU_SEARCH
            st.probe_size = MTU_BASE + MTU_STEP
            st.probe_wanted = True

    # ------------------------------------------------------------------ internals

    def _reset_mtu(self, st: _Stream) -> None:
        st.overhead = IPV6_OVERHEAD if ":" in st.addr[0] else IPV4_OVERHEAD
        st.mtu = MTU_BASE
        st.payload_size = MTU_BASE - st.overhead
        st.mtu_state = _MTU_BASE if self.mtu_probing else _MTU_DONE
        st.probe_size = MTU_BASE
        st.probe_wanted = False
        st.probe_seq = -1
        st.probe_failures = 0

    def _probe_failed(self, st: _Stream) -> None:
        st.probe_seq = -1
        st.probe_failures += 1
        if st.probe_failures >= MTU_MAX_PROBES:
            st.mtu_state = _MTU_DONE
        else:
            st.probe_wanted = True

    def _get(self, stream_id: int) -> _Stream:
        st = self._streams.get(stream_id)
        if st is None:
            raise StreamClosed(f"no open stream {stream_id}")
        self._touched.add(st)  # a command may change its timers
        return st

    def _below_hwm(self, st: _Stream) -> bool:
        if st.unacked <= HIGH_WATERMARK + min(int(st.cc.cwnd) * st.payload_size, st.send_rwnd):
            return True
        st.hit_hwm = True
        return False

    def _rwnd(self, st: _Stream) -> int:
        if not st.manual_window:
            return st.recv_window_max
        w = st.recv_window_max - st.unread
        return w if w > 0 else 0

    def _deliver(self, st: _Stream, data: bytes | memoryview) -> None:
        st.rx_chunks.append(data)
        st.unread += len(data)
        if not st.rx_marked:
            st.rx_marked = True
            self._events.append(st)

    def _relay_packet(self, st: _Stream, data: bytes | memoryview, addr: Addr, t: int, now: float) -> None:
        if addr != st.addr:
            self.dropped += 1
            return
        assert st.relay is not None
        dcore, dst, limiter = st.relay
        st.packets_rx += 1
        n = len(data)
        if dst.closed or not dst.connected:
            st.relay_drops += 1
        elif limiter is None or limiter.allow(n, now):
            buf = bytearray(data)
            buf[4:8] = dst.remote_id.to_bytes(4, "little")
            dcore._out.append((bytes(buf), dst.addr))
            st.relayed_bytes += n
        else:
            st.relay_drops += 1
        if t & DESTROY:
            self._close(st, StreamReset("relayed stream destroyed by the peer"))

    def _close(self, st: _Stream, error: StreamReset | None) -> None:
        if st.closed:
            return
        if st.need_ack and error is None and st.connected:
            self._send_ack(st)  # e.g. the ACK of the peer's END, as libudx sends before closing
        if error is None and st.ended and st.ended_remote:
            if len(self._time_wait) > 4096:
                now = self._now
                self._time_wait = {k: v for k, v in self._time_wait.items() if v[0] > now}
            self._time_wait[st.local_id] = (
                self._now + TIME_WAIT,
                st.remote_id,
                st.addr,
                st.seq & _M,
                st.ack & _M,
            )
        st.closed = True
        st.connected = False
        self._streams.pop(st.local_id, None)
        self._dirty.discard(st)
        st.outgoing.clear()
        st.ooo.clear()
        st.lost_q.clear()
        st.write_q.clear()
        st.rto_deadline = st.pto_deadline = st.zwp_deadline = st.keepalive_deadline = None
        self._events.append(StreamClosedEvent(stream_id=st.local_id, error=error))
        relayed_by, st.relayed_by = st.relayed_by, []
        for core, other in relayed_by:
            core._close(other, error)

    def _send_ack(self, st: _Stream) -> None:
        st.need_ack = False
        rwnd = self._rwnd(st)
        st.advertised = rwnd
        ranges = st.ranges
        if ranges and st.ooo:
            blocks = ranges[:MAX_SACKS]
            body = b"".join(struct.pack("<II", s & _M, e & _M) for s, e in blocks)
            head = _PACK_HEADER(255, 1, SACK, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M)
            self._out.append((head + body, st.addr))
        else:
            self._out.append(
                (_PACK_HEADER(255, 1, 0, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M), st.addr)
            )
        st.packets_tx += 1
        st.last_tx = self._now

    def _send_heartbeat(self, st: _Stream) -> None:
        rwnd = self._rwnd(st)
        self._out.append(
            (_PACK_HEADER(255, 1, HEARTBEAT, 0, st.remote_id, rwnd, st.seq & _M, st.ack & _M), st.addr)
        )
        st.packets_tx += 1
        st.last_tx = self._now

    def _detect_loss(self, st: _Stream) -> None:
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

    def _pto(self, st: _Stream) -> float:
        if not st.srtt:
            return INITIAL_RTO
        pto = 2 * st.srtt
        return MIN_PTO if pto < MIN_PTO else pto

    def _on_pto(self, st: _Stream, now: float) -> None:
        """Tail loss probe (RFC 8985 7, with QUIC's backoff): no ACK progress for two RTTs --
        retransmit the oldest outstanding packet (usually the hole whose retransmission was lost, or
        whose ACK was). Probes back off exponentially; the RTO stays the backstop."""
        st.pto_count += 1
        st.pto_deadline = now + self._pto(st) * (1 << min(st.pto_count, 10))
        pkt = st.outgoing.get(st.remote_acked)
        if pkt is None:
            if not st.outgoing:
                return
            pkt = st.outgoing[min(st.outgoing)]
        if pkt.lost:
            pkt.lost = False
            st.inflight += 1
        if pkt.seq == st.probe_seq:
            self._probe_failed(st)
        pkt.retrans = True
        st.xmit += 1
        pkt.xmit = st.xmit
        pkt.time_sent = now
        st.retrans_q.append((st.xmit, pkt.seq))
        st.retransmits += 1
        st.packets_tx += 1
        head = _PACK_HEADER(255, 1, pkt.flags, 0, pkt.rid, self._rwnd(st), pkt.seq & _M, st.ack & _M)
        self._out.append((head + pkt.payload, pkt.addr))

    def _on_rto(self, st: _Stream, now: float) -> None:
        st.pto_deadline = None
        if not st.outgoing:
            st.rto_deadline = None
            return
        first = st.outgoing.get(st.remote_acked) or next(iter(st.outgoing.values()))
        if (
            first.rto_count >= END_RTO_TIMEOUTS
            and st.ended_remote
            and st.unacked == 0
            and len(st.outgoing) == 1
        ):
            # Only our END is unconfirmed and the peer already ended: libudx closes as soon as it has
            # acked our END and has no TIME_WAIT, so that ACK was lost and the peer is gone.
            st.ended = True
            self._close(st, None)
            return
        if first.rto_count >= MAX_RTO_TIMEOUTS:
            self._close(st, StreamReset("stream timed out"))
            return
        st.rto_count += 1
        for pkt in st.outgoing.values():
            pkt.rto_count += 1
        self._requeue_all(st)
        st.cc.on_rto(st.seq)
        st.backoff = min(st.backoff * 2, 64)
        st.rto_deadline = now + min(st.rto * st.backoff, MAX_RTO)
        self._dirty.add(st)

    @staticmethod
    def _requeue_all(st: _Stream) -> None:
        """Count every packet in flight as lost and queue all of them for retransmission, in order."""
        st.lost_q.clear()
        st.retrans_q.clear()
        for seq in sorted(st.outgoing):
            pkt = st.outgoing[seq]
            if not pkt.lost:
                pkt.lost = True
                st.inflight -= 1
            st.lost_q.append(seq)

    def _flush(self, st: _Stream, now: float) -> None:
        """Send what the windows allow: retransmissions, then new data and END, then the ACK."""
        self._touched.add(st)
        cwnd = int(st.cc.cwnd)
        ackv = st.ack & _M
        rwnd = self._rwnd(st)
        # retransmissions (ignore the receive window, as libudx does)
        sent = self._send_lost(st, now, cwnd, rwnd, ackv) if st.lost_q else 0
        # new data
        srw = st.send_rwnd
        if srw == 0:
            window = 0
        else:
            window = srw // st.payload_size or 1
            if cwnd < window:
                window = cwnd
        if st.queued or (st.ending and not st.end_sent):
            sent += self._send_new(st, now, window, rwnd, ackv)
            if st.queued and window == 0 and not st.outgoing and st.zwp_deadline is None:
                self._send_heartbeat(st)
                st.zwp_deadline = now + st.rto
        if sent:
            st.packets_tx += sent
            st.advertised = rwnd
            if st.rto_deadline is None:
                st.rto_deadline = now + st.rto * st.backoff
            if st.pto_deadline is None:
                st.pto_deadline = now + self._pto(st) * (1 << min(st.pto_count, 10))
            st.last_tx = now
        if st.need_ack and (not sent or st.ooo):
            self._send_ack(st)
        st.need_ack = False

    def _send_lost(self, st: _Stream, now: float, cwnd: int, rwnd: int, ackv: int) -> int:
        """Retransmit packets marked lost, in order, while the congestion window allows; returns how many."""
        outgoing = st.outgoing
        append = self._out.append
        lost_q = st.lost_q
        sent = 0
        while lost_q and st.inflight < cwnd:
            seq = lost_q.popleft()
            pkt = outgoing.get(seq)
            if pkt is None or not pkt.lost:
                continue
            if seq == st.probe_seq:
                self._probe_failed(st)
            pkt.lost = False
            pkt.retrans = True
            st.xmit += 1
            pkt.xmit = st.xmit
            pkt.time_sent = now
            st.retrans_q.append((st.xmit, seq))
            st.inflight += 1
            st.retransmits += 1
            append(
                (_PACK_HEADER(255, 1, pkt.flags, 0, pkt.rid, rwnd, seq & _M, ackv) + pkt.payload, pkt.addr)
            )
            sent += 1
        return sent

    def _send_new(self, st: _Stream, now: float, window: int, rwnd: int, ackv: int) -> int:
        """Packetize queued writes (and END) while fewer than ``window`` packets are in flight; the
        first full-size packet carries the MTU probe's padding when one is wanted. Returns how many."""
        # hot loop: locals only, state written back once
        append = self._out.append
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
        new_pkt = _Pkt
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
                    payload, woff = _gather(q, woff, size)
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


def _gather(q: deque[memoryview], woff: int, size: int) -> tuple[bytes, int]:
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


def _add_range(ranges: list[list[int]], seq: int) -> None:
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


def _take_acked(
    st: _Stream, start: int, end: int, rack_xmit: int, latest_sent: float
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
