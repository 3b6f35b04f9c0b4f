"""The sans-IO dht-rpc node: requests, routing table upkeep, queries, NAT sampling, persistence.

:class:`RPCNode` is composed of three layers, one module each: :mod:`~peerdht.hyper.rpc_requests`
(I/O, the request table, replies, op ids), :mod:`~peerdht.hyper.rpc_ops` (starting queries, their requests,
writes and DOWN_HINTs) and :mod:`~peerdht.hyper.rpc_network` (ticks, table upkeep, bootstrap, NAT sampling,
firewall check, ephemeral/persistent). The queries and commits themselves are typed ops of
:mod:`~peerdht.hyper.queries` on the engine both DHTs share (:mod:`peerdht.kademlia.ops`). This module
names the whole node and re-exports its constants and types.

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

from peerdht.hyper.rpc_network import RPCNetwork
from peerdht.hyper.rpc_requests import (
    CLIENT,
    CONCURRENCY,
    DOWN_HINTS_PER_TICK,
    DRAIN,
    MAX_CHECKS,
    MAX_DATAGRAM,
    MAX_DELAYED_PINGS,
    MAX_PING_DELAY,
    MAX_REPINGING,
    MAX_WINDOW,
    MORE_STABLE_TICKS,
    OLD_NODE,
    QUERY_RETRIES,
    RECENT_NODE,
    REFRESH_TICKS,
    REQUEST_RETRIES,
    REQUEST_TIMEOUT,
    ROTATE_EVERY,
    SERVER,
    SLEEPING_INTERVAL,
    STABLE_TICKS,
    TICK,
    Address,
    K,
    OutgoingRequest,
    Reply,
)
from peerdht.hyper.rpc_util import check32

__all__ = [
    "CLIENT",
    "CONCURRENCY",
    "DOWN_HINTS_PER_TICK",
    "DRAIN",
    "MAX_CHECKS",
    "MAX_DATAGRAM",
    "MAX_DELAYED_PINGS",
    "MAX_PING_DELAY",
    "MAX_REPINGING",
    "MAX_WINDOW",
    "MORE_STABLE_TICKS",
    "OLD_NODE",
    "QUERY_RETRIES",
    "RECENT_NODE",
    "REFRESH_TICKS",
    "REQUEST_RETRIES",
    "REQUEST_TIMEOUT",
    "ROTATE_EVERY",
    "SERVER",
    "SLEEPING_INTERVAL",
    "STABLE_TICKS",
    "TICK",
    "Address",
    "K",
    "OutgoingRequest",
    "RPCNode",
    "Reply",
    "check32",
]


class RPCNode(RPCNetwork):
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
