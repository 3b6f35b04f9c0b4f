"""WebTorrent trackers and P2PT rooms, sans-IO.

* :mod:`peerdht.tracker.messages`: the WebSocket tracker protocol, client side (npm ``bittorrent-tracker``
  ``lib/client/websocket-tracker.js``): requests built, replies parsed into events.
* :mod:`peerdht.tracker.client`: one tracker URL for one room: when to announce, our offers and their expiry,
  answers matched to offers, reconnect back-off.
* :mod:`peerdht.tracker.server`: the tracker itself (``server.js``, ``lib/server/swarm.js``): swarms, offer and
  answer relay, bounds.
* :mod:`peerdht.tracker.framing`: P2PT's data-channel framing (``^`` + JSON chunks, p2pt ``src/p2pt.js``) and
  bounded reassembly.

The I/O halves are :mod:`peerdht.aio.rooms.tracker` (aiohttp server) and :mod:`peerdht.aio.rooms.room` (the room peer).
"""
