"""NAT classification of one socket from how DHT nodes see it (hyperdht ``lib/nat.js``).

Each PING reply tells us the address the node saw (``to``). Three or more agreeing samples of the
same host:port mean the NAT maps the socket CONSISTENTly; as many different ports mean RANDOM.
A node that is not firewalled is OPEN.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.hyper.constants import Firewall

Address = tuple[str, int]

MIN_SAMPLES = 4
"""Samples after which the analysis concludes even without a clear answer."""


@dataclass(slots=True)
class _Sample:
    host: str
    port: int
    hits: int


class NatAnalyzer:
    """Classifies one socket: OPEN, CONSISTENT, RANDOM or UNKNOWN (``lib/nat.js`` ``Nat``).

    Args:
        firewalled: whether the DHT node is firewalled (False: OPEN at once).

    Attributes:
        firewall: the :class:`~peerdht.hyper.constants.Firewall` class so far.
        addresses: our candidate public addresses (None while UNKNOWN).
        sampled: number of distinct nodes that answered.
        done: the analysis reached a conclusion (``nat.analyzing`` resolved).
        frozen: updates are paused (our state was already told to the peer).
    """

    def __init__(self, *, firewalled: bool = True) -> None:
        self.firewalled = firewalled
        self.firewall: int = Firewall.UNKNOWN if firewalled else Firewall.OPEN
        self.addresses: tuple[Address, ...] | None = None
        self.sampled = 0
        self.done = False
        self.frozen = False
        self._hosts: list[_Sample] = []
        self._full: list[_Sample] = []
        self._visited: set[Address] = set()

    def add(self, addr: Address, from_addr: Address) -> None:
        """Node ``from_addr`` saw us at ``addr`` (one sample per node)."""
        if from_addr in self._visited:
            return
        self._visited.add(from_addr)
        _add_sample(self._hosts, addr[0], 0)
        _add_sample(self._full, addr[0], addr[1])
        self.sampled += 1
        if (self.sampled >= 3 or not self.firewalled) and not self.frozen:
            self.update()
        if self.firewall in (Firewall.CONSISTENT, Firewall.OPEN) or self.sampled >= MIN_SAMPLES:
            self.done = True

    def give_up(self) -> None:
        """No more samples will come (the pings ran out): conclude with what we have."""
        self.done = True

    def freeze(self) -> None:
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False
        self.update()

    def update(self) -> None:
        """Recompute :attr:`firewall` and :attr:`addresses` from the samples."""
        if self.firewalled and self.firewall == Firewall.OPEN:
            self.firewall = Firewall.UNKNOWN
        self._update_firewall()
        self._update_addresses()

    def _update_firewall(self) -> None:
        if not self.firewalled:
            self.firewall = Firewall.OPEN
            return
        if self.sampled < 3:
            return
        top = self._full[0].hits
        if top >= 3:
            self.firewall = Firewall.CONSISTENT
        elif top == 1 or (len(self._hosts) == 1 and self.sampled > 3):
            self.firewall = Firewall.RANDOM
        elif len(self._hosts) > 1 and self._full[1].hits > 1:
            self.firewall = Firewall.CONSISTENT
        elif self.sampled > 4:
            self.firewall = Firewall.RANDOM

    def _update_addresses(self) -> None:
        if self.firewall == Firewall.UNKNOWN:
            self.addresses = None
        elif self.firewall == Firewall.RANDOM:
            self.addresses = ((self._hosts[0].host, self._hosts[0].port),)
        else:
            out: list[Address] = []
            for s in self._full:
                if s.hits >= 2 or len(out) < 2:
                    out.append((s.host, s.port))
            self.addresses = tuple(out)


def _add_sample(samples: list[_Sample], host: str, port: int) -> None:
    for i, s in enumerate(samples):
        if s.port != port or s.host != host:
            continue
        s.hits += 1
        while i > 0 and samples[i - 1].hits < s.hits:  # keep sorted by hits, most first
            samples[i - 1], samples[i] = samples[i], samples[i - 1]
            i -= 1
        return
    samples.append(_Sample(host, port, 1))
