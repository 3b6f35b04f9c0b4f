"""Sockets and streams under both DHTs: everything that touches a UDP socket.

* :mod:`~peerdht.aio.transport.driver`: runs a sans-IO datagram core on asyncio UDP sockets (batched
  reads, one flush per batch);
* :mod:`~peerdht.aio.transport.udx`: UDX streams on one UDP socket (``UDXSocket``, ``UDXStream``);
* :mod:`~peerdht.aio.transport.socketpool`: raw UDX streams on a DHT's own sockets (reserved stream ids,
  probes, birthday sockets);
* :mod:`~peerdht.aio.transport.ops`: operation ids of a core mapped to futures and async iterators.
"""
