"""HyperDHT and dht-rpc, sans-IO: wire formats, the node, its storage and the connection router.

* :mod:`~peerdht.hyper.messages` (dht-rpc datagrams), :mod:`~peerdht.hyper.records` (command payloads),
  :mod:`~peerdht.hyper.constants`, :mod:`~peerdht.hyper.crypto` (hashing, key pairs, record signatures);
* :mod:`~peerdht.hyper.rpc` (the dht-rpc node: requests, routing table upkeep, queries, NAT sampling; its
  layers :mod:`~peerdht.hyper.rpc_requests`, :mod:`~peerdht.hyper.rpc_ops`, :mod:`~peerdht.hyper.rpc_network`),
  :mod:`~peerdht.hyper.node` (``HyperDHTNode``: dht-rpc plus HyperDHT's storage commands),
  :mod:`~peerdht.hyper.storage` (what a persistent node answers), :mod:`~peerdht.hyper.events`;
* :mod:`~peerdht.hyper.router` (PEER_HANDSHAKE / PEER_HOLEPUNCH routing), :mod:`~peerdht.hyper.handshake`
  (the pure parts of the handshake exchange), :mod:`~peerdht.hyper.nat` (how the network sees us),
  :mod:`~peerdht.hyper.limits` (bounded state for work strangers can cause).

The asyncio layer is :mod:`peerdht.aio.hyperdht`.
"""
