"""The sans-IO dht-rpc node: requests, routing table upkeep, queries, NAT sampling, persistence.

Mirrors dht-rpc 6.27 (``index.js``, ``lib/io.js``, ``lib/query.js``, ``lib/commands.js``,
``nat-sampler``). Routing table, lookup engine, request table, congestion window and tokens come
from the shared :mod:`peerdht.kademlia` core. Application commands (HyperDHT's storage, the
router) are layered on top by subclasses through :meth:`RPCNode._on_app_request`
(:class:`peerdht.hyper.node.HyperDHTNode`), as hyperdht's ``HyperDHT`` extends dht-rpc's ``DHT``.

Two sockets, as dht-rpc: the *server* socket has the advertised port (the node id is
``BLAKE2b-256(ipv4Address(public host, server port))``); requests go out on the *client* socket
while the node is firewalled and on the server socket once it is not. Replies leave through the
socket the request came in on (PING_NAT replies go to the port named in the request). Persistent
nodes put their id in messages sent from the server socket only.

``stats["dropped"]`` counts, by reason, what was not processed: ``short``, ``oversized``,
``bad_address``, ``bad_socket``, ``not_bound``, ``malformed``, ``unknown_tid``, ``wrong_address``,
``invalid_token`` (answered with INVALID_TOKEN), ``bad_value`` (internal command with a bad
value), ``rate_limited``, ``rejected_request`` (application request ignored silently, as hyperdht
does: bad signature, missing token, wrong hash), ``internal_error`` (a bug; see
``last_internal_error``). ``bad_id`` counts messages whose id failed validation: as in dht-rpc the
id is dropped, the message is still handled.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from peerdht.encoding.compact import encode_ipv4_address
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RemoteError,
    RequestError,
    RequestTimeout,
)
from peerdht.hyper.constants import Error, InternalCommand
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.crypto import node_id
from peerdht.hyper.events import (
    Bootstrapped,
    Event,
    OpDone,
    OpFailed,
    PersistentChanged,
)
from peerdht.hyper.messages import (
    Request,
    Response,
    decode_message,
    encode_request,
    encode_request_fields,
    encode_response,
)
from peerdht.hyper.nat import NatSampler
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.requests import PendingRequest, RequestTable, Window
from peerdht.kademlia.table import Contact, RoutingTable
from peerdht.kademlia.tokens import TokenIssuer

if TYPE_CHECKING:
    import random

__all__ = ["CLIENT", "SERVER", "RPCNode", "Reply"]

Address = tuple[str, int]

SERVER = 0
"""Index of the server socket (the advertised port)."""
CLIENT = 1
"""Index of the client socket (requests while firewalled)."""

K = 20
CONCURRENCY = 10
TICK = 5.0  # dht-rpc TICK_INTERVAL
DRAIN = 0.75  # io.js drain interval; secrets rotate every 10 drains
ROTATE_EVERY = 10 * DRAIN
SLEEPING_INTERVAL = 3 * TICK
STABLE_TICKS = 240
MORE_STABLE_TICKS = 3 * STABLE_TICKS
REFRESH_TICKS = 60
RECENT_NODE = 12 * TICK  # seconds: heard from it less than a minute ago
OLD_NODE = 360 * TICK  # seconds: around for more than 30 minutes
QUERY_RETRIES = 5
REQUEST_RETRIES = 3
REQUEST_TIMEOUT = 1.0
MAX_PING_DELAY = 10.0  # seconds (maxPingDelay 10 000 ms)
MAX_DELAYED_PINGS = 1024  # ours: bound the replies we hold back
DOWN_HINTS_PER_TICK = 50
MAX_CHECKS = 10
MAX_REPINGING = 3
MAX_DATAGRAM = 65507
MAX_WINDOW = 80  # io.js: new requests per 750 ms slot


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """A response matched to one of our requests.

    Attributes:
        from_addr: who answered, ``(host, port)``.
        from_id: their node id if they sent one and it equals ``node_id(from_addr)``, else None.
        message: the decoded response (``token``, ``closer_nodes``, ``error``, ``value``, ``to``).
        socket: the socket it arrived on.
    """

    from_addr: Address
    from_id: bytes | None
    message: Response
    socket: int

    @property
    def tid(self) -> int:
        """The response's transaction id."""
        return self.message.tid

    @property
    def to(self) -> Address:
        """How the responder sees us (``message.to``)."""
        return self.message.to

    @property
    def id(self) -> bytes | None:
        """The responder's verified id (``from_id``)."""
        return self.from_id

    @property
    def token(self) -> bytes | None:
        """The write token the responder gave us, 32 bytes, or None."""
        return self.message.token

    @property
    def closer_nodes(self) -> tuple[Address, ...]:
        """``message.closer_nodes``."""
        return self.message.closer_nodes

    @property
    def error(self) -> int:
        """``message.error`` (0 = OK)."""
        return self.message.error

    @property
    def value(self) -> bytes | None:
        """``message.value``."""
        return self.message.value


