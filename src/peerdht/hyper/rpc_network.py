"""dht-rpc network state: ticks, table upkeep, bootstrap, NAT sampling, firewall, ephemeral/persistent.

Part of :class:`peerdht.hyper.rpc.RPCNode`; mirrors dht-rpc 6.27 ``index.js`` (``_ontick``,
``_updateNetworkState``, ``_checkIfFirewalled``, ``bootstrap``) and ``nat-sampler``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peerdht.errors import (
    LocalProtocolError,
    PeerDHTError,
)
from peerdht.hyper.constants import Error, InternalCommand
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.crypto import node_id
from peerdht.hyper.events import (
    Bootstrapped,
    PersistentChanged,
)
from peerdht.hyper.messages import (
    Request,
)
from peerdht.hyper.nat import NatSampler
from peerdht.hyper.queries import RefreshQuery
from peerdht.kademlia.table import Contact

if TYPE_CHECKING:
    pass

from peerdht.hyper.rpc_ops import RPCOps
from peerdht.hyper.rpc_requests import (
    DRAIN,
    MAX_CHECKS,
    MAX_DELAYED_PINGS,
    MAX_PING_DELAY,
    MAX_REPINGING,
    MORE_STABLE_TICKS,
    OLD_NODE,
    RECENT_NODE,
    REFRESH_TICKS,
    ROTATE_EVERY,
    SLEEPING_INTERVAL,
    TICK,
    Address,
    K,
    OutgoingRequest,
    Reply,
    _is_ipv4,
    _u16,
)
from peerdht.hyper.rpc_util import noop


class RPCNetwork(RPCOps):
    """Routing table upkeep, bootstrap and network state on top of :class:`RPCOps`."""

    def remote_address(self) -> Address | None:
        """How the network sees our server socket (dht-rpc ``remoteAddress``), or None.

        None while firewalled, before the sampler agrees, or when the sampled port differs from
        the bound server port.
        """
        if self._nat.host is None or not self._nat.port or self.firewalled or self._server_addr is None:
            return None
        if self._server_addr[1] != self._nat.port:
            return None
        return (self._nat.host, self._nat.port)

    def nat_sampler(self) -> NatSampler:
        """The live NAT sampler (for the holepunch layer)."""
        return self._nat

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: resends and timeouts, delayed pings, token rotation, tick."""
        self._now = now
        if self._next_tick is None:
            return
        resend, dead = self._requests.expired(now)
        for p in resend:
            req = p.context
            assert isinstance(req, OutgoingRequest)
            self._requests_stats["retries"] += 1
            self._window.send(now)
            self._out.append((p.payload, p.addr, req.socket))
            owner = req.owner
            if owner is not None and req.contact is not None:
                owner.on_slow(req, req.contact)
        for p in dead:
            self._on_timeout(p)
        while self._delayed and self._delayed[0][0] <= now:
            _, _, dreq, daddr, dsock = self._delayed.pop(0)
            self._send_reply(dreq, daddr, dsock, closer=False)
        assert self._next_drain is not None
        if now >= self._next_drain:
            if now - self._next_drain > 4 * ROTATE_EVERY:
                self._drains = 0
                self._rotate()
                self._rotate()
                self._next_drain = now + DRAIN
            while now >= self._next_drain:
                self._next_drain += DRAIN
                self._drains += 1
                if self._drains % 10 == 0:
                    self._rotate()
        if now >= self._next_tick:
            self._next_tick = now + TICK
            self._on_tick(now)
        self._drain_waiting(now)
        # queries may now be able to go on (slow requests free concurrency)
        for q in list(self._queries):
            q.pump(now)

    def bootstrap(self, now: float) -> int:
        """Join the network: a FIND_NODE lookup of our own id seeded from the bootstrap nodes
        (dht-rpc ``_bootstrap``), a quick firewall check, and the switch to persistent when
        configured. Emits :class:`Bootstrapped` once, then ``OpDone(result=None)``."""
        self._now = now
        op = self._new_op("bootstrap")
        if self.bootstrapped:
            self._done(op, None)
            return op
        self._bootstrap_waiters.append(op)
        if not self._bootstrapping:
            self._bootstrapping = True
            first = self.firewalled and self._quick_firewall and not self._force_persistent
            self._bootstrap_round(_BootstrapState(first=first))
        return op

    def _bootstrap_round(self, state: _BootstrapState) -> None:
        self._refresh_ticks = REFRESH_TICKS
        self._start_query(BootstrapQuery(self, self.table.local_id, state))

    def _bootstrap_reply(self, state: _BootstrapState, r: Reply) -> None:
        """A reply to a bootstrap query: the first one also gets a PING_NAT to our server port (a quick
        firewall check: its answer, if it reaches the server socket, lets the node test its NAT)."""
        if not state.first or self._server_addr is None:
            return
        state.first = False

        def ok(_: Reply) -> None:
            state.test_nat = True

        self._request(
            r.from_addr,
            internal=True,
            command=InternalCommand.PING_NAT,
            value=_u16(self._server_addr[1]),
            on_response=ok,
            on_error=noop,
        )

    def _bootstrap_lookup_done(self, state: _BootstrapState) -> None:
        """A bootstrap query ended (dht-rpc ``_bootstrap``): done, or update the network state and run a
        second round if that made the node unfirewalled."""
        if self.bootstrapped or (not state.test_nat and not self._force_persistent):
            self._finish_bootstrap()
            return

        def updated(ok: bool) -> None:
            state.round += 1
            if ok and state.round == 1:
                self._bootstrap_round(state)
            else:
                self._finish_bootstrap()

        self._update_network_state(not self._force_persistent, updated)

    def _finish_bootstrap(self) -> None:
        self._bootstrapping = False
        if not self.bootstrapped:
            self.bootstrapped = True
            self._events.append(Bootstrapped())
        waiters, self._bootstrap_waiters = self._bootstrap_waiters, []
        for op in waiters:
            self._done(op, None)

    def ping(self, addr: Address, now: float) -> int:
        """PING ``addr`` (3 retries, 1 s timeout). ``OpDone(result=Reply)`` or ``OpFailed``.

        Raises:
            LocalProtocolError: ``addr`` is not an IPv4 address.
        """
        self._now = now
        self._check_addr(addr)
        return self._request_op(addr, internal=True, command=InternalCommand.PING)

    def delayed_ping(self, addr: Address, delay: float, now: float) -> int:
        """DELAYED_PING ``addr``: it answers after ``delay`` seconds (at most 10).

        Raises:
            LocalProtocolError: bad address or delay out of range.
        """
        self._now = now
        self._check_addr(addr)
        if not 0 <= delay <= MAX_PING_DELAY:
            raise LocalProtocolError(f"delay must be within [0, {MAX_PING_DELAY}] seconds")
        return self._request_op(
            addr,
            internal=True,
            command=InternalCommand.DELAYED_PING,
            value=struct.pack("<I", int(delay * 1000)),
            timeout=delay + 1.0,
        )

    def _on_internal(self, req: Request, addr: Address, socket: int, now: float) -> None:
        command = req.command
        value = req.value
        if command == InternalCommand.PING:
            self._send_reply(req, addr, socket, closer=False)
        elif command == InternalCommand.PING_NAT:
            if value is None or len(value) < 2:
                self._drop("bad_value")
                return
            port = struct.unpack_from("<H", value)[0]
            if port == 0:
                self._drop("bad_value")
                return
            self._send_reply(req, addr, socket, reply_to=(addr[0], port), closer=False)
        elif command == InternalCommand.FIND_NODE:
            if req.target is None:
                self._drop("bad_value")
                return
            self._send_reply(req, addr, socket)
        elif command == InternalCommand.DOWN_HINT:
            if value is None or len(value) < 6:
                self._drop("bad_value")
                return
            if self._checks < MAX_CHECKS:
                node = self.table.get(blake2b(value[:6]))
                if node is not None and (node.pinged < self._tick_start or node.id not in self._down_hinted):
                    self._down_hinted.add(node.id)
                    self._check(node)
            self._send_reply(req, addr, socket, closer=False)
        elif command == InternalCommand.DELAYED_PING:
            if value is None or len(value) < 4:
                self._drop("bad_value")
                return
            delay = struct.unpack_from("<I", value)[0] / 1000
            if delay > MAX_PING_DELAY:
                self._drop("bad_value")
                return
            if len(self._delayed) >= MAX_DELAYED_PINGS:
                self._drop("rate_limited")
                return
            self._delayed_seq += 1
            self._delayed.append((now + delay, self._delayed_seq, req, addr, socket))
            self._delayed.sort(key=lambda e: (e[0], e[1]))
        else:
            self._send_reply(req, addr, socket, error=Error.UNKNOWN_COMMAND, token=False)

    # ------------------------------------------------------------------ routing table upkeep

    def _nat_add(self, to: Address) -> None:
        self._nat.add(to[0], to[1])

    def _sample_bootstrap_maybe(self, addr: Address, to: Address) -> None:
        if len(self._non_persistent_samples) >= max(1, len(self.bootstrap_nodes)):
            return
        if addr in self._non_persistent_samples:
            return
        self._non_persistent_samples.append(addr)
        self._nat_add(to)

    def _add_node_from_network(
        self, sample: bool, addr: Address, from_id: bytes | None, to: Address, now: float
    ) -> None:
        if from_id is None:
            self._sample_bootstrap_maybe(addr, to)
            return
        old = self.table.get(from_id)
        if old is not None:
            sampled = self._sampled.get(from_id)
            if sample and (sampled is None or now - sampled >= OLD_NODE):
                self._sampled[from_id] = now
                self._nat_add(to)
            old.pinged = now
            self.table.touch(from_id, now)
            return
        self._add_node(Contact(from_id, addr[0], addr[1]), to, now)

    def _add_node(self, contact: Contact, to: Address | None, now: float) -> None:
        if contact.id == self.table.local_id or contact.id in self.table:
            return
        contact.pinged = now
        full = self.table.add(contact, now)
        if full is not None:
            self._on_full_row(contact, full, now)
            return
        if to is not None and contact.id not in self._sampled:
            self._sampled[contact.id] = now
            self._nat_add(to)

    def _remove_node(self, node: Contact) -> None:
        self.table.remove(node.id)
        self._sampled.pop(node.id, None)
        self._down_hinted.discard(node.id)

    def _on_full_row(self, new: Contact, oldest: Contact, now: float) -> None:
        if not self.bootstrapped or self._repinging >= MAX_REPINGING:
            return
        if oldest.pinged >= self._tick_start:
            return
        if now - oldest.pinged < RECENT_NODE and now - oldest.added > OLD_NODE:
            return
        oldest.pinged = now
        self._repinging += 1

        def ok(r: Reply) -> None:
            if r.from_id != oldest.id:
                swap()
                return
            self._repinging -= 1

        def swap(_: object = None) -> None:
            self._repinging -= 1
            self._remove_node(oldest)
            self._add_node(new, None, now)

        self._request(oldest.addr, internal=True, command=InternalCommand.PING, on_response=ok, on_error=swap)

    def _check(self, node: Contact) -> None:
        node.pinged = self._now
        self._checks += 1

        def ok(r: Reply) -> None:
            self._checks -= 1
            if r.from_id != node.id:
                self._remove_node(node)

        def err(e: PeerDHTError) -> None:
            self._checks -= 1
            self._remove_node(node)

        self._request(node.addr, internal=True, command=InternalCommand.PING, on_response=ok, on_error=err)

    def _ping_some(self, now: float) -> None:
        cnt = 3 if len(self._requests) > 2 else 5
        oldest = self.table.oldest(5)
        if not oldest:
            self.refresh()
            return
        if now - oldest[0].pinged < RECENT_NODE:
            cnt = 2
        for node in oldest[:cnt]:
            if node.pinged >= self._tick_start:
                continue
            self._check(node)

    # ------------------------------------------------------------------ tick, persistence

    def _rotate(self) -> None:
        self._tokens.rotate(self._rng.randbytes(32), now=self._now)

    def _on_tick(self, now: float) -> None:
        if now - self._last_tick > SLEEPING_INTERVAL:
            self._on_wakeup()
        else:
            self._tick += 1
        self._last_tick = now
        self._tick_start = now
        self._down_hinted.clear()
        if not self.bootstrapped:
            return
        if self.adaptive and self.ephemeral:
            self._stable_ticks -= 1
            if self._stable_ticks <= 0:
                if self._last_host == self._nat.host:
                    self._stable_ticks = MORE_STABLE_TICKS
                else:
                    self._update_network_state(False, noop)
        if self._tick & 7 == 0:
            self._ping_some(now)
        self._refresh_ticks -= 1
        if (self._tick & 63 == 0 and len(self.table) < K) or self._refresh_ticks <= 0:
            self.refresh()
        self._down_hints_sent = 0

    def _on_wakeup(self) -> None:
        self._tick += 2 * 360
        self._tick += 8 - (self._tick & 7) - 2
        self._stable_ticks = MORE_STABLE_TICKS
        self._refresh_ticks = 1
        self._last_host = None
        if self.adaptive and not self.ephemeral:
            self.ephemeral = True
            self._events.append(PersistentChanged(ephemeral=True))

    def _update_network_state(self, only_firewall: bool, done: Callable[[bool], None]) -> None:
        """dht-rpc ``_updateNetworkState``: become unfirewalled and (unless ``only_firewall``)
        persistent when the sampled address is consistent and reachable."""
        # ephemeral=True never gets here with only_firewall=False (not adaptive, not forced), so
        # such a node may become unfirewalled but never persistent, as in dht-rpc
        if not self.ephemeral or self._updating or self._server_addr is None:
            done(False)
            return
        if only_firewall and not self.firewalled:
            done(False)
            return
        host, port = self._nat.host, self._nat.port
        if not only_firewall:
            self._stable_ticks = MORE_STABLE_TICKS
            self._last_host = host
        if host is None or port == 0:
            done(False)
            return
        sampler = NatSampler() if self.firewalled else self._nat

        def cont(firewalled: bool) -> None:
            self._updating = False
            if firewalled:
                done(False)
                return
            self.firewalled = False
            if not self.ephemeral or host != self._nat.host or port != self._nat.port:
                done(False)
                return
            if sampler.host != host or sampler.port == 0:
                done(False)
                return
            new_id = node_id(sampler.host, sampler.port)
            if not only_firewall:
                self.ephemeral = False
            if sampler is not self._nat:
                self._non_persistent_samples = []
                self._nat = sampler
            if self.table.local_id != new_id:
                self.table.rebuild(new_id)
                if self.bootstrapped:
                    self.refresh()
            if not self.ephemeral:
                self._events.append(PersistentChanged(ephemeral=False))
            done(True)

        if self.firewalled:
            self._updating = True
            self._check_if_firewalled(sampler, cont)
        else:
            cont(False)

    def _check_if_firewalled(self, sampler: NatSampler, done: Callable[[bool], None]) -> None:
        """dht-rpc ``_checkIfFirewalled``: PING_NAT up to 5 nodes asking them to answer on our
        server port; enough answers arriving there from the same host and port => not firewalled."""
        assert self._server_addr is not None
        server_port = self._server_addr[1]
        nodes: list[Address] = [c.addr for c in sorted(self.table, key=lambda c: c.seen, reverse=True)[:5]]
        if len(nodes) < 5:
            for b in self.bootstrap_nodes:
                if _is_ipv4(b[0]) and 0 < b[1] < 65536:
                    nodes.append(b)
        if not nodes:
            done(True)
            return
        hosts: set[str] = set()
        self._fw_listeners.append(hosts)
        replies: list[Reply] = []
        state = {"missing": len(nodes)}

        def finish() -> None:
            self._fw_listeners[:] = [h for h in self._fw_listeners if h is not hosts]
            count = 0
            for r in replies:
                if r.from_addr[0] in hosts:
                    count += 1
                    sampler.add(r.message.to[0], r.message.to[1])
            if (
                count < (3 if len(nodes) >= 5 else 1)
                or sampler.host is None
                or self._nat.host != sampler.host
                or sampler.port == 0
                or sampler.port != server_port
            ):
                done(True)
            else:
                done(False)

        def ok(r: Reply) -> None:
            replies.append(r)
            state["missing"] -= 1
            if state["missing"] == 0:
                finish()

        def err(e: PeerDHTError) -> None:
            state["missing"] -= 1
            if state["missing"] == 0:
                finish()

        value = _u16(server_port)
        for addr in nodes:
            self._request(
                addr,
                internal=True,
                command=InternalCommand.PING_NAT,
                value=value,
                on_response=ok,
                on_error=err,
            )


@dataclass(slots=True)
class _BootstrapState:
    """What the rounds of one bootstrap share: PING_NAT still to send, its answer came, rounds done."""

    first: bool
    test_nat: bool = False
    round: int = 0


class BootstrapQuery(RefreshQuery):
    """The bootstrap FIND_NODE of our own id (dht-rpc ``_bootstrap``): its first reply gets a PING_NAT, and
    its end updates the network state (see :meth:`RPCNetwork._bootstrap_lookup_done`)."""

    __slots__ = ("network", "state")

    def __init__(self, node: RPCNetwork, target: bytes, state: _BootstrapState) -> None:
        super().__init__(node, target)
        self.network = node
        self.state = state

    def on_value(self, responder: Contact, r: Reply, now: float) -> None:
        if self.state.first:
            self.network._bootstrap_reply(self.state, r)

    def lookup_done(self, now: float) -> None:
        self.finish(None)
        self.network._bootstrap_lookup_done(self.state)
