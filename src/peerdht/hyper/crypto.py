"""HyperDHT hashing, key pairs and record signatures.

Mirrors hyperdht 6.34 ``lib/crypto.js`` (``hash``, ``createKeyPair``), ``lib/persistent.js``
(``annSignable``, ``signAnnounce``, ``signUnannounce``, ``signMutable``, ``verifyMutable``) and
dht-rpc 6.27 ``lib/peer.js`` (``id``). BLAKE2b comes from :mod:`hashlib`, Ed25519 from PyNaCl
(libsodium, the library sodium-universal wraps).

Signed messages (Ed25519 detached, 64 bytes)::

    announce  : NS_ANNOUNCE   || BLAKE2b-256(target || node_id || token || peer || refresh)
    unannounce: NS_UNANNOUNCE || BLAKE2b-256(target || node_id || token || peer || refresh)
    mutable   : NS_MUTABLE_PUT || BLAKE2b-256(uint seq || buffer value)

``node_id`` and ``token`` belong to the *storing* node, so an announce signature is valid at
one node only. ``peer`` is the ``peer`` encoding (:func:`peerdht.hyper.records.encode_peer`);
``refresh`` is empty when absent; the announce ``bump`` is not signed.
"""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions

from peerdht.encoding.compact import encode_ipv4_address
from peerdht.errors import LocalProtocolError
from peerdht.hyper.constants import NS_ANNOUNCE, NS_MUTABLE_PUT, NS_UNANNOUNCE
from peerdht.hyper.records import Peer, encode_mutable_signable, encode_peer
from peerdht.keys import KeyPair

__all__ = [
    "KeyPair",
    "announce_signable",
    "hash",
    "mutable_signable",
    "node_id",
    "sign",
    "sign_announce",
    "sign_mutable",
    "validate_id",
    "verify",
    "verify_announce",
    "verify_mutable",
]


def hash(data: bytes) -> bytes:
    """BLAKE2b-256 of ``data`` (``DHT.hash``, libsodium ``crypto_generichash``); 32 bytes."""
    return hashlib.blake2b(data, digest_size=32).digest()


def node_id(host: str, port: int) -> bytes:
    """dht-rpc node id of an IPv4 address: BLAKE2b-256 of its 6-byte ``ipv4Address``.

    Raises:
        LocalProtocolError: ``host`` is not a dotted quad or ``port`` is out of range.
    """
    return hash(encode_ipv4_address(host, port))


def validate_id(id: bytes | None, addr: tuple[str, int]) -> bytes | None:
    """dht-rpc ``validateId``: return ``id`` if it is ``node_id(*addr)``, else None.

    Never raises: a non-IPv4 address or a malformed id gives None.
    """
    if id is None or len(id) != 32:
        return None
    try:
        expected = node_id(addr[0], addr[1])
    except LocalProtocolError:
        return None
    return expected if expected == id else None


def sign(message: bytes, key_pair: KeyPair) -> bytes:
    """Detached Ed25519 signature (``crypto_sign_detached``); 64 bytes."""
    signed: bytes = nacl.bindings.crypto_sign(message, key_pair.secret_key)
    return signed[:64]


def verify(signature: bytes, message: bytes, public_key: bytes) -> bool:
    """``crypto_sign_verify_detached``; False (never an exception) for any bad input."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    try:
        nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def announce_signable(
    target: bytes,
    node_id: bytes,
    token: bytes,
    peer: Peer,
    refresh: bytes | None,
    *,
    unannounce: bool = False,
) -> bytes:
    """The 64 bytes an (un)announce signature covers (``persistent.js annSignable``)."""
    ns = NS_UNANNOUNCE if unannounce else NS_ANNOUNCE
    h = hashlib.blake2b(digest_size=32)
    for part in (target, node_id, token, encode_peer(peer), refresh or b""):
        h.update(part)
    return ns + h.digest()


def sign_announce(
    target: bytes,
    node_id: bytes,
    token: bytes,
    peer: Peer,
    refresh: bytes | None,
    key_pair: KeyPair,
    *,
    unannounce: bool = False,
) -> bytes:
    """Sign an ANNOUNCE (or UNANNOUNCE) for one storing node (``Persistent.signAnnounce``).

    Args:
        target: 32-byte topic.
        node_id: 32-byte id of the node that will store the record.
        token: 32-byte token that node gave us.
        peer: the announced peer (its public key must be ``key_pair``'s).
        refresh: 32-byte refresh token or None.
        key_pair: the announcing peer's keys.
        unannounce: sign for UNANNOUNCE instead (``NS_UNANNOUNCE``).

    Returns:
        64-byte signature.
    """
    return sign(announce_signable(target, node_id, token, peer, refresh, unannounce=unannounce), key_pair)


def verify_announce(
    signature: bytes,
    target: bytes,
    node_id: bytes,
    token: bytes,
    peer: Peer,
    refresh: bytes | None,
    *,
    unannounce: bool = False,
) -> bool:
    """Check an (un)announce signature against ``peer.public_key``; never raises."""
    try:
        signable = announce_signable(target, node_id, token, peer, refresh, unannounce=unannounce)
    except LocalProtocolError:
        return False
    return verify(signature, signable, peer.public_key)


def mutable_signable(seq: int, value: bytes) -> bytes:
    """The 64 bytes a mutable signature covers: ``NS_MUTABLE_PUT || hash(mutableSignable)``."""
    return NS_MUTABLE_PUT + hash(encode_mutable_signable(seq, value))


def sign_mutable(seq: int, value: bytes, key_pair: KeyPair) -> bytes:
    """Sign a mutable value (``Persistent.signMutable``); 64 bytes."""
    return sign(mutable_signable(seq, value), key_pair)


def verify_mutable(signature: bytes, seq: int, value: bytes, public_key: bytes) -> bool:
    """Check a mutable signature (``Persistent.verifyMutable``); never raises."""
    try:
        signable = mutable_signable(seq, value)
    except LocalProtocolError:
        return False
    return verify(signature, signable, public_key)
