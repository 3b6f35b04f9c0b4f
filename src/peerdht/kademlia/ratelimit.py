"""Token buckets: the one rate limiter of the sans-IO cores (no clock: ``now`` is passed in, seconds).

:class:`TokenBucket` limits one flow: the blind relay's bytes per session (:mod:`peerdht.relay.pairing`,
:mod:`peerdht.aio.hyperdht.relay`), the web overlay's bytes, relayed messages, ``peer_connection`` queries and bridged
lookups per link (:mod:`peerdht.web.links`), and the web node's expensive HTTP endpoints per IP
(:mod:`peerdht.aio.web.routes`), and handshakes per client address and host on a HyperDHT server (one bucket per key,
:class:`peerdht.hyper.limits.KeyedBuckets`). JS has no such bounds (``blind-relay``, ``k-rpc-socket-webrtc.js``).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """A rate limit: ``rate`` units per second on average (bytes, messages, requests), bursts up to ``burst``.

    The bucket starts full. Time that goes backwards adds nothing.

    Args:
        rate: units per second (0 or less: unlimited).
        burst: bucket size in units (default: one second of ``rate``, at least 65536).
    """

    __slots__ = ("_at", "_tokens", "burst", "dropped", "passed", "rate")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 65536.0)
        self._tokens = self.burst
        self._at: float | None = None
        self.dropped = 0
        """Takes refused (over the rate)."""
        self.passed = 0
        """Units let through."""

    def allow(self, amount: int, now: float) -> bool:
        """Take ``amount`` units at time ``now`` (seconds); ``False`` (and counted in :attr:`dropped`) when
        the bucket holds fewer than ``amount``."""
        if self.rate <= 0:
            self.passed += amount
            return True
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)
        if self._tokens >= amount:
            self._tokens -= amount
            self.passed += amount
            return True
        self.dropped += 1
        return False
