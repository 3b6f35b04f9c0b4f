"""Mainline DHT cryptography: BEP 42 node ids from IPs, BEP 44 targets and signatures.

* BEP 42: the first 21 bits of a node id are the first 21 bits of ``crc32c`` of the masked external
  IP combined with a 3-bit random ``r``; the last byte of the id carries ``r`` in its low 3 bits.
* BEP 44: immutable target ``SHA1(bencode(v))``; mutable target ``SHA1(k + salt)``; the Ed25519
  signature covers ``[4:salt<len>:<salt>]3:seqi<seq>e1:v<bencode(v)>``.

CRC32C (Castagnoli, reflected polynomial ``0x82F63B78``) is a small table implementation: it only ever
hashes 4 or 8 bytes here, and it keeps the package free of one more native dependency.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING

import nacl.exceptions
import nacl.signing

from peerdht.errors import LocalProtocolError
from peerdht.keys import KeyPair

if TYPE_CHECKING:
    import random

__all__ = [
    "KeyPair",
    "crc32c",
    "immutable_target",
    "is_bep42_exempt",
    "mutable_signable",
    "mutable_target",
    "node_id_for_ip",
    "node_id_matches_ip",
    "sign_mutable",
    "verify_mutable",
]


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli, RFC 3720) of ``data``, optionally continuing from ``crc``."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = _CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


_V4_MASK = 0x030F3FFF
_V6_MASK = 0x0103070F1F3F7FFF

_EXEMPT = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "::1/128")
)


def _bep42_crc(ip: str, r: int) -> int:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise LocalProtocolError(f"not an IP address: {ip!r}") from exc
    if addr.version == 4:
        masked = (int(addr) & _V4_MASK) | ((r & 7) << 29)
        return crc32c(masked.to_bytes(4, "big"))
    high = int(addr) >> 64
    masked = (high & _V6_MASK) | ((r & 7) << 61)
    return crc32c(masked.to_bytes(8, "big"))


def is_bep42_exempt(ip: str) -> bool:
    """Whether BEP 42 id checks are waived for ``ip`` (private, link-local and loopback ranges).

    Non-IP hosts (a future non-UDP transport) are exempt too: they have no IP to derive an id from.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    return any(addr in net for net in _EXEMPT if net.version == addr.version)


def node_id_for_ip(ip: str, rng: random.Random, *, r: int | None = None) -> bytes:
    """A BEP 42 compliant node id for the external address ``ip``.

    Args:
        ip: dotted IPv4 or IPv6 text.
        rng: randomness for ``r`` (unless given) and the free bits.
        r: the 3-bit random number (0..7); drawn from ``rng`` when ``None``. The last id byte is
            ``(random & 0xF8) | r``.

    Returns:
        ``bytes``, 20 long.

    Raises:
        LocalProtocolError: ``ip`` is not an IP address.
    """
    rand = rng.getrandbits(8) if r is None else (rng.getrandbits(5) << 3) | (r & 7)
    crc = _bep42_crc(ip, rand & 7)
    middle = rng.getrandbits(16 * 8).to_bytes(16, "big")
    third = ((crc >> 8) & 0xF8) | rng.getrandbits(3)
    return bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, third]) + middle + bytes([rand & 0xFF])


def node_id_matches_ip(node_id: bytes, ip: str) -> bool:
    """BEP 42 verification: do the first 21 bits of ``node_id`` match ``ip``?

    Exempt addresses (:func:`is_bep42_exempt`) always match.

    Args:
        node_id: ``bytes``, 20 long.
        ip: the address the node's messages came from.
    """
    if len(node_id) != 20:
        return False
    if is_bep42_exempt(ip):
        return True
    crc = _bep42_crc(ip, node_id[19] & 7)
    return (int.from_bytes(node_id[:3], "big") >> 3) == (crc >> 11)


def immutable_target(encoded_value: bytes) -> bytes:
    """BEP 44 immutable item target: ``SHA1(bencode(v))`` (20 bytes)."""
    return hashlib.sha1(encoded_value).digest()


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    """BEP 44 mutable item target: ``SHA1(k + salt)`` (20 bytes)."""
    return hashlib.sha1(public_key + salt).digest()


def mutable_signable(encoded_value: bytes, seq: int, salt: bytes = b"") -> bytes:
    """The BEP 44 buffer an Ed25519 signature covers.

    ``4:salt<len>:<salt>`` (only when ``salt`` is non-empty) ``3:seqi<seq>e1:v`` + ``encoded_value``.
    """
    prefix = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return prefix + b"3:seqi%de1:v" % seq + encoded_value


def verify_mutable(
    public_key: bytes, signature: bytes, encoded_value: bytes, seq: int, salt: bytes = b""
) -> bool:
    """Check a BEP 44 mutable item signature; ``False`` for any malformed key or signature."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(mutable_signable(encoded_value, seq, salt), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def sign_mutable(key_pair: KeyPair, encoded_value: bytes, seq: int, salt: bytes = b"") -> bytes:
    """Sign a BEP 44 mutable item; returns the 64-byte signature."""
    return key_pair.sign(mutable_signable(encoded_value, seq, salt))
