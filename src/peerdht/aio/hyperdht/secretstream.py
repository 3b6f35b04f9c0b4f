"""An asyncio encrypted stream (secret-stream) over any reliable byte stream.

The raw stream is anything with the :class:`RawStream` methods: a UDX stream
(:mod:`peerdht.udx`), or a TCP connection adapted by :class:`TCPRawStream`. The encryption is the
sans-IO :class:`peerdht.secure.secretstream.SecretStreamCore`; this module only moves bytes, runs
the keep-alive timer and gives asyncio stream semantics (``read``, ``readexactly``, ``readline``,
``write``, ``drain``, ``write_eof``, ``close``, ``wait_closed``, ``async for``).

Mirrors ``@hyperswarm/secret-stream`` 6.9 ``NoiseSecretStream`` on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from peerdht.errors import (
    DecodeError,
    LocalProtocolError,
    PeerDHTError,
    RemoteProtocolError,
    StreamClosed,
    StreamError,
    StreamReset,
)
from peerdht.secure.keys import KeyPair
from peerdht.secure.noise import HandshakeResult
from peerdht.secure.secretstream import HandshakeComplete, Message, SecretStreamCore

__all__ = ["RawStream", "SecretStream", "TCPRawStream", "open_secret_stream"]

DEFAULT_KEEP_ALIVE = 5.0
"""Seconds of write silence after which an empty keep-alive frame is sent (secret-stream's default in hyperdht)."""
DEFAULT_TIMEOUT = 15.0
"""Seconds without any packet from the peer after which a UDX-carried stream fails with
:class:`~peerdht.errors.StreamTimeout` (JS reclaims a vanished peer's stream in ~15 s). A live peer's
UDX answers the heartbeats sent every ``keep_alive`` seconds, so only a vanished peer goes silent."""
DEFAULT_FRAME = 64 * 1024
"""Plaintext bytes per frame when a write is split."""
DEFAULT_READ_LIMIT = 1 << 20
"""Decrypted bytes buffered before reading from the raw stream pauses (bytes)."""
_RAW_READ = 256 * 1024


class RawStream(Protocol):
    """The reliable, ordered byte stream secret-stream runs on (a UDX stream, or TCP)."""

    async def read(self, n: int = -1) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


class TCPRawStream:
    """Adapts an asyncio ``(StreamReader, StreamWriter)`` pair to :class:`RawStream`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self, n: int = -1) -> bytes:
        return await self.reader.read(n)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def write_eof(self) -> None:
        if self.writer.can_write_eof():
            self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class SecretStream:
    """An encrypted stream with asyncio stream semantics. Create it with :func:`open_secret_stream`.

    Reads raise :class:`~peerdht.errors.RemoteProtocolError` once the peer sent a frame that fails
    (wrong stream id, failed authentication), :class:`~peerdht.errors.StreamReset` when the raw
    stream broke (:class:`~peerdht.errors.StreamTimeout` when the peer went silent), and :class:`~peerdht.errors.StreamClosed` after :meth:`close`. Only this stream
    is affected.
    """

    def __init__(
        self,
        raw: RawStream,
        core: SecretStreamCore,
        *,
        keep_alive: float | None = DEFAULT_KEEP_ALIVE,
        timeout: float | None = DEFAULT_TIMEOUT,
        frame_size: int = DEFAULT_FRAME,
        read_limit: int = DEFAULT_READ_LIMIT,
    ) -> None:
        self._raw = raw
        self._core = core
        self._loop = asyncio.get_running_loop()
        self._frame_size = frame_size
        self._read_limit = read_limit
        self._keep_alive = keep_alive if keep_alive and keep_alive > 0 else None
        self._buffer = bytearray()
        self._eof = False
        self._eof_sent = False
        self._closed = False
        self._error: PeerDHTError | None = None
        self._wakeup = asyncio.Event()  # new data, EOF or error for readers
        self._resume = asyncio.Event()  # the read buffer drained below the limit
        self._resume.set()
        self._wanted = 0  # a reader waits for this many buffered bytes (may exceed read_limit)
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._heard: asyncio.Future[None] = self._loop.create_future()  # the peer's header arrived
        self._last_write = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self.dropped_messages = 0
        """Datagrams dropped because they failed authentication."""
        self.path: str | None = None
        """How a HyperDHT connection was opened (set on the client side by ``connect``, else None): one of
        :data:`peerdht.aio.hyperdht.connect.PATHS` (``direct``, ``reverse``, ``lan``, ``consistent``,
        ``random-probes``, ``birthday``, ``relay``)."""
        # lengths of the buffered messages, for read_message (protomux needs message boundaries);
        # None once a byte read (read/readexactly/readline) mixed them up
        self._msg_lens: deque[int] | None = deque()
        self._pump_events()
        self._flush()
        self._reader = asyncio.ensure_future(self._read_loop())
        set_keepalive = getattr(raw, "set_keepalive", None)
        if set_keepalive is not None and (self._keep_alive or timeout):
            # liveness at the packet level (UDX heartbeats are ACKed by the peer whatever the
            # half-close state), so a half-closed stream to a vanished peer times out too
            with contextlib.suppress(StreamError):
                set_keepalive(self._keep_alive or 0.0, timeout=timeout or 0.0)

    # -- properties -----------------------------------------------------------------------------

    @property
    def public_key(self) -> bytes:
        """Our static public key, 32 bytes (empty if it was not given)."""
        return self._core.public_key

    @property
    def remote_public_key(self) -> bytes | None:
        """The peer's static public key (32 bytes), None before the handshake."""
        return self._core.remote_public_key

    @property
    def handshake_hash(self) -> bytes | None:
        """The 64-byte Noise handshake hash, None before the handshake."""
        return self._core.handshake_hash

    @property
    def core(self) -> SecretStreamCore:
        """The sans-IO core (for unordered datagrams: ``encrypt_datagram``/``decrypt_datagram``)."""
        return self._core

    @property
    def raw(self) -> RawStream:
        """The underlying raw stream."""
        return self._raw

    # -- internals ------------------------------------------------------------------------------

    def _pump_events(self) -> None:
        while (event := self._core.next_event()) is not None:
            if isinstance(event, Message):
                self._buffer += event.data
                if self._msg_lens is not None:
                    self._msg_lens.append(len(event.data))
                self._wakeup.set()
            elif isinstance(event, HandshakeComplete) and not self._handshake.done():
                self._handshake.set_result(None)
                self._schedule_keep_alive()

    def _flush(self) -> None:
        out = self._core.data_to_send()
        if out and not self._closed:
            self._raw.write(out)
            self._last_write = self._loop.time()

    def _fail(self, error: PeerDHTError) -> None:
        if self._error is None:
            self._error = error
        if not self._handshake.done():
            self._handshake.set_exception(error)
            self._handshake.exception()  # retrieved: open_secret_stream re-raises it
        if not self._heard.done():
            self._heard.set_exception(error)
            self._heard.exception()
        self._cancel_timer()
        self._wakeup.set()
        self._resume.set()
        # reset rather than end: the peer broke the protocol (JS: rawStream.destroy(err))
        destroy = getattr(self._raw, "destroy", None)
        if destroy is not None:
            destroy()
        else:
            self._raw.close()

    async def _read_loop(self) -> None:
        try:
            while True:
                if len(self._buffer) >= max(self._read_limit, self._wanted):
                    self._resume.clear()
                    await self._resume.wait()
                    if self._error is not None or self._closed:
                        return
                data = await self._raw.read(_RAW_READ)
                if not data:
                    if self._core.buffered:
                        self._fail(RemoteProtocolError("stream ended inside a secret-stream frame"))
                    elif not self._handshake.done():
                        self._fail(StreamReset("stream ended before the handshake finished"))
                    self._eof = True
                    self._wakeup.set()
                    if not self._heard.done():
                        self._heard.set_exception(StreamReset("stream ended before the peer's header"))
                        self._heard.exception()
                    return
                self._core.receive(data)
                if self._core.remote_header and not self._heard.done():
                    self._heard.set_result(None)
                self._pump_events()
                self._flush()
        except PeerDHTError as exc:
            self._fail(exc)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._fail(StreamReset(f"raw stream failed: {exc!r}"))

    def _schedule_keep_alive(self) -> None:
        if self._keep_alive is None or self._eof_sent or self._closed:
            return
        self._cancel_timer()
        self._timer = self._loop.call_at(self._last_write + self._keep_alive, self._on_keep_alive)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_keep_alive(self) -> None:
        self._timer = None
        if self._error is not None or self._closed or self._eof_sent or self._keep_alive is None:
            return
        if self._loop.time() - self._last_write >= self._keep_alive - 1e-3:
            self._core.send_keep_alive()
            try:
                self._flush()
            except (PeerDHTError, OSError) as exc:
                self._fail(
                    exc if isinstance(exc, PeerDHTError) else StreamReset(f"raw stream failed: {exc!r}")
                )
                return
        self._schedule_keep_alive()

    def _check_readable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StreamClosed("stream closed")

    async def _wait_data(self, wanted: int = 0) -> None:
        if wanted > self._wanted:
            self._wanted = wanted
            self._resume.set()
        self._wakeup.clear()
        try:
            await self._wakeup.wait()
        finally:
            self._wanted = 0

    def _take(self, n: int) -> bytes:
        self._msg_lens = None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        if len(self._buffer) < self._read_limit:
            self._resume.set()
        return data

    # -- reading --------------------------------------------------------------------------------

    async def wait_handshake(self) -> None:
        """Return once the keys are known.

        Raises:
            RemoteProtocolError: the in-band handshake failed.
            StreamReset: the raw stream ended first.
        """
        await asyncio.shield(self._handshake)

    async def wait_peer(self) -> None:
        """Return once the peer's secret-stream header arrived: it is there and holds the keys (with
        a HyperDHT handshake the keys are known before the peer ever sent a byte on the stream).

        Raises:
            RemoteProtocolError, StreamReset: as :meth:`read`. StreamClosed: closed locally first.
        """
        await asyncio.shield(self._heard)

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``n < 0``: everything until EOF); ``b""`` at EOF.

        Raises:
            RemoteProtocolError: a frame from the peer failed.
            StreamReset: the raw stream broke.
            StreamClosed: the stream was closed locally.
        """
        if n == 0:
            return b""
        while True:
            self._check_readable()
            if n < 0:
                if self._eof:
                    return self._take(len(self._buffer))
                await self._wait_data(len(self._buffer) + 1)  # read to EOF past the read limit
                continue
            if self._buffer:
                return self._take(n)
            if self._eof:
                return b""
            await self._wait_data()

    async def read_message(self) -> bytes:
        """The plaintext of the peer's next secret-stream message, whole (JS ``'data'`` events carry
        one message each; protomux relies on it); ``b""`` at EOF. Keep-alives (empty) are skipped.

        Raises:
            LocalProtocolError: bytes were already read with :meth:`read` (boundaries are lost).
            RemoteProtocolError, StreamReset, StreamClosed: as :meth:`read`.
        """
        while True:
            self._check_readable()
            lens = self._msg_lens
            if lens is None:
                raise LocalProtocolError("message boundaries lost: the stream was read as bytes")
            if lens:
                n = lens.popleft()
                data = bytes(self._buffer[:n])
                del self._buffer[:n]
                if len(self._buffer) < self._read_limit:
                    self._resume.set()
                return data
            if self._eof:
                return b""
            await self._wait_data()

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes.

        Raises:
            asyncio.IncompleteReadError: EOF came first (``partial`` holds what was read).
            RemoteProtocolError, StreamReset, StreamClosed: as :meth:`read`.
        """
        while len(self._buffer) < n:
            self._check_readable()
            if self._eof:
                partial = self._take(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait_data(n)
        self._check_readable()
        return self._take(n)

    async def readline(self) -> bytes:
        """Bytes up to and including ``b"\\n"``, or what is left at EOF.

        Raises:
            RemoteProtocolError, StreamReset, StreamClosed: as :meth:`read`.
        """
        start = 0
        while True:
            self._check_readable()
            i = self._buffer.find(b"\n", start)
            if i >= 0:
                return self._take(i + 1)
            if self._eof:
                return self._take(len(self._buffer))
            start = len(self._buffer)
            await self._wait_data(start + 1)  # a long line may exceed the limit

    def at_eof(self) -> bool:
        """True when the peer ended its side and everything was read."""
        return self._eof and not self._buffer

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(_RAW_READ):
            yield chunk

    # -- unordered datagrams (UDX MESSAGE packets) ----------------------------------------------

    def send(self, data: bytes) -> None:
        """Send ``data`` as one encrypted, unordered, unreliable datagram (``NoiseSecretStream.send``).

        Needs a raw stream with ``send_message`` (a UDX stream).

        Raises:
            LocalProtocolError: the raw stream carries no datagrams.
            StreamClosed: after :meth:`close`.
        """
        send_message = getattr(self._raw, "send_message", None)
        if send_message is None:
            raise LocalProtocolError("the raw stream carries no datagrams")
        if self._closed:
            raise StreamClosed("stream closed")
        send_message(self._core.encrypt_datagram(data))

    async def receive_message(self) -> bytes:
        """The next datagram the peer sent with ``send``; ones that fail authentication are dropped.

        Raises:
            LocalProtocolError: the raw stream carries no datagrams.
        """
        receive_message = getattr(self._raw, "receive_message", None)
        if receive_message is None:
            raise LocalProtocolError("the raw stream carries no datagrams")
        while True:
            box: bytes = await receive_message()
            try:
                return self._core.decrypt_datagram(box)
            except DecodeError:
                self.dropped_messages += 1

    # -- writing --------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and queue ``data`` (split into frames of ``frame_size`` bytes).

        Raises:
            StreamClosed: after :meth:`close` or :meth:`write_eof`.
            RemoteProtocolError, StreamReset: the stream has failed.
        """
        if self._error is not None:
            raise self._error
        if self._closed or self._eof_sent:
            raise StreamClosed("stream closed for writing")
        view = memoryview(data)
        size = self._frame_size
        for start in range(0, len(view), size):
            self._core.write(bytes(view[start : start + size]))
        self._flush()

    async def drain(self) -> None:
        """Wait until the raw stream's send buffer is below its limit (backpressure).

        Raises:
            RemoteProtocolError, StreamReset: the stream has failed.
        """
        if self._error is not None:
            raise self._error
        try:
            await self._raw.drain()
        except OSError as exc:
            self._fail(StreamReset(f"raw stream failed: {exc!r}"))
            raise StreamReset(str(exc)) from exc
        if self._error is not None:
            raise self._error

    def write_eof(self) -> None:
        """Half-close: the peer reads EOF after everything written so far (``rawStream.end()``)."""
        if self._eof_sent or self._closed:
            return
        self._flush()
        self._eof_sent = True
        self._cancel_timer()
        self._raw.write_eof()

    def can_write_eof(self) -> bool:
        """Always True: secret-stream supports half-close."""
        return True

    def close(self) -> None:
        """Close both directions now; pending reads raise :class:`~peerdht.errors.StreamClosed`."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        self._reader.cancel()
        self._wakeup.set()
        self._resume.set()
        for fut in (self._handshake, self._heard):
            if not fut.done():
                fut.set_exception(StreamClosed("stream closed"))
                fut.exception()
        self._raw.close()

    def is_closing(self) -> bool:
        """True after :meth:`close`, or once the stream failed."""
        return self._closed or self._error is not None

    async def wait_closed(self) -> None:
        """Wait until the raw stream is closed."""
        await asyncio.wait([self._reader])  # never raises the reader's outcome, honours our own cancel
        with contextlib.suppress(StreamError, OSError):
            await self._raw.wait_closed()

    async def __aenter__(self) -> SecretStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


async def open_secret_stream(
    raw: RawStream,
    *,
    initiator: bool,
    handshake: HandshakeResult | None = None,
    key_pair: KeyPair | None = None,
    remote_public_key: bytes | None = None,
    pattern: str = "XX",
    keep_alive: float | None = DEFAULT_KEEP_ALIVE,
    timeout: float | None = DEFAULT_TIMEOUT,
    frame_size: int = DEFAULT_FRAME,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> SecretStream:
    """Start secret-stream on ``raw`` and return once the keys are known.

    With ``handshake`` (HyperDHT: the result of the Noise IK handshake) no handshake happens on the
    stream; the headers are exchanged as data flows. Without it, secret-stream's own Noise XX
    handshake runs first (as ``new NoiseSecretStream(isInitiator, socket)`` does).

    Args:
        raw: the reliable byte stream.
        initiator: our role (must match the handshake's, and be the opposite of the peer's).
        handshake: keys from a finished handshake, or None for in-band XX.
        key_pair: our static key pair for in-band XX (a fresh random one if None).
        remote_public_key: in-band only: the key the peer must prove, or None to accept any
            (required for an ``"IK"`` initiator).
        pattern: in-band only: ``"XX"`` (secret-stream's default) or ``"IK"``.
        keep_alive: seconds of write silence before an empty keep-alive frame (and, on a UDX raw
            stream, of silence either way before a UDX heartbeat); None disables.
        timeout: seconds without any packet from the peer before the stream fails with
            :class:`~peerdht.errors.StreamTimeout` (UDX raw streams; reads, writes and ``drain``
            raise it); None disables.
        frame_size: plaintext bytes per frame when writes are split.
        read_limit: decrypted bytes buffered before reading from ``raw`` pauses.

    Raises:
        LocalProtocolError: ``initiator`` contradicts ``handshake.initiator``.
        RemoteProtocolError: the in-band handshake failed or the peer proved another key.
        StreamReset: the raw stream ended before the handshake finished.
    """
    if handshake is not None:
        if handshake.initiator != initiator:
            raise LocalProtocolError("initiator does not match the handshake's role")
        core = SecretStreamCore.from_handshake(handshake)
    else:
        kp = key_pair if key_pair is not None else KeyPair.from_seed(os.urandom(32))
        core = SecretStreamCore.in_band(
            initiator, kp, os.urandom(32), remote_public_key=remote_public_key, pattern=pattern
        )
    stream = SecretStream(
        raw, core, keep_alive=keep_alive, timeout=timeout, frame_size=frame_size, read_limit=read_limit
    )
    try:
        await stream.wait_handshake()
    except BaseException:
        stream.close()
        raise
    return stream
