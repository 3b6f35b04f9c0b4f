"""Sans-IO secret-stream: the encrypted framing of HyperDHT connections.

Mirrors ``@hyperswarm/secret-stream`` 6.9 ``index.js`` (+ ``lib/handshake.js``) and
``sodium-secretstream`` 1.2, read not copied. Byte layout, per direction:

* optional in-band Noise XX (when no handshake is passed in): each handshake message is
  ``uint24LE(len) || noise message``, empty payloads, empty prologue;
* the header ``uint24LE(56) || stream_id(32) || secretstream header(24)``, where the stream id is
  ``BLAKE2b-256(NS_INITIATOR or NS_RESPONDER, key=handshake_hash)`` of the sender; the receiver
  checks the id it expects from the peer;
* then every message ``uint24LE(len) || crypto_secretstream_xchacha20poly1305_push(msg, TAG_MESSAGE)``
  (17 bytes of overhead); an empty message is a keep-alive and is swallowed.

Unordered datagrams (``NoiseSecretStream.send``, carried by UDX MESSAGE packets) are
``counter(8, LE) || crypto_secretbox_easy(msg, nonce=counter || 16 zero bytes)`` with keys
``BLAKE2b-256(NS_INITIATOR || NS_SEND, key=hash)`` (initiator -> responder) and
``BLAKE2b-256(NS_RESPONDER || NS_SEND, key=hash)`` (responder -> initiator).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from peerdht.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from peerdht.secure.keys import NS_INITIATOR, NS_RESPONDER, NS_SEND, KeyPair, blake2b, stream_id
from peerdht.secure.noise import HandshakeResult, NoiseState

__all__ = [
    "ABYTES",
    "MAX_MESSAGE",
    "Event",
    "HandshakeComplete",
    "Message",
    "SecretStreamCore",
]

HEADERBYTES = 24
KEYBYTES = 32
ABYTES = 17
IDHEADERBYTES = 32 + HEADERBYTES
MAX_FRAME = (1 << 24) - 1
MAX_MESSAGE = MAX_FRAME - ABYTES
"""Largest plaintext one frame carries (bytes); :meth:`SecretStreamCore.write` splits longer data."""
_TAG_MESSAGE = 0
_COUNTER_BYTES = 8
_BOX_NONCE_PAD = bytes(16)
_BOX_MAC = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeComplete:
    """The keys are known; application data may flow.

    Attributes:
        public_key: our static public key, 32 bytes (empty if not given).
        remote_public_key: the peer's static public key, 32 bytes.
        handshake_hash: 64 bytes.
    """

    public_key: bytes
    remote_public_key: bytes
    handshake_hash: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """Decrypted application data (one frame, never empty).

    Attributes:
        data: the plaintext bytes.
    """

    data: bytes


Event = HandshakeComplete | Message


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(3, "little") + body


class SecretStreamCore:
    """One end of a secret-stream, sans-IO: bytes in with :meth:`receive`, bytes out with
    :meth:`data_to_send`, decrypted data and state changes from :meth:`next_event`.

    With keys from a handshake done elsewhere (HyperDHT's Noise IK), construct it directly; for
    secret-stream's own in-band Noise XX handshake use :meth:`in_band`.

    A frame that fails (bad header, wrong stream id, failed authentication, bad handshake) makes
    :meth:`receive` raise :class:`~peerdht.errors.RemoteProtocolError`; the core is then
    :attr:`failed` and every later call raises the same error again. Nothing else is affected.

    Args:
        initiator: whether this side initiated the handshake.
        tx_key: 32-byte key for what we send.
        rx_key: 32-byte key for what we receive.
        handshake_hash: the 64-byte Noise handshake hash.
        remote_public_key: the peer's 32-byte static public key.
        public_key: our 32-byte static public key (informational).
        header: 24 random bytes for our secretstream header; None lets libsodium's CSPRNG choose.
        send_counter: 8 random bytes starting the datagram nonce counter; None: libsodium's CSPRNG.

    Raises:
        LocalProtocolError: wrong key or hash lengths.
    """

    def __init__(
        self,
        initiator: bool,
        tx_key: bytes | None,
        rx_key: bytes | None,
        handshake_hash: bytes | None,
        remote_public_key: bytes | None,
        *,
        public_key: bytes = b"",
        header: bytes | None = None,
        send_counter: bytes | None = None,
    ) -> None:
        self.initiator = initiator
        self.public_key = public_key
        self.remote_public_key: bytes | None = None
        self.handshake_hash: bytes | None = None
        self._header = header
        self._counter_start = send_counter
        self._noise: NoiseState | None = None
        self._out: list[bytes] = []
        self._pending: list[bytes] = []  # plaintext written before the handshake finished
        self._events: deque[Event] = deque()
        self._buf = bytearray()
        self._need = 3  # bytes self._buf must hold before the next frame can be parsed
        self._rx_key = b""
        self._push: sodium.crypto_secretstream_xchacha20poly1305_state | None = None
        self._pull: sodium.crypto_secretstream_xchacha20poly1305_state | None = None
        self._expected_id = b""
        self._tx_box = b""
        self._rx_box = b""
        self._counter = 0
        self._counter_initial = 0
        self._error: RemoteProtocolError | None = None
        if tx_key is not None or rx_key is not None or handshake_hash is not None:
            if tx_key is None or rx_key is None or handshake_hash is None or remote_public_key is None:
                raise LocalProtocolError("tx_key, rx_key, handshake_hash and remote_public_key go together")
            self._setup(tx_key, rx_key, handshake_hash, remote_public_key)

    @classmethod
    def from_handshake(
        cls, result: HandshakeResult, *, header: bytes | None = None, send_counter: bytes | None = None
    ) -> SecretStreamCore:
        """A stream keyed by a finished handshake (hyperdht passes ``NoiseWrap.final()`` in)."""
        return cls(
            result.initiator,
            result.tx_key,
            result.rx_key,
            result.handshake_hash,
            result.remote_public_key,
            public_key=result.public_key,
            header=header,
            send_counter=send_counter,
        )

    @classmethod
    def in_band(
        cls,
        initiator: bool,
        key_pair: KeyPair,
        ephemeral_seed: bytes,
        *,
        remote_public_key: bytes | None = None,
        pattern: str = "XX",
        header: bytes | None = None,
        send_counter: bytes | None = None,
    ) -> SecretStreamCore:
        """A stream that first runs secret-stream's own Noise handshake over the same bytes.

        What ``new NoiseSecretStream(isInitiator, rawStream, {pattern})`` does without
        ``opts.handshake`` (``lib/handshake.js``: empty prologue, empty payloads).

        Args:
            initiator: whether this side sends the first handshake message.
            key_pair: our static key pair.
            ephemeral_seed: 32 random bytes for the ephemeral key.
            remote_public_key: the key the peer must prove; None accepts any (check
                :attr:`remote_public_key` after :class:`HandshakeComplete`). Required for an
                ``"IK"`` initiator.
            pattern: ``"XX"`` (secret-stream's default) or ``"IK"``.
            header: see the constructor.
            send_counter: see the constructor.
        """
        core = cls(
            initiator,
            None,
            None,
            None,
            None,
            public_key=key_pair.public_key,
            header=header,
            send_counter=send_counter,
        )
        core._expected_remote = remote_public_key
        if pattern not in ("XX", "IK"):
            raise LocalProtocolError("secret-stream runs Noise XX or IK")
        core._noise = NoiseState(
            pattern,
            initiator=initiator,
            static_key_pair=key_pair,
            remote_static=remote_public_key if initiator else None,
            ephemeral_seed=ephemeral_seed,
        )
        if initiator:
            core._out.append(_frame(core._noise.send()))
        return core

    _expected_remote: bytes | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """True once the keys are known (our header has been queued)."""
        return self._push is not None

    @property
    def remote_header(self) -> bool:
        """True once the peer's header arrived (the peer is there and holds the keys)."""
        return self._pull is not None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet forming a whole frame (non-zero at EOF means a cut frame)."""
        return len(self._buf)

    @property
    def failed(self) -> RemoteProtocolError | None:
        """The error that failed the stream, or None."""
        return self._error

    def _setup(self, tx: bytes, rx: bytes, handshake_hash: bytes, remote_public_key: bytes) -> None:
        if (
            len(tx) < KEYBYTES
            or len(rx) < KEYBYTES
            or len(handshake_hash) != 64
            or len(remote_public_key) != 32
        ):
            raise LocalProtocolError("keys are 32 bytes, the handshake hash 64, the remote public key 32")
        self.handshake_hash = bytes(handshake_hash)
        self.remote_public_key = bytes(remote_public_key)
        self._rx_key = bytes(rx[:KEYBYTES])
        push = sodium.crypto_secretstream_xchacha20poly1305_state()
        if self._header is None:
            header = sodium.crypto_secretstream_xchacha20poly1305_init_push(push, bytes(tx[:KEYBYTES]))
        else:
            if len(self._header) != HEADERBYTES:
                raise LocalProtocolError("a secretstream header is 24 bytes")
            header = bytes(self._header)
            # init_pull derives exactly the state init_push derives for this header
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(push, header, bytes(tx[:KEYBYTES]))
        self._push = push
        self._expected_id = stream_id(self.handshake_hash, not self.initiator)
        mine, theirs = (NS_INITIATOR, NS_RESPONDER) if self.initiator else (NS_RESPONDER, NS_INITIATOR)
        self._tx_box = blake2b(mine + NS_SEND, key=self.handshake_hash)
        self._rx_box = blake2b(theirs + NS_SEND, key=self.handshake_hash)
        start = self._counter_start if self._counter_start is not None else nacl.utils.random(_COUNTER_BYTES)
        if len(start) != _COUNTER_BYTES:
            raise LocalProtocolError("the send counter starts from 8 bytes")
        self._counter = self._counter_initial = int.from_bytes(start, "little")
        self._out.append(_frame(stream_id(self.handshake_hash, self.initiator) + header))
        self._events.append(
            HandshakeComplete(
                public_key=self.public_key,
                remote_public_key=self.remote_public_key,
                handshake_hash=self.handshake_hash,
            )
        )
        pending, self._pending = self._pending, []
        for data in pending:
            self.write(data)

    def _fail(self, message: str) -> RemoteProtocolError:
        self._error = RemoteProtocolError(message)
        self._buf.clear()
        return self._error

    # -- output -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` into one frame, or several if it exceeds :data:`MAX_MESSAGE` bytes.

        Empty data is ignored (use :meth:`send_keep_alive`). Before an in-band handshake finishes
        the data waits and is encrypted once the keys are known.

        Raises:
            RemoteProtocolError: the stream has failed.
        """
        if self._error is not None:
            raise self._error
        if not data:
            return
        if self._push is None:
            self._pending.append(bytes(data))
            return
        view = memoryview(data)
        for start in range(0, len(view), MAX_MESSAGE):
            self._out.append(self._encrypt(bytes(view[start : start + MAX_MESSAGE])))

    def _encrypt(self, plaintext: bytes) -> bytes:
        assert self._push is not None
        cipher = sodium.crypto_secretstream_xchacha20poly1305_push(self._push, plaintext, None, _TAG_MESSAGE)
        return (len(plaintext) + ABYTES).to_bytes(3, "little") + cipher

    def send_keep_alive(self) -> None:
        """Queue an empty encrypted frame (secret-stream's keep-alive); no-op before the keys are known."""
        if self._push is not None and self._error is None:
            self._out.append(self._encrypt(b""))

    def data_to_send(self) -> bytes:
        """Everything queued for the raw stream since the last call (may be empty)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- input --------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Feed bytes from the raw stream, in any chunking.

        Raises:
            RemoteProtocolError: a frame is malformed, carries the wrong stream id, fails
                authentication, or the in-band handshake fails; the stream is failed from then on.
        """
        if self._error is not None:
            raise self._error
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return
            src = bytes(self._buf)
            self._buf = bytearray()
        else:
            src = bytes(data)
        pos = 0
        end = len(src)
        need = 3
        while end - pos >= 3:
            length = src[pos] | src[pos + 1] << 8 | src[pos + 2] << 16
            need = 3 + length
            if end - pos < need:
                break
            self._incoming(src[pos + 3 : pos + need])  # raises after failing the stream
            pos += need
            need = 3
        if pos < end:
            self._buf = bytearray(memoryview(src)[pos:])
            self._need = need

    def _incoming(self, body: bytes) -> None:
        if self._noise is not None and not self._noise.complete:
            self._handshake_message(body)
        elif self._pull is None:
            if self._push is None:  # pragma: no cover - a complete noise always sets up the keys
                raise self._fail("data before the handshake")
            if len(body) != IDHEADERBYTES:
                raise self._fail("invalid secret-stream header message")
            if body[:32] != self._expected_id:
                raise self._fail("invalid secret-stream header: wrong stream id")
            pull = sodium.crypto_secretstream_xchacha20poly1305_state()
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(pull, body[32:], self._rx_key)
            self._pull = pull
        else:
            if len(body) < ABYTES:
                raise self._fail("secret-stream frame shorter than 17 bytes")
            try:
                plain, _tag = sodium.crypto_secretstream_xchacha20poly1305_pull(self._pull, body, None)
            except (nacl.exceptions.CryptoError, ValueError) as exc:
                raise self._fail("secret-stream frame failed authentication") from exc
            if plain:
                self._events.append(Message(data=plain))

    def _handshake_message(self, body: bytes) -> None:
        noise = self._noise
        assert noise is not None
        try:
            noise.recv(body)
            if not noise.complete:
                self._out.append(_frame(noise.send()))
        except RemoteProtocolError as exc:
            raise self._fail(f"Noise handshake failed: {exc}") from exc
        if noise.complete:
            remote = noise.remote_public_key
            assert remote is not None
            if self._expected_remote is not None and remote != self._expected_remote:
                raise self._fail("the peer proved a different public key")
            self._setup(noise.tx_key, noise.rx_key, noise.handshake_hash, remote)

    def next_event(self) -> Event | None:
        """The next event (:class:`HandshakeComplete` or :class:`Message`), or None."""
        return self._events.popleft() if self._events else None

    # -- unordered datagrams ------------------------------------------------------------------

    def encrypt_datagram(self, data: bytes) -> bytes:
        """Box ``data`` for an unordered UDX message (``NoiseSecretStream.send``).

        Returns:
            ``counter(8) || MAC(16) || ciphertext``: ``len(data) + 24`` bytes.

        Raises:
            LocalProtocolError: the keys are not known yet, or the 2^64 nonces are used up.
        """
        if self._push is None:
            raise LocalProtocolError("no keys yet")
        self._counter = (self._counter + 1) & 0xFFFFFFFFFFFFFFFF
        if self._counter == self._counter_initial:
            raise LocalProtocolError("datagram nonces exhausted")
        counter = self._counter.to_bytes(_COUNTER_BYTES, "little")
        return counter + sodium.crypto_secretbox_easy(bytes(data), counter + _BOX_NONCE_PAD, self._tx_box)

    def decrypt_datagram(self, data: bytes) -> bytes:
        """Open an unordered message boxed by the peer.

        Raises:
            DecodeError: too short, failed authentication, or no keys yet (JS drops these silently).
        """
        if self._push is None:
            raise DecodeError("no keys yet")
        if len(data) < _COUNTER_BYTES + _BOX_MAC:
            raise DecodeError("datagram shorter than 24 bytes")
        data = bytes(data)
        try:
            return bytes(
                sodium.crypto_secretbox_open_easy(
                    data[_COUNTER_BYTES:], data[:_COUNTER_BYTES] + _BOX_NONCE_PAD, self._rx_box
                )
            )
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise DecodeError("datagram failed authentication") from exc

    def __repr__(self) -> str:
        return f"SecretStreamCore(initiator={self.initiator}, established={self.established}, failed={self.failed})"
