"""UDX: reliable, ordered, congestion-controlled streams over UDP (sans-IO), wire-compatible with libudx.

* :mod:`peerdht.udx.packet` -- the 20-byte header codec (``encode_packet``, ``decode_packet``, ``is_udx_packet``);
* :mod:`peerdht.udx.stream` -- :class:`UDXSocketCore`, every stream of one UDP socket: commands, the
  five sans-IO methods, the receive path split by what arrives;
* :mod:`peerdht.udx.events` -- the events it emits;
* internal rooms of the core: :mod:`~peerdht.udx.state` (a stream's state), :mod:`~peerdht.udx.sender`
  (packetizing, retransmission, loss detection, RTT, MTU search), :mod:`~peerdht.udx.sack` (the
  receiver's ACK and SACK ranges), :mod:`~peerdht.udx.timers` (the deadline heap, liveness);
* :mod:`peerdht.udx.congestion` -- the sender's window controller.

The asyncio layer is :mod:`peerdht.aio.transport.udx`.
"""

from peerdht.udx.events import (
    DatagramReceived,
    MessageReceived,
    PreConnectPacket,
    RemoteAddress,
    RemoteChanged,
    StreamData,
    StreamEnd,
    StreamTerminated,
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
    "StreamData",
    "StreamEnd",
    "StreamTerminated",
    "StreamWritable",
    "UDXEvent",
    "UDXSocketCore",
    "decode_packet",
    "encode_packet",
    "is_udx_packet",
]
