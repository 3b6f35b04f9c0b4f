"""FakeNet: a seeded chaos network for sans-IO cores."""

from __future__ import annotations

import random

import pytest

from peerdht.testing import FakeNet

Addr = tuple[str, int]


class Echo:
    """Answers every datagram after 0.5 s (exercises timers); records arrival times."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, bytes, Addr]] = []
        self.out: list[tuple[bytes, Addr]] = []
        self.got: list[tuple[float, bytes]] = []

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.got.append((now, data))
        if data.startswith(b"ping"):
            self.pending.append((now + 0.5, b"pong" + data[4:], addr))

    def handle_timer(self, now: float) -> None:
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        self.out += [(d, a) for _, d, a in due]

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return min((p[0] for p in self.pending), default=None)


def run(seed: int, **chaos: float) -> tuple[list[tuple[float, bytes]], FakeNet]:
    net = FakeNet(random.Random(seed), **chaos)
    a, b = Echo(), Echo()
    net.add(("a", 1), a)
    net.add(("b", 2), b)
    a.out = [(b"ping%d" % i, ("b", 2)) for i in range(200)]
    with pytest.raises(TimeoutError):
        net.run(lambda: False, max_time=10)
    return a.got, net


def test_clock_jumps_to_timers_and_delivers_in_order() -> None:
    got, net = run(1, delay=0.01)
    assert [d for _, d in got] == [b"pong%d" % i for i in range(200)]
    assert got[0][0] == pytest.approx(1000.52)
    assert net.delivered == 400 and net.dropped == 0


def test_seeded_chaos_is_reproducible() -> None:
    chaos = {"loss": 0.1, "duplicate": 0.1, "reorder": 0.2, "jitter": 0.003}
    assert run(7, **chaos)[0] == run(7, **chaos)[0]
    got, net = run(7, **chaos)
    pongs = [d for _, d in got]
    assert 0 < net.dropped < 100
    assert len(set(pongs)) < 200  # some lost
    assert len(pongs) > len(set(pongs))  # some duplicated
    assert pongs != sorted(pongs, key=lambda d: int(d[4:]))  # some reordered
