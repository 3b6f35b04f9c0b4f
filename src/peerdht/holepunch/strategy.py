"""Which punch to run for a pair of NAT classes (hyperdht ``lib/holepuncher.js`` ``_punch``).

* both CONSISTENT (OPEN counts as CONSISTENT): probe the peer's addresses once a second, up to
  10 times (unverified addresses only every 4th round);
* we CONSISTENT, the peer RANDOM: spray probes at random ports of the peer's verified host
  (every 20 ms, ~35 s);
* we RANDOM, the peer CONSISTENT: open up to 256 "birthday" sockets, each probing the peer's
  verified address, then keep probing round-robin;
* both RANDOM: give up (HOLEPUNCH_DOUBLE_RANDOMIZED_NATS).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from peerdht.hyper.constants import Firewall

if TYPE_CHECKING:
    from collections.abc import Callable

Address = tuple[str, int]

BIRTHDAY_SOCKETS = 256
CONSISTENT_TRIES = 10
CONSISTENT_INTERVAL = 1.0
RANDOM_TRIES = 1750
RANDOM_INTERVAL = 0.02
HOLEPUNCH_TTL = 5
RANDOM_PUNCH_INTERVAL = 20.0
"""Seconds between two punches involving a RANDOM NAT (hyperdht ``randomPunchInterval``)."""
RANDOM_PUNCH_LIMIT = 1


class RandomPunchLimit:
    """At most :data:`RANDOM_PUNCH_LIMIT` punch involving a RANDOM NAT at a time per node, and none within
    :data:`RANDOM_PUNCH_INTERVAL` seconds of the last one ending (hyperdht ``_randomPunches`` /
    ``_lastRandomPunch``). Shared by a node's punch sessions; times are the caller's clock, in seconds.
    """

    def __init__(self, interval: float = RANDOM_PUNCH_INTERVAL) -> None:
        self.interval = interval
        self.running = 0
        self.last_ended = -1e9

    def allowed(self, now: float) -> bool:
        return self.running < RANDOM_PUNCH_LIMIT and now - self.last_ended >= self.interval

    def begin(self) -> None:
        self.running += 1

    def end(self, now: float) -> None:
        self.running = max(0, self.running - 1)
        self.last_ended = now


class Strategy(Enum):
    CONSISTENT = "consistent"
    RANDOM_PROBES = "random_probes"
    BIRTHDAY = "birthday"


def coerce_firewall(fw: int) -> int:
    """OPEN behaves as CONSISTENT when punching."""
    return int(Firewall.CONSISTENT) if fw == Firewall.OPEN else fw


def choose_strategy(local: int, remote: int, has_verified_remote: bool) -> Strategy | None:
    """The punch for our NAT class ``local`` and the peer's ``remote``; None: cannot punch."""
    lo, re = coerce_firewall(local), coerce_firewall(remote)
    if lo == Firewall.CONSISTENT and re == Firewall.CONSISTENT:
        return Strategy.CONSISTENT
    if not has_verified_remote:
        return None
    if lo == Firewall.CONSISTENT and re >= Firewall.RANDOM:
        return Strategy.RANDOM_PROBES
    if lo >= Firewall.RANDOM and re == Firewall.CONSISTENT:
        return Strategy.BIRTHDAY
    return None


def consistent_targets(addresses: list[tuple[Address, bool]], tries: int) -> list[Address]:
    """Addresses to probe in round ``tries`` (1-based) of a CONSISTENT punch: verified ones every
    round, unverified ones every 4th."""
    return [a for a, verified in addresses if verified or tries & 3 == 0]


def random_port(random_bytes: Callable[[int], bytes]) -> int:
    """A port for random probing: 1000..65535, from ``random_bytes`` (``n -> n random bytes``)."""
    return 1000 + int.from_bytes(random_bytes(4), "little") % 64536


def match_address(local: list[Address], remote: list[Address]) -> Address | None:
    """The peer's LAN address sharing the longest /8, /16, /24 prefix with one of ours
    (``matchAddress``); the /24 match wins at once."""
    if not remote:
        return None
    best_seg, best = 1, None
    for la in local:
        a = la[0].split(".")
        for ra in remote:
            b = ra[0].split(".")
            if len(a) != 4 or len(b) != 4 or a[0] != b[0]:
                continue
            if best_seg == 1:
                best_seg, best = 2, ra
            if a[1] == b[1]:
                if best_seg == 2:
                    best_seg, best = 3, ra
                if a[2] == b[2]:
                    return ra
    return best
