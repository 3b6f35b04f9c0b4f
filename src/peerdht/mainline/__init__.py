"""The BitTorrent Mainline DHT (BEP 5, 32, 42, 43, 44, 51), sans-IO, on the shared Kademlia core.

* :mod:`~peerdht.mainline.messages`: KRPC messages;
* :mod:`~peerdht.mainline.crypto`: BEP 42 node ids from IPs, BEP 44 targets and signatures;
* :mod:`~peerdht.mainline.node`: ``MainlineNode``, the node, composed of :mod:`~peerdht.mainline.core`
  (state and I/O), :mod:`~peerdht.mainline.server` (answering queries) and :mod:`~peerdht.mainline.client`
  (lookups, announces, puts);
* :mod:`~peerdht.mainline.events`: its events and results.

The asyncio layer is :mod:`peerdht.aio.mainline`.
"""
