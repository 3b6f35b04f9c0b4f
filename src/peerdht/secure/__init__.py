"""Encryption layer: Noise handshakes (IK for HyperDHT, XX for secret-stream) and secret-stream framing.

* :mod:`~peerdht.secure.noise`: the Noise handshakes; :mod:`~peerdht.secure.secretstream`: the encrypted
  framing; :mod:`~peerdht.secure.keys`: hashing helpers and hypercore-crypto namespaces (the key pair type
  itself is :class:`peerdht.keys.KeyPair`).

Sans-IO: nothing here does I/O or reads a clock; randomness (ephemeral seeds, stream headers) is
passed in by the caller. The asyncio stream is :mod:`peerdht.aio.hyperdht.secretstream`.
"""

from peerdht.secure.keys import KeyPair, stream_id
from peerdht.secure.noise import (
    NS_PEER_HANDSHAKE,
    NS_PEER_HOLEPUNCH,
    HandshakeResult,
    NoiseState,
    holepunch_secret,
    peer_handshake,
)
from peerdht.secure.secretstream import HandshakeComplete, Message, SecretStreamCore

__all__ = [
    "NS_PEER_HANDSHAKE",
    "NS_PEER_HOLEPUNCH",
    "HandshakeComplete",
    "HandshakeResult",
    "KeyPair",
    "Message",
    "NoiseState",
    "SecretStreamCore",
    "holepunch_secret",
    "peer_handshake",
    "stream_id",
]
