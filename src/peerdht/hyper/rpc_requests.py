"""dht-rpc I/O and request table: messages in and out, requests in flight, replies, op ids.

The base of :class:`peerdht.hyper.rpc.RPCNode` (see that module for the whole node): mirrors dht-rpc
6.27 ``lib/io.js`` and the request side of ``index.js``.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from peerdht.encoding.compact import encode_ipv4_address
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RequestTimeout,
)
from peerdht.hyper.constants import Error, InternalCommand
from peerdht.hyper.crypto import node_id
from peerdht.hyper.events import (
    Event,
    OpDone,
    OpFailed,
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
from peerdht.hyper.rpc_types import OutgoingRequest, Reply, make_reply, release
from peerdht.hyper.rpc_util import cached_node_id, check32
from peerdht.kademlia.ops import Operation
from peerdht.kademlia.requests import PendingRequest, RequestTable, Window
from peerdht.kademlia.table import Contact, RoutingTable
from peerdht.kademlia.tokens import TokenIssuer

if TYPE_CHECKING:
    import random

    from peerdht.hyper.queries import HyperQuery

__all__ = ["OutgoingRequest", "RPCRequests", "Reply", "RequestOp", "release"]  # the records live in rpc_types

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


class RPCRequests:
    """The request side of :class:`peerdht.hyper.rpc.RPCNode` (dht-rpc ``IO``)."""

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
        # tids count up from a random start, as io.js's (this._tid++)
        self._requests = RequestTable(rng, timeout=REQUEST_TIMEOUT, retries=REQUEST_RETRIES, sequential=True)
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
        # insertion-ordered: a timer that pumps several queries sends in the order they started, the same
        # on every run (a set of objects iterates in memory-address order, which differs between runs)
        self._queries: dict[HyperQuery, None] = {}
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
            what = self._ops.get(op)
            if isinstance(what, Operation):
                what.fail(LocalProtocolError("node destroyed"))
            else:
                self._fail(op, LocalProtocolError("node destroyed"))
        self._bootstrap_waiters.clear()
        for q in list(self._queries):
            q.cancel()
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
        if isinstance(what, Operation):
            what.cancel()

    # ------------------------------------------------------------------ for the queries (queries.QueryNode)

    def op_done(self, op: int | None, result: object) -> None:
        """Emit ``OpDone(op, result)`` if ``op`` is still pending (and forget it)."""
        self._done(op, result)

    def op_failed(self, op: int | None, error: PeerDHTError) -> None:
        """Emit ``OpFailed(op, error)`` if ``op`` is still pending (and forget it)."""
        self._fail(op, error)

    def abort_request(self, request: OutgoingRequest) -> None:
        """Forget a request in flight or waiting for the congestion window (no outcome is reported)."""
        self._abort_req(request)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for :meth:`next_event`."""
        self._events.append(event)

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
        return self._request_op(
            addr,
            internal=internal,
            command=command,
            target=target,
            value=value,
            token=token,
            retries=retries,
            socket=socket,
        )

    def _request_op(
        self,
        addr: Address,
        *,
        internal: bool,
        command: int,
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        retries: int = REQUEST_RETRIES,
        timeout: float = REQUEST_TIMEOUT,
        socket: int | None = None,
    ) -> int:
        """One request as an op (:class:`RequestOp`); returns its op id."""
        op = RequestOp(self, self._new_op(None))
        assert op.id is not None
        self._ops[op.id] = op
        sock = socket if socket is not None else (CLIENT if self.firewalled else SERVER)
        req = OutgoingRequest(
            addr, sock, internal, command, None, None, target, value, token, retries, timeout, None, op, None
        )
        op.requests.add(req)
        self.submit(req)
        return op.id

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
    ) -> OutgoingRequest:
        sock = socket if socket is not None else (CLIENT if self.firewalled else SERVER)
        req = OutgoingRequest(
            addr, sock, internal, command, on_response, on_error, target, value, token, retries, timeout, to_id
        )
        self.submit(req)
        return req

    def submit(self, req: OutgoingRequest) -> None:
        """Count a new request and send it, or queue it while the congestion window is full (io.js) or no
        transaction id is free (io.js reuses one in flight; here it waits for one to free up). The
        queries of :mod:`peerdht.hyper.queries` build their requests and send them through here."""
        stats = self._requests_stats
        stats["active"] += 1
        stats["total"] += 1
        if req.internal and req.command < len(self._commands_stats):
            self._commands_stats[req.command]["tx"] += 1
        if self._waiting or self._window.full(self._now):
            self._waiting.append(req)  # io.js: wait for the congestion window (drained every 750 ms)
        else:
            self._send_now(req)

    def _send_now(self, req: OutgoingRequest) -> bool:
        try:
            tid = self._requests.new_tid()
        except LocalProtocolError:  # all 65,536 tids in flight: wait at the head, as for a full window
            self._waiting.appendleft(req)
            return False
        sender = self.table.local_id if (not self.ephemeral and req.socket == SERVER) else None
        addr = req.addr
        if req.token is not None:
            # a write (commit) request: its token and value are the receiver's own, nothing to share
            payload = encode_request_fields(
                tid, addr, sender, req.token, req.internal, req.command, req.target, req.value
            )
        else:
            # every request of a query carries the same fields after the 10-byte head (type, flags, tid,
            # to): encode them once per query, then only the tid and the receiver's address per request
            key = (sender, req.internal, req.command, req.target, req.value)
            parts = _TAILS.get(key)
            if parts is None:
                tail = encode_request_fields(0, ("0.0.0.0", 0), sender, None, *key[1:])
                if len(_TAILS) >= 256:
                    _TAILS.clear()
                parts = _TAILS[key] = (tail[:2], tail[10:])
            payload = parts[0] + _U16(tid) + encode_ipv4_address(addr[0], addr[1]) + parts[1]
        now = self._now
        req.tid = tid
        req.payload = payload
        req.sent = req.first_sent = now
        req.deadline = now + req.timeout
        req.tries = 1
        self._requests.track(req)
        self._window.send(now)
        self._out.append((payload, addr, req.socket))
        return True

    def _drain_waiting(self, now: float) -> None:
        while self._waiting and not self._window.full(now):
            req = self._waiting.popleft()
            if not req.done and not self._send_now(req):
                break

    def _abort_req(self, req: OutgoingRequest) -> None:
        if req.done:
            return
        req.done = True
        release(req)
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
        error = RequestTimeout(f"no reply from {p.addr[0]}:{p.addr[1]} after {p.tries} tries")
        on_error, owner, contact = req.on_error, req.owner, req.contact
        release(req)
        if on_error is not None:
            on_error(error)
        elif owner is not None:
            owner.failed(req, contact, error, self._now)

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
            expected = cached_node_id(addr[0], addr[1])
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
        pending = self._requests.pop(msg.tid, addr)
        if pending is None:
            self._drop("unknown_tid" if self._requests.get(msg.tid) is None else "wrong_address")
            return
        req = pending.context
        assert isinstance(req, OutgoingRequest)
        if req.done:
            return
        req.done = True
        self._window.recv(now)
        stats = self._requests_stats
        stats["active"] -= 1
        stats["responses"] += 1
        if req.internal and req.command < len(self._commands_stats):
            self._commands_stats[req.command]["rx"] += 1
        # sample the NAT only from replies on the socket we sent from (io.js: not external)
        self._add_node_from_network(socket == (CLIENT if self.firewalled else SERVER), addr, from_id, msg.to, now)
        on_response, owner, contact = req.on_response, req.owner, req.contact
        release(req)
        reply = make_reply(addr, from_id, msg, socket)
        if on_response is not None:
            on_response(reply)
        elif owner is not None:
            owner.response(req, contact, reply, now)

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

    # ------------------------------------------------------------------ hooks of the subclasses
    # implemented by RPCNetwork (routing table upkeep)

    def _add_node_from_network(
        self, sample: bool, addr: Address, from_id: bytes | None, to: Address, now: float
    ) -> None:
        raise NotImplementedError

    def _add_node(self, contact: Contact, to: Address | None, now: float) -> None:
        raise NotImplementedError

    def _remove_node(self, node: Contact) -> None:
        raise NotImplementedError

    def _check(self, node: Contact) -> None:
        raise NotImplementedError

    def _on_internal(self, req: Request, addr: Address, socket: int, now: float) -> None:
        raise NotImplementedError