@dataclass(eq=False, slots=True)
class OutgoingRequest:
    """One outgoing request (the context stored in the request table).

    ``tid`` is -1 while the request waits for the congestion window.
    """

    addr: Address
    socket: int
    internal: bool
    command: int
    on_response: Callable[[Reply], None]
    on_error: Callable[[PeerDHTError], None]
    target: bytes | None = None
    value: bytes | None = None
    token: bytes | None = None
    retries: int = 3
    timeout: float = 1.0
    to_id: bytes | None = None
    owner: object = None
    tid: int = -1
    done: bool = False


@dataclass(eq=False, slots=True)
class Query:
    """One iterative query (dht-rpc ``Query``)."""

    op: int | None
    target: bytes
    command: int
    internal: bool
    value: bytes | None
    lookup: Lookup
    on_data: Callable[[Query, Contact, Reply], None] | None = None
    on_finished: Callable[[Query], None] | None = None
    reqs: set[OutgoingRequest] = field(default_factory=set)
    slow: set[OutgoingRequest] = field(default_factory=set)
    finished: bool = False
    successes: int = 0
    errors: int = 0
    state: dict[str, object] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Commit:
    """The write phase of an announce/put: one request per closest reply."""

    op: int
    pending: int = 0
    success: int = 0
    errors: list[PeerDHTError] = field(default_factory=list)
    reqs: set[OutgoingRequest] = field(default_factory=set)
    result: Callable[[int], object] = lambda n: n
    fail_on_remote: frozenset[int] = frozenset()


def _u16(n: int) -> bytes:
    return struct.pack("<H", n)


@functools.lru_cache(maxsize=4096)
def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    if len(parts) != 4:
        return False
    return all(not (not p.isdigit() or len(p) > 3 or int(p) > 255) for p in parts)


def _derive_token(secret: bytes, ip: bytes) -> bytes:
    """io.js ``token()``: BLAKE2b-256 of the host string keyed with the secret."""
    return hashlib.blake2b(ip, digest_size=32, key=secret).digest()


