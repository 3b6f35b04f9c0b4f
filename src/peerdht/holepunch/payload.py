"""Encrypted PEER_HOLEPUNCH payloads and address tokens (hyperdht ``lib/secure-payload.js``).

A payload is ``nonce(24) || crypto_secretbox(holepunchPayload, nonce, holepunch_secret)``. A token
proves an address: ``BLAKE2b-256(host, key=local_secret)``; the peer echoes it back through the
relay it trusts, which verifies the address it punches to.
"""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions

from peerdht.errors import DecodeError, LocalProtocolError
from peerdht.hyper.records import HolepunchPayload, decode_holepunch_payload, encode_holepunch_payload
from peerdht.secure.keys import blake2b

NONCE = 24
MAC = 16


class SecurePayload:
    """Seals and opens holepunch payloads with the handshake's holepunch secret.

    Args:
        secret: 32-byte ``holepunch_secret`` of the Noise handshake.
        local_secret: 32 random bytes keying our address tokens.

    Attributes:
        failed: payloads that did not decrypt or decode (dropped).
    """

    def __init__(self, secret: bytes, local_secret: bytes) -> None:
        if len(secret) != 32 or len(local_secret) != 32:
            raise LocalProtocolError("holepunch secrets are 32 bytes")
        self._secret = bytes(secret)
        self._local = bytes(local_secret)
        self.failed = 0

    def encrypt(self, payload: HolepunchPayload, nonce: bytes) -> bytes:
        """Seal ``payload`` with ``nonce`` (24 random bytes)."""
        if len(nonce) != NONCE:
            raise LocalProtocolError("nonce must be 24 bytes")
        return bytes(nonce) + sodium.crypto_secretbox(
            encode_holepunch_payload(payload), bytes(nonce), self._secret
        )

    def decrypt(self, data: bytes) -> HolepunchPayload | None:
        """Open a sealed payload; None (counted in :attr:`failed`) if it fails."""
        if len(data) <= NONCE + MAC:
            self.failed += 1
            return None
        try:
            plain = sodium.crypto_secretbox_open(bytes(data[NONCE:]), bytes(data[:NONCE]), self._secret)
            return decode_holepunch_payload(plain)
        except (nacl.exceptions.CryptoError, DecodeError, ValueError):
            self.failed += 1
            return None

    def token(self, host: str) -> bytes:
        """Our 32-byte token for ``host``."""
        return blake2b(host.encode(), key=self._local)
