"""Sans-IO Noise handshakes as HyperDHT and secret-stream use them.

``Noise_IK_Ed25519_ChaChaPoly_BLAKE2b`` (HyperDHT's PEER_HANDSHAKE, prologue ``NS_PEER_HANDSHAKE``) and
``Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`` (secret-stream's in-band handshake, empty prologue).

Sources, read not copied: noise-handshake 4.2 (``noise.js``, ``symmetric-state.js``, ``cipher.js``,
``hkdf.js``, ``hmac.js``), noise-curve-ed 2.1 ``index.js``, hyperdht 6.34 ``lib/noise-wrap.js`` and
``lib/constants.js``. The Diffie-Hellman is Edwards-curve scalar multiplication, not X25519
(:func:`peerdht.secure.keys.dh`). HASHLEN is 64 (BLAKE2b-512); the HKDF is HMAC-BLAKE2b; the AEAD is
ChaCha20-Poly1305 IETF with nonce ``4 zero bytes || uint64LE(n)``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import Enum

import nacl.bindings as sodium
import nacl.exceptions

from peerdht.errors import LocalProtocolError, RemoteProtocolError
from peerdht.secure.keys import KeyPair, blake2b, dh, namespace, stream_id

__all__ = [
    "NS_PEER_HANDSHAKE",
    "NS_PEER_HOLEPUNCH",
    "HandshakeResult",
    "NoiseState",
    "hkdf",
    "holepunch_secret",
    "peer_handshake",
]

HASHLEN = 64
KEYLEN = 32
PKLEN = 32
MACLEN = 16
MAX_MESSAGE = 65535

# hyperdht lib/constants.js NS: namespace('hyperswarm/dht', [...]) with the command numbers as ids;
# PEER_HANDSHAKE (0) is the Noise prologue, PEER_HOLEPUNCH (1) keys the holepunch secret.
# peerdht.hyper.constants re-exports these two.
NS_PEER_HANDSHAKE, NS_PEER_HOLEPUNCH = namespace("hyperswarm/dht", [0, 1])


class _Token(Enum):
    E = "e"
    S = "s"
    EE = "ee"
    ES = "es"
    SE = "se"
    SS = "ss"


_E, _S, _EE, _ES, _SE, _SS = _Token.E, _Token.S, _Token.EE, _Token.ES, _Token.SE, _Token.SS

# pattern -> (responder static pre-shared?, message token lists); noise.js HANDSHAKES
_PATTERNS: dict[str, tuple[bool, list[list[_Token]]]] = {
    "IK": (True, [[_E, _ES, _S, _SS], [_E, _EE, _SE]]),
    "XX": (False, [[_E], [_E, _EE, _S, _ES], [_S, _SE]]),
    "NN": (False, [[_E], [_E, _EE]]),
    "XK": (True, [[_E, _ES], [_E, _EE], [_S, _SE]]),
}


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "blake2b")


def hkdf(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise HKDF with HMAC-BLAKE2b and two 64-byte outputs (noise-handshake ``hkdf.js``).

    Args:
        chaining_key: the salt, 64 bytes.
        ikm: the input key material (a DH output, or empty for ``split``).

    Returns:
        ``(output1, output2)``, 64 bytes each.
    """
    prk = _hmac(chaining_key, ikm)
    out1 = _hmac(prk, b"\x01")
    out2 = _hmac(prk, out1 + b"\x02")
    return out1, out2


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeResult:
    """What a finished handshake hands to the transport (hyperdht ``NoiseWrap.final``).

    Attributes:
        initiator: whether this side initiated.
        public_key: our static public key, 32 bytes.
        remote_public_key: the peer's static public key, 32 bytes.
        handshake_hash: 64 bytes.
        tx_key: 32-byte key for what we send.
        rx_key: 32-byte key for what we receive.
        holepunch_secret: ``BLAKE2b-256(NS_PEER_HOLEPUNCH, key=handshake_hash)``, 32 bytes.
        secret_stream_id: our secret-stream id (what we send in our header), 32 bytes.
        remote_secret_stream_id: the id the peer's secret-stream header must carry, 32 bytes.
    """

    initiator: bool
    public_key: bytes
    remote_public_key: bytes
    handshake_hash: bytes
    tx_key: bytes = field(repr=False)
    rx_key: bytes = field(repr=False)
    holepunch_secret: bytes = field(repr=False)
    secret_stream_id: bytes
    remote_secret_stream_id: bytes


