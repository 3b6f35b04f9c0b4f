"""A sans-IO Mainline DHT node (BEP 5, 32, 42, 43, 44, 51) on the shared Kademlia core.

Shape (aioquic's): :meth:`MainlineNode.receive_datagram`, :meth:`~MainlineNode.handle_timer`,
:meth:`~MainlineNode.datagrams_to_send`, :meth:`~MainlineNode.get_timer`,
:meth:`~MainlineNode.next_event`. Commands (:meth:`~MainlineNode.ping`, :meth:`~MainlineNode.find_node`,
:meth:`~MainlineNode.get_peers`, :meth:`~MainlineNode.announce_peer`, :meth:`~MainlineNode.get`,
:meth:`~MainlineNode.get_mutable`, :meth:`~MainlineNode.put`, :meth:`~MainlineNode.put_mutable`,
:meth:`~MainlineNode.sample_infohashes`, :meth:`~MainlineNode.bootstrap`) queue work and return an op
id; results arrive as :mod:`peerdht.mainline.events`.

:class:`MainlineNode` is composed of three layers, one module each: :mod:`~peerdht.mainline.core` (state,
the five methods, sending, the op table, BEP 42 id adoption, saved state), :mod:`~peerdht.mainline.server`
(the server side below) and :mod:`~peerdht.mainline.client` (the client side below); each command is a typed
op of :mod:`~peerdht.mainline.ops` on the shared engine :mod:`peerdht.kademlia.ops`. This module names the
whole node and re-exports its constants and :class:`LinkMap`.

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

from peerdht.mainline.client import MainlineClient
from peerdht.mainline.core import (
    ITEM_TTL,
    MAINTENANCE_EVERY,
    MAX_REPLY,
    MAX_SAMPLES,
    MAX_VALUES,
    PEER_TTL,
    REFRESH_AFTER,
    SAMPLE_INTERVAL,
    TOKEN_ROTATE,
    VERSION,
    Addr,
    K,
    LinkMap,
)

__all__ = [
    "ITEM_TTL",
    "MAINTENANCE_EVERY",
    "MAX_REPLY",
    "MAX_SAMPLES",
    "MAX_VALUES",
    "PEER_TTL",
    "REFRESH_AFTER",
    "SAMPLE_INTERVAL",
    "TOKEN_ROTATE",
    "VERSION",
    "Addr",
    "K",
    "LinkMap",
    "MainlineNode",
]


class MainlineNode(MainlineClient):
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
