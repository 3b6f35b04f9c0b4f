"""Soak by simulation: one long-lived DHT node under steady synthetic load on :class:`FakeNet`.

A node of either profile (``"hyper"``: :class:`peerdht.hyper.node.HyperDHTNode`; ``"mainline"``:
:class:`peerdht.mainline.node.MainlineNode`, rate limiting on) runs for ``hours`` of fake time while
short-lived client cores of the same profile (ephemeral HyperDHT nodes; BEP 43 read-only Mainline nodes), each on one of ``addresses`` distinct simulated IPs (reused
in turn), bootstrap from it and run one operation each (lookup / announce / mutable put / mutable get /
immutable put for HyperDHT; find_node / get_peers / announce_peer / put / put_mutable / get for Mainline),
``rate`` clients per second. Every ``sample_every`` seconds the node's state is measured: the length of
each container it holds (stores, tokens, request table, rate-limit buckets, routing table, ...) and its
deep size in bytes. Memory is flat when the last samples are no bigger than the early ones: every table
expires or is bounded.

Used by ``bench/soak.py`` (a simulated day at full load) and ``tests/core/test_soak.py`` (a simulated day at
a lower rate, asserting bounded state).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import random
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from peerdht.hyper.node import HyperDHTNode
from peerdht.keys import KeyPair
from peerdht.mainline.crypto import KeyPair as MlKeyPair
from peerdht.mainline.node import MainlineNode
from peerdht.testing.fakenet import FakeNet

Addr = tuple[str, int]

# shared, not the node's: classes, modules, functions (their globals would pull in whole modules), rngs
_SKIP = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    random.Random,
)


@dataclass
class Sample:
    """One measurement: fake seconds since start, deep size (bytes) and container lengths by path."""

    t: float
    bytes: int
    sizes: dict[str, int] = field(default_factory=dict)
    clients_done: int = 0


def container_sizes(obj: object, prefix: str = "", depth: int = 3) -> dict[str, int]:
    """Lengths of the containers reachable from ``obj``'s attributes, by dotted path (``depth`` levels of
    peerdht objects)."""
    out: dict[str, int] = {}
    for name, value in _attrs(obj):
        path = f"{prefix}{name}"
        if isinstance(value, str | bytes | bytearray | int | float | bool) or value is None:
            continue
        if hasattr(value, "__len__"):
            with contextlib.suppress(TypeError):
                out[path] = len(value)
        if depth > 0 and type(value).__module__.startswith("peerdht."):
            out.update(container_sizes(value, path + ".", depth - 1))
    return out


def module_containers(prefix: str = "") -> dict[str, int]:
    """``{prefix + "<module>.<name>": len}`` for every dict/list/set/deque global (and ``lru_cache``, as
    ``<name>()``: its current size) of a loaded ``peerdht`` module: the process-wide memos that live outside
    any node object. A container imported into another peerdht module is counted once."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    for name, mod in list(sys.modules.items()):
        if not name.startswith("peerdht") or not isinstance(mod, types.ModuleType):
            continue
        for attr, value in list(vars(mod).items()):
            if id(value) in seen:  # imported from another peerdht module: counted there
                continue
            if isinstance(value, dict | list | set | collections.deque):
                out[f"{prefix}{name}.{attr}"] = len(value)
            elif hasattr(value, "cache_info") and getattr(value, "__module__", None) == name:
                out[f"{prefix}{name}.{attr}()"] = value.cache_info().currsize
            else:
                continue
            seen.add(id(value))
    return out


def _attrs(obj: object) -> Iterator[tuple[str, Any]]:
    d = getattr(obj, "__dict__", None)
    if d is not None:
        yield from d.items()
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name) and name != "__weakref__":
                yield name, getattr(obj, name)


