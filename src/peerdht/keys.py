"""The one Ed25519 key pair type of peerdht.

HyperDHT (hyperdht ``lib/crypto.js`` ``keyPair``), secret-stream/Noise (hypercore-crypto, noise-curve-ed) and
Mainline BEP 44 all use libsodium Ed25519 key pairs; this class serves all three.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings as sodium

from peerdht.errors import LocalProtocolError

__all__ = ["PUBLIC_KEY_BYTES", "SECRET_KEY_BYTES", "SEED_BYTES", "KeyPair", "is_public_key"]

PUBLIC_KEY_BYTES = 32
SECRET_KEY_BYTES = 64
SEED_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 key pair in libsodium layout.

    Attributes:
        public_key: 32 bytes.
        secret_key: 64 bytes, ``seed(32) || public_key(32)``; never shown in ``repr``.

    Raises:
        LocalProtocolError: wrong lengths.
    """

    public_key: bytes
    secret_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_BYTES or len(self.secret_key) != SECRET_KEY_BYTES:
            raise LocalProtocolError("a key pair has a 32-byte public key and a 64-byte secret key")

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """The key pair of a 32-byte seed (``crypto_sign_seed_keypair``; equal to JS ``DHT.keyPair(seed)``).

        Raises:
            LocalProtocolError: ``seed`` is not 32 bytes.
        """
        if len(seed) != SEED_BYTES:
            raise LocalProtocolError("a seed is 32 bytes")
        public_key, secret_key = sodium.crypto_sign_seed_keypair(bytes(seed))
        return cls(public_key=public_key, secret_key=secret_key)

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the OS CSPRNG (``DHT.keyPair()``)."""
        public_key, secret_key = sodium.crypto_sign_keypair()
        return cls(public_key=public_key, secret_key=secret_key)

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed."""
        return self.secret_key[:SEED_BYTES]

    @property
    def scalar(self) -> bytes:
        """The clamped 32-byte scalar for Edwards Diffie-Hellman (noise-curve-ed): SHA-512(seed)[0:32], clamped."""
        h = bytearray(hashlib.sha512(self.seed).digest()[:32])
        h[0] &= 248
        h[31] &= 127
        h[31] |= 64
        return bytes(h)

    def sign(self, message: bytes) -> bytes:
        """Detached Ed25519 signature of ``message`` (``crypto_sign_detached``); 64 bytes."""
        signed: bytes = sodium.crypto_sign(bytes(message), self.secret_key)
        return signed[:64]


def is_public_key(public_key: bytes) -> bool:
    """Whether ``public_key`` is 32 bytes encoding a valid Ed25519 point (``crypto_core_ed25519_is_valid_point``)."""
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    return bool(sodium.crypto_core_ed25519_is_valid_point(bytes(public_key)))
