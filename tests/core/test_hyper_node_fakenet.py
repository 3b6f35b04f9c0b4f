"""An in-memory network for HyperDHT node cores (no sockets, fake clock), plus its own tests.

Other ``test_hyper_*`` modules import :class:`FakeNet` from here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from peerdht.hyper.events import Bootstrapped, Event, OpDone, OpFailed
from peerdht.hyper.node import CLIENT, SERVER, HyperDHTNode
from peerdht.testing import FakeNet as Net

Address = tuple[str, int]


@dataclass
class Member:
    node: HyperDHTNode
    server: Address
    client: Address
    events: list[Event] = field(default_factory=list)

    def result(self, op: int) -> OpDone | OpFailed | None:
        for e in self.events:
            if isinstance(e, OpDone | OpFailed) and e.op == op:
                return e
        return None

    def done(self, op: int) -> object:
        r = self.result(op)
        assert isinstance(r, OpDone), f"op {op}: {r!r}"
        return r.result

    def failed(self, op: int) -> Exception:
        r = self.result(op)
        assert isinstance(r, OpFailed), f"op {op}: {r!r}"
        return r.error


class FakeNet:
    """HyperDHT nodes (a server and a client socket each) on :class:`peerdht.testing.FakeNet` with zero
    latency; time only moves to the next timer.

    Args:
        seed: seeds every random source.
        loss: probability of dropping a datagram.

    Attributes:
        filter: optional ``filter(data, src, dst) -> bool`` (False drops the datagram).
        down: addresses that neither send nor receive.
    """

    def __init__(self, seed: int = 1, *, loss: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.net = Net(random.Random(seed + 1), loss=loss, delay=0.0)
        self.members: list[Member] = []
        self.by_addr: dict[Address, tuple[Member, int]] = {}
        self.down = self.net.down
        self.next_port = 10000
        self.next_host = 1

    @property
    def now(self) -> float:
        return self.net.now

    @now.setter
    def now(self, t: float) -> None:
        self.net.now = t

    @property
    def delivered(self) -> int:
        return self.net.delivered

    @property
    def filter(self) -> Callable[[bytes, Address, Address], bool] | None:
        return self.net.filter

    @filter.setter
    def filter(self, f: Callable[[bytes, Address, Address], bool] | None) -> None:
        self.net.filter = f

    def add(
        self,
        *,
        bootstrap: list[Address] | None = None,
        ephemeral: bool | None = False,
        firewalled: bool = False,
        host: str | None = None,
        public_host: bool = False,
        ip: str | None = None,
    ) -> Member:
        """Create a node on its own IP (10.0.0.N) with a server and a client port."""
        if ip is None:
            ip = f"10.0.{self.next_host // 250}.{self.next_host % 250 + 1}"
            self.next_host += 1
        server = (ip, self.next_port)
        client = (ip, self.next_port + 1)
        self.next_port += 2
        node = HyperDHTNode(
            rng=random.Random(self.rng.random()),
            secrets=self.rng.randbytes(64),
            bootstrap=bootstrap or [],
            ephemeral=ephemeral,
            firewalled=firewalled,
            host=ip if public_host else host,
        )
        node.bind(server, client, self.now)
        self.net.add_sockets([server, client], node, events=True)
        m = Member(node, server, client, self.net.events[server])
        self.members.append(m)
        self.by_addr[server] = (m, SERVER)
        self.by_addr[client] = (m, CLIENT)
        return m

    def testnet(self, size: int, **kw: object) -> list[Member]:
        """A bootstrapper (public host) plus ``size - 1`` persistent nodes, all bootstrapped."""
        first = self.add(public_host=True, ephemeral=False, firewalled=False)
        op = first.node.bootstrap(self.now)
        self.run_until(lambda: first.result(op) is not None)
        out = [first]
        for _ in range(size - 1):
            m = self.add(bootstrap=[first.server], ephemeral=False, firewalled=False, **kw)  # type: ignore[arg-type]
            op = m.node.bootstrap(self.now)
            self.run_until(lambda m=m, op=op: m.result(op) is not None)  # type: ignore[misc]
            out.append(m)
        return out

    def deliver(self, data: bytes, src: Address, dst: Address) -> None:
        """Put one datagram on the wire (delivered at the next step)."""
        self.net.inject(data, src, dst)

    def collect(self, m: Member) -> None:
        """Drain ``m``'s events (and datagrams) now."""
        self.net.collect(m.server)

    def step(self) -> None:
        """Deliver what is in flight, else advance the clock to the earliest timer and run it."""
        self.net.step()

    def run_until(self, cond: Callable[[], bool], timeout: float = 60.0) -> None:
        try:
            self.net.run(cond, max_time=timeout)
        except TimeoutError as exc:
            raise AssertionError(f"condition not met within {timeout} s of fake time") from exc

    def run_for(self, seconds: float) -> None:
        self.net.run_for(seconds)


# ---------------------------------------------------------------------------------------- tests


def test_two_node_ping() -> None:
    net = FakeNet()
    a = net.add(public_host=True)
    b = net.add()
    op = b.node.ping(a.server, net.now)
    net.run_until(lambda: b.result(op) is not None)
    reply = b.done(op)
    assert reply.from_addr == a.server  # type: ignore[attr-defined]
    assert reply.message.to == b.server  # type: ignore[attr-defined]
    assert b.node.stats["commands"]["ping"] == {"tx": 1, "rx": 1}  # type: ignore[index]


def test_ping_timeout_fails_after_retries() -> None:
    net = FakeNet()
    a = net.add()
    start = net.now
    op = a.node.ping(("10.9.9.9", 1234), net.now)
    net.run_until(lambda: a.result(op) is not None)
    err = a.failed(op)
    assert type(err).__name__ == "RequestTimeout"
    assert 3.9 <= net.now - start <= 4.1  # 1 send + 3 retries, 1 s each
    assert a.node.stats["requests"]["timeouts"] == 1  # type: ignore[index]


def test_bootstrapper_persistent_and_bootstrapped() -> None:
    net = FakeNet()
    a = net.add(public_host=True, ephemeral=False, firewalled=False)
    op = a.node.bootstrap(net.now)
    net.run_until(lambda: a.result(op) is not None)
    assert any(isinstance(e, Bootstrapped) for e in a.events)
    assert a.node.ephemeral is False
    assert a.node.id is not None
    assert a.node.remote_address() == a.server
