"""A sans-IO Mainline DHT node (BEP 5, 32, 42, 43, 44, 51) on the shared Kademlia core.

Shape (aioquic's): :meth:`MainlineNode.receive_datagram`, :meth:`~MainlineNode.handle_timer`,
:meth:`~MainlineNode.datagrams_to_send`, :meth:`~MainlineNode.get_timer`,
:meth:`~MainlineNode.next_event`. Commands (:meth:`~MainlineNode.ping`, :meth:`~MainlineNode.find_node`,
:meth:`~MainlineNode.get_peers`, :meth:`~MainlineNode.announce_peer`, :meth:`~MainlineNode.get`,
:meth:`~MainlineNode.get_mutable`, :meth:`~MainlineNode.put`, :meth:`~MainlineNode.put_mutable`,
:meth:`~MainlineNode.sample_infohashes`, :meth:`~MainlineNode.bootstrap`) queue work and return an op
id; results arrive as :mod:`peerdht.mainline.events`.

Addresses are opaque ``(host, port)`` pairs: UDP gives IP text, a later transport (WebSocket, WebRTC)
may give something else. Only the compact ``nodes``/``values`` encodings need IPs; hosts that are not
IPs are left out of them.

Server side (what we answer), following BEP 5 and the hardening notes of the8472/mldht:

* K = 8 with BEP 5 bucket splitting (:class:`~peerdht.kademlia.table.RoutingTable` ``split=True``);
  a node enters the table only after it answered one of our queries (queriers are pinged first);
  BEP 43 read-only queriers are never added.
* tokens: SHA1(host + secret), secret rotated every 5 minutes, previous one still accepted (10 min).
* peers (30 min) and BEP 44 items (2 h) in size-bounded expiring stores.
* replies never exceed 1024 bytes (BEP 32): K nodes at most, peer values trimmed to fit.
* per-IP token-bucket rate limit on queries (anti-amplification), messages carrying our own id dropped,
  every malformed datagram dropped and counted in :attr:`MainlineNode.stats`.

Client side: iterative lookups with :class:`~peerdht.kademlia.lookup.Lookup` (k = 8 closest
responders, ``concurrency`` requests in flight), announces and puts to the k closest responders with the
tokens they gave, BEP 43 ``ro`` when read-only, routing table save/restore as bytes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, cast

from peerdht.encoding.bencode import Value, decode, encode
from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RemoteError,
    RequestTimeout,
)
from peerdht.kademlia.ids import random_id_in_bucket
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.requests import PendingRequest, RequestTable
from peerdht.kademlia.store import ExpiringCache
from peerdht.kademlia.table import Contact, RoutingTable
from peerdht.kademlia.tokens import TokenIssuer
from peerdht.mainline import messages as m
from peerdht.mainline.crypto import (
    KeyPair,
    immutable_target,
    is_bep42_exempt,
    mutable_target,
    node_id_for_ip,
    node_id_matches_ip,
    sign_mutable,
    verify_mutable,
)
from peerdht.mainline.events import (
    AnnounceResult,
    Bootstrapped,
    GetResult,
    Item,
    LookupResult,
    OpDone,
    OpFailed,
    PeersFound,
    PingResult,
    PutResult,
    SampleResult,
)

if TYPE_CHECKING:
    import random

__all__ = ["VERSION", "LinkMap", "MainlineNode"]

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
class _Op:
    """One command in progress."""

    id: int
    kind: str
    target: bytes = b""
    lookup: Lookup | None = None
    method: str = ""
    # lookup bookkeeping
    peers: dict[Addr, None] = field(default_factory=dict)
    best: Item | None = None
    best_source: Addr | None = None
    # store phase
    phase: str = "lookup"
    pending: int = 0
    stored: int = 0
    tried: int = 0
    errors: list[int] = field(default_factory=list)
    payload: dict[str, object] = field(default_factory=dict)
    finished: bool = False
    queries: int = 0


@dataclass(slots=True)
class _Req:
    """Context of one request in flight."""

    method: str
    contact: Contact
    purpose: str  # "lookup", "store", "ping", "verify", "evict", "sample"
    op: _Op | None = None
    extra: object = None


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
def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _token_derive(secret: bytes, host: bytes) -> bytes:
    return hashlib.sha1(host + secret).digest()


def _info(c: Contact) -> m.NodeInfo:
    return m.NodeInfo(id=c.id, host=c.host, port=c.port)


class MainlineNode:
    """A Mainline DHT node core (no I/O, no clock).

    Args:
        rng: injected randomness (ids, transaction ids, token secrets).
        node_id: our 20-byte id; default: BEP 42 id for ``external_ip`` if given, else random (and replaced
            by a BEP 42 id once most responders' ``ip`` keys agree on a public address).
        external_ip: our public IP, if known (for a BEP 42 id).
        bootstrap: addresses to start lookups from while the table is small (never a public list in tests).
        read_only: BEP 43 mode: queries carry ``ro=1`` and incoming queries are not answered.
        k: bucket size and lookup width (BEP 5: 8).
        concurrency: requests in flight per lookup.
        timeout: seconds before a request is resent or fails.
        retries: resends per request (BEP 5 has none; 1 helps on lossy links).
        rate_limit: ``(queries per second, burst)`` per source host, or ``None`` for no limit.
        enforce_bep42: responders whose id does not match their IP do not count as closest nodes and get
            no announces/puts (BEP 42's enforcement; off by default, as in libtorrent).
        ipv6: the transport is IPv6 (replies default to ``nodes6``, lookups follow ``nodes6``).
        version: the client version ``v`` we send (``None`` to send none).
        links: for a non-UDP transport (the web overlay): maps node ids to link handles (:class:`LinkMap`).
        now: creation time (seconds).

    Attributes:
        id: our node id.
        table: the routing table.
        stats: counters: ``sent``, ``received``, ``queries_sent``, ``resent``, ``timeouts``, drops by reason
            (``dropped_malformed``, ``dropped_own_id``, ``dropped_rate_limited``, ``dropped_unexpected``,
            ``dropped_wrong_id``, ``dropped_read_only``), ``bad_tokens``, ``errors_sent``/``received``, ...;
            :meth:`snapshot` adds table and store sizes.
    """

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
        self._events: deque[object] = deque()
        self._ops: dict[int, _Op] = {}
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
    # commands

    def _new_op(self, kind: str, target: bytes = b"") -> _Op:
        op = _Op(id=self._next_op, kind=kind, target=target)
        self._next_op += 1
        self._ops[op.id] = op
        return op

    def ping(self, addr: Addr, now: float) -> int:
        """Ping ``addr``; result :class:`~peerdht.mainline.events.PingResult`."""
        op = self._new_op("ping")
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), m.Ping(id=self.id), "ping", now, op=op)
        return op.id

    def bootstrap(self, now: float) -> int:
        """``find_node`` on our own id from the bootstrap nodes; also emits :class:`Bootstrapped`."""
        return self._start_lookup("bootstrap", self.id, "find_node", now)

    def find_node(self, target: bytes, now: float) -> int:
        """Iterative ``find_node``; result :class:`~peerdht.mainline.events.LookupResult`."""
        self._check_id(target)
        return self._start_lookup("find_node", target, "find_node", now)

    def get_peers(self, info_hash: bytes, now: float) -> int:
        """Iterative ``get_peers``: streams :class:`PeersFound`, result ``LookupResult``."""
        self._check_id(info_hash)
        return self._start_lookup("get_peers", info_hash, "get_peers", now)

    def announce_peer(self, info_hash: bytes, port: int, now: float, *, implied_port: bool = False) -> int:
        """``get_peers`` lookup, then ``announce_peer`` to the k closest with their tokens.

        Args:
            info_hash: 20 bytes.
            port: the TCP/uTP port peers should connect to (ignored by receivers with ``implied_port``).
            now: current time (seconds).
            implied_port: ask receivers to use our UDP source port instead (BEP 5).

        Result :class:`~peerdht.mainline.events.AnnounceResult`.
        """
        self._check_id(info_hash)
        if not (0 <= port <= 0xFFFF) or (port == 0 and not implied_port):
            raise LocalProtocolError(f"bad port {port}")
        return self._start_lookup(
            "announce", info_hash, "get_peers", now, payload={"port": port, "implied_port": implied_port}
        )

    def get(self, target: bytes, now: float) -> int:
        """BEP 44 immutable ``get``; result :class:`~peerdht.mainline.events.GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        op_payload: dict[str, object] = {"mutable": False}
        if local is not None and local.k is None:
            op = self._new_op("get", target)
            self._finish(op, GetResult(item=local, source=None))
            return op.id
        return self._start_lookup("get", target, "get", now, payload=op_payload)

    def get_mutable(self, public_key: bytes, now: float, *, salt: bytes = b"") -> int:
        """BEP 44 mutable ``get`` of ``(public_key, salt)``: the verified item with the highest ``seq``.

        Result :class:`~peerdht.mainline.events.GetResult`.
        """
        if len(public_key) != 32 or len(salt) > m.MAX_SALT:
            raise LocalProtocolError("public key must be 32 bytes, salt at most 64")
        target = mutable_target(public_key, salt)
        op_id = self._start_lookup(
            "get", target, "get", now, payload={"mutable": True, "k": public_key, "salt": salt}
        )
        op = self._ops.get(op_id)
        local = self.items.get(target, now)
        if op is not None and local is not None and local.k == public_key:
            op.best = Item(v=local.v, k=local.k, seq=local.seq, sig=local.sig, salt=salt)
        return op_id

    def get_item(self, target: bytes, now: float) -> int:
        """BEP 44 ``get`` of whatever is stored under ``target``: the immutable item whose bencoding hashes to
        it, or the salt-less mutable item with ``SHA1(k) == target`` and the highest verified ``seq`` (a salted
        target cannot be checked without its salt). Our own store first. Result :class:`GetResult`."""
        self._check_id(target)
        local = self.items.get(target, now)
        if local is not None and local.k is None:
            op = self._new_op("get", target)
            self._finish(op, GetResult(item=local, source=None))
            return op.id
        op_id = self._start_lookup("get", target, "get", now, payload={"mutable": "any", "salt": b""})
        running = self._ops.get(op_id)
        if running is not None and local is not None and local.k is not None and not local.salt:
            running.best = local
        return op_id

    def put(self, value: Value, now: float) -> int:
        """BEP 44 immutable ``put`` to the k closest nodes; result :class:`PutResult`.

        Raises:
            LocalProtocolError: ``bencode(value)`` is longer than 1000 bytes or not encodable.
        """
        encoded = encode(value)
        if len(encoded) > m.MAX_VALUE:
            raise LocalProtocolError("value longer than 1000 bytes once bencoded")
        target = immutable_target(encoded)
        self.items.put(target, Item(v=value), now)
        return self._start_lookup("put", target, "get", now, payload={"v": value, "mutable": False})

    def put_mutable(
        self,
        key_pair: KeyPair,
        value: Value,
        now: float,
        *,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> int:
        """BEP 44 mutable ``put``: ``get`` lookup (tokens, current seq), sign, put to the k closest.

        Args:
            key_pair: the Ed25519 key pair owning the item.
            value: the value (bencoded at most 1000 bytes).
            now: current time (seconds).
            salt: up to 64 bytes.
            seq: sequence number; ``None`` = one more than the highest found (1 if none).
            cas: compare-and-swap: storers refuse (301) unless their seq equals this.

        Result :class:`PutResult` (with the ``seq`` used).

        Raises:
            LocalProtocolError: value too long, salt too long, seq out of range.
        """
        encoded = encode(value)
        if len(encoded) > m.MAX_VALUE:
            raise LocalProtocolError("value longer than 1000 bytes once bencoded")
        if len(salt) > m.MAX_SALT:
            raise LocalProtocolError("salt longer than 64 bytes")
        if seq is not None and not 0 <= seq <= m.MAX_SEQ:
            raise LocalProtocolError("seq out of range")
        target = mutable_target(key_pair.public_key, salt)
        return self._start_lookup(
            "put",
            target,
            "get",
            now,
            payload={
                "v": value,
                "mutable": True,
                "key_pair": key_pair,
                "k": key_pair.public_key,
                "salt": salt,
                "seq": seq,
                "cas": cas,
            },
        )

    def put_item(self, item: Item, now: float, *, cas: int | None = None) -> int:
        """BEP 44 put of an item signed elsewhere (a browser's, bridged by :mod:`peerdht.web`): immutable
        as :meth:`put`; mutable with its own ``k``/``seq``/``sig``/``salt``. Result :class:`PutResult`.

        Raises:
            LocalProtocolError: value too long, or a mutable item whose signature does not verify.
        """
        if item.k is None:
            return self.put(item.v, now)
        encoded = encode(item.v)
        if (len(encoded) > m.MAX_VALUE or item.sig is None or item.seq is None or len(item.salt) > m.MAX_SALT
                or not verify_mutable(item.k, item.sig, encoded, item.seq, item.salt)):
            raise LocalProtocolError("not a valid signed BEP 44 item")
        payload: dict[str, object] = {"v": item.v, "mutable": True, "k": item.k, "salt": item.salt,
                                      "seq": item.seq, "cas": cas, "sig": item.sig}
        return self._start_lookup("put", mutable_target(item.k, item.salt), "get", now, payload=payload)

    def sample_infohashes(self, addr: Addr, now: float, *, target: bytes | None = None) -> int:
        """BEP 51 ``sample_infohashes`` to one node; result :class:`SampleResult`."""
        op = self._new_op("sample")
        query = m.SampleInfohashes(id=self.id, target=target if target is not None else self.id)
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), query, "sample", now, op=op)
        return op.id

    def cancel(self, op_id: int) -> None:
        """Stop an op (no event is emitted for it afterwards)."""
        op = self._ops.pop(op_id, None)
        if op is not None:
            op.finished = True
            self._cancel_op(op)

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
        infos = [_info(c) for c in contacts]
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

    def note_querier(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A query from ``node_id`` at ``addr`` was handled outside this core (web signalling): treat it as
        one of ours (the querier is pinged and enters the table when it answers)."""
        if node_id != self.id and len(node_id) == 20:
            self._consider(node_id, addr, now)

    def limiter_allows(self, addr: Addr, now: float) -> bool:
        """The per-host query rate limit (a refusal is counted), for queries answered outside this core."""
        return self._allow(addr, now)

    def forget_address(self, addr: Addr, now: float) -> None:
        """The link behind handle ``addr`` closed: its node leaves the table, requests to it fail now."""
        for contact in [c for c in self.table if c.addr == addr]:
            self.table.remove(contact.id)
            self._fails.pop(contact.id, None)
        for req in [r for r in self.requests if r.addr == addr]:
            if self.requests.pop(req.tid, addr) is not None:
                self._on_timeout(req, now)

    def add_node(self, addr: Addr, now: float) -> None:
        """Learn of a node by address only: ping it; it enters the table when it answers."""
        self._request(Contact(id=b"", host=addr[0], port=addr[1]), m.Ping(id=self.id), "verify", now)

    # ------------------------------------------------------------------------------------------
    # sending

    def _check_id(self, target: bytes) -> None:
        if len(target) != 20:
            raise LocalProtocolError("targets and info hashes are 20 bytes")

    def _request(
        self,
        contact: Contact,
        query: m.Query,
        purpose: str,
        now: float,
        *,
        op: _Op | None = None,
        extra: object = None,
        retries: int | None = None,
    ) -> bool:
        if len(self.requests) >= self.requests.tid_space - 1:
            self.stats["dropped_no_tid"] += 1
            return False
        tid = self.requests.new_tid()
        payload = m.encode_query(
            tid.to_bytes(2, "big"), query, read_only=self.read_only, version=self.version
        )
        ctx = _Req(method=m.method_of(query), contact=contact, purpose=purpose, op=op, extra=extra)
        self.requests.add(tid, contact.addr, payload, now, ctx, retries=retries)
        self._out.append((payload, contact.addr))
        self.stats["sent"] += 1
        self.stats["queries_sent"] += 1
        if op is not None:
            op.queries += 1
        return True

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
    # server side

    def _allow(self, addr: Addr, now: float) -> bool:
        if self.limiter is None or self.limiter.allow(addr[0], now):
            return True
        self.stats["dropped_rate_limited"] += 1
        return False

    def _nodes_for(
        self, target: bytes, addr: Addr, want: frozenset[str]
    ) -> tuple[tuple[m.NodeInfo, ...], tuple[m.NodeInfo, ...]]:
        if not want:
            want = frozenset({"n6"}) if _is_v6(addr[0]) else frozenset({"n4"})
        closest = self.table.closest(target, 4 * self.k)
        n4: list[m.NodeInfo] = []
        n6: list[m.NodeInfo] = []
        for c in closest:
            if _is_v6(c.host):
                if "n6" in want and len(n6) < self.k:
                    n6.append(_info(c))
            elif "n4" in want and len(n4) < self.k:
                n4.append(_info(c))
        return tuple(n4), tuple(n6)

    def _on_query(self, msg: m.QueryMessage, addr: Addr, now: float) -> None:
        q = msg.query
        qid = q.id
        if qid == self.id:
            self.stats["dropped_own_id"] += 1
            return
        if self.read_only:
            self.stats["dropped_read_only"] += 1
            return
        if not self._allow(addr, now):
            return
        self.stats["queries_received"] += 1
        if qid is not None and not msg.read_only:
            self._consider(qid, addr, now)
        t = msg.t
        host = addr[0].encode()
        if isinstance(q, m.Ping):
            self._send_response(t, addr, m.IdResponse(id=self.id))
        elif isinstance(q, m.FindNode):
            n4, n6 = self._nodes_for(q.target, addr, q.want)
            self._send_response(t, addr, m.FindNodeResponse(id=self.id, nodes=n4, nodes6=n6))
        elif isinstance(q, m.GetPeers):
            n4, n6 = self._nodes_for(q.info_hash, addr, q.want)
            store = self.peers.get(q.info_hash, now)
            values: tuple[Addr, ...] = ()
            if store is not None:
                live = store.items(now)
                fam6 = _is_v6(addr[0])
                values = tuple(a for a, _ in reversed(live) if _is_v6(a[0]) == fam6)[:MAX_VALUES]
            resp = m.GetPeersResponse(
                id=self.id, token=self.tokens.issue(host), values=values, nodes=n4, nodes6=n6
            )
            self._send_response(t, addr, resp)
        elif isinstance(q, m.AnnouncePeer):
            if not self.tokens.check(host, q.token):
                self.stats["bad_tokens"] += 1
                self._send_error(t, addr, m.ERROR_PROTOCOL, "bad token")
                return
            port = addr[1] if q.implied_port else q.port
            peer_host = addr[0] if self.links is None else self.links.peer_host(addr)
            if peer_host is None:
                self.stats["dropped_announce_host"] += 1
                self._send_response(t, addr, m.IdResponse(id=self.id))
                return
            store = self.peers.get(q.info_hash, now)
            if store is None:
                store = ExpiringCache(max_size=500, max_age=PEER_TTL)
            store.put((peer_host, port), None, now)
            self.peers.put(q.info_hash, store, now)
            self.stats["announces_stored"] += 1
            self._send_response(t, addr, m.IdResponse(id=self.id))
        elif isinstance(q, m.Get):
            self._on_get(t, q, addr, host, now)
        elif isinstance(q, m.Put):
            self._on_put(t, q, addr, host, now)
        elif isinstance(q, m.SampleInfohashes):
            n4, n6 = self._nodes_for(q.target, addr, q.want)
            hashes = [h for h, _ in self.peers.items(now)]
            samples = self.rng.sample(hashes, min(MAX_SAMPLES, len(hashes)))
            self._send_response(
                t,
                addr,
                m.SampleInfohashesResponse(
                    id=self.id,
                    interval=SAMPLE_INTERVAL,
                    num=len(hashes),
                    samples=tuple(samples),
                    nodes=n4,
                    nodes6=n6,
                ),
            )
        else:
            self.stats["unknown_queries"] += 1
            self._send_error(t, addr, m.ERROR_METHOD_UNKNOWN, "method unknown")

    def _on_get(self, t: bytes, q: m.Get, addr: Addr, host: bytes, now: float) -> None:
        n4, n6 = self._nodes_for(q.target, addr, q.want)
        token = self.tokens.issue(host)
        item = self.items.get(q.target, now)
        if item is None:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6)
        elif item.k is None:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6, v=item.v)
        elif q.seq is not None and item.seq is not None and item.seq <= q.seq:
            resp = m.GetResponse(id=self.id, token=token, nodes=n4, nodes6=n6, seq=item.seq)
        else:
            resp = m.GetResponse(
                id=self.id, token=token, nodes=n4, nodes6=n6, v=item.v, k=item.k, seq=item.seq, sig=item.sig
            )
        self._send_response(t, addr, resp)

    def _on_put(self, t: bytes, q: m.Put, addr: Addr, host: bytes, now: float) -> None:
        if not self.tokens.check(host, q.token):
            self.stats["bad_tokens"] += 1
            self._send_error(t, addr, m.ERROR_PROTOCOL, "bad token")
            return
        try:
            encoded = encode(q.v)
        except LocalProtocolError:  # pragma: no cover - decoded values are always encodable
            self._send_error(t, addr, m.ERROR_PROTOCOL, "invalid v")
            return
        if len(encoded) > m.MAX_VALUE:
            self._send_error(t, addr, m.ERROR_V_TOO_BIG, "v too big")
            return
        if q.k is None:
            self.items.put(immutable_target(encoded), Item(v=q.v), now)
            self.stats["items_stored"] += 1
            self._send_response(t, addr, m.IdResponse(id=self.id))
            return
        assert q.sig is not None and q.seq is not None
        if len(q.salt) > m.MAX_SALT:
            self._send_error(t, addr, m.ERROR_SALT_TOO_BIG, "salt too big")
            return
        if not verify_mutable(q.k, q.sig, encoded, q.seq, q.salt):
            self._send_error(t, addr, m.ERROR_INVALID_SIGNATURE, "invalid signature")
            return
        target = mutable_target(q.k, q.salt)
        old = self.items.get(target, now)
        if old is not None and old.seq is not None:
            if q.cas is not None and q.cas != old.seq:
                self._send_error(t, addr, m.ERROR_CAS_MISMATCH, "cas mismatch")
                return
            if q.seq < old.seq or (q.seq == old.seq and encode(old.v) != encoded):
                self._send_error(t, addr, m.ERROR_SEQ_TOO_LOW, "sequence number less than current")
                return
        self.items.put(target, Item(v=q.v, k=q.k, seq=q.seq, sig=q.sig, salt=q.salt), now)
        self.stats["items_stored"] += 1
        self._send_response(t, addr, m.IdResponse(id=self.id))

    def _consider(self, node_id: bytes, addr: Addr, now: float) -> None:
        """A querier: refresh it if known, else ping it once a minute at most (it enters when it answers)."""
        known = self.table.get(node_id)
        if known is not None:
            if known.addr == addr:
                self.table.touch(node_id, now)
            return
        if addr in self._verified:
            return
        self._verified.put(addr, None, now)
        self._request(
            Contact(id=node_id, host=addr[0], port=addr[1]), m.Ping(id=self.id), "verify", now, retries=0
        )

    # ------------------------------------------------------------------------------------------
    # client side: replies

    def _on_reply(self, msg: m.ResponseMessage | m.ErrorMessage, addr: Addr, now: float) -> None:
        if len(msg.t) != 2:
            self.stats["dropped_unexpected"] += 1
            return
        tid = int.from_bytes(msg.t, "big")
        pending = self.requests.get(tid)
        if pending is None or pending.addr != addr:
            self.stats["dropped_unexpected"] += 1
            return
        req = pending.context
        assert isinstance(req, _Req)
        if isinstance(msg, m.ResponseMessage) and msg.id == self.id:
            self.stats["dropped_own_id"] += 1
            return
        self.requests.pop(tid, addr)
        self.stats["replies_received"] += 1
        if msg.ip is not None:
            self._ip_votes.append(msg.ip)
            self._maybe_adopt_bep42_id()
        if isinstance(msg, m.ErrorMessage):
            self.stats["errors_received"] += 1
            self._on_error_reply(req, msg, now)
            return
        contact = req.contact
        if contact.id and msg.id != contact.id:
            self.stats["dropped_wrong_id"] += 1
            self._on_failed(req, now, RequestTimeout("responder id changed"))
            return
        try:
            resp = m.parse_response(req.method, msg.body)
        except DecodeError:
            self.stats["dropped_malformed"] += 1
            self._on_failed(req, now, RequestTimeout("malformed response"))
            return
        responder = Contact(id=msg.id, host=addr[0], port=addr[1])
        self._fails.pop(msg.id, None)
        self._learn(responder, now)
        self._dispatch_reply(req, responder, resp, now)

    def _learn(self, contact: Contact, now: float) -> None:
        """A node answered us: it may enter the routing table (BEP 5)."""
        known = self.table.get(contact.id)
        if known is not None:
            self.table.add(Contact(id=contact.id, host=contact.host, port=contact.port), now)
            return
        if self.enforce_bep42 and not node_id_matches_ip(contact.id, contact.host):
            return
        victim = self.table.add(Contact(id=contact.id, host=contact.host, port=contact.port), now)
        if victim is not None and now - victim.pinged > 60.0:
            victim.pinged = now
            self._request(
                victim,
                m.Ping(id=self.id),
                "evict",
                now,
                extra=Contact(id=contact.id, host=contact.host, port=contact.port),
            )

    def _on_error_reply(self, req: _Req, msg: m.ErrorMessage, now: float) -> None:
        op = req.op
        if req.purpose == "lookup" and op is not None and op.lookup is not None:
            op.lookup.on_reply(req.contact, [], None, counts=False)
            self._advance(op, now)
        elif req.purpose == "store" and op is not None:
            op.errors.append(msg.code)
            op.pending -= 1
            self._maybe_finish_store(op)
        elif req.purpose in ("ping", "sample") and op is not None:
            self._fail(op, RemoteError(msg.code, msg.message))

    def _dispatch_reply(self, req: _Req, responder: Contact, resp: m.Response, now: float) -> None:
        op = req.op
        purpose = req.purpose
        if purpose == "evict":
            self.table.touch(responder.id, now)
            return
        if purpose == "verify" or op is None:
            return
        if purpose == "ping":
            self._finish(op, PingResult(id=responder.id, addr=responder.addr))
        elif purpose == "sample":
            assert isinstance(resp, m.SampleInfohashesResponse)
            self._finish(
                op,
                SampleResult(
                    id=resp.id,
                    samples=resp.samples,
                    num=resp.num,
                    interval=resp.interval,
                    nodes=resp.nodes + resp.nodes6,
                ),
            )
        elif purpose == "store":
            op.stored += 1
            op.pending -= 1
            self._maybe_finish_store(op)
        elif purpose == "lookup":
            self._on_lookup_reply(op, req, responder, resp, now)

    def _closer(self, resp: m.FindNodeResponse | m.GetPeersResponse | m.GetResponse) -> list[Contact]:
        nodes = resp.nodes6 if self.ipv6 else resp.nodes
        if self.links is not None:  # a link handle, known by node id, instead of the compact address
            out = []
            for n in resp.nodes + resp.nodes6:
                handle = self.links.handle_for(n) if n.id != self.id else None
                if handle is not None:
                    out.append(Contact(id=n.id, host=handle[0], port=handle[1]))
            return out
        return [Contact(id=n.id, host=n.host, port=n.port) for n in nodes if n.id != self.id]

    def _on_lookup_reply(self, op: _Op, req: _Req, responder: Contact, resp: m.Response, now: float) -> None:
        lookup = op.lookup
        if lookup is None or op.finished:
            return
        counts = not self.enforce_bep42 or node_id_matches_ip(responder.id, responder.host)
        if isinstance(resp, m.FindNodeResponse):
            lookup.on_reply(_replace_id(req.contact, responder.id), self._closer(resp), None, counts=counts)
        elif isinstance(resp, m.GetPeersResponse):
            new = [a for a in resp.values if a not in op.peers]
            for a in new:
                op.peers[a] = None
            if new and op.kind == "get_peers":
                self._events.append(PeersFound(op=op.id, peers=tuple(new), source=responder.addr))
            lookup.on_reply(
                _replace_id(req.contact, responder.id), self._closer(resp), resp.token, counts=counts
            )
        elif isinstance(resp, m.GetResponse):
            self._check_item(op, resp, responder)
            if op.finished:
                return
            lookup.on_reply(_replace_id(req.contact, responder.id), self._closer(resp), resp, counts=counts)
        else:
            lookup.on_reply(req.contact, [], None, counts=False)
        self._advance(op, now)

    def _check_item(self, op: _Op, resp: m.GetResponse, responder: Contact) -> None:
        if resp.v is None:
            return
        try:
            encoded = encode(resp.v)
        except LocalProtocolError:  # pragma: no cover
            return
        mode = op.payload.get("mutable")
        if not mode or (mode == "any" and resp.k is None):
            if immutable_target(encoded) == op.target:
                item = Item(v=resp.v)
                if op.kind == "get":
                    op.best, op.best_source = item, responder.addr
                    self._finish(op, GetResult(item=item, source=responder.addr))
            else:
                self.stats["bad_items"] += 1
            return
        k = op.payload.get("k")
        if mode == "any":  # get_item: a salt-less mutable item's target is SHA1(k)
            k = resp.k if resp.k is not None and hashlib.sha1(resp.k).digest() == op.target else None
        salt = op.payload.get("salt", b"")
        assert isinstance(salt, bytes)
        if (
            k is None
            or resp.k is None
            or resp.k != k
            or resp.sig is None
            or resp.seq is None
            or resp.seq < 0
            or not verify_mutable(resp.k, resp.sig, encoded, resp.seq, salt)
        ):
            self.stats["bad_items"] += 1
            return
        if op.best is None or (op.best.seq is not None and resp.seq > op.best.seq):
            op.best = Item(v=resp.v, k=resp.k, seq=resp.seq, sig=resp.sig, salt=salt)
            op.best_source = responder.addr

    # ------------------------------------------------------------------------------------------
    # failures

    def _on_timeout(self, req: PendingRequest, now: float) -> None:
        ctx = req.context
        assert isinstance(ctx, _Req)
        self._on_failed(ctx, now, RequestTimeout(f"no reply from {req.addr[0]}:{req.addr[1]}"))

    def _on_failed(self, req: _Req, now: float, error: PeerDHTError) -> None:
        contact = req.contact
        if contact.id and contact.id in self.table:
            fails = self._fails.get(contact.id, 0) + 1
            if fails >= 2:
                self.table.remove(contact.id)
                self._fails.pop(contact.id, None)
            else:
                self._fails[contact.id] = fails
        op = req.op
        if req.purpose == "evict":
            assert isinstance(req.extra, Contact)
            self.table.replace(contact.id, req.extra, now)
            self._fails.pop(contact.id, None)
        elif op is None:
            return
        elif req.purpose == "lookup" and op.lookup is not None:
            op.lookup.on_failure(contact)
            self._advance(op, now)
        elif req.purpose == "store":
            op.pending -= 1
            self._maybe_finish_store(op)
        elif req.purpose in ("ping", "sample"):
            self._fail(op, error)

    # ------------------------------------------------------------------------------------------
    # lookups

    def _start_lookup(
        self, kind: str, target: bytes, method: str, now: float, *, payload: dict[str, object] | None = None
    ) -> int:
        op = self._new_op(kind, target)
        op.method = method
        op.payload = payload or {}
        lookup = Lookup(target, k=self.k, concurrency=self.concurrency)
        op.lookup = lookup
        lookup.add_candidates(self.table.closest(target, self.k))
        if len(self.table) < self.k:
            lookup.add_candidates(Contact(id=b"", host=h, port=p) for h, p in self.bootstrap_nodes)
        self._advance(op, now)
        return op.id

    def _lookup_query(self, op: _Op) -> m.Query:
        if op.method == "find_node":
            return m.FindNode(id=self.id, target=op.target)
        if op.method == "get_peers":
            return m.GetPeers(id=self.id, info_hash=op.target)
        return m.Get(id=self.id, target=op.target)

    def _advance(self, op: _Op, now: float) -> None:
        lookup = op.lookup
        if lookup is None or op.finished or op.phase != "lookup":
            return
        query = self._lookup_query(op)
        for contact in lookup.next_to_query():
            if not self._request(contact, query, "lookup", now, op=op):
                lookup.on_failure(contact)
        if lookup.done:
            self._lookup_done(op, now)

    def _lookup_done(self, op: _Op, now: float) -> None:
        lookup = op.lookup
        assert lookup is not None
        replies = lookup.closest_replies()
        nodes = tuple(_info(c) for c, _ in replies)
        if op.kind == "refresh":
            op.finished = True
            self._ops.pop(op.id, None)
        elif op.kind == "bootstrap":
            self._events.append(Bootstrapped(nodes=len(self.table)))
            self._finish(op, LookupResult(nodes=nodes, queries=op.queries))
        elif op.kind in ("find_node", "get_peers"):
            if not replies and lookup.replies == 0:
                self._fail(op, RequestTimeout("no node answered the lookup"))
                return
            self._finish(op, LookupResult(nodes=nodes, peers=tuple(op.peers), queries=op.queries))
        elif op.kind == "get":
            self._finish(op, GetResult(item=op.best, source=op.best_source))
        elif op.kind == "announce":
            op.phase = "store"
            port = op.payload["port"]
            implied = op.payload["implied_port"]
            assert isinstance(port, int) and isinstance(implied, bool)
            for contact, token in replies:
                if isinstance(token, bytes):
                    q = m.AnnouncePeer(
                        id=self.id, info_hash=op.target, port=port, token=token, implied_port=implied
                    )
                    if self._request(contact, q, "store", now, op=op):
                        op.pending += 1
                        op.tried += 1
            self._maybe_finish_store(op)
        elif op.kind == "put":
            self._start_put(op, replies, now)

    def _start_put(self, op: _Op, replies: list[tuple[Contact, object]], now: float) -> None:
        op.phase = "store"
        p = op.payload
        value = cast(Value, p["v"])
        if p.get("mutable"):
            salt = p["salt"]
            assert isinstance(salt, bytes)
            seq = p["seq"]
            if seq is None:
                seq = 1 if op.best is None or op.best.seq is None else op.best.seq + 1
            assert isinstance(seq, int)
            cas = p["cas"]
            assert cas is None or isinstance(cas, int)
            encoded = encode(value)
            public_key = p["k"]
            assert isinstance(public_key, bytes)
            signed = p.get("sig")
            if isinstance(signed, bytes):  # signed elsewhere (put_item)
                sig = signed
            else:
                key_pair = p["key_pair"]
                assert isinstance(key_pair, KeyPair)
                sig = sign_mutable(key_pair, encoded, seq, salt)
            query: m.Put = m.Put(
                id=self.id,
                token=b"",
                v=value,
                k=public_key,
                sig=sig,
                seq=seq,
                salt=salt,
                cas=cas,
            )
            self.items.put(op.target, Item(v=value, k=public_key, seq=seq, sig=sig, salt=salt), now)
            p["seq_used"] = seq
        else:
            query = m.Put(id=self.id, token=b"", v=value)
        for contact, resp in replies:
            if isinstance(resp, m.GetResponse) and resp.token is not None:
                q = m.Put(
                    id=query.id,
                    token=resp.token,
                    v=query.v,
                    k=query.k,
                    sig=query.sig,
                    seq=query.seq,
                    salt=query.salt,
                    cas=query.cas,
                )
                if self._request(contact, q, "store", now, op=op):
                    op.pending += 1
                    op.tried += 1
        self._maybe_finish_store(op)

    def _maybe_finish_store(self, op: _Op) -> None:
        if op.finished or op.phase != "store" or op.pending > 0:
            return
        if op.kind == "announce":
            self._finish(op, AnnounceResult(stored=op.stored, tried=op.tried))
            return
        seq = op.payload.get("seq_used")
        assert seq is None or isinstance(seq, int)
        self._finish(
            op,
            PutResult(target=op.target, seq=seq, stored=op.stored, tried=op.tried, errors=tuple(op.errors)),
        )

    def _finish(self, op: _Op, result: object) -> None:
        if op.finished:
            return
        op.finished = True
        self._ops.pop(op.id, None)
        self._cancel_op(op)
        self._events.append(OpDone(op=op.id, result=result))

    def _fail(self, op: _Op, error: PeerDHTError) -> None:
        if op.finished:
            return
        op.finished = True
        self._ops.pop(op.id, None)
        self._cancel_op(op)
        self._events.append(OpFailed(op=op.id, error=error))

    def _cancel_op(self, op: _Op) -> None:
        """Forget requests still in flight for ``op`` (their replies then count as unexpected)."""
        for req in list(self.requests):
            ctx = req.context
            if isinstance(ctx, _Req) and ctx.op is op:
                self.requests.pop(req.tid)

    # ------------------------------------------------------------------------------------------
    # maintenance

    def _maintain(self, now: float) -> None:
        if self.tokens.due(now):
            self.tokens.rotate(self.rng.randbytes(20), now=now)
        self.peers.prune(now)
        self.items.prune(now)
        self._verified.prune(now)
        if self.limiter is not None:
            self.limiter.prune(now)
        if len(self.table) == 0:
            return
        busy = any(op.kind in ("refresh", "bootstrap") for op in self._ops.values())
        if busy:
            return
        for index in self.table.stale_buckets(now, REFRESH_AFTER)[:1]:
            self.table.mark_refreshed(index, now)
            target = random_id_in_bucket(self.id, index, self.rng)
            self._start_lookup("refresh", target, "find_node", now)


def _replace_id(contact: Contact, node_id: bytes) -> Contact:
    if contact.id == node_id:
        return contact
    return Contact(id=node_id, host=contact.host, port=contact.port)
