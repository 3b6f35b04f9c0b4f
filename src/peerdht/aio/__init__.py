"""The asyncio layer: every socket, timer and future of peerdht lives under this package.

* UDP and UDX: :mod:`~peerdht.aio.transport` (the socket driver, UDX streams, the raw-stream pool over a
  DHT's sockets, operation ids to futures).
* HyperDHT: :mod:`~peerdht.aio.hyperdht` (the package: ``HyperDHT``, ``Testnet``, connect by public
  key, ``Server``, the punch runner, the blind relay and the relay -> direct move, ``SecretStream``).
* Mainline: :mod:`~peerdht.aio.mainline` (``MainlineDHT``, ``MainlineTestnet``).
* Browsers (the I/O half of :mod:`peerdht.web`): :mod:`~peerdht.aio.web` (``WebNode``, its routes, its
  WebSocket and WebRTC links, the aiortc data-channel layer).
* Rooms (the I/O half of :mod:`peerdht.tracker`): :mod:`~peerdht.aio.rooms` (a WebTorrent tracker on
  aiohttp, ``Room``).
"""