class RPCNode:
    """A dht-rpc node core (dht-rpc ``DHT``).

    Args:
        rng: injected random source (transaction ids, table id, fresh token secrets).
        secrets: 64 random bytes, the two initial token secrets.
        bootstrap: bootstrap nodes as IPv4 ``(host, port)`` (resolve names before).
        ephemeral: ``None`` adaptive as dht-rpc (ephemeral until ~20 min of stable ticks and a
            passed firewall check); ``False`` go persistent right after the first bootstrap query
            if our address is known (``host`` or samples); ``True`` stay ephemeral.
        firewalled: start assuming we are firewalled (dht-rpc default ``True``).
        host: our public IPv4 when known (a bootstrap node): with the server port it gives the id.
        nodes: known nodes to add to the table at start.

    Attributes:
        ephemeral: no id, not in others' tables, serves no records.
        firewalled: requests go out on the client socket.
        table: the routing table (k=20, one row per prefix length).
        stats: JSON-serialisable counters (see :meth:`__init__` for the layout).
        bootstrapped: the first bootstrap finished.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        secrets: bytes,
        bootstrap: Sequence[Address] = (),
        ephemeral: bool | None = None,
        firewalled: bool = True,
        host: str | None = None,
        nodes: Sequence[Address] = (),
    ) -> None:
        if len(secrets) < 64:
            raise LocalProtocolError("secrets must be 64 bytes")
        if host is not None and not _is_ipv4(host):
            raise LocalProtocolError(f"host must be an IPv4 address, got {host!r}")
        self._rng = rng
        self.bootstrap_nodes: list[Address] = [(h, int(p)) for h, p in bootstrap]
        self.table = RoutingTable(rng.randbytes(32), k=K, split=False)
        self.ephemeral = True
        self.firewalled = firewalled
        self.adaptive = ephemeral is None
        self.bootstrapped = False
        self.stats: dict[str, object] = {}
        self._queries_stats = {"active": 0, "total": 0}
        self._requests_stats = {"active": 0, "total": 0, "responses": 0, "timeouts": 0, "retries": 0}
        self._commands_stats = [{"tx": 0, "rx": 0} for _ in range(5)]
        self._dropped: dict[str, int] = {}
        self._received = {"requests": 0, "responses": 0}
        self.stats.update(
            {
                "queries": self._queries_stats,
                "requests": self._requests_stats,
                "commands": {
                    "ping": self._commands_stats[InternalCommand.PING],
                    "pingNat": self._commands_stats[InternalCommand.PING_NAT],
                    "findNode": self._commands_stats[InternalCommand.FIND_NODE],
                    "downHint": self._commands_stats[InternalCommand.DOWN_HINT],
                    "delayedPing": self._commands_stats[InternalCommand.DELAYED_PING],
                },
                "received": self._received,
                "dropped": self._dropped,
            }
        )
        self.last_internal_error: str | None = None
        self._nat = NatSampler()
        self._host = host
        self._force_persistent = ephemeral is False
        self._quick_firewall = True
        self._tokens = TokenIssuer(
            _derive_token, (bytes(secrets[:32]), bytes(secrets[32:64])), rotate_every=ROTATE_EVERY
        )
        self._requests = RequestTable(rng, timeout=REQUEST_TIMEOUT, retries=REQUEST_RETRIES)
        self._window = Window(MAX_WINDOW, slot=DRAIN)
        self._waiting: deque[OutgoingRequest] = deque()
        self._out: list[tuple[bytes, Address, int]] = []
        self._events: deque[Event] = deque()
        self._ops: dict[int, object] = {}
        self._next_op = 1
        self._server_addr: Address | None = None
        self._client_addr: Address | None = None
        self._now = 0.0
        # ticks (dht-rpc counts ticks; timestamps of contacts are seconds)
        self._tick = 100 - int(rng.random() * 50)
        self._refresh_ticks = REFRESH_TICKS - int(rng.random() * REFRESH_TICKS / 2)
        self._stable_ticks = STABLE_TICKS if self.adaptive else 0
        self._tick_start = 0.0
        self._last_tick = 0.0
        self._next_tick: float | None = None
        self._next_drain: float | None = None
        self._drains = 0
        self._last_host: str | None = None
        self._repinging = 0
        self._checks = 0
        self._down_hints_sent = 0
        self._down_hinted: set[bytes] = set()
        self._sampled: dict[bytes, float] = {}
        self._non_persistent_samples: list[Address] = []
        self._delayed: list[tuple[float, int, Request, Address, int]] = []
        self._delayed_seq = 0
        self._fw_listeners: list[set[str]] = []
        self._updating = False
        self._bootstrap_waiters: list[int] = []
        self._bootstrapping = False
        self._queries: set[Query] = set()
        self._initial_nodes = [(h, int(p)) for h, p in nodes]

    # ------------------------------------------------------------------ properties

    @property
    def id(self) -> bytes | None:
        """Our node id (32 bytes) while persistent, else ``None``."""
        return None if self.ephemeral else self.table.local_id

    @property
    def host(self) -> str | None:
        """Our public host as sampled from the network (NAT sampler), or None."""
        return self._nat.host

    @property
    def port(self) -> int:
        """Our public port as sampled from the network, 0 if unknown or randomised."""
        return self._nat.port

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

    # ------------------------------------------------------------------ datagram core shape

    def bind(self, server_addr: Address, client_addr: Address, now: float) -> None:
        """Tell the core the bound addresses of its two sockets and start its clocks.

        Args:
            server_addr: the server socket's local ``(host, port)`` (the advertised port).
            client_addr: the client socket's local ``(host, port)``.
            now: current time (seconds).
        """
        self._server_addr = server_addr
        self._client_addr = client_addr
        self._now = now
        self._last_tick = self._tick_start = now
        self._next_tick = now + TICK
        self._next_drain = now + DRAIN
        if self._host is not None:
            self._nat.add(self._host, server_addr[1])
        for h, p in reversed(self._initial_nodes):
            self.add_node((h, p), now)

    def add_node(self, addr: Address, now: float) -> None:
        """Add a node we know of to the table (dht-rpc ``addNode``); non-IPv4 is ignored."""
        if not _is_ipv4(addr[0]) or not 0 < addr[1] < 65536:
            return
        self._add_node(Contact(node_id(addr[0], addr[1]), addr[0], addr[1]), None, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float, socket: int = SERVER) -> None:
        """Handle one datagram received on socket ``socket`` from ``addr``.

        Never raises: anything malformed, unsolicited or inconsistent is dropped and counted in
        ``stats["dropped"][reason]``.
        """
        self._now = now
        try:
            self._receive(bytes(data), addr, now, socket)
        except Exception as exc:  # a bug, but one datagram must never take the node down
            self.last_internal_error = f"{type(exc).__name__}: {exc}"
            self._drop("internal_error")

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
            if isinstance(owner, Query) and not owner.finished:
                owner.lookup.on_slow(Contact(req.to_id or b"", p.addr[0], p.addr[1]))
                owner.slow.add(req)
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
            self._pump(q)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address, int]]:
        """Datagrams queued since the last call: ``(data, addr, socket index)``."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """When (seconds) :meth:`handle_timer` must be called next; None before :meth:`bind`."""
        if self._next_tick is None or self._next_drain is None:
            return None
        t = min(self._next_tick, self._next_drain)
        d = self._requests.next_deadline()
        if d is not None and d < t:
            t = d
        if self._delayed and self._delayed[0][0] < t:
            t = self._delayed[0][0]
        if self._waiting:
            t = min(t, self._window.next_slot(self._now))
        return t

    def next_event(self) -> Event | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ lifecycle

    def destroy(self) -> None:
        """Stop the node (dht-rpc ``destroy``): every pending operation fails with
        :class:`~peerdht.errors.LocalProtocolError`, nothing more is sent, timers stop
        (:meth:`get_timer` returns None) and incoming datagrams are dropped as ``not_bound``."""
        for op in list(self._ops):
            self._fail(op, LocalProtocolError("node destroyed"))
        self._bootstrap_waiters.clear()
        for q in list(self._queries):
            self._stop_query(q)
        for p in list(self._requests):
            req = p.context
            if isinstance(req, OutgoingRequest):
                self._abort_req(req)
        for req in self._waiting:
            if not req.done:
                req.done = True
                self._requests_stats["active"] -= 1
        self._waiting.clear()
        self._delayed.clear()
        self._out.clear()
        self._next_tick = self._next_drain = None

    # ------------------------------------------------------------------ commands

    def _new_op(self, what: object) -> int:
        if self._next_tick is None:
            raise LocalProtocolError("node not bound (call bind()) or destroyed")
        op = self._next_op
        self._next_op += 1
        self._ops[op] = what
        return op

    def _done(self, op: int | None, result: object) -> None:
        if op is not None and self._ops.pop(op, None) is not None:
            self._events.append(OpDone(op=op, result=result))

    def _fail(self, op: int | None, error: PeerDHTError) -> None:
        if op is not None and self._ops.pop(op, None) is not None:
            self._events.append(OpFailed(op=op, error=error))

    def cancel(self, op: int) -> None:
        """Stop an operation; no further events are emitted for it."""
        what = self._ops.pop(op, None)
        if isinstance(what, Query):
            self._stop_query(what)
        elif isinstance(what, OutgoingRequest):
            self._abort_req(what)
        elif isinstance(what, Commit):
            for r in list(what.reqs):
                self._abort_req(r)

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
            state: dict[str, object] = {
                "first": self.firewalled and self._quick_firewall and not self._force_persistent,
                "test_nat": False,
                "round": 0,
            }
            self._bootstrap_round(state)
        return op

    def _bootstrap_round(self, state: dict[str, object]) -> None:
        def on_data(q: Query, c: Contact, r: Reply) -> None:
            if not state["first"] or self._server_addr is None:
                return
            state["first"] = False

            def ok(_: Reply) -> None:
                state["test_nat"] = True

            self._request(
                r.from_addr,
                internal=True,
                command=InternalCommand.PING_NAT,
                value=_u16(self._server_addr[1]),
                on_response=ok,
                on_error=_noop,
            )

        def on_finished(q: Query) -> None:
            if self.bootstrapped or (not state["test_nat"] and not self._force_persistent):
                self._finish_bootstrap()
                return

            def updated(ok: bool) -> None:
                state["round"] = int(str(state["round"])) + 1
                if ok and state["round"] == 1:
                    self._bootstrap_round(state)
                else:
                    self._finish_bootstrap()

            self._update_network_state(not self._force_persistent, updated)

        q = self._background_query(self.table.local_id, on_data=on_data, on_finished=on_finished)
        self._start_query(q)

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
        op = self._new_op(None)

        def ok(r: Reply) -> None:
            self._done(op, r)

        def err(e: PeerDHTError) -> None:
            self._fail(op, e)

        req = self._request(addr, internal=True, command=InternalCommand.PING, on_response=ok, on_error=err)
        self._ops[op] = req
        return op

    def delayed_ping(self, addr: Address, delay: float, now: float) -> int:
        """DELAYED_PING ``addr``: it answers after ``delay`` seconds (at most 10).

        Raises:
            LocalProtocolError: bad address or delay out of range.
        """
        self._now = now
        self._check_addr(addr)
        if not 0 <= delay <= MAX_PING_DELAY:
            raise LocalProtocolError(f"delay must be within [0, {MAX_PING_DELAY}] seconds")
        op = self._new_op(None)
        req = self._request(
            addr,
            internal=True,
            command=InternalCommand.DELAYED_PING,
            value=struct.pack("<I", int(delay * 1000)),
            timeout=delay + 1.0,
            on_response=lambda r: self._done(op, r),
            on_error=lambda e: self._fail(op, e),
        )
        self._ops[op] = req
        return op

    def request(
        self,
        addr: Address,
        command: int,
        now: float,
        *,
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        internal: bool = False,
        retries: int = REQUEST_RETRIES,
        socket: int | None = None,
    ) -> int:
        """Send one request (dht-rpc ``request``): ``OpDone(result=Reply)`` on any reply (check
        ``result.error``), ``OpFailed(RequestTimeout)`` after ``retries`` resends.

        Args:
            addr: IPv4 ``(host, port)``.
            command: command number (:class:`~peerdht.hyper.constants.Command`).
            now: current time (seconds).
            target: 32-byte target or None.
            value: payload or None.
            token: a 32-byte token the node gave us (required by writes).
            internal: set the internal flag (dht-rpc's own commands).
            retries: resends after the first send.
            socket: force :data:`SERVER` or :data:`CLIENT` (default: client while firewalled).

        Raises:
            LocalProtocolError: bad address or field sizes.
        """
        self._now = now
        self._check_addr(addr)
        if target is not None:
            check32(target, "target")
        if token is not None:
            check32(token, "token")
        op = self._new_op(None)
        req = self._request(
            addr,
            internal=internal,
            command=command,
            target=target,
            value=value,
            token=token,
            retries=retries,
            socket=socket,
            on_response=lambda r: self._done(op, r),
            on_error=lambda e: self._fail(op, e),
        )
        self._ops[op] = req
        return op

    def reply(
        self,
        req: Request,
        addr: Address,
        socket: int,
        *,
        error: int = 0,
        value: bytes | None = None,
        token: bool = True,
        closer_nodes: bool = True,
    ) -> None:
        """Answer a request received by a hook such as :meth:`on_router_request`
        (dht-rpc ``req.reply`` / ``req.error``): from socket ``socket`` to ``addr``."""
        self._send_reply(req, addr, socket, error=error, value=value, token=token, closer=closer_nodes)

    def relay(self, req: Request, value: bytes | None, to: Address, socket: int) -> None:
        """Forward a received request to ``to`` with a new ``value`` (dht-rpc ``req.relay``):
        same tid, command, target and internal flag, no token; a request (0x03), never a reply.

        Raises:
            LocalProtocolError: ``to`` is not an IPv4 address.
        """
        self._check_addr(to)
        msg = Request(
            tid=req.tid,
            to=to,
            id=self.table.local_id if (not self.ephemeral and socket == SERVER) else None,
            token=None,
            internal=req.internal,
            command=req.command,
            target=req.target,
            value=value,
        )
        self._out.append((encode_request(msg), to, socket))

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative FIND_NODE towards ``target`` (32 bytes); ``OpDone(result=list[Contact])``
        with the (up to 20) closest nodes that answered with a verified id."""
        self._now = now
        check32(target, "target")
        self._refresh_ticks = REFRESH_TICKS
        q = self._new_query(target, InternalCommand.FIND_NODE, internal=True)
        op = q.op

        def on_finished(q: Query) -> None:
            self._done(op, q.lookup.closest_nodes())

        q.on_finished = on_finished
        self._start_query(q)
        return op_id(op)

    def refresh(self) -> None:
        """A background FIND_NODE towards a random table node's id (dht-rpc ``refresh``)."""
        contacts = list(self.table)
        target = self._rng.choice(contacts).id if contacts else self.table.local_id
        self._start_query(self._background_query(target))

    # ------------------------------------------------------------------ queries

    def _new_query(
        self, target: bytes, command: int, *, internal: bool = False, value: bytes | None = None
    ) -> Query:
        q = Query(
            op=None,
            target=target,
            command=command,
            internal=internal,
            value=value,
            lookup=Lookup(target, k=K, concurrency=CONCURRENCY),
        )
        q.op = self._new_op(q)
        return q

    def _background_query(
        self,
        target: bytes,
        *,
        on_data: Callable[[Query, Contact, Reply], None] | None = None,
        on_finished: Callable[[Query], None] | None = None,
    ) -> Query:
        self._refresh_ticks = REFRESH_TICKS
        return Query(
            op=None,
            target=target,
            command=InternalCommand.FIND_NODE,
            internal=True,
            value=None,
            lookup=Lookup(target, k=K, concurrency=CONCURRENCY),
            on_data=on_data,
            on_finished=on_finished,
        )

    def _start_query(self, q: Query) -> None:
        self._queries_stats["active"] += 1
        self._queries_stats["total"] += 1
        self._queries.add(q)
        seeds = self.table.closest(q.target, K)
        q.lookup.add_candidates(seeds)
        if len(seeds) < K:
            boot = [
                Contact(node_id(h, p), h, p) for h, p in self.bootstrap_nodes if _is_ipv4(h) and 0 < p < 65536
            ]
            q.lookup.add_candidates(boot)
        self._pump(q)

    def _pump(self, q: Query) -> None:
        if q.finished:
            return
        for c in q.lookup.next_to_query():
            self._query_send(q, c)
        for ref, down in q.lookup.take_down_hints():
            self._down_hint(ref, down)
        lookup = q.lookup
        # query.js _readMore: done when nothing is in flight, or when every request still in
        # flight is slow (timed out once) and k closest replies are in
        slow_only = (
            lookup.inflight > 0 and lookup.inflight == len(q.slow) and len(lookup.closest_nodes()) >= K
        )
        if (slow_only or lookup.done) and not q.finished:
            q.finished = True
            self._queries.discard(q)
            self._queries_stats["active"] -= 1
            for r in list(q.reqs):
                self._abort_req(r)
            if q.on_finished is not None:
                q.on_finished(q)

    def _stop_query(self, q: Query) -> None:
        if q.finished:
            return
        q.finished = True
        self._queries.discard(q)
        self._queries_stats["active"] -= 1
        for r in list(q.reqs):
            self._abort_req(r)
        if q.op is not None:
            self._ops.pop(q.op, None)

    def _query_send(self, q: Query, c: Contact) -> None:
        def ok(r: Reply) -> None:
            self._query_reply(q, c, req, r)

        def err(e: PeerDHTError) -> None:
            self._query_error(q, c, req, e)

        req = self._request(
            c.addr,
            internal=q.internal,
            command=q.command,
            target=q.target,
            value=q.value,
            retries=QUERY_RETRIES,
            on_response=ok,
            on_error=err,
            to_id=c.id or None,
            owner=q,
        )
        q.reqs.add(req)

    def _query_reply(self, q: Query, c: Contact, req: OutgoingRequest, r: Reply) -> None:
        q.reqs.discard(req)
        q.slow.discard(req)
        if q.finished:
            return
        m = r.message
        if m.error == 0:
            q.successes += 1
        else:
            q.errors += 1
        local = self.table.local_id

        def id_of(h: str, p: int) -> bytes | None:
            if not 0 < p < 65536:
                return None
            cid = _cached_node_id(h, p)
            return None if cid == local else cid

        responder = Contact(r.from_id or c.id, r.from_addr[0], r.from_addr[1])
        if q.lookup.on_reply(responder, (), r, counts=m.error == 0 and r.from_id is not None):
            q.lookup.add_addresses(m.closer_nodes, responder, id_of)
        if m.error == 0 and q.on_data is not None:
            q.on_data(q, responder, r)
        self._pump(q)

    def _query_error(self, q: Query, c: Contact, req: OutgoingRequest, e: PeerDHTError) -> None:
        q.reqs.discard(req)
        q.slow.discard(req)
        if q.finished:
            return
        q.errors += 1
        refs = q.lookup.referrers(c)
        q.lookup.on_failure(c)
        if isinstance(e, RequestTimeout):
            for ref in refs:
                self._down_hint(ref, c)
        self._pump(q)

    def _down_hint(self, ref: Contact, down: Contact) -> None:
        if self._down_hints_sent >= DOWN_HINTS_PER_TICK:
            return
        self._down_hints_sent += 1
        self._request(
            ref.addr,
            internal=True,
            command=InternalCommand.DOWN_HINT,
            value=encode_ipv4_address(down.host, down.port),
            on_response=_noop,
            on_error=_noop,
        )

    def _commit_query(
        self,
        target: bytes,
        command: int,
        value: bytes | None,
        write_command: int,
        build: Callable[[Contact, bytes], bytes],
        result: Callable[[int], object],
        *,
        fail_on_remote: frozenset[int] = frozenset(),
    ) -> int:
        self._refresh_ticks = REFRESH_TICKS
        q = self._new_query(target, command, value=value)
        op = op_id(q.op)

        def on_finished(q: Query) -> None:
            replies = q.lookup.closest_replies()
            if not replies:
                self._fail(op, RequestError("too few nodes responded"))
                return
            commit = Commit(op=op, result=result, fail_on_remote=fail_on_remote)
            self._ops[op] = commit
            for c, data in replies:
                assert isinstance(data, Reply)
                token = data.message.token
                if token is None:
                    commit.errors.append(RequestError("no token received from closest node"))
                    continue
                commit.pending += 1
                self._commit_send(commit, c, data, token, target, write_command, build(c, token))
            self._commit_maybe_done(commit)

        q.on_finished = on_finished
        self._start_query(q)
        return op

    def _commit_send(
        self,
        commit: Commit,
        c: Contact,
        data: Reply,
        token: bytes,
        target: bytes,
        command: int,
        value: bytes,
    ) -> None:
        def ok(r: Reply) -> None:
            commit.reqs.discard(req)
            commit.pending -= 1
            if r.message.error == 0:
                commit.success += 1
            else:
                commit.errors.append(RemoteError(r.message.error))
            self._commit_maybe_done(commit)

        def err(e: PeerDHTError) -> None:
            commit.reqs.discard(req)
            commit.pending -= 1
            commit.errors.append(e)
            self._commit_maybe_done(commit)

        req = self._request(
            data.from_addr,
            internal=False,
            command=command,
            target=target,
            value=value,
            token=token,
            on_response=ok,
            on_error=err,
        )
        commit.reqs.add(req)

    def _commit_maybe_done(self, commit: Commit) -> None:
        if commit.pending > 0:
            return
        for e in commit.errors:
            if isinstance(e, RemoteError) and e.code in commit.fail_on_remote:
                self._fail(commit.op, e)
                return
        if commit.success > 0:
            self._done(commit.op, commit.result(commit.success))
            return
        remote = [e for e in commit.errors if isinstance(e, RemoteError)]
        error = (
            remote[0]
            if remote
            else commit.errors[-1]
            if commit.errors
            else RequestError("no node stored the value")
        )
        self._fail(commit.op, error)

    # ------------------------------------------------------------------ requests (io.js)

    def _check_addr(self, addr: Address) -> None:
        if not _is_ipv4(addr[0]) or not 0 < addr[1] < 65536:
            raise LocalProtocolError(f"not an IPv4 address: {addr!r}")

    def _request(
        self,
        addr: Address,
        *,
        internal: bool,
        command: int,
        on_response: Callable[[Reply], None],
        on_error: Callable[[PeerDHTError], None],
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        retries: int = REQUEST_RETRIES,
        timeout: float = REQUEST_TIMEOUT,
        socket: int | None = None,
        to_id: bytes | None = None,
        owner: object = None,
    ) -> OutgoingRequest:
        sock = socket if socket is not None else (CLIENT if self.firewalled else SERVER)
        req = OutgoingRequest(
            addr=addr,
            socket=sock,
            internal=internal,
            command=command,
            on_response=on_response,
            on_error=on_error,
            target=target,
            value=value,
            token=token,
            retries=retries,
            timeout=timeout,
            to_id=to_id,
            owner=owner,
        )
        self._requests_stats["active"] += 1
        self._requests_stats["total"] += 1
        if internal and command < len(self._commands_stats):
            self._commands_stats[command]["tx"] += 1
        if self._waiting or self._window.full(self._now):
            self._waiting.append(req)  # io.js: wait for the congestion window (drained every 750 ms)
        else:
            self._send_now(req)
        return req

    def _send_now(self, req: OutgoingRequest) -> None:
        tid = self._requests.new_tid()
        payload = encode_request_fields(
            tid,
            req.addr,
            self.table.local_id if (not self.ephemeral and req.socket == SERVER) else None,
            req.token,
            req.internal,
            req.command,
            req.target,
            req.value,
        )
        req.tid = tid
        self._requests.add(tid, req.addr, payload, self._now, req, timeout=req.timeout, retries=req.retries)
        self._window.send(self._now)
        self._out.append((payload, req.addr, req.socket))

    def _drain_waiting(self, now: float) -> None:
        while self._waiting and not self._window.full(now):
            req = self._waiting.popleft()
            if not req.done:
                self._send_now(req)

    def _abort_req(self, req: OutgoingRequest) -> None:
        if req.done:
            return
        req.done = True
        self._requests_stats["active"] -= 1
        if req.tid >= 0 and self._requests.pop(req.tid) is not None:
            self._window.recv(self._now)

    def _on_timeout(self, p: PendingRequest) -> None:
        req = p.context
        assert isinstance(req, OutgoingRequest)
        if req.done:
            return
        req.done = True
        self._window.recv(self._now)
        self._requests_stats["timeouts"] += 1
        self._requests_stats["active"] -= 1
        if req.to_id is not None:
            node = self.table.get(req.to_id)
            if node is not None:
                self._remove_node(node)
        req.on_error(RequestTimeout(f"no reply from {p.addr[0]}:{p.addr[1]} after {p.tries} tries"))

    # ------------------------------------------------------------------ receiving

    def _drop(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def _receive(self, data: bytes, addr: Address, now: float, socket: int) -> None:
        if self._next_tick is None:
            self._drop("not_bound")
            return
        if len(data) < 2:
            self._drop("short")
            return
        if len(data) > MAX_DATAGRAM:
            self._drop("oversized")
            return
        try:
            known = addr.__class__ is tuple and addr in _GOOD_ADDRS  # validated before: skip the checks
        except TypeError:  # unhashable junk in the tuple
            known = False
        if not known:
            if (
                not isinstance(addr, tuple)
                or len(addr) < 2
                or not isinstance(addr[0], str)
                or not isinstance(addr[1], int)
                or not 0 < addr[1] < 65536
                or not _is_ipv4(addr[0])
            ):
                self._drop("bad_address")
                return
            addr = (addr[0], addr[1])
            if addr[0].__class__ is str and addr[1].__class__ is int:
                if len(_GOOD_ADDRS) >= _GOOD_ADDRS_MAX:
                    _GOOD_ADDRS.clear()
                _GOOD_ADDRS.add(addr)
        if socket not in (SERVER, CLIENT):
            self._drop("bad_socket")
            return
        if socket == SERVER and self._fw_listeners:
            for hosts in self._fw_listeners:
                hosts.add(addr[0])
        try:
            msg = decode_message(data)
        except DecodeError:
            self._drop("malformed")
            return
        from_id = None
        if msg.id is not None:
            expected = _cached_node_id(addr[0], addr[1])
            from_id = expected if msg.id == expected else None
        if msg.id is not None and from_id is None:
            # dht-rpc treats a wrong id as absent; the message itself is still handled
            self._drop("bad_id")
        if isinstance(msg, Request):
            self._received["requests"] += 1
            self._on_request(msg, addr, from_id, socket, now)
        else:
            self._received["responses"] += 1
            self._on_response(msg, addr, from_id, socket, now)

    def _expected_socket(self) -> int:
        return CLIENT if self.firewalled else SERVER

    def _on_response(
        self, msg: Response, addr: Address, from_id: bytes | None, socket: int, now: float
    ) -> None:
        pending = self._requests.get(msg.tid)
        if pending is None:
            self._drop("unknown_tid")
            return
        if pending.addr != addr:
            self._drop("wrong_address")
            return
        self._requests.pop(msg.tid, addr)
        req = pending.context
        assert isinstance(req, OutgoingRequest)
        if req.done:
            return
        req.done = True
        self._window.recv(now)
        self._requests_stats["active"] -= 1
        self._requests_stats["responses"] += 1
        if req.internal and req.command < len(self._commands_stats):
            self._commands_stats[req.command]["rx"] += 1
        external = socket != self._expected_socket()
        self._add_node_from_network(not external, addr, from_id, msg.to, now)
        req.on_response(Reply(from_addr=addr, from_id=from_id, message=msg, socket=socket))

    def _on_request(
        self, req: Request, addr: Address, from_id: bytes | None, socket: int, now: float
    ) -> None:
        host = addr[0].encode()
        if req.token is not None and not self._tokens.check(host, req.token):
            self._drop("invalid_token")
            self._send_reply(req, addr, socket, error=Error.INVALID_TOKEN, token=True)
            return
        external = socket != self._expected_socket()
        if from_id is not None:
            self._add_node_from_network(not external, addr, from_id, req.to, now)
        if req.internal:
            self._on_internal(req, addr, socket, now)
            return
        self._on_app_request(req, addr, socket, now)

    def _on_app_request(self, req: Request, addr: Address, socket: int, now: float) -> None:
        """A non-internal request with a valid (or no) token: subclasses serve their commands
        here (hyperdht ``onrequest``); dht-rpc answers UNKNOWN_COMMAND."""
        self._send_reply(req, addr, socket, error=Error.UNKNOWN_COMMAND, token=False)

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

    def _send_reply(
        self,
        req: Request,
        addr: Address,
        socket: int,
        *,
        error: int = 0,
        value: bytes | None = None,
        token: bool = False,
        closer: bool = True,
        reply_to: Address | None = None,
    ) -> None:
        to = reply_to or addr
        closer_nodes: tuple[Address, ...] = ()
        if req.target is not None and closer:
            closer_nodes = tuple([(c.host, c.port) for c in self.table.closest(req.target, K)])
        msg = Response(
            tid=req.tid,
            to=to,
            id=self.table.local_id if (not self.ephemeral and socket == SERVER) else None,
            token=self._tokens.issue(to[0].encode()) if token else None,
            closer_nodes=closer_nodes,
            error=error,
            value=value,
        )
        self._out.append((encode_response(msg), to, socket))

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
                    self._update_network_state(False, _noop)
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


_GOOD_ADDRS: set[Address] = set()  # source addresses that passed _receive's checks
_GOOD_ADDRS_MAX = 1 << 14
_ID_CACHE: dict[Address, bytes] = {}
_ID_CACHE_MAX = 1 << 14


def _cached_node_id(host: str, port: int) -> bytes:
    """``node_id(host, port)`` memoised (ids are hashed for every message and closer node)."""
    key = (host, port)
    nid = _ID_CACHE.get(key)
    if nid is None:
        if len(_ID_CACHE) >= _ID_CACHE_MAX:
            _ID_CACHE.clear()
        nid = _ID_CACHE[key] = node_id(host, port)
    return nid


def _noop(*_: object) -> None:
    return None


def op_id(op: int | None) -> int:
    """The op id of a query made by a command (never None there)."""
    assert op is not None
    return op


def check32(b: bytes, what: str) -> None:
    """Raise :class:`LocalProtocolError` unless ``b`` is 32 bytes long."""
    if len(b) != 32:
        raise LocalProtocolError(f"{what} must be 32 bytes, got {len(b)}")
