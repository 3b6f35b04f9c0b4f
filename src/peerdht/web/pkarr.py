"""The Pkarr relay payload (pubky/pkarr ``design/relays.md``): z-base32 keys and ``sig ‖ seq ‖ v`` bodies.

A Pkarr relay lets HTTP-only clients (browsers) publish and resolve BEP 44 *mutable, salt-less* items:

* ``PUT /<z-base32 public key>`` with body ``sig (64 bytes) ‖ seq (u64 big-endian, microseconds) ‖ v (<= 1000
  bytes, a DNS packet)``; ``If-Match: <seq>`` is the BEP 44 ``cas``. Answers ``204`` with
  ``Pkarr-Dht-Stored-Nodes: <n>``; ``400`` bad key/signature/packet, ``409`` older than known (BEP 44 302),
  ``412`` ``If-Match`` failed (301), ``413`` body over 1072 bytes, ``428`` a put for that key is already in
  progress and no ``If-Match`` was given, ``429`` rate-limited, ``500`` the DHT put failed.
* ``GET /<z-base32 public key>``: ``200`` with the same body (``Content-Type: application/pkarr.org/relays#payload``,
  ``Cache-Control: public, max-age=300``, ``Last-Modified`` = the seq as a date), ``304`` for
  ``If-Modified-Since`` not older, ``400`` bad key, ``404`` not found. CORS ``*`` on everything.

This module has the pure parts (no I/O): the codec and the checks; :mod:`peerdht.aio.web.node` serves them.
The signature is BEP 44's over ``3:seqi<seq>e1:v<len>:<v>`` (``v`` is a bencoded byte string).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from peerdht.encoding.bencode import encode
from peerdht.errors import DecodeError
from peerdht.mainline.crypto import verify_mutable

__all__ = ["MAX_BODY", "Payload", "decode_key", "encode_key", "http_date", "parse_payload"]

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}

MAX_BODY = 64 + 8 + 1000
"""Largest PUT body (bytes): signature, seq, a 1000-byte DNS packet."""


def encode_key(key: bytes) -> str:
    """z-base32 of a 32-byte public key (52 characters, most significant bits first)."""
    n = int.from_bytes(key, "big") << 4  # 256 bits -> 260 = 52 * 5
    return "".join(ALPHABET[(n >> (5 * (51 - i))) & 31] for i in range(52))


def decode_key(text: str) -> bytes:
    """The 32-byte public key from its z-base32 form (``pk:`` prefix allowed).

    Raises:
        DecodeError: not 52 z-base32 characters, or non-zero padding bits.
    """
    if text.startswith("pk:"):
        text = text[3:]
    if len(text) != 52:
        raise DecodeError("a z-base32 public key has 52 characters")
    n = 0
    for c in text:
        i = _INDEX.get(c)
        if i is None:
            raise DecodeError("not z-base32")
        n = (n << 5) | i
    if n & 0xF:
        raise DecodeError("z-base32 key: non-zero padding bits")
    return (n >> 4).to_bytes(32, "big")


@dataclass(frozen=True, kw_only=True, slots=True)
class Payload:
    """A relay body: ``sig`` (64 bytes), ``seq`` (microseconds since 1970), ``v`` (the DNS packet)."""

    sig: bytes
    seq: int
    v: bytes

    def to_bytes(self) -> bytes:
        """The relay body: ``sig`` (64 bytes) ‖ ``seq`` (u64 big-endian) ‖ ``v``."""
        return self.sig + self.seq.to_bytes(8, "big") + self.v

    def verify(self, public_key: bytes) -> bool:
        """BEP 44 signature check (salt-less) of this payload for ``public_key``."""
        return verify_mutable(public_key, self.sig, encode(self.v), self.seq)


def parse_payload(body: bytes) -> Payload:
    """Split a PUT body.

    Raises:
        DecodeError: shorter than 72 bytes, longer than :data:`MAX_BODY`, a seq over 2**63 - 1, or a ``v``
            that is not a DNS message (shorter than its 12-byte header).
    """
    if len(body) < 72 or len(body) > MAX_BODY:
        raise DecodeError(f"relay payload of {len(body)} bytes")
    seq = int.from_bytes(body[64:72], "big")
    if seq >= 1 << 63:
        raise DecodeError("seq out of range")
    v = body[72:]
    if len(v) < 12:
        raise DecodeError("not a DNS packet")
    return Payload(sig=body[:64], seq=seq, v=v)


def http_date(seq: int) -> str:
    """A seq (microseconds since 1970) as an HTTP date (``Last-Modified``)."""
    return email.utils.formatdate(seq / 1e6, usegmt=True)


def parse_http_date(text: str) -> int | None:
    """An HTTP date as microseconds since 1970, or ``None`` if unreadable."""
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return int(parsed.timestamp()) * 1_000_000