class RequestOp(Operation[OutgoingRequest]):
    """One request as an op (dht-rpc ``request``, ``ping``): ``OpDone(result=Reply)`` on any reply,
    ``OpFailed`` when it times out, nothing once cancelled."""

    __slots__ = ("node",)

    def __init__(self, node: RPCRequests, op: int) -> None:
        super().__init__(op)
        self.node = node

    def abort_request(self, request: OutgoingRequest) -> None:
        self.node.abort_request(request)

    def emit_done(self, result: object) -> None:
        self.node.op_done(self.id, result)

    def emit_failed(self, error: PeerDHTError) -> None:
        self.node.op_failed(self.id, error)

    def response(self, req: OutgoingRequest, contact: Contact | None, r: Reply, now: float) -> None:
        self.requests.discard(req)
        self.finish(r)

    def failed(self, req: OutgoingRequest, contact: Contact | None, error: PeerDHTError, now: float) -> None:
        self.requests.discard(req)
        self.fail(error)

    def on_slow(self, request: OutgoingRequest, contact: Contact) -> None:
        """Resends change nothing for a single request."""


# request fields after the head -> (type and flags, bytes after tid and to)
_TAILS: dict[tuple[bytes | None, bool, int, bytes | None, bytes | None], tuple[bytes, bytes]] = {}
_U16 = struct.Struct("<H").pack
_GOOD_ADDRS: set[Address] = set()  # source addresses that passed _receive's checks
_GOOD_ADDRS_MAX = 1 << 14
