"""UDX: reliable, ordered, congestion-controlled streams over UDP (sans-IO), wire-compatible with libudx.

* :mod:`peerdht.udx.packet` -- the 20-byte header codec (``encode_packet``, ``decode_packet``, ``is_udx_packet``);
* :mod:`peerdht.udx.stream` -- :class:`UDXSocketCore`, every stream of one UDP socket;
* :mod:`peerdht.udx.events` -- the events it emits;
* :mod:`peerdht.udx.congestion` -- the sender's window controller.

The asyncio layer is :mod:`peerdht.aio.udx`.
"""

from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamClosed,
    StreamData,
    StreamEnd,
    StreamWritable,
    UDXEvent,
)
from peerdht.udx.packet import Packet, decode_packet, encode_packet, is_udx_packet
from peerdht.udx.stream import UDXSocketCore

__all__ = [
    "DatagramReceived",
    "MessageReceived",
    "Packet",
    "PreConnectPacket",
    "RemoteAddress",
    "RemoteChanged",
    "StreamClosed",
    "StreamData",
    "StreamEnd",
    "StreamWritable",
    "UDXEvent",
    "UDXSocketCore",
    "decode_packet",
    "encode_packet",
    "is_udx_packet",
]
