"""Ed25519 key pairs, hashing helpers and the namespaces of hypercore-crypto.

Sources: hypercore-crypto ``index.js`` (``keyPair``, ``namespace``), noise-curve-ed 2.1 ``index.js``
(the Edwards-curve Diffie-Hellman HyperDHT's Noise uses instead of X25519).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import nacl.bindings as sodium
import nacl.exceptions

from peerdht.errors import RemoteProtocolError
from peerdht.keys import KeyPair

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


def blake2b(data: bytes, *, key: bytes = b"", size: int = 32) -> bytes:
    """BLAKE2b of ``data`` (libsodium ``crypto_generichash``).

    Args:
        data: the message.
        key: optional key, 0..64 bytes.
        size: digest length in bytes (32 unless told).
    """
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def namespace(name: str | bytes, ids: int | Sequence[int]) -> list[bytes]:
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
