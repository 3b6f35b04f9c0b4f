"""Sockets and streams under both DHTs: everything that touches a UDP socket.

* :mod:`~peerdht.aio.transport.datagram`: one UDP socket (``DatagramSocket``): batched reads with GRO,
  GSO sends, one backlog, and the first-byte demultiplexer its consumers register into;
* :mod:`~peerdht.aio.transport.reactor`: one timer and one flush schedule for the cores on a set of sockets;
* :mod:`~peerdht.aio.transport.driver`: runs a sans-IO DHT core on its sockets (``DatagramDriver``, the
  reactor of the DHT core and of the UDX cores sharing its sockets);
* :mod:`~peerdht.aio.transport.udx`: UDX streams on a socket (``UDXSocket``, ``UDXStream``, ``splice``);
* :mod:`~peerdht.aio.transport.socketpool`: raw UDX streams on a DHT's own sockets (reserved stream ids,
  probes, birthday sockets);
* :mod:`~peerdht.aio.transport.ops`: operation ids of a core mapped to futures and async iterators.
"""
