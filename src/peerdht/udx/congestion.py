"""Congestion control for the UDX sender: a window controller that tells random loss from congestion.

libudx runs BBR (``src/udx_bbr.c``): a per-packet delivery-rate sampler, a bandwidth filter and a
pacing timer. Congestion control is sender-local, so any sane controller interoperates. In CPython the
per-packet cost limits throughput, so we want O(1) work per *acknowledgement datagram* and no pacing
timer -- but we also want what BBR gives libudx on lossy links: random loss (Wi-Fi, a 3 % ``netem``
link) must not collapse the window the way NewReno does (its window settles near ``1.2 / sqrt(p)``
packets: 7 packets at 3 % loss, ~250 KB/s at 40 ms RTT).

The rule, evaluated once per round trip (a *round* ends when the data in flight at its start is acked):

* the round was **congestive** when it lost more packets than binomial noise around the long-run
  average explains (two standard deviations plus one packet: in a 15-packet window one loss at a 3 %
  average is noise, three are not; an EWMA over rounds gives the average) and either more than
  ``LOSS_HIGH`` (20 %) of its packets were lost, or more than ``LOSS_LOW`` (2 %) were lost and either
  the RTT is inflated (smoothed RTT above ``1.25 * min_rtt + 5 ms``: a queue is building, as at a
  tail-drop bottleneck) or the loss is more than twice the long-run average (random loss is steady,
  overflow loss bursts);
* a congestive round multiplies the window by ``BETA`` (0.7) and ends slow start;
* otherwise the window grows: slow start (``+1`` per acked packet) until the first congestive round,
  then by ``max(1 packet, 12.5 %)`` per round trip while the RTT shows no queue and by
  ``max(1 packet, 1 %)`` once it does (Reno's additive step, Scalable TCP's on fast paths);
* a retransmission timeout halves ``ssthresh`` and restarts slow start from ``MIN_CWND``.

Steady loss below 20 % with a flat RTT is thus treated as noise, much as BBRv1 ignores loss; loss with a
growing queue, or heavy loss, backs off.
"""

from __future__ import annotations

import math

INITIAL_CWND = 10
"""Initial window in packets (libudx ``udx_stream_init``: ``cwnd = 10``)."""
MIN_CWND = 2
MAX_CWND = 8192
BETA = 0.7
LOSS_HIGH = 0.20
LOSS_LOW = 0.02
GROWTH_NO_QUEUE = 0.125
"""Window growth per round trip after slow start while the RTT shows no queue (a fraction of cwnd)."""


class Congestion:
    """Window in packets (``cwnd``); all sequence numbers are unwrapped ints."""

    __slots__ = (
        "cwnd",
        "loss_avg",
        "round_delivered",
        "round_end",
        "round_lost",
        "rounds_congested",
        "ssthresh",
    )

    def __init__(self) -> None:
        self.cwnd: float = INITIAL_CWND
        self.ssthresh: float = float(MAX_CWND)
        self.round_end = 0
        self.round_delivered = 0
        self.round_lost = 0
        self.rounds_congested = 0
        self.loss_avg = 0.0

    def on_ack(self, newly_acked: int, remote_acked: int, next_seq: int, rtt_inflated: bool) -> None:
        """``newly_acked`` packets were (S)ACKed; ``remote_acked`` is the cumulative ack, ``next_seq``
        the next sequence number to send, ``rtt_inflated`` whether the smoothed RTT shows a queue."""
        self.round_delivered += newly_acked
        if remote_acked >= self.round_end:
            lost = self.round_lost
            n = lost + self.round_delivered
            frac = lost / n if lost else 0.0
            if self._beyond_noise(lost, n) and (
                frac > LOSS_HIGH or (frac > LOSS_LOW and (rtt_inflated or lost > 2 * self.loss_avg * n))
            ):
                self.rounds_congested += 1
                cwnd = self.cwnd * BETA
                self.cwnd = self.ssthresh = cwnd if cwnd > MIN_CWND else MIN_CWND
            self.loss_avg += (frac - self.loss_avg) * 0.125
            self.round_end = next_seq
            self.round_delivered = 0
            self.round_lost = 0
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            cwnd += newly_acked
        else:
            step = 1 / cwnd
            floor = 0.01 if rtt_inflated else GROWTH_NO_QUEUE
            cwnd += newly_acked * (step if step > floor else floor)
        self.cwnd = cwnd if cwnd < MAX_CWND else MAX_CWND

    def _beyond_noise(self, lost: int, n: int) -> bool:
        """More of a round's ``n`` packets lost than steady random loss at the long-run rate explains:
        over two standard deviations plus one packet above the expected count (binomial noise), so one
        unlucky packet in a small window never counts as congestion."""
        expected = self.loss_avg * n
        return lost > expected + 2 * math.sqrt(expected * (1 - self.loss_avg)) + 1

    def on_loss(self, count: int) -> None:
        """``count`` packets were found lost."""
        self.round_lost += count

    def on_rto(self, next_seq: int) -> None:
        """The retransmission timeout fired."""
        half = self.cwnd / 2
        self.ssthresh = half if half > MIN_CWND else MIN_CWND
        self.cwnd = MIN_CWND
        self.round_end = next_seq
        self.round_delivered = 0
        self.round_lost = 0
