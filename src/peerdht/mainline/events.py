"""Events and results of :class:`peerdht.mainline.node.MainlineNode` (frozen, keyword-only dataclasses).

Every command returns an op id. It ends with exactly one :class:`OpDone` (whose ``result`` is the
command's result dataclass below) or :class:`OpFailed`; a ``get_peers`` lookup streams
:class:`PeersFound` before its :class:`OpDone`.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.encoding.bencode import Value, encode
from peerdht.errors import PeerDHTError
from peerdht.mainline.crypto import immutable_target, mutable_target
from peerdht.mainline.messages import NodeInfo

__all__ = [
    "AnnounceResult",
    "Bootstrapped",
    "GetResult",
    "Item",
    "LookupResult",
    "OpDone",
    "OpFailed",
    "PeersFound",
    "PingResult",
    "PutResult",
    "SampleResult",
]

Addr = tuple[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    """A BEP 44 item: immutable (``k is None``) or mutable (``k``, ``seq``, ``sig``; ``salt`` given).

    Attributes:
        v: the value (any bencodable value; its encoding is at most 1000 bytes).
        k: Ed25519 public key, 32 bytes (mutable only).
        seq: sequence number (mutable only).
        sig: Ed25519 signature, 64 bytes (mutable only).
        salt: up to 64 bytes (mutable only; not carried in ``get`` replies).
    """

    v: Value
    k: bytes | None = None
    seq: int | None = None
    sig: bytes | None = None
    salt: bytes = b""

    @property
    def target(self) -> bytes:
        """BEP 44 target (20 bytes): SHA1 of ``bencode(v)`` or of ``k + salt``."""
        if self.k is None:
            return immutable_target(encode(self.v))
        return mutable_target(self.k, self.salt)


@dataclass(frozen=True, kw_only=True, slots=True)
class Bootstrapped:
    """The bootstrap lookup (``find_node`` on our own id) finished; ``nodes`` = routing table size."""

    nodes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PeersFound:
    """New peers for a ``get_peers`` lookup ``op`` (each address reported once per lookup)."""

    op: int
    peers: tuple[Addr, ...]
    source: Addr


@dataclass(frozen=True, kw_only=True, slots=True)
class OpDone:
    """Command ``op`` finished; ``result`` is its result dataclass."""

    op: int
    result: object


@dataclass(frozen=True, kw_only=True, slots=True)
class OpFailed:
    """Command ``op`` failed (``RequestTimeout``, ``RemoteError``, ``NotFound`` ...)."""

    op: int
    error: PeerDHTError


@dataclass(frozen=True, kw_only=True, slots=True)
class PingResult:
    """``ping``: the responder's id and address."""

    id: bytes
    addr: Addr


@dataclass(frozen=True, kw_only=True, slots=True)
class LookupResult:
    """``find_node``/``get_peers``: the closest responders (closest first), all peers seen, messages sent."""

    nodes: tuple[NodeInfo, ...]
    peers: tuple[Addr, ...] = ()
    queries: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnounceResult:
    """``announce_peer``: how many of the closest nodes accepted it (``stored``) out of ``tried``."""

    stored: int
    tried: int


@dataclass(frozen=True, kw_only=True, slots=True)
class GetResult:
    """``get``: the item (``None`` if not found) and the node it came from."""

    item: Item | None
    source: Addr | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PutResult:
    """``put``: target (20 bytes), seq used (mutable), nodes that stored it, error codes received."""

    target: bytes
    seq: int | None
    stored: int
    tried: int
    errors: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleResult:
    """BEP 51 ``sample_infohashes`` answer of one node."""

    id: bytes
    samples: tuple[bytes, ...]
    num: int
    interval: int
    nodes: tuple[NodeInfo, ...]
