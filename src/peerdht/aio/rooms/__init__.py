"""P2PT rooms over WebTorrent trackers, the I/O half of :mod:`peerdht.tracker` and :mod:`peerdht.rooms`.

* :mod:`~peerdht.aio.rooms.tracker`: a WebTorrent tracker on aiohttp (``TrackerServer``);
* :mod:`~peerdht.aio.rooms.room`: ``Room``, a room member over one or more trackers.
"""
