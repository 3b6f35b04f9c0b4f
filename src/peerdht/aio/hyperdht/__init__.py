"""HyperDHT on asyncio: the node and everything that runs on its sockets.

* :mod:`~peerdht.aio.hyperdht.dht`: :class:`HyperDHT`, the node (re-exported here);
* :mod:`~peerdht.aio.hyperdht.testnet`: ``Testnet``, a local network of nodes;
* :mod:`~peerdht.aio.hyperdht.connect`: connect by public key (handshake, paths, holepunching);
* :mod:`~peerdht.aio.hyperdht.server`: ``Server``, accepting connections by public key;
* :mod:`~peerdht.aio.hyperdht.punch`: runs a sans-IO punch session (:mod:`peerdht.holepunch`) on the
  node's sockets;
* :mod:`~peerdht.aio.hyperdht.relay` and :mod:`~peerdht.aio.hyperdht.relay_upgrade`: the blind relay
  (server and client) and the relay -> direct move of a relayed stream;
* :mod:`~peerdht.aio.hyperdht.secretstream`: ``SecretStream``, the encrypted stream over UDX.
"""

from peerdht.aio.hyperdht.dht import HyperDHT

__all__ = ["HyperDHT"]
