"""P2PT message framing: ``^`` + JSON chunks on a WebRTC data channel, and bounded reassembly (sans-IO).

Wire format of p2pt 1.6.2 (``src/p2pt.js``: ``send``, ``_chunkHandler``): every P2PT message travels as one or
more *text* data-channel messages ``'^' + JSON.stringify(chunk)`` where ``chunk`` is
``{"id": <message id>, "msg": <str>, "o": 1 (JSON message, optional), "c": <chunk index from 0>,
"last": true (final chunk only)}``. A message longer than :data:`CHUNK_UNITS` = 16,000 UTF-16 code units
(JS string length) is sliced into chunks of that many units; a JSON message is ``JSON.stringify``-ed first
and every chunk carries ``"o": 1``. A response reuses the id of the message it answers.

Where we differ from p2pt on purpose (the wire stays the same):

* chunks are keyed per peer *and* id (p2pt keys them by id alone, so two peers using one id mix their
  chunks); the key is opaque here, the room passes ``(peer id, message id)``;
* reassembly is bounded: a chunk index beyond what :attr:`Reassembler.max_message` allows, a duplicate
  index, a ``last`` chunk with earlier chunks missing, more than :attr:`Reassembler.max_partial` messages
  in flight per peer, more than ``max_message`` units buffered per peer, or a partial message that made no
  progress for ``timeout`` seconds: each is dropped (a :class:`~peerdht.errors.DecodeError` for the chunk
  that broke a rule, :meth:`Reassembler.expire` for the stale ones). p2pt buffers without limit;
* empty strings are sent (one chunk with ``"msg": ""``; p2pt sends nothing and never resolves), and any
  JSON value other than a string (numbers and booleans too) is sent as a JSON message.

JS strings are UTF-16: a slice may split a surrogate pair, which ``JSON.stringify`` escapes as ``\\udXXX``.
Python's ``json`` decodes such an escape to a lone surrogate; :func:`join_utf16` pairs them up again after
joining and replaces any that stay unpaired with U+FFFD.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from peerdht.errors import DecodeError

__all__ = [
    "CHUNK_UNITS",
    "MAX_FRAME",
    "PREFIX",
    "Chunk",
    "Complete",
    "Reassembler",
    "decode_frame",
    "encode_message",
    "join_utf16",
    "split_utf16",
    "utf16_len",
]

#: p2pt's ``MAX_MESSAGE_LENGTH``: chunk size in UTF-16 code units (JS ``String.length``).
CHUNK_UNITS: Final = 16000
#: p2pt's ``JSON_MESSAGE_IDENTIFIER``: the first character of every P2PT frame.
PREFIX: Final = "^"
#: Largest frame accepted, in characters (or bytes for a binary frame): 256 KiB, Chromium's and aiortc's
#: SCTP ``max-message-size``. A p2pt chunk is at most ~16,000 units of JSON-escaped text (<= 96 KB).
MAX_FRAME: Final = 256 * 1024
#: Longest accepted message id when it is a string (p2pt uses integers 100000-199999).
MAX_ID_CHARS: Final = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

MessageId = int | str


@dataclass(frozen=True, kw_only=True, slots=True)
class Chunk:
    """One decoded P2PT frame.

    Attributes:
        id: the message id (``int``; p2pt draws 100000-199999) or a string of at most 64 characters.
        msg: this chunk's slice of the message text (for a JSON message: of its JSON text).
        index: ``c``, the chunk index from 0.
        last: ``last``: the final chunk.
        is_json: ``o``: the joined text is JSON to be parsed.
    """

    id: MessageId
    msg: str
    index: int
    last: bool
    is_json: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Complete:
    """A message whose chunks all arrived.

    Attributes:
        key: the key the chunks were filed under (the room uses ``(peer id, message id)``).
        id: the message id.
        msg: ``str``, or the parsed JSON value when the message was sent as JSON (``o``).
        units: the message's length in UTF-16 units (of its JSON text for a JSON message).
    """

    key: Hashable
    id: MessageId
    msg: Any
    units: int


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (JS ``String.length``)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_utf16(text: str, units: int = CHUNK_UNITS) -> list[str]:
    """Slice ``text`` every ``units`` UTF-16 code units, as JS ``String.slice`` does.

    A surrogate pair cut at a boundary leaves a lone surrogate at the end of one slice and the start of
    the next (JSON-escape them when sending: ``json.dumps`` with ``ensure_ascii``). An empty ``text`` gives
    ``[""]``.
    """
    if units <= 0:
        raise ValueError("units must be positive")
    if not _ASTRAL.search(text):
        return [text[i : i + units] for i in range(0, len(text), units)] or [""]
    raw = text.encode("utf-16-le", "surrogatepass")
    step = 2 * units
    return [raw[i : i + step].decode("utf-16-le", "surrogatepass") for i in range(0, len(raw), step)]


def join_utf16(parts: list[str]) -> str:
    """Join chunk texts and pair up surrogates split across chunks (unpaired ones become U+FFFD)."""
    text = "".join(parts)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encode_message(msg_id: MessageId, msg: Any, *, units: int = CHUNK_UNITS) -> list[str]:
    """Frame one P2PT message: a list of ``'^' + JSON`` text frames to send in order on one channel.

    Args:
        msg_id: the message id (a new one for a request, the request's id for a response).
        msg: a ``str`` (sent as text) or any JSON-serialisable value (sent as JSON text with ``"o": 1``).
        units: chunk size in UTF-16 units (p2pt: 16,000).

    Raises:
        TypeError, ValueError: ``msg`` is not JSON-serialisable (``json.dumps``'s own errors).
    """
    is_json = not isinstance(msg, str)
    text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False) if is_json else msg
    parts = split_utf16(text, units)
    frames = []
    last_index = len(parts) - 1
    for index, part in enumerate(parts):
        chunk: dict[str, Any] = {"id": msg_id, "msg": part}
        if is_json:
            chunk["o"] = 1
        chunk["c"] = index
        if index == last_index:
            chunk["last"] = True
        ascii_only = _SURROGATE.search(part) is not None  # a lone surrogate cannot travel as UTF-8
        frames.append(PREFIX + json.dumps(chunk, ensure_ascii=ascii_only, separators=(",", ":")))
    return frames


def decode_frame(frame: str | bytes) -> Chunk | None:
    """Decode one data-channel message.

    Returns:
        the :class:`Chunk`, or ``None`` when the message is not a P2PT frame (does not start with ``^``;
        p2pt only reports those as raw ``data``).

    Raises:
        DecodeError: a frame over :data:`MAX_FRAME`, not UTF-8, not a JSON object, or with a bad ``id``
            (not a JS safe integer or a string of at most 64 characters), ``msg`` (not a string), ``c`` (not an
            integer >= 0), ``last`` or ``o`` (not a boolean, 0, 1 or null). ``rooms.js`` decides alike.
    """
    if len(frame) > MAX_FRAME:
        raise DecodeError(f"P2PT frame of {len(frame)} (limit {MAX_FRAME})")
    if isinstance(frame, bytes | bytearray | memoryview):
        try:
            frame = bytes(frame).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("P2PT frame is not UTF-8") from e
    if not frame.startswith(PREFIX):
        return None
    try:
        data = json.loads(frame[1:], parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError; so are huge int literals
        raise DecodeError(f"P2PT frame is not JSON: {str(e)[:80]}") from e
    if not isinstance(data, dict):
        raise DecodeError("P2PT frame is not a JSON object")
    msg_id = data.get("id")
    if isinstance(msg_id, str):
        if len(msg_id) > MAX_ID_CHARS:
            raise DecodeError("P2PT frame: id string too long")
    else:
        msg_id = _safe_int(msg_id)
        if msg_id is None:
            raise DecodeError("P2PT frame: id is not a safe integer or a string")
    msg = data.get("msg")
    if not isinstance(msg, str):
        raise DecodeError("P2PT frame: msg is not a string")
    index = _safe_int(data.get("c", 0))
    if index is None or index < 0:
        raise DecodeError("P2PT frame: c is not an integer >= 0")
    last = data.get("last", False)
    if last not in (True, False, None, 1, 0):
        raise DecodeError("P2PT frame: bad last")
    is_json = data.get("o", 0)
    if is_json not in (True, False, None, 1, 0):
        raise DecodeError("P2PT frame: bad o")
    return Chunk(id=msg_id, msg=msg, index=index, last=bool(last), is_json=bool(is_json))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json takes NaN/Infinity; JSON.parse does not


def _safe_int(value: Any) -> int | None:
    """``value`` as an int when JS would see a safe integer (``1`` and ``1.0`` alike), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if not -(2**53) < value < 2**53:  # Number.isSafeInteger
        return None
    return int(value)


@dataclass(slots=True)
class _Partial:
    parts: dict[int, str] = field(default_factory=dict)
    units: int = 0
    touched: float = 0.0


class Reassembler:
    """Bounded reassembly of chunked P2PT messages for one peer (sans-IO: time comes in as ``now``).

    Args:
        max_message: the largest message accepted, in UTF-16 units (default 16 Mi units, ~16 MB of ASCII).
            Also the most a peer may have buffered across all its partial messages.
        max_partial: how many messages may be in flight (started, not finished) at once.
        timeout: seconds after which a partial message that received nothing is dropped
            (:meth:`expire`).
        units: the chunk size (p2pt: 16,000); chunk indices at or beyond ``ceil(max_message / units)``
            are refused.

    Memory per peer is bounded by about ``max_message`` characters plus ``max_partial`` small entries.
    """

    def __init__(
        self,
        *,
        max_message: int = 16 * 1024 * 1024,
        max_partial: int = 32,
        timeout: float = 60.0,
        units: int = CHUNK_UNITS,
    ) -> None:
        self.max_message = max_message
        self.max_partial = max_partial
        self.timeout = timeout
        self.max_chunks = max(1, -(-max_message // units))
        self._partials: OrderedDict[Hashable, _Partial] = OrderedDict()
        self.buffered = 0
        """UTF-16 units (approximately: Python characters) held in partial messages."""
        self.dropped = 0
        """Chunks and partial messages dropped so far (bad chunks, evictions, expiries)."""

    def __len__(self) -> int:
        return len(self._partials)

    def receive(self, key: Hashable, chunk: Chunk, now: float) -> Complete | None:
        """File one chunk under ``key``; return the message when its last chunk completes it.

        Raises:
            DecodeError: the chunk breaks a bound (index out of range, duplicate index, message too long,
                chunks missing at ``last``, a JSON message that does not parse). The partial message under
                ``key`` is dropped with it, so a flood costs at most one message's worth of memory.
        """
        if chunk.index >= self.max_chunks:
            self._drop(key)
            raise DecodeError(f"P2PT chunk index {chunk.index} out of range (at most {self.max_chunks - 1})")
        partial = self._partials.get(key)
        if partial is None:
            if chunk.last and chunk.index == 0:  # the common case: a one-chunk message
                return self._finish(key, chunk, [chunk.msg])
            while len(self._partials) >= self.max_partial:
                self._evict_oldest()
            partial = self._partials[key] = _Partial(touched=now)
        elif chunk.index in partial.parts:
            self._drop(key)
            raise DecodeError(f"P2PT chunk {chunk.index} of message {chunk.id!r} arrived twice")
        size = len(chunk.msg)
        if partial.units + size > self.max_message:
            self._drop(key)
            raise DecodeError(f"P2PT message {chunk.id!r} over {self.max_message} units")
        while self.buffered + size > self.max_message and len(self._partials) > 1:
            self._evict_oldest(keep=key)
        partial.parts[chunk.index] = chunk.msg
        partial.units += size
        partial.touched = now
        self.buffered += size
        self._partials.move_to_end(key)
        if not chunk.last:
            return None
        self._drop(key, count=False)
        if len(partial.parts) != chunk.index + 1 or max(partial.parts) != chunk.index:
            self.dropped += 1
            raise DecodeError(f"P2PT message {chunk.id!r}: last chunk {chunk.index} but chunks are missing or beyond it")
        return self._finish(key, chunk, [partial.parts[i] for i in range(chunk.index + 1)])

    def expire(self, now: float) -> int:
        """Drop partial messages that received nothing for ``timeout`` seconds; return how many."""
        stale = [key for key, p in self._partials.items() if now - p.touched >= self.timeout]
        for key in stale:
            self._drop(key)
        return len(stale)

    def get_timer(self) -> float | None:
        """When :meth:`expire` has something to do next (seconds, the same clock as ``now``), or ``None``."""
        if not self._partials:
            return None
        return min(p.touched for p in self._partials.values()) + self.timeout

    def clear(self) -> None:
        """Forget every partial message (the peer left)."""
        self._partials.clear()
        self.buffered = 0

    def _finish(self, key: Hashable, chunk: Chunk, parts: list[str]) -> Complete:
        text = join_utf16(parts)
        units = utf16_len(text)
        if units > self.max_message:
            self.dropped += 1
            raise DecodeError(f"P2PT message {chunk.id!r} over {self.max_message} units")
        msg: Any = text
        if chunk.is_json:
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError) as e:
                self.dropped += 1
                raise DecodeError(f"P2PT JSON message {chunk.id!r} does not parse: {str(e)[:80]}") from e
        return Complete(key=key, id=chunk.id, msg=msg, units=units)

    def _drop(self, key: Hashable, *, count: bool = True) -> None:
        partial = self._partials.pop(key, None)
        if partial is not None:
            self.buffered -= partial.units
            if count:
                self.dropped += 1

    def _evict_oldest(self, keep: Hashable = None) -> None:
        for key in self._partials:
            if key != keep:
                self._drop(key)
                return
