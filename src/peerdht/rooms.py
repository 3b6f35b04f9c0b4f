"""P2PT rooms (public module): :class:`Room` and its events.

``from peerdht.rooms import Room, PeerConnect, PeerClose, Message, TrackerConnect, TrackerWarning``; ``Room``
is also ``peerdht.Room``. The implementation is :mod:`peerdht.aio.rooms.room`; the tracker server is
:class:`peerdht.aio.rooms.tracker.TrackerServer` (re-exported here), the wire codecs are in :mod:`peerdht.tracker`.
"""

from __future__ import annotations

from peerdht.aio.rooms.room import (
    Message,
    PeerClose,
    PeerConnect,
    Room,
    RoomEvent,
    RoomPeer,
    TrackerConnect,
    TrackerWarning,
)
from peerdht.aio.rooms.tracker import TrackerServer

__all__ = [
    "Message",
    "PeerClose",
    "PeerConnect",
    "Room",
    "RoomEvent",
    "RoomPeer",
    "TrackerConnect",
    "TrackerServer",
    "TrackerWarning",
]
