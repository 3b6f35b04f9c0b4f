"""Browsers as DHT peers (issues 9 and 10), the sans-IO half: no I/O, no clock (``now`` in seconds).

* :mod:`peerdht.web.overlay`  the web overlay core (Mainline KRPC over WebSocket/WebRTC links, webtorrent-dht's
  signalling), with aioquic's five methods;
* :mod:`peerdht.web.links`    its link table and bounds (:class:`~peerdht.web.links.WebLimits`);
* :mod:`peerdht.web.signals`  checks on untrusted signals, signalling records;
* :mod:`peerdht.web.relay`    relayed messages (our ``relay`` query) for nodes without a link;
* :mod:`peerdht.web.bridge`   the bridge to UDP Mainline (held lookups, bridged writes);
* :mod:`peerdht.web.events`   the overlay's events for the asyncio layer;
* :mod:`peerdht.web.pkarr`    the Pkarr relay codec (z-base32 keys, ``sig ‖ seq ‖ v`` bodies).

``static/`` holds the page and the browser node (plain ES modules) that :class:`peerdht.aio.web.node.WebNode`
serves; its I/O lives in :mod:`peerdht.aio.web` (``node``, ``links``, ``routes``, ``webrtc``).
"""
