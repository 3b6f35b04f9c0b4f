"""Ed25519 key pairs, hashing helpers and the namespaces of hypercore-crypto.

Sources: hypercore-crypto ``index.js`` (``keyPair``, ``namespace``), noise-curve-ed 2.1 ``index.js``
(the Edwards-curve Diffie-Hellman HyperDHT's Noise uses instead of X25519).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings as sodium
import nacl.exceptions

from peerdht.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "NS_INITIATOR",
    "NS_RESPONDER",
    "NS_SEND",
    "KeyPair",
    "blake2b",
    "dh",
    "namespace",
    "stream_id",
]

PUBLIC_KEY_BYTES = 32
SECRET_KEY_BYTES = 64
SEED_BYTES = 32


def blake2b(data: bytes, *, key: bytes = b"", size: int = 32) -> bytes:
    """BLAKE2b of ``data`` (libsodium ``crypto_generichash``).

    Args:
        data: the message.
        key: optional key, 0..64 bytes.
        size: digest length in bytes (32 unless told).
    """
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def namespace(name: str | bytes, ids: int | list[int]) -> list[bytes]:
    """hypercore-crypto ``namespace(name, ids)``: ``BLAKE2b-256(BLAKE2b-256(name) || byte(id))`` per id.

    Args:
        name: the namespace name (UTF-8 if ``str``).
        ids: how many (``range(ids)``) or the list of ids (each 0..255).

    Returns:
        One 32-byte namespace per id, in order.
    """
    root = blake2b(name.encode() if isinstance(name, str) else name)
    id_list = list(range(ids)) if isinstance(ids, int) else ids
    return [blake2b(root + bytes([i])) for i in id_list]


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyPair:
    """An Ed25519 key pair in libsodium's layout (hypercore-crypto ``keyPair``).

    Attributes:
        public_key: 32 bytes.
        secret_key: 64 bytes, ``seed(32) || public_key(32)``; never shown in ``repr``.
    """

    public_key: bytes
    secret_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_BYTES or len(self.secret_key) != SECRET_KEY_BYTES:
            raise LocalProtocolError("a key pair has a 32-byte public key and a 64-byte secret key")

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """The key pair of a 32-byte seed (``crypto_sign_seed_keypair``).

        Raises:
            LocalProtocolError: ``seed`` is not 32 bytes.
        """
        if len(seed) != SEED_BYTES:
            raise LocalProtocolError("a seed is 32 bytes")
        public_key, secret_key = sodium.crypto_sign_seed_keypair(bytes(seed))
        return cls(public_key=public_key, secret_key=secret_key)

    @property
    def scalar(self) -> bytes:
        """The clamped 32-byte scalar used for Diffie-Hellman: SHA-512(seed)[0:32], clamped."""
        h = bytearray(hashlib.sha512(self.secret_key[:32]).digest()[:32])
        h[0] &= 248
        h[31] &= 127
        h[31] |= 64
        return bytes(h)


def dh(scalar: bytes, public_key: bytes) -> bytes:
    """noise-curve-ed ``dh``: ``crypto_scalarmult_ed25519_noclamp(scalar, public_key)``.

    Args:
        scalar: 32-byte clamped scalar (:attr:`KeyPair.scalar`).
        public_key: the remote 32-byte Ed25519 point.

    Returns:
        The 32-byte shared point.

    Raises:
        RemoteProtocolError: ``public_key`` is not a valid point or has small order.
    """
    try:
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, public_key))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise RemoteProtocolError("invalid Ed25519 public key in Diffie-Hellman") from exc


# @hyperswarm/secret-stream index.js: namespace('hyperswarm/secret-stream', 3)
NS_INITIATOR, NS_RESPONDER, NS_SEND = namespace("hyperswarm/secret-stream", 3)


def stream_id(handshake_hash: bytes, initiator: bool) -> bytes:
    """The secret-stream id of one side: ``BLAKE2b-256(NS_INITIATOR or NS_RESPONDER, key=hash)``.

    Each side sends its own id in its header and checks the peer's (``NoiseSecretStream.id``).

    Args:
        handshake_hash: the 64-byte Noise handshake hash.
        initiator: whose id: the initiator's or the responder's.

    Returns:
        32 bytes.
    """
    return blake2b(NS_INITIATOR if initiator else NS_RESPONDER, key=handshake_hash)
