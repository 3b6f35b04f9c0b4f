"""Protomux, the subset blind-relay needs: channels multiplexed over one framed stream, sans-IO.

Mirrors npm ``protomux`` 3.x ``index.js`` (written from its source, not copied). Every frame is one
secret-stream message:

* channel message: ``uint channel_id`` (the sender's local id, > 0), ``uint type``, payload;
* control (channel id 0): ``uint 0``, ``uint kind`` then

  - kind 0 **batch**: ``uint channel_id`` then items ``uint length, bytes`` (an item of length 0
    is followed by a new ``uint channel_id``); each item is ``uint type`` + payload, as above;
  - kind 1 **open**: ``uint local_id, string protocol, optionalBuffer id`` then the raw handshake;
  - kind 2 **reject**: ``uint id`` (the local id of the open being rejected);
  - kind 3 **close**: ``uint local_id``.

Channels pair by ``(protocol, id)``: each side sends ``open`` with its own local id; a channel is
open once both opens met. Messages name the *sender's* local id, so the receiver maps remote ids to
its channels. Unlike JS (unbounded backlog), opens waiting for a local channel and the bytes they
buffer are bounded; going over is a :class:`~peerdht.errors.DecodeError` (the caller drops the
stream, as JS does on its own protocol errors).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from peerdht.encoding.compact import Decoder, Encoder
from peerdht.errors import DecodeError, LocalProtocolError

BATCH: Final = 0
OPEN: Final = 1
REJECT: Final = 2
CLOSE: Final = 3
MAX_BATCH_DEPTH: Final = 4
"""Batches nested deeper than this are rejected (JS recurses without a limit)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenFrame:
    """The peer opens channel ``remote_id`` for ``protocol``/``id`` with ``handshake`` (raw bytes)."""

    remote_id: int
    protocol: str
    id: bytes | None
    handshake: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class RejectFrame:
    """The peer rejects our open of local channel ``local_id``."""

    local_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseFrame:
    """The peer closed its channel ``remote_id``."""

    remote_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageFrame:
    """Message ``type`` on the peer's channel ``remote_id``."""

    remote_id: int
    type: int
    payload: bytes


Frame = OpenFrame | RejectFrame | CloseFrame | MessageFrame


def encode_open(local_id: int, protocol: str, id: bytes | None = None, handshake: bytes = b"") -> bytes:
    """An ``open`` control frame (protomux ``Channel.open``)."""
    e = Encoder()
    e.uint(0)
    e.uint(OPEN)
    e.uint(local_id)
    e.string(protocol)
    e.buffer(id if id else None)
    e.raw(handshake)
    return e.getvalue()


def encode_reject(remote_id: int) -> bytes:
    """A ``reject`` control frame for the peer's channel ``remote_id``."""
    e = Encoder()
    e.uint(0)
    e.uint(REJECT)
    e.uint(remote_id)
    return e.getvalue()


def encode_close(local_id: int) -> bytes:
    """A ``close`` control frame for our channel ``local_id``."""
    e = Encoder()
    e.uint(0)
    e.uint(CLOSE)
    e.uint(local_id)
    return e.getvalue()


def encode_message(local_id: int, type: int, payload: bytes) -> bytes:
    """A channel message frame (protomux ``addMessage(...).send``, uncorked)."""
    e = Encoder()
    e.uint(local_id)
    e.uint(type)
    e.raw(payload)
    return e.getvalue()


def encode_batch(items: list[tuple[int, bytes]]) -> bytes:
    """A batch of ``(channel_id, type + payload)`` items (what protomux sends while corked)."""
    if not items:
        raise LocalProtocolError("empty batch")
    e = Encoder()
    e.uint(0)
    e.uint(BATCH)
    prev = items[0][0]
    e.uint(prev)
    for cid, body in items:
        if cid != prev:
            e.uint(0)
            e.uint(cid)
            prev = cid
        e.buffer(body)
    return e.getvalue()


def decode_frame(data: bytes) -> list[Frame]:
    """Decode one stream message into frames (a batch gives several; an empty message none).

    Unknown control kinds give nothing (as JS). Trailing bytes of a message belong to its payload.

    Raises:
        DecodeError: malformed bytes.
    """
    out: list[Frame] = []
    if not data:
        return out
    d = Decoder(data)
    _decode_one(d.uint(), d, out, 0)
    return out


