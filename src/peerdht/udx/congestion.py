"""Congestion control for the UDX sender: NewReno-style AIMD with a CUBIC-like decrease (beta 0.7).

libudx runs BBR (``src/udx_bbr.c``) with a per-packet rate sampler and pacing. Congestion control is
sender-local, so any sane controller interoperates. We pick AIMD because in CPython the per-packet cost
is what limits throughput: this controller does O(1) work per *acknowledgement datagram* (not per packet),
needs no rate samples, no pacing timer and no per-packet bookkeeping beyond what loss recovery already
keeps. On loopback the window is limited by the peer's receive window long before the loss rate matters;
on lossy links SACK-driven recovery (in ``stream.py``) halves the damage of each loss event by reducing
the window only once per recovery episode.
"""

from __future__ import annotations

INITIAL_CWND = 10
"""Initial window in packets (libudx ``udx_stream_init``: ``cwnd = 10``)."""
MIN_CWND = 2
MAX_CWND = 8192
BETA = 0.7


class AIMD:
    """Window in packets.

    ``on_ack(n)`` after ``n`` packets were newly acknowledged, ``on_loss(seq)`` when loss is detected
    (one decrease per recovery episode, which ends when ``on_ack`` sees the cumulative ack pass the
    sequence number that was next to send when the episode began), ``on_rto()`` after a timeout.
    """

    __slots__ = ("cwnd", "in_recovery", "recovery_end", "ssthresh")

    def __init__(self) -> None:
        self.cwnd: float = INITIAL_CWND
        self.ssthresh: float = float(MAX_CWND)
        self.in_recovery = False
        self.recovery_end = 0

    def on_ack(self, newly_acked: int, remote_acked: int) -> None:
        """``newly_acked`` packets were (S)ACKed; ``remote_acked`` is the cumulative ack (unwrapped)."""
        if self.in_recovery:
            if remote_acked < self.recovery_end:
                return
            self.in_recovery = False
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            cwnd += newly_acked
        else:
            cwnd += newly_acked / cwnd
        self.cwnd = cwnd if cwnd < MAX_CWND else MAX_CWND

    def on_loss(self, next_seq: int, remote_acked: int) -> None:
        """A packet was found lost; ``next_seq`` is the next sequence number to be sent (unwrapped).

        At most one decrease per window of data: none while in recovery or before the data in flight
        at the last decrease (or timeout) is acknowledged."""
        if self.in_recovery or remote_acked < self.recovery_end:
            return
        self.ssthresh = max(self.cwnd * BETA, MIN_CWND)
        self.cwnd = self.ssthresh
        self.in_recovery = True
        self.recovery_end = next_seq

    def on_rto(self, next_seq: int) -> None:
        """The retransmission timer fired."""
        self.ssthresh = max(self.cwnd / 2, MIN_CWND)
        self.cwnd = MIN_CWND
        self.in_recovery = False  # slow start again up to ssthresh
        self.recovery_end = next_seq