def holepunch_secret(handshake_hash: bytes) -> bytes:
    """The key of PEER_HOLEPUNCH payloads: ``BLAKE2b-256(NS_PEER_HOLEPUNCH, key=handshake_hash)``.

    Source: hyperdht ``lib/noise-wrap.js`` ``final()``.
    """
    return blake2b(NS_PEER_HOLEPUNCH, key=handshake_hash)


class NoiseState:
    """One side of a Noise handshake (noise-handshake ``NoiseState``), sans-IO.

    Messages alternate: the initiator calls :meth:`send` first, the responder :meth:`recv` first.
    A message that fails (truncated, bad key, failed authentication) raises and leaves the state as
    it was before the call, so a forged message can be dropped while the real one is awaited.

    Args:
        pattern: ``"IK"`` (HyperDHT), ``"XX"`` (secret-stream in-band), ``"NN"`` or ``"XK"``.
        initiator: whether this side sends the first message.
        static_key_pair: our static Ed25519 key pair.
        remote_static: the responder's 32-byte static public key; required for an IK/XK
            initiator, ignored otherwise.
        prologue: bytes mixed into the handshake hash (HyperDHT: :data:`NS_PEER_HANDSHAKE`;
            secret-stream: empty).
        ephemeral_seed: 32 random bytes for the ephemeral key pair (the caller supplies randomness).

    Raises:
        LocalProtocolError: unknown pattern, missing ``remote_static`` or wrong lengths.
    """

    def __init__(
        self,
        pattern: str = "IK",
        *,
        initiator: bool,
        static_key_pair: KeyPair,
        remote_static: bytes | None = None,
        prologue: bytes = b"",
        ephemeral_seed: bytes,
    ) -> None:
        if pattern not in _PATTERNS:
            raise LocalProtocolError(f"unsupported Noise pattern {pattern!r}")
        preshared_rs, messages = _PATTERNS[pattern]
        self.pattern = pattern
        self.initiator = initiator
        self._s = static_key_pair
        self._e_seed = ephemeral_seed
        self._e_pair: KeyPair | None = None  # made on first use: a responder fed garbage never needs it
        self._messages = messages
        self._step = 0
        self._rs: bytes | None = None
        self._re: bytes | None = None
        self._k: bytes | None = None
        self._n = 0
        self._tx: bytes | None = None
        self._rx: bytes | None = None
        name = f"Noise_{pattern}_Ed25519_ChaChaPoly_BLAKE2b".encode()
        self._h = name.ljust(HASHLEN, b"\x00")
        self._ck = self._h
        self._mix_hash(prologue)
        if preshared_rs:
            if initiator:
                if remote_static is None or len(remote_static) != PKLEN:
                    raise LocalProtocolError(f"a {pattern} initiator needs the 32-byte remote static key")
                self._rs = bytes(remote_static)
                self._mix_hash(self._rs)
            else:
                self._mix_hash(self._s.public_key)

    # -- state -----------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True once the last handshake message was sent or received."""
        return self._tx is not None

    @property
    def public_key(self) -> bytes:
        """Our static public key, 32 bytes."""
        return self._s.public_key

    @property
    def remote_public_key(self) -> bytes | None:
        """The peer's static public key (32 bytes) once known, else None."""
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        """The 64-byte handshake hash (final once :attr:`complete`)."""
        return self._h

    @property
    def tx_key(self) -> bytes:
        """32-byte key for our outgoing transport messages.

        Raises:
            LocalProtocolError: the handshake is not complete.
        """
        if self._tx is None:
            raise LocalProtocolError("handshake not complete")
        return self._tx

    @property
    def rx_key(self) -> bytes:
        """32-byte key for incoming transport messages.

        Raises:
            LocalProtocolError: the handshake is not complete.
        """
        if self._rx is None:
            raise LocalProtocolError("handshake not complete")
        return self._rx

    def result(self) -> HandshakeResult:
        """Everything the transport needs once complete (hyperdht ``NoiseWrap.final``).

        Raises:
            LocalProtocolError: the handshake is not complete, or the pattern has no remote static key.
        """
        tx, rx = self.tx_key, self.rx_key
        if self._rs is None:
            raise LocalProtocolError(f"a {self.pattern} handshake authenticates no remote static key")
        return HandshakeResult(
            initiator=self.initiator,
            public_key=self._s.public_key,
            remote_public_key=self._rs,
            handshake_hash=self._h,
            tx_key=tx,
            rx_key=rx,
            holepunch_secret=holepunch_secret(self._h),
            secret_stream_id=stream_id(self._h, self.initiator),
            remote_secret_stream_id=stream_id(self._h, not self.initiator),
        )

    @property
    def _e(self) -> KeyPair:
        if self._e_pair is None:
            self._e_pair = KeyPair.from_seed(self._e_seed)
        return self._e_pair

    # -- symmetric state ---------------------------------------------------------------------------

    def _mix_hash(self, data: bytes) -> None:
        self._h = hashlib.blake2b(self._h + data, digest_size=HASHLEN).digest()

    def _mix_key(self, scalar: bytes, remote: bytes | None) -> None:
        if remote is None:  # pragma: no cover - patterns always provide the key first
            raise LocalProtocolError("remote key unknown")
        self._ck, temp = hkdf(self._ck, dh(scalar, remote))
        self._k = temp[:KEYLEN]
        self._n = 0

    def _encrypt_and_hash(self, plaintext: bytes) -> bytes:
        if self._k is None:
            ciphertext = plaintext
        else:
            ciphertext = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
                plaintext, self._h, _nonce(self._n), self._k
            )
            if len(ciphertext) > MAX_MESSAGE:
                raise LocalProtocolError("Noise message longer than 65535 bytes")
            self._n += 1
        self._mix_hash(ciphertext)
        return ciphertext

    def _decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        if self._k is None:
            plaintext = ciphertext
        else:
            if len(ciphertext) > MAX_MESSAGE:
                raise RemoteProtocolError("Noise message longer than 65535 bytes")
            if len(ciphertext) < MACLEN:
                raise RemoteProtocolError("Noise message truncated")
            try:
                plaintext = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
                    ciphertext, self._h, _nonce(self._n), self._k
                )
            except nacl.exceptions.CryptoError as exc:
                raise RemoteProtocolError("Noise message failed authentication") from exc
            self._n += 1
        self._mix_hash(ciphertext)
        return bytes(plaintext)

    def _dh_token(self, token: _Token) -> None:
        # (local static?, remote static?) per token, from the initiator's point of view
        if token is _EE:
            local_static = remote_static = False
        elif token is _SS:
            local_static = remote_static = True
        elif token is _ES:
            local_static, remote_static = not self.initiator, self.initiator
        else:  # SE
            local_static, remote_static = self.initiator, not self.initiator
        scalar = self._s.scalar if local_static else self._e.scalar
        self._mix_key(scalar, self._rs if remote_static else self._re)

    def _split(self) -> None:
        k1, k2 = hkdf(self._ck, b"")
        k1, k2 = k1[:KEYLEN], k2[:KEYLEN]
        self._tx, self._rx = (k1, k2) if self.initiator else (k2, k1)

    def _snapshot(self) -> tuple[object, ...]:
        return (self._h, self._ck, self._k, self._n, self._re, self._rs, self._step)

    def _restore(self, snap: tuple[object, ...]) -> None:
        (self._h, self._ck, self._k, self._n, self._re, self._rs, self._step) = snap  # type: ignore[assignment]

    def _check_turn(self, sending: bool) -> list[_Token]:
        if self.complete or self._step >= len(self._messages):
            raise LocalProtocolError("handshake already complete")
        initiator_turn = self._step % 2 == 0
        if initiator_turn != (self.initiator == sending):
            raise LocalProtocolError("not our turn to " + ("send" if sending else "receive"))
        return self._messages[self._step]

    # -- messages ---------------------------------------------------------------------------------

    def send(self, payload: bytes = b"") -> bytes:
        """Write the next handshake message carrying ``payload``.

        Returns:
            The message bytes (IK: 96 + len(payload) from the initiator, 48 + len(payload) back).

        Raises:
            LocalProtocolError: not our turn, handshake complete, or the message would exceed 65535.
        """
        tokens = self._check_turn(sending=True)
        snap = self._snapshot()
        try:
            out: list[bytes] = []
            for token in tokens:
                if token is _E:
                    self._mix_hash(self._e.public_key)
                    out.append(self._e.public_key)
                elif token is _S:
                    out.append(self._encrypt_and_hash(self._s.public_key))
                else:
                    self._dh_token(token)
            out.append(self._encrypt_and_hash(bytes(payload)))
        except BaseException:
            self._restore(snap)
            raise
        self._step += 1
        if self._step == len(self._messages):
            self._split()
        return b"".join(out)

    def recv(self, message: bytes) -> bytes:
        """Read the peer's next handshake message.

        Returns:
            The decrypted payload.

        Raises:
            RemoteProtocolError: truncated or oversized message, invalid public key or failed
                authentication; the state is unchanged, so another message may still be received.
            LocalProtocolError: not our turn to receive, or the handshake is complete.
        """
        tokens = self._check_turn(sending=False)
        message = bytes(message)
        snap = self._snapshot()
        try:
            offset = 0
            for token in tokens:
                if token is _E:
                    if len(message) - offset < PKLEN:
                        raise RemoteProtocolError("Noise message truncated")
                    self._re = message[offset : offset + PKLEN]
                    offset += PKLEN
                    self._mix_hash(self._re)
                elif token is _S:
                    klen = PKLEN + MACLEN if self._k is not None else PKLEN
                    if len(message) - offset < klen:
                        raise RemoteProtocolError("Noise message truncated")
                    self._rs = self._decrypt_and_hash(message[offset : offset + klen])
                    offset += klen
                else:
                    self._dh_token(token)
            payload = self._decrypt_and_hash(message[offset:])
        except BaseException:
            self._restore(snap)
            raise
        self._step += 1
        if self._step == len(self._messages):
            self._split()
        return payload

    def __repr__(self) -> str:
        return (
            f"NoiseState(pattern={self.pattern!r}, initiator={self.initiator}, step={self._step}, "
            f"complete={self.complete})"
        )


def peer_handshake(key_pair: KeyPair, remote_public_key: bytes | None, ephemeral_seed: bytes) -> NoiseState:
    """The Noise IK state of a HyperDHT PEER_HANDSHAKE (hyperdht ``lib/noise-wrap.js``).

    The client (initiator) knows the server's key; the server passes None. Payloads are the
    ``noisePayload`` bytes of hyperdht ``lib/messages.js`` (encoded elsewhere); when complete,
    :meth:`NoiseState.result` gives what ``NoiseWrap.final()`` gives.

    Args:
        key_pair: our static key pair.
        remote_public_key: the server's 32-byte public key (client), or None (server).
        ephemeral_seed: 32 random bytes.
    """
    return NoiseState(
        "IK",
        initiator=remote_public_key is not None,
        static_key_pair=key_pair,
        remote_static=remote_public_key,
        prologue=NS_PEER_HANDSHAKE,
        ephemeral_seed=ephemeral_seed,
    )