def _decode_one(channel: int, d: Decoder, out: list[Frame], depth: int) -> None:
    kind = d.uint()
    if channel != 0:
        out.append(MessageFrame(remote_id=channel, type=kind, payload=d.raw()))
        return
    if kind == BATCH:
        if depth >= MAX_BATCH_DEPTH:
            raise DecodeError("protomux batches nested too deep")
        data = d.raw()
        b = Decoder(data)
        cid = b.uint()
        while not b.at_end():
            n = b.uint()
            if n == 0:
                cid = b.uint()
                continue
            item = data[b.offset : b.offset + n]  # JS clamps a short last item
            b.offset += len(item)
            _decode_one(cid, Decoder(item), out, depth + 1)
    elif kind == OPEN:
        rid = d.uint()
        protocol = d.string()
        pid = d.optional_buffer()
        out.append(OpenFrame(remote_id=rid, protocol=protocol, id=pid, handshake=d.raw()))
    elif kind == REJECT:
        out.append(RejectFrame(local_id=d.uint()))
    elif kind == CLOSE:
        out.append(CloseFrame(remote_id=d.uint()))


# ---------------------------------------------------------------------------------- state machine


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelOpened:
    """Both sides opened local channel ``channel``; ``handshake`` is the peer's raw handshake."""

    channel: int
    handshake: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelMessage:
    """Message ``type`` with ``payload`` arrived on local channel ``channel``."""

    channel: int
    type: int
    payload: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelClosed:
    """Local channel ``channel`` closed; ``remote``: the peer closed or rejected it."""

    channel: int
    remote: bool


MuxEvent = ChannelOpened | ChannelMessage | ChannelClosed


@dataclass(kw_only=True, slots=True)
class _Chan:
    local_id: int
    key: tuple[str, bytes | None]
    remote_id: int = 0
    opened: bool = False


@dataclass(kw_only=True, slots=True)
class _Incoming:
    remote_id: int
    handshake: bytes
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0


