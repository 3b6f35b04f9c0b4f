"""Browsers as DHT peers: the sans-IO web overlay (KRPC over WebSocket/WebRTC links, webtorrent-dht's
signalling) in :mod:`peerdht.web.overlay`, its events in :mod:`peerdht.web.events`, and the page and
browser node (``static/``) that a :class:`peerdht.aio.webnode.WebNode` serves."""
