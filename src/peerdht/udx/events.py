"""Events produced by :class:`peerdht.udx.stream.UDXSocketCore` (read them with ``next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.errors import StreamError


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamData:
    """In-order bytes arrived on a stream (consecutive packets are coalesced into one event)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamEnd:
    """The peer half-closed the stream (END received and everything before it delivered): EOF."""

    stream_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamTerminated:
    """The stream is gone, however it ended (udx-native's ``'close'``; named like aioquic's
    ``ConnectionTerminated``, not like the exception :class:`peerdht.errors.StreamClosed`). ``error`` is
    None after a clean close (END both ways, all acked) or a local ``destroy``;
    :class:`peerdht.errors.StreamReset` when the peer sent DESTROY or retransmissions timed out."""

    stream_id: int
    error: StreamError | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamWritable:
    """Bytes queued for sending fell below the high-water mark again (see ``UDXSocketCore.send``)."""

    stream_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageReceived:
    """An unordered MESSAGE datagram arrived on a stream (udx-native ``stream.send``/``'message'``)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteChanged:
    """``change_remote`` took effect: everything sent to the old remote was acknowledged."""

    stream_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PreConnectPacket:
    """A packet for a stream created with ``firewall=False`` arrived before it was connected, from a
    new address (udx-native calls its ``firewall`` hook here; hyperdht connects the stream to it)."""

    stream_id: int
    addr: tuple[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteAddress:
    """A connected stream watched with ``watch_remote_address`` got a packet from a new address
    (reported once per address): the peer moved, e.g. from a relay to a direct path (hyperdht's
    relay -> direct upgrade; udx-native reports such packets through its ``firewall`` hook)."""

    stream_id: int
    addr: tuple[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class DatagramReceived:
    """A datagram that is not UDX, or UDX for a stream id this socket does not know.

    HyperDHT shares the socket with dht-rpc: such datagrams belong to the DHT (libudx passes them to
    the socket's ``on_recv``)."""

    data: bytes
    addr: tuple[str, int]


UDXEvent = (
    StreamData
    | StreamEnd
    | StreamTerminated
    | StreamWritable
    | MessageReceived
    | RemoteChanged
    | PreConnectPacket
    | RemoteAddress
    | DatagramReceived
)