class Mux:
    """One end of a protomux session, sans-IO.

    Feed every stream message to :meth:`receive_message`; send every item of :meth:`data_to_send`
    as one stream message; read :meth:`next_event`.

    Args:
        max_incoming: the peer's opens that may wait for a matching local channel.
        max_buffered: bytes of messages buffered for such waiting opens.
    """

    def __init__(self, *, max_incoming: int = 16, max_buffered: int = 65536) -> None:
        self._max_incoming = max_incoming
        self._max_buffered = max_buffered
        self._local: dict[int, _Chan] = {}
        self._remote: list[_Chan | _Incoming | None] = []  # index = remote id - 1
        self._outgoing: dict[tuple[str, bytes | None], deque[int]] = {}
        self._incoming: dict[tuple[str, bytes | None], deque[_Incoming]] = {}
        self._buffered = 0
        self._next_local = 1
        self._out: list[bytes] = []
        self._events: deque[MuxEvent] = deque()

    # -- commands

    def open_channel(self, protocol: str, id: bytes | None = None, handshake: bytes = b"") -> int:
        """Open a channel for ``protocol``/``id`` (sends ``open``); returns its local id."""
        key = (protocol, id or None)
        lid = self._next_local
        self._next_local += 1
        ch = _Chan(local_id=lid, key=key)
        self._local[lid] = ch
        self._out.append(encode_open(lid, protocol, id, handshake))
        waiting = self._incoming.get(key)
        if waiting:
            inc = waiting.popleft()
            if not waiting:
                del self._incoming[key]
            self._buffered -= inc.size
            self._pair(ch, inc.remote_id, inc.handshake)
            for type_, payload in inc.pending:
                self._events.append(ChannelMessage(channel=lid, type=type_, payload=payload))
        else:
            self._outgoing.setdefault(key, deque()).append(lid)
        return lid

    def send(self, channel: int, type: int, payload: bytes) -> bool:
        """Queue message ``type`` on ``channel``; False (nothing sent) if it is closed."""
        if channel not in self._local:
            return False
        self._out.append(encode_message(channel, type, payload))
        return True

    def close_channel(self, channel: int) -> None:
        """Close our channel (sends ``close``); emits :class:`ChannelClosed`."""
        ch = self._local.get(channel)
        if ch is None:
            return
        self._out.append(encode_close(channel))
        self._drop(ch, remote=False)

    def is_open(self, channel: int) -> bool:
        """Whether ``channel`` is fully open (both sides)."""
        ch = self._local.get(channel)
        return ch is not None and ch.opened

    # -- sans-IO

    def receive_message(self, data: bytes) -> None:
        """Process one stream message from the peer.

        Raises:
            DecodeError: malformed or protocol-violating input; drop the stream.
        """
        for fr in decode_frame(data):
            if isinstance(fr, MessageFrame):
                self._on_message(fr)
            elif isinstance(fr, OpenFrame):
                self._on_open(fr)
            elif isinstance(fr, CloseFrame):
                self._on_close(fr.remote_id)
            else:
                self._on_reject(fr.local_id)

    def data_to_send(self) -> list[bytes]:
        """Messages to write, each as one stream message."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> MuxEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def close_all(self) -> None:
        """The stream ended: every channel closes (remote side)."""
        for ch in list(self._local.values()):
            self._drop(ch, remote=True)

    # -- internals

    def _pair(self, ch: _Chan, remote_id: int, handshake: bytes) -> None:
        ch.remote_id = remote_id
        ch.opened = True
        self._remote[remote_id - 1] = ch
        self._events.append(ChannelOpened(channel=ch.local_id, handshake=handshake))

    def _drop(self, ch: _Chan, *, remote: bool) -> None:
        self._local.pop(ch.local_id, None)
        q = self._outgoing.get(ch.key)
        if q is not None and ch.local_id in q:
            q.remove(ch.local_id)
            if not q:
                del self._outgoing[ch.key]
        if ch.remote_id:
            self._remote[ch.remote_id - 1] = None
        self._events.append(ChannelClosed(channel=ch.local_id, remote=remote))

    def _on_open(self, fr: OpenFrame) -> None:
        rid = fr.remote_id
        if rid == 0:
            self._out.append(encode_reject(0))
            return
        if rid == len(self._remote) + 1:
            self._remote.append(None)
        if rid > len(self._remote) or self._remote[rid - 1] is not None:
            raise DecodeError("invalid protomux open")
        key = (fr.protocol, fr.id)
        q = self._outgoing.get(key)
        if q:
            lid = q.popleft()
            if not q:
                del self._outgoing[key]
            self._pair(self._local[lid], rid, fr.handshake)
            return
        waiting = self._incoming.setdefault(key, deque())
        if sum(len(w) for w in self._incoming.values()) >= self._max_incoming:
            if not waiting:
                del self._incoming[key]
            self._out.append(encode_reject(rid))
            return
        inc = _Incoming(remote_id=rid, handshake=fr.handshake)
        self._remote[rid - 1] = inc
        waiting.append(inc)

    def _on_message(self, fr: MessageFrame) -> None:
        rid = fr.remote_id
        slot = self._remote[rid - 1] if rid <= len(self._remote) else None
        if slot is None:
            return  # closed channel: ignore (JS does too)
        if isinstance(slot, _Incoming):
            slot.pending.append((fr.type, fr.payload))
            n = 512 + len(fr.payload)
            slot.size += n
            self._buffered += n
            if self._buffered > self._max_buffered:
                raise DecodeError("too many bytes buffered for unopened protomux channels")
            return
        self._events.append(ChannelMessage(channel=slot.local_id, type=fr.type, payload=fr.payload))

    def _on_close(self, rid: int) -> None:
        slot = self._remote[rid - 1] if 0 < rid <= len(self._remote) else None
        if slot is None:
            return
        if isinstance(slot, _Incoming):
            self._remote[rid - 1] = None
            self._buffered -= slot.size
            for key, q in list(self._incoming.items()):
                if slot in q:
                    q.remove(slot)
                    if not q:
                        del self._incoming[key]
            return
        self._drop(slot, remote=True)

    def _on_reject(self, lid: int) -> None:
        ch = self._local.get(lid)
        if ch is None or ch.opened:
            raise DecodeError("invalid protomux reject")
        self._drop(ch, remote=True)