def deep_size(root: object) -> int:
    """Bytes of every object reachable from ``root`` (classes, functions, methods, modules and rngs are
    shared or code, so neither counted nor followed)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


class Soak:
    """The long-lived node, the client churn and the sampling.

    Args:
        profile: ``"hyper"`` or ``"mainline"``.
        addresses: distinct client IPs (reused in turn).
        rate: clients started per fake second.
        seed: seeds everything.
    """

    def __init__(self, profile: str, *, addresses: int = 10_000, rate: float = 2.0, seed: int = 1) -> None:
        self.profile = profile
        self.addresses = addresses
        self.rate = rate
        self.rng = random.Random(seed)
        self.net = FakeNet(random.Random(seed + 1), delay=0.005, start=1000.0)
        self.start = self.net.now
        self.node_addr: Addr = ("192.0.2.1", 49737 if profile == "hyper" else 6881)
        if profile == "hyper":
            node: Any = HyperDHTNode(
                rng=random.Random(seed + 2),
                secrets=self.rng.randbytes(64),
                bootstrap=[],
                ephemeral=False,
                firewalled=False,
                host=self.node_addr[0],
            )
            node.bind(self.node_addr, (self.node_addr[0], 49738), self.net.now)
            self.net.add_sockets([self.node_addr, (self.node_addr[0], 49738)], node)
            node.bootstrap(self.net.now)  # the first node of a network: takes its id at once
            self.net.run_for(1.0)
        else:
            node = MainlineNode(rng=random.Random(seed + 2), now=self.net.now)
            self.net.add(self.node_addr, node)
        self.node = node
        self.clients: dict[Addr, tuple[Any, int, int]] = {}  # addr -> (core, op, stage)
        self.results: dict[tuple[Addr, int], object] = {}
        self.net.on_event = self._on_event
        self.next_client = 0
        self.done = 0
        self.failed = 0
        self.topics = [self.rng.randbytes(32) for _ in range(500)]
        self.hkeys = [KeyPair.from_seed(self.rng.randbytes(32)) for _ in range(50)]
        self.mkeys = [MlKeyPair.from_seed(self.rng.randbytes(32)) for _ in range(50)]
        self.seq = 0
        self.samples: list[Sample] = []

    # ---------------------------------------------------------------- clients

    def _on_event(self, addr: Addr, ev: object, now: float) -> None:
        op = getattr(ev, "op", None)
        if op is not None and type(ev).__name__ in ("OpDone", "OpFailed"):
            self.results[(addr, op)] = ev

    def _client_addr(self) -> Addr:
        i = self.next_client % self.addresses
        self.next_client += 1
        return (
            f"10.{i // 62500 + 1}.{(i // 250) % 250}.{i % 250 + 1}",
            40000 + (self.next_client // self.addresses) % 20000,
        )

    def _spawn(self) -> None:
        addr = self._client_addr()
        now = self.net.now
        if self.profile == "hyper":
            client: Any = HyperDHTNode(
                rng=random.Random(self.rng.getrandbits(64)),
                secrets=self.rng.randbytes(64),
                bootstrap=[self.node_addr],
            )
            client_sock = (addr[0], addr[1] + 20000)
            client.bind(addr, client_sock, now)
            self.net.add_sockets([addr, client_sock], client, events=True)
        else:
            client = MainlineNode(  # BEP 43 read-only, like the ephemeral HyperDHT clients: not tabled
                rng=random.Random(self.rng.getrandbits(64)),
                now=now,
                bootstrap=[self.node_addr],
                read_only=True,
            )
            self.net.add(addr, client, events=True)
        op = client.bootstrap(now)
        self.clients[addr] = (client, op, 0)
        self.net.touch(addr)

    def _second_op(self, client: Any) -> int:
        now = self.net.now
        r = self.rng.random()
        if self.profile == "hyper":
            topic = self.rng.choice(self.topics)
            kp = self.rng.choice(self.hkeys)
            if r < 0.3:
                return int(client.lookup(topic, now))
            if r < 0.6:
                return int(client.announce(topic, kp, [], now))
            if r < 0.75:
                self.seq += 1
                return int(client.mutable_put(kp, b"soak %d" % self.seq, self.seq, now))
            if r < 0.9:
                return int(client.mutable_get(kp.public_key, now))
            return int(client.immutable_put(b"soak value %d" % self.rng.randrange(10**6), now))
        ih = self.rng.choice(self.topics)[:20]
        if r < 0.2:
            return int(client.find_node(ih, now))
        if r < 0.45:
            return int(client.get_peers(ih, now))
        if r < 0.7:
            return int(client.announce_peer(ih, self.rng.randrange(1, 65536), now))
        if r < 0.8:
            return int(client.put(b"soak value %d" % self.rng.randrange(10**6), now))
        if r < 0.9:
            self.seq += 1
            return int(client.put_mutable(self.rng.choice(self.mkeys), b"v%d" % self.seq, now, seq=self.seq))
        return int(client.get(ih, now))

    def _advance_clients(self) -> None:
        for addr, (client, op, stage) in list(self.clients.items()):
            ev = self.results.pop((addr, op), None)
            if ev is None:
                continue
            if type(ev).__name__ == "OpFailed":
                self.failed += 1
            if stage == 0:
                self.clients[addr] = (client, self._second_op(client), 1)
                self.net.touch(addr)
            else:
                self.done += 1
                if self.profile == "hyper":
                    client.destroy()
                self.net.remove(addr)
                del self.clients[addr]
                self.net.events.pop(addr, None)

    # ---------------------------------------------------------------- running

    def sample(self) -> Sample:
        s = Sample(
            t=self.net.now - self.start,
            bytes=deep_size(self.node),
            sizes=container_sizes(self.node),
            clients_done=self.done,
        )
        self.samples.append(s)
        return s

    def run(self, hours: float, *, sample_every: float = 3600.0, on_sample: Any = None) -> list[Sample]:
        """Run ``hours`` of fake time; returns the samples (one at the start, then every
        ``sample_every`` seconds)."""
        end = self.start + hours * 3600.0
        next_sample = self.net.now
        step = 1.0 / self.rate
        next_spawn = self.net.now
        while self.net.now < end:
            if self.net.now >= next_sample:
                s = self.sample()
                if on_sample is not None:
                    on_sample(s)
                next_sample += sample_every
            while next_spawn <= self.net.now:
                if len(self.clients) < 200:  # clients stuck on a lost reply time out on their own
                    self._spawn()
                next_spawn += step
            self.net.run_to(min(next_spawn, end), poll=False)
            self._advance_clients()
        s = self.sample()
        if on_sample is not None:
            on_sample(s)
        return self.samples
