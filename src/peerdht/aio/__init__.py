"""The asyncio layer: every socket, timer and future of peerdht lives under this package.

* UDP and UDX: :mod:`~peerdht.aio.transport` (the socket driver, UDX streams, the raw-stream pool over a
  DHT's sockets, operation ids to futures).
* HyperDHT: :mod:`~peerdht.aio.hyperdht` (the package: ``HyperDHT``, ``Testnet``, connect by public
  key, ``Server``, the punch runner, the blind relay and the relay -> direct move, ``SecretStream``).
* Mainline: :mod:`~peerdht.aio.mainline` (``MainlineDHT``, ``MainlineTestnet``).
* Browsers (the I/O half of :mod:`peerdht.web`): :mod:`~peerdht.aio.webnode` (``WebNode``),
  :mod:`~peerdht.aio.webhttp` (its page, WebSocket and HTTP routes), :mod:`~peerdht.aio.weblinks`
  (WebSocket and WebRTC links), :mod:`~peerdht.aio.webrtc` (aiortc data channels).
* Rooms (the I/O half of :mod:`peerdht.tracker`): :mod:`~peerdht.aio.tracker` (a WebTorrent tracker on
  aiohttp), :mod:`~peerdht.aio.rooms` (``Room``).
"""
