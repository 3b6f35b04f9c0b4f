"""How the network sees us: a sampler of reported (host, port) pairs.

Every dht-rpc message carries ``to``, the address the sender sent it to, i.e. our address as seen
from the outside. Feeding those samples into :class:`NatSampler` yields the consensus public host and,
if the NAT maps our port consistently, the public port (``0`` when the port is randomised).

Mirrors npm ``nat-sampler`` (``index.js``): a ring of the last 16 samples, each sample counted both
as ``(host, port)`` and as ``(host, 0)``, a threshold that tolerates a few outliers once there are
four or more samples, and hit counts that only look back over the previous four samples (so a
sampler converges on the value most recent reporters agree on).
"""

from __future__ import annotations

from dataclasses import dataclass

_RING = 32  # slots: 16 samples, each stored twice (with port, and host-only)
_LOOKBACK = 4


@dataclass(slots=True)
class _Sample:
    host: str
    port: int
    hits: int


class NatSampler:
    """Consensus of how remote nodes see our address.

    Attributes:
        host: the agreed public host, or ``None`` while there is no consensus.
        port: the agreed public port, ``0`` when unknown or when the NAT randomises ports.
        size: number of samples added so far (capped at 16 for the threshold).
    """

    def __init__(self) -> None:
        self.host: str | None = None
        self.port: int = 0
        self.size: int = 0
        self._a: _Sample | None = None
        self._b: _Sample | None = None
        self._threshold = 0
        self._top = 0
        self._samples: list[_Sample] = []

    def add(self, host: str, port: int) -> int:
        """Record that a remote node saw us at ``host:port``.

        Args:
            host: our address as reported by the remote node.
            port: our port as reported by the remote node.

        Returns:
            How many recent samples agree on exactly ``host:port``.
        """
        a = self._bump(host, port, 2)
        b = self._bump(host, 0, 1)
        if len(self._samples) < _RING:
            self.size += 1
            n = self.size
            self._threshold = n - (0 if n < 4 else 1 if n < 8 else 2 if n < 12 else 3)
            self._samples.append(a)
            self._samples.append(b)
            self._top += 2
        else:
            if self._top == _RING:
                self._top = 0
            old_a = self._samples[self._top]
            self._samples[self._top] = a
            self._top += 1
            old_a.hits -= 1
            old_b = self._samples[self._top]
            self._samples[self._top] = b
            self._top += 1
            old_b.hits -= 1

        if self._a is None or self._a.hits < a.hits:
            self._a = a
        if self._b is None or self._b.hits < b.hits:
            self._b = b

        if self._a.hits >= self._threshold:
            self.host, self.port = self._a.host, self._a.port
        elif self._b.hits >= self._threshold:
            self.host, self.port = self._b.host, 0
        else:
            self.host, self.port = None, 0
        return a.hits

    def _bump(self, host: str, port: int, inc: int) -> _Sample:
        for i in range(_LOOKBACK):
            j = (self._top - inc - 2 * i) & (_RING - 1)
            if j >= len(self._samples):
                break
            s = self._samples[j]
            if s.port == port and s.host == host:
                s.hits += 1
                return s
        return _Sample(host, port, 1)
