"""An in-memory network for HyperDHT node cores (no sockets, fake clock), plus its own tests.

Other ``test_hyper_*`` modules import :class:`FakeNet` from here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from peerdht.hyper.events import Bootstrapped, Event, OpDone, OpFailed
from peerdht.hyper.node import CLIENT, SERVER, HyperDHTNode

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
    """Delivers datagrams between cores by address; time only moves to the next timer.

    Args:
        seed: seeds every random source.
        loss: probability of dropping a datagram.
        filter: optional ``filter(data, src, dst) -> bool`` (False drops the datagram).
    """

    def __init__(self, seed: int = 1, *, loss: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.now = 1000.0
        self.loss = loss
        self.members: list[Member] = []
        self.by_addr: dict[Address, tuple[Member, int]] = {}
        self.down: set[Address] = set()
        self.next_port = 10000
        self.next_host = 1
        self.filter: Callable[[bytes, Address, Address], bool] | None = None
        self.delivered = 0

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
        m = Member(node, server, client)
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

    def flush(self) -> None:
        """Deliver datagrams until nobody has anything to send (zero latency)."""
        for _ in range(10000):
            moved = False
            for m in list(self.members):
                out = m.node.datagrams_to_send(self.now)
                if out:
                    moved = True
                for data, dst, sock in out:
                    src = m.server if sock == SERVER else m.client
                    self.deliver(data, src, dst)
                self.collect(m)
            if not moved:
                return
        raise AssertionError("network did not settle")

    def deliver(self, data: bytes, src: Address, dst: Address) -> None:
        if src in self.down or dst in self.down:
            return
        if self.loss and self.rng.random() < self.loss:
            return
        if self.filter is not None and not self.filter(data, src, dst):
            return
        target = self.by_addr.get(dst)
        if target is None:
            return
        self.delivered += 1
        m, sock = target
        m.node.receive_datagram(data, src, self.now, sock)

    def collect(self, m: Member) -> None:
        while (e := m.node.next_event()) is not None:
            m.events.append(e)

    def step(self) -> None:
        """Advance the clock to the earliest timer and run it."""
        self.flush()
        timers = [t for m in self.members if (t := m.node.get_timer()) is not None]
        if not timers:
            return
        self.now = max(self.now, min(timers))
        for m in self.members:
            t = m.node.get_timer()
            if t is not None and t <= self.now:
                m.node.handle_timer(self.now)
        self.flush()

    def run_until(self, cond: Callable[[], bool], timeout: float = 60.0) -> None:
        end = self.now + timeout
        self.flush()
        while not cond():
            if self.now > end:
                raise AssertionError(f"condition not met within {timeout} s of fake time")
            self.step()

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()


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
