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

The sender is our own (sender behaviour is local): ``sender.py`` (SACK/FACK and RACK-like loss
detection, tail-loss probes, the MTU search, 1200 up to 1500 bytes) with ``congestion.py``; the RTO
with exponential backoff (six timeouts of the same packet reset the stream, as libudx) is here. Stream
state is in ``state.py``, the receiver's ACK/SACK in ``sack.py``, the timer heap in ``timers.py``.
Times are seconds.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from peerdht.errors import LocalProtocolError, StreamClosed, StreamReset, StreamTimeout
from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamTerminated,
    StreamWritable,
    UDXEvent,
)
from peerdht.udx.packet import DATA, DESTROY, END, HEADER, HEADER_SIZE, HEARTBEAT, MESSAGE, SACK
from peerdht.udx.sack import add_range, send_ack
from peerdht.udx.sender import (
    MAX_RTO,
    detect_loss,
    mtu_on_ack,
    probe_tail,
    pto,
    requeue_all,
    reset_mtu,
    rtt_sample,
    send_heartbeat,
    send_lost,
    send_new,
    take_acked,
    take_sacked,
)
from peerdht.udx.state import (
    DEFAULT_RECV_WINDOW,
    MTU_STATE_DONE,
    Addr,
    RelayLimiter,
    StreamState,
)
from peerdht.udx.timers import StreamTimers, arm_liveness

__all__ = ["DEFAULT_RECV_WINDOW", "HIGH_WATERMARK", "Addr", "RelayLimiter", "UDXSocketCore"]

