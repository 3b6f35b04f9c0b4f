"""The state and wire side of :class:`peerdht.mainline.node.MainlineNode`: the five sans-IO methods, sending
queries, replies and errors, ops, the node id (BEP 42 adoption) and saved state. See that module for the node.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import Counter, deque
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from peerdht.encoding.bencode import decode, encode
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
)
from peerdht.kademlia.requests import PendingRequest, RequestTable
from peerdht.kademlia.store import ExpiringCache
from peerdht.kademlia.table import Contact, RoutingTable
from peerdht.kademlia.tokens import TokenIssuer
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import (
    is_bep42_exempt,
    node_id_for_ip,
    node_id_matches_ip,
)
from peerdht.mainline.events import (
    Item,
)

if TYPE_CHECKING:
    import random

    from peerdht.mainline.ops import MainlineOp

Addr = tuple[str, int]


class LinkMap(Protocol):
    """Where the link is not UDP (WebSocket, WebRTC: :mod:`peerdht.web.overlay`), addresses are opaque
    peer handles; this maps the nodes named in replies and the announcers to them."""

    def handle_for(self, node: m.NodeInfo) -> Addr | None:
        """The handle of our link to ``node`` (by id; its compact address means nothing), or ``None``
        (no link: the node is left out of the lookup)."""

    def peer_host(self, addr: Addr) -> str | None:
        """The IP to store for an ``announce_peer`` arriving on handle ``addr`` (``None``: not stored)."""


VERSION = b"PD\x00\x01"
"""Our BEP 5 client version ``v``: ``PD`` (peerdht) + two version bytes."""

K = 8
MAX_REPLY = 1024  # BEP 32: never send more
TOKEN_ROTATE = 300.0
PEER_TTL = 30 * 60.0
ITEM_TTL = 2 * 3600.0
REFRESH_AFTER = 15 * 60.0
MAINTENANCE_EVERY = 5.0
SAMPLE_INTERVAL = 21600
MAX_SAMPLES = 20
MAX_VALUES = 50


@dataclass(slots=True)
class Req:
    """Context of one request in flight.

    Attributes:
        method: the KRPC method (parses the response).
        contact: where it went (``id`` is ``b""`` when unknown).
        op: the op it belongs to; ``None`` for routing-table upkeep (a ``ping`` that verifies a new node,
            or one that checks a bucket's oldest node for ``replacement``).
        replacement: for an eviction ``ping``: the node that takes the slot if ``contact`` does not answer.
    """

    method: str
    contact: Contact
    op: MainlineOp | None = None
    replacement: Contact | None = None


class _RateLimiter:
    """Per-host token buckets: ``rate`` queries per second, bursts of ``burst``."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    MAX_HOSTS = 1 << 16

    def allow(self, host: str, now: float) -> bool:
        entry = self._buckets.get(host)
        if entry is None and len(self._buckets) >= self.MAX_HOSTS:
            self.prune(now)
            if len(self._buckets) >= self.MAX_HOSTS:
                return False  # a flood from very many sources: refuse newcomers until buckets refill
        tokens, last = entry if entry is not None else (self.burst, now)
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[host] = (tokens, now)
            return False
        self._buckets[host] = (tokens - 1.0, now)
        return True

    def prune(self, now: float) -> None:
        full = [h for h, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for h in full:
            del self._buckets[h]


@lru_cache(maxsize=1 << 14)  # hosts recur; ipaddress parsing was the top frame at scale
def _parse_is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _is_v6(host: str) -> bool:
    """Whether ``host`` is an IPv6 literal (``ipaddress.ip_address(host).version == 6``; False for anything
    that does not parse, such as the web overlay's link handles ``"web:N"``).

    A ``str`` without ``':'`` cannot be IPv6 (every IPv6 text form has at least two colons), so the common
    IPv4 case is answered without the parser or the cache; the rest goes through a bounded memo of the
    parser. The memo alone overflowed in networks of more than 16,384 IPv4 addresses: ~15 % of a
    45,000-node simulation went to re-parsing dotted quads (docs/performance.md section 1).
    """
    if type(host) is str and ":" not in host:
        return False
    return _parse_is_v6(host)


def _token_derive(secret: bytes, host: bytes) -> bytes:
    return hashlib.sha1(host + secret).digest()


def contact_info(c: Contact) -> m.NodeInfo:
    return m.NodeInfo(id=c.id, host=c.host, port=c.port)


class MainlineCore:
    """Node state and I/O of :class:`peerdht.mainline.node.MainlineNode` (BEP 5 KRPC)."""

    def __init__(
        self,
        *,
        rng: random.Random,
        node_id: bytes | None = None,
        external_ip: str | None = None,
        bootstrap: list[Addr] | tuple[Addr, ...] = (),
        read_only: bool = False,
        k: int = K,
        concurrency: int = 8,
        timeout: float = 1.0,
        retries: int = 1,
        rate_limit: tuple[float, float] | None = (20.0, 100.0),
        enforce_bep42: bool = False,
        ipv6: bool = False,
        version: bytes | None = VERSION,
        links: LinkMap | None = None,
        now: float = 0.0,
    ) -> None:
        self.auto_id = node_id is None and external_ip is None
        if node_id is None:
            if external_ip is not None:
                node_id = node_id_for_ip(external_ip, rng)
            else:
                node_id = rng.getrandbits(160).to_bytes(20, "big")
        if len(node_id) != 20:
            raise LocalProtocolError("node id must be 20 bytes")
        self.id = node_id
        self.rng = rng
        self.k = k
        self.concurrency = concurrency
        self.read_only = read_only
        self.enforce_bep42 = enforce_bep42
        self.ipv6 = ipv6
        self.version = version
        self.links = links
        self.bootstrap_nodes: list[Addr] = list(bootstrap)
        self.table = RoutingTable(node_id, k=k, split=True, now=now)
        self.requests = RequestTable(rng, tid_space=1 << 16, timeout=timeout, retries=retries)
        self.tokens = TokenIssuer(
            _token_derive, (rng.randbytes(20), rng.randbytes(20)), rotate_every=TOKEN_ROTATE
        )
        self.tokens.due(now)
        self.peers: ExpiringCache[bytes, ExpiringCache[Addr, None]] = ExpiringCache(
            max_size=2000, max_age=PEER_TTL
        )
        self.items: ExpiringCache[bytes, Item] = ExpiringCache(max_size=1000, max_age=ITEM_TTL)
        self.limiter = _RateLimiter(*rate_limit) if rate_limit is not None else None
        self._verified: ExpiringCache[Addr, None] = ExpiringCache(max_size=4096, max_age=60.0)
        self._fails: dict[bytes, int] = {}
        self._out: list[tuple[bytes, Addr]] = []
        self._templates: dict[tuple[m.Query, bool, bytes | None], tuple[bytes, bytes]] = {}
        self._events: deque[object] = deque()
        self._ops: dict[int, MainlineOp] = {}
        self._next_op = 1
        self._next_maintenance = now + MAINTENANCE_EVERY
        self._ip_votes: deque[Addr] = deque(maxlen=32)
        self._bep42_settled: tuple[str, bytes] | None = None  # (majority host, our id) that needs no change
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------------------------------
    # the sans-IO surface

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Handle one datagram from ``addr`` (never raises; bad input is dropped and counted)."""
        self.stats["received"] += 1
        try:
            msg = m.decode_message(data)
        except m.BadQuery as exc:
            self.stats["dropped_malformed"] += 1
            if not self.read_only and self._allow(addr, now):
                self._send_error(exc.t, addr, m.ERROR_PROTOCOL, str(exc)[:100])
            return
        except DecodeError:
            self.stats["dropped_malformed"] += 1
            return
        if isinstance(msg, m.QueryMessage):
            self._on_query(msg, addr, now)
        else:
            self._on_reply(msg, addr, now)

    def handle_timer(self, now: float) -> None:
        """Resend or fail overdue requests; periodic maintenance (tokens, stores, bucket refresh)."""
        resend, dead = self.requests.expired(now)
        for req in resend:
            self._out.append((req.payload, req.addr))
            self.stats["sent"] += 1
            self.stats["resent"] += 1
        for req in dead:
            self.stats["timeouts"] += 1
            self._on_timeout(req, now)
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_EVERY
            self._maintain(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Datagrams queued since the last call, as ``(data, (host, port))``."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """When (seconds) :meth:`handle_timer` should run next."""
        deadline = self.requests.next_deadline()
        if deadline is None:
            return self._next_maintenance
        return min(deadline, self._next_maintenance)

    def next_event(self) -> object | None:
        """The next event (:mod:`peerdht.mainline.events`), or ``None``."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------------------------------
    # ops (the surface :mod:`peerdht.mainline.ops` uses: :class:`peerdht.mainline.ops.OpNode`)

    def _new_op_id(self) -> int:
        op_id = self._next_op
        self._next_op += 1
        return op_id

    def send_query(
        self, op: MainlineOp, contact: Contact, query: m.Query, now: float
    ) -> PendingRequest | None:
        """Send ``query`` to ``contact`` as a request of ``op``; the request, or ``None`` if no transaction
        id is free (counted in ``stats["dropped_no_tid"]``)."""
        return self._request(contact, query, now, op=op)

    def abort_request(self, request: PendingRequest) -> None:
        """Forget ``request`` if it is still in flight (a later reply counts as unexpected)."""
        if self.requests.get(request.tid) is request:
            self.requests.pop(request.tid)

    def emit(self, event: object) -> None:
        """Queue ``event`` for :meth:`next_event`."""
        self._events.append(event)

    def forget_op(self, op: MainlineOp) -> None:
        """Drop ``op`` (it ended) from the op table."""
        if self._ops.get(op.op_id) is op:
            del self._ops[op.op_id]

    # ------------------------------------------------------------------------------------------
    # state

    @property
    def external_address(self) -> Addr | None:
        """Our address as most responders saw it (BEP 42 ``ip`` votes), if any."""
        if not self._ip_votes:
            return None
        return Counter(self._ip_votes).most_common(1)[0][0]

    def _maybe_adopt_bep42_id(self) -> None:
        """BEP 42: once most responders agree on our public IP and our (random) id does not match it,
        switch to a compliant id (the routing table is rebuilt around it)."""
        votes = self._ip_votes
        if not self.auto_id or len(votes) < 8:
            return
        if (votes[-1][0], self.id) == self._bep42_settled:
            return  # a vote for the settled majority host keeps it the majority: nothing to recount
        host, count = Counter(h for h, _ in votes).most_common(1)[0]
        if 2 * count <= len(votes):
            return
        if is_bep42_exempt(host) or node_id_matches_ip(self.id, host):
            self._bep42_settled = (host, self.id)
            return
        try:
            new_id = node_id_for_ip(host, self.rng)
        except LocalProtocolError:
            return
        self.id = new_id
        self.table.rebuild(new_id)
        self.stats["id_changes"] += 1

    def snapshot(self) -> dict[str, int]:
        """Counters plus sizes: routing table, peer store, item store, requests in flight."""
        out = dict(self.stats)
        out["table"] = len(self.table)
        out["infohashes"] = len(self.peers)
        out["items"] = len(self.items)
        out["inflight"] = len(self.requests)
        return out

    def save_state(self) -> bytes:
        """The routing table as bencoded bytes (``id``, compact ``nodes``/``nodes6``) for a later restore."""
        contacts = sorted(self.table, key=lambda c: c.seen, reverse=True)
        infos = [contact_info(c) for c in contacts]
        return encode(
            {b"id": self.id, b"nodes": m.encode_nodes(infos), b"nodes6": m.encode_nodes(infos, v6=True)}
        )

    @staticmethod
    def parse_state(data: bytes) -> tuple[bytes, list[m.NodeInfo]]:
        """Read :meth:`save_state` bytes: ``(node_id, nodes)``.

        Raises:
            DecodeError: not a saved state.
        """
        d = decode(data)
        if not isinstance(d, dict):
            raise DecodeError("state is not a dictionary")
        nid = d.get(b"id")
        if not isinstance(nid, bytes) or len(nid) != 20:
            raise DecodeError("state: bad id")
        n4, n6 = d.get(b"nodes", b""), d.get(b"nodes6", b"")
        if not isinstance(n4, bytes) or not isinstance(n6, bytes):
            raise DecodeError("state: bad nodes")
        return nid, m.decode_nodes(n4) + m.decode_nodes(n6, v6=True)

    def load_state(self, data: bytes, now: float) -> int:
        """Add the nodes of saved state to the routing table; returns how many were added.

        Restored nodes are trusted as they were when saved; dead ones fail out on first use.

        Raises:
            DecodeError: not a saved state.
        """
        _, nodes = self.parse_state(data)
        n = 0
        for info in nodes:
            if (
                info.id != self.id
                and self.table.add(Contact(id=info.id, host=info.host, port=info.port), now) is None
            ):
                n += 1
        return n

    def add_node(self, addr: Addr, now: float) -> None:
        """Learn of a node by address only: ping it; it enters the table when it answers."""
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), m.Ping(id=self.id), now)

    # ------------------------------------------------------------------------------------------
    # sending

    def _check_id(self, target: bytes) -> None:
        if len(target) != 20:
            raise LocalProtocolError("targets and info hashes are 20 bytes")

    def _request(
        self,
        contact: Contact,
        query: m.Query,
        now: float,
        *,
        op: MainlineOp | None = None,
        replacement: Contact | None = None,
        retries: int | None = None,
    ) -> PendingRequest | None:
        if len(self.requests) >= self.requests.tid_space - 1:
            self.stats["dropped_no_tid"] += 1
            return None
        tid = self.requests.new_tid()
        payload = self._encode_query(tid.to_bytes(2, "big"), query)
        ctx = Req(method=m.method_of(query), contact=contact, op=op, replacement=replacement)
        pending = self.requests.add(tid, contact.addr, payload, now, ctx, retries=retries)
        self._out.append((payload, contact.addr))
        self.stats["sent"] += 1
        self.stats["queries_sent"] += 1
        return pending

    def _encode_query(self, t: bytes, query: m.Query) -> bytes:
        """``m.encode_query(t, query, ...)``: the bytes around the transaction id are encoded once per query
        (a lookup sends the same query to every node it visits; bencoding it cost ~9 us a request)."""
        key = (query, self.read_only, self.version)
        try:
            parts = self._templates.get(key)
        except TypeError:  # a put whose value is a list or dict: not hashable, encode it in full
            return m.encode_query(t, query, read_only=self.read_only, version=self.version)
        if parts is None:
            full = m.encode_query(b"", query, read_only=self.read_only, version=self.version)
            i = full.rfind(b"1:t0:")  # keys are sorted, "t" comes after the arguments: the last match
            parts = (full[: i + 3], full[i + 5 :])
            if len(self._templates) >= 64:
                self._templates.clear()
            self._templates[key] = parts
        return b"%b%d:%b%b" % (parts[0], len(t), t, parts[1])

    def _send_error(self, t: bytes, addr: Addr, code: int, message: str) -> None:
        self._out.append((m.encode_error(t, code, message, ip=addr, version=self.version), addr))
        self.stats["sent"] += 1
        self.stats["errors_sent"] += 1

    def _send_response(self, t: bytes, addr: Addr, resp: m.Response) -> None:
        data = m.encode_response(t, resp, ip=addr, version=self.version)
        if len(data) > MAX_REPLY:  # trim peer values until it fits (nodes are bounded by k already)
            if isinstance(resp, m.GetPeersResponse):
                values = list(resp.values)
                while len(data) > MAX_REPLY and values:
                    values = values[: len(values) * 3 // 4]
                    resp = m.GetPeersResponse(
                        id=resp.id,
                        token=resp.token,
                        values=tuple(values),
                        nodes=resp.nodes,
                        nodes6=resp.nodes6,
                    )
                    data = m.encode_response(t, resp, ip=addr, version=self.version)
            if len(data) > MAX_REPLY:
                self.stats["dropped_oversize_reply"] += 1
                return
        self._out.append((data, addr))
        self.stats["sent"] += 1
        self.stats["responses_sent"] += 1

    # ------------------------------------------------------------------------------------------
    # implemented by MainlineServer (answering queries) and MainlineClient (lookups, stores)

    def _allow(self, addr: Addr, now: float) -> bool:
        raise NotImplementedError

    def _on_query(self, msg: m.QueryMessage, addr: Addr, now: float) -> None:
        raise NotImplementedError

    def _on_reply(self, msg: m.ResponseMessage | m.ErrorMessage, addr: Addr, now: float) -> None:
        raise NotImplementedError

    def _on_timeout(self, req: PendingRequest, now: float) -> None:
        raise NotImplementedError

    def _maintain(self, now: float) -> None:
        raise NotImplementedError
