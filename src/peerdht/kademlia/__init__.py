"""Shared Kademlia core for both DHT profiles (sans-IO).

One implementation, parameterised by id length and bucket policy, serves:

* the HyperDHT profile (dht-rpc: 32-byte ids, k=20, one row per shared-prefix length;
  ``kademlia-routing-table/index.js``, ``dht-rpc/lib/query.js``, ``dht-rpc/lib/io.js``), and
* the Mainline profile (BEP 5: 20-byte ids, K=8, bucket splitting; ``k-bucket``,
  ``bittorrent-dht/client.js``).

Modules:

* :mod:`~peerdht.kademlia.ids`       XOR metric, shared prefix length, refresh ids
* :mod:`~peerdht.kademlia.table`     routing table (:class:`Contact`, :class:`RoutingTable`)
* :mod:`~peerdht.kademlia.lookup`    iterative lookup engine (:class:`Lookup`)
* :mod:`~peerdht.kademlia.ops`       the typed op engine both DHTs run their commands on
  (:class:`Operation`, :class:`LookupOp`: lookup, store phase, finish / fail / cancel)
* :mod:`~peerdht.kademlia.requests`  requests in flight, retries, congestion window
* :mod:`~peerdht.kademlia.store`     size-bounded record store with expiry
* :mod:`~peerdht.kademlia.tokens`    write tokens from two rotating secrets
* :mod:`~peerdht.kademlia.ratelimit` token buckets (per-link and per-IP rate limits)

Nothing here reads a clock or a random source: time comes in as ``now`` (seconds, float) and
randomness from an injected :class:`random.Random`.
"""

from __future__ import annotations

from peerdht.kademlia.ids import common_prefix_length, distance, random_id_in_bucket
from peerdht.kademlia.lookup import Lookup
from peerdht.kademlia.ops import LookupOp, Operation
from peerdht.kademlia.requests import PendingRequest, RequestTable, Window
from peerdht.kademlia.store import ExpiringCache
from peerdht.kademlia.table import Contact, RoutingTable
from peerdht.kademlia.tokens import TokenIssuer

__all__ = [
    "Contact",
    "ExpiringCache",
    "Lookup",
    "LookupOp",
    "Operation",
    "PendingRequest",
    "RequestTable",
    "RoutingTable",
    "TokenIssuer",
    "Window",
    "common_prefix_length",
    "distance",
    "random_id_in_bucket",
]