_M: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
HIGH_WATERMARK: Final = 262144
"""libudx ``UDX_HIGH_WATERMARK``: writes beyond this plus the send window report backpressure."""
MAX_RTO_TIMEOUTS: Final = 6
END_RTO_TIMEOUTS: Final = 3
"""Timeouts of a lone END (peer already ended) after which the stream closes cleanly."""
TIME_WAIT: Final = 30.0
"""Seconds a cleanly closed stream keeps acknowledging retransmissions of the peer's last packets."""
_PACK_HEADER = HEADER.pack
_UNPACK_HEADER = HEADER.unpack_from
_DATA_OR_END: Final = DATA | END
_SEQUENCED: Final = DATA | END | DESTROY


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
        self._streams: dict[int, StreamState] = {}
        self._events: deque[UDXEvent | StreamState] = deque()
        self._out: list[tuple[bytes, Addr]] = []
        self._dirty: set[StreamState] = set()
        self._timers = StreamTimers()
        self._touched = self._timers.touched  # streams whose deadlines may have changed (timers.py)
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
        st = StreamState(stream_id, self._recv_window)
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
        reset_mtu(st, self.mtu_probing)
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
            requeue_all(st)
            st.backoff = 1
            self._dirty.add(st)
        reset_mtu(st, self.mtu_probing)
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
        streams must be connected: packets from a host other than this stream's remote's are dropped
        (a third party cannot inject into a splice). Another port of that host passes: a libudx peer
        that moves its stream to its punch socket (udx-native ``changeRemote``) keeps sending the
        packets it had in flight to the relay, from that socket (libudx is looser still: it checks no
        source address). ``limiter`` may refuse packets (dropped and counted; UDX retransmits). A
        DESTROY passes through and closes this stream; closing a stream closes the streams relaying
        into it (as libudx). Relay both ways for a splice.

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

    def queue_relayed(self, data: bytes, addr: Addr) -> None:
        """Queue one packet that a stream relaying into this core (:meth:`relay_to`) passes on: ``data``
        is a whole UDX packet whose header already carries the destination's remote id, sent as it is
        to ``addr`` by the next :meth:`datagrams_to_send` (no stream state changes here)."""
        self._out.append((data, addr))

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

        Emits :class:`~peerdht.udx.events.StreamTerminated` with ``error=None``. Does nothing if the stream is already closed.
        """
        st = self._streams.get(stream_id)
        if st is None or st.closed:
            return
        if st.connected and st.relay is None:  # a relaying stream closes silently (libudx)
            rwnd = st.rwnd()
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
        head = _PACK_HEADER(255, 1, MESSAGE, 0, st.remote_id, st.rwnd(), st.seq & _M, st.ack & _M)
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
        arm_liveness(st, now)

    def _on_liveness(self, st: StreamState, now: float) -> None:
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
                send_heartbeat(st, self._out, self._now)
        arm_liveness(st, now)

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
        if st.advertised < st.recv_window_max // 2 <= st.rwnd():
            st.need_ack = True  # window update
            self._dirty.add(st)

    def write_buffer_size(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged (0 for unknown streams)."""
        st = self._streams.get(stream_id)
        return 0 if st is None else st.unacked

    def stream_stats(self, stream_id: int) -> dict[str, float]:
        """Counters and estimates of a stream (cwnd in packets, srtt/rto in seconds, ...)."""
        return self._get(stream_id).stats()

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
        if isinstance(ev, StreamState):
            chunks = ev.rx_chunks
            ev.rx_chunks = []
            ev.rx_marked = False
            return StreamData(
                stream_id=ev.local_id, data=bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            )
        return ev

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (seconds, same clock as ``now``), or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Run the timers that are due: retransmission timeout, zero-window probe, keepalive."""
        self._now = now
        for st in self._timers.pop_due(now):
            if st.closed:
                continue
            if st.rto_deadline is not None and now >= st.rto_deadline:
                self._on_rto(st, now)
                if st.closed:
                    continue
            elif st.pto_deadline is not None and now >= st.pto_deadline:
                probe_tail(st, self._out, now)
            if st.zwp_deadline is not None and now >= st.zwp_deadline:
                if st.send_rwnd == 0 and (st.queued or (st.ending and not st.end_sent)):
                    send_heartbeat(st, self._out, self._now)
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

    def _check_source(self, st: StreamState, addr: Addr, t: int) -> bool:
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

    def _handle_heartbeat(self, st: StreamState) -> None:
        """HEARTBEAT (keepalive, zero-window probe): ACK at once, nothing else in it counts."""
        st.need_ack = True
        self._dirty.add(st)

    def _handle_sequenced(
        self, st: StreamState, t: int, data: bytes | memoryview, start: int, wseq: int
    ) -> bool:
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
                add_range(st.ranges, seq)
        if t & END:
            st.remote_end = seq
        if t & DESTROY:
            self._close(st, StreamReset("stream destroyed by the peer"))
            return False
        return True

    def _drain_ooo(self, st: StreamState, ack: int) -> None:
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

    def _handle_remote_end(self, st: StreamState) -> bool:
        """Everything up to the peer's END arrived (first time only): StreamEnd, and close if ours is
        acknowledged too. Returns False when the stream closed."""
        if st.ended_remote:
            return True
        st.ended_remote = True
        st.ooo.clear()
        st.ranges.clear()
        self._events.append(StreamEnd(stream_id=st.local_id))
        if st.ended:
            send_ack(st, self._out, self._now)
            self._close(st, None)
            return False
        return True

    def _handle_ack(
        self,
        st: StreamState,
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
            newly, acked_bytes, rack_xmit, latest_sent = take_acked(st, ra, ack, rack_xmit, latest_sent)
            st.remote_acked = ack
            st.backoff = 1
        if t & SACK:
            sn, sb, rack_xmit, latest_sent = take_sacked(st, data, off, rack_xmit, latest_sent)
            newly += sn
            acked_bytes += sb
        if newly:
            self._on_acked(st, acked_bytes, newly, rack_xmit, latest_sent, now)

    def _on_acked(
        self, st: StreamState, acked_bytes: int, newly: int, rack_xmit: int, latest_sent: float, now: float
    ) -> None:
        """``newly`` packets left flight: RTT, MTU search, loss detection, congestion window, timers,
        backpressure and a clean close once our END is acknowledged."""
        st.rack_xmit = rack_xmit
        st.unacked -= acked_bytes
        if latest_sent >= 0:
            # RTT of the most recently sent packet this ack covers, unless that was a retransmission
            # (Karn); the oldest one would include the time its earlier ACKs spent being lost
            rtt_sample(st, now - latest_sent, now)
        outgoing = st.outgoing
        if st.mtu_state != MTU_STATE_DONE:
            mtu_on_ack(st)
        if st.fack > st.remote_acked or st.retrans_q:
            detect_loss(st)
        st.cc.on_ack(newly, max(st.remote_acked, st.fack), st.seq, st.srtt > 1.25 * st.min_rtt + 0.005)
        if outgoing:
            st.rto_deadline = now + st.rto * st.backoff
            st.pto_count = 0
            st.pto_deadline = now + pto(st)
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

    # ------------------------------------------------------------------ internals

    def _get(self, stream_id: int) -> StreamState:
        st = self._streams.get(stream_id)
        if st is None:
            raise StreamClosed(f"no open stream {stream_id}")
        self._touched.add(st)  # a command may change its timers
        return st

    def _below_hwm(self, st: StreamState) -> bool:
        if st.unacked <= HIGH_WATERMARK + min(int(st.cc.cwnd) * st.payload_size, st.send_rwnd):
            return True
        st.hit_hwm = True
        return False

    def _deliver(self, st: StreamState, data: bytes | memoryview) -> None:
        st.rx_chunks.append(data)
        st.unread += len(data)
        if not st.rx_marked:
            st.rx_marked = True
            self._events.append(st)

    def _relay_packet(
        self, st: StreamState, data: bytes | memoryview, addr: Addr, t: int, now: float
    ) -> None:
        if addr[0] != st.addr[0]:
            self.dropped += 1  # another host (the same host on another port: the peer's punch socket)
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
            dcore.queue_relayed(bytes(buf), dst.addr)
            st.relayed_bytes += n
        else:
            st.relay_drops += 1
        if t & DESTROY:
            self._close(st, StreamReset("relayed stream destroyed by the peer"))

    def _close(self, st: StreamState, error: StreamReset | None) -> None:
        if st.closed:
            return
        if st.need_ack and error is None and st.connected:
            send_ack(
                st, self._out, self._now
            )  # e.g. the ACK of the peer's END, as libudx sends before closing
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
        self._events.append(StreamTerminated(stream_id=st.local_id, error=error))
        relayed_by, st.relayed_by = st.relayed_by, []
        for core, other in relayed_by:
            core._close(other, error)

    def _on_rto(self, st: StreamState, now: float) -> None:
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
        requeue_all(st)
        st.cc.on_rto(st.seq)
        st.backoff = min(st.backoff * 2, 64)
        st.rto_deadline = now + min(st.rto * st.backoff, MAX_RTO)
        self._dirty.add(st)

    def _flush(self, st: StreamState, now: float) -> None:
        """Send what the windows allow: retransmissions, then new data and END, then the ACK."""
        self._touched.add(st)
        cwnd = int(st.cc.cwnd)
        ackv = st.ack & _M
        rwnd = st.rwnd()
        # retransmissions (ignore the receive window, as libudx does)
        sent = send_lost(st, self._out, now, cwnd, rwnd, ackv) if st.lost_q else 0
        # new data
        srw = st.send_rwnd
        if srw == 0:
            window = 0
        else:
            window = srw // st.payload_size or 1
            if cwnd < window:
                window = cwnd
        if st.queued or (st.ending and not st.end_sent):
            sent += send_new(st, self._out, now, window, rwnd, ackv)
            if st.queued and window == 0 and not st.outgoing and st.zwp_deadline is None:
                send_heartbeat(st, self._out, self._now)
                st.zwp_deadline = now + st.rto
        if sent:
            st.packets_tx += sent
            st.advertised = rwnd
            if st.rto_deadline is None:
                st.rto_deadline = now + st.rto * st.backoff
            if st.pto_deadline is None:
                st.pto_deadline = now + pto(st) * (1 << min(st.pto_count, 10))
            st.last_tx = now
        if st.need_ack and (not sent or st.ooo):
            send_ack(st, self._out, self._now)
        st.need_ack = False
