"""Browsers as DHT peers, the I/O half of :mod:`peerdht.web`.

* :mod:`~peerdht.aio.web.node`: ``WebNode``, the node browsers join (the UDP Mainline node beside it);
* :mod:`~peerdht.aio.web.routes`: its aiohttp routes (the page, ``/ws``, webtorrent-dht's ``POST /``
  bootstrap, the Pkarr relay);
* :mod:`~peerdht.aio.web.links`: WebSocket and WebRTC links, each an address of the web overlay;
* :mod:`~peerdht.aio.web.webrtc`: the one aiortc data-channel layer (also used by rooms).
"""
