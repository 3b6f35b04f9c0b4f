"""blind-relay's ``pair`` and ``unpair`` messages (npm ``blind-relay`` 1.6.1 ``index.js``).

Both travel on a protomux channel with protocol ``"blind-relay"`` and, in hyperdht, channel id =
the client's public key (``relay.Client.from(socket, {id: socket.publicKey})``; the server accepts
with ``{id: socket.remotePublicKey}``). Message type 0 is ``pair``, 1 is ``unpair``.

* ``pair``: ``flags`` (compact-encoding-bitfield(7): one byte, bit 0 = isInitiator), ``token``
  (32 bytes), ``id`` (uint: the sender's UDX stream id), ``seq`` (uint, always 0).
* ``unpair``: ``flags`` (0), ``token`` (32 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from peerdht.encoding.compact import Decoder, Encoder
from peerdht.errors import LocalProtocolError

PROTOCOL: Final = "blind-relay"
PAIR: Final = 0
UNPAIR: Final = 1
TOKEN_SIZE: Final = 32


@dataclass(frozen=True, kw_only=True, slots=True)
class Pair:
    """Ask the relay to pair (client -> relay), or the answer (relay -> client, ``id`` = relay's stream)."""

    is_initiator: bool
    token: bytes
    id: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Unpair:
    """Cancel a pairing, or tear down a paired link."""

    token: bytes


def _flags(d: Decoder) -> int:
    # compact-encoding-bitfield decode: a 0xfd/0xfe/0xff prefix announces 2/4/8 bytes; the
    # first byte carries the 7 bits
    b = d.uint8()
    if b <= 0xFC:
        return b
    n = {0xFD: 2, 0xFE: 4, 0xFF: 8}[b]
    return d.fixed(n)[0]


def encode_pair(m: Pair) -> bytes:
    """Encode ``pair`` (the payload after protomux's channel id and type).

    Raises:
        LocalProtocolError: token not 32 bytes, or id/seq out of range.
    """
    if len(m.token) != TOKEN_SIZE:
        raise LocalProtocolError("token must be 32 bytes")
    e = Encoder()
    e.uint8(1 if m.is_initiator else 0)
    e.fixed(m.token, TOKEN_SIZE)
    e.uint(m.id)
    e.uint(m.seq)
    return e.getvalue()


def decode_pair(data: bytes) -> Pair:
    """Decode ``pair``. Raises :class:`~peerdht.errors.DecodeError` on malformed bytes."""
    d = Decoder(data)
    flags = _flags(d)
    token = d.fixed(TOKEN_SIZE)
    return Pair(is_initiator=bool(flags & 1), token=token, id=d.uint(), seq=d.uint())


def encode_unpair(m: Unpair) -> bytes:
    """Encode ``unpair``.

    Raises:
        LocalProtocolError: token not 32 bytes.
    """
    if len(m.token) != TOKEN_SIZE:
        raise LocalProtocolError("token must be 32 bytes")
    return b"\x00" + m.token


def decode_unpair(data: bytes) -> Unpair:
    """Decode ``unpair``. Raises :class:`~peerdht.errors.DecodeError` on malformed bytes."""
    d = Decoder(data)
    _flags(d)
    return Unpair(token=d.fixed(TOKEN_SIZE))
