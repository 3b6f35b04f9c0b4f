"""The state of one UDX stream and of its packets in flight (internal to ``peerdht.udx``).

``UDXSocketCore`` (``stream.py``) owns these records and runs the protocol on them; ``sender.py`` and
``sack.py`` hold the per-stream algorithms. Sequence numbers are kept unwrapped (Python ints) and
masked to u32 on the wire, as libudx ``src/udx.c`` keeps its ``udx_stream_t``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

from peerdht.udx.congestion import Congestion
from peerdht.udx.packet import IPV4_OVERHEAD, MTU_BASE

if TYPE_CHECKING:
    from peerdht.udx.stream import UDXSocketCore

Addr = tuple[str, int]

DEFAULT_RECV_WINDOW: Final = 4 * 1024 * 1024
"""Receive window advertised (bytes), libudx ``UDX_DEFAULT_RWND_MAX``."""
INITIAL_RTO: Final = 1.0
MTU_STATE_BASE: Final = 0
MTU_STATE_SEARCH: Final = 1
MTU_STATE_DONE: Final = 2


class RelayLimiter(Protocol):
    """What :meth:`UDXSocketCore.relay_to` accepts as a rate limit (e.g.
    :class:`peerdht.relay.pairing.TokenBucket`)."""

    def allow(self, nbytes: int, now: float) -> bool:
        """Whether ``nbytes`` may pass at time ``now`` (seconds)."""
        ...


class SentPacket:
    """One packet sent and not yet acknowledged (seq unwrapped; ``xmit`` its transmission number)."""

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


class StreamState:
    """All state of one stream. Internal to ``peerdht.udx``: use the ``UDXSocketCore`` commands."""

    def __init__(self, local_id: int, recv_window: int) -> None:
        self.local_id = local_id
        self.remote_id = 0
        self.addr: Addr = ("", 0)
        self.payload_size = MTU_BASE - IPV4_OVERHEAD
        self.overhead = IPV4_OVERHEAD
        # MTU search (RFC 8899 style, as libudx): probe with padded packets, 32 bytes up at a time
        self.mtu = MTU_BASE
        self.mtu_state = MTU_STATE_BASE
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
        self.outgoing: dict[int, SentPacket] = {}
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
        self.relay: tuple[UDXSocketCore, StreamState, RelayLimiter | None] | None = None
        self.relayed_by: list[tuple[UDXSocketCore, StreamState]] = []
        self.relayed_bytes = 0
        self.relay_drops = 0
        self.watch_addr = False

    def rwnd(self) -> int:
        """The receive window to advertise (bytes): all of it, or what unread data leaves in manual mode."""
        if not self.manual_window:
            return self.recv_window_max
        w = self.recv_window_max - self.unread
        return w if w > 0 else 0

    def stats(self) -> dict[str, float]:
        """Counters and estimates (cwnd in packets, srtt/rto in seconds, bytes relayed, ..., ``seq`` the next
        sequence number to send, ``acked`` the peer's cumulative acknowledgement)."""
        return {
            "cwnd": self.cc.cwnd,
            "srtt": self.srtt,
            "rto": self.rto,
            "inflight": self.inflight,
            "retransmits": self.retransmits,
            "rto_count": self.rto_count,
            "fast_recoveries": self.fast_recoveries,
            "packets_rx": self.packets_rx,
            "packets_tx": self.packets_tx,
            "relayed_bytes": self.relayed_bytes,
            "relay_drops": self.relay_drops,
            "seq": self.seq,
            "acked": self.remote_acked,
        }
