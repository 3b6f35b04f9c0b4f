"""Events emitted by :class:`peerdht.hyper.node.HyperDHTNode` (frozen, keyword-only dataclasses).

Every command of the node returns an operation id (``int``); the events that report on it carry
that id in ``op``. A command ends with exactly one :class:`OpDone` or :class:`OpFailed`; streamed
lookups emit :class:`LookupResult` before their :class:`OpDone`.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerdht.errors import PeerDHTError
from peerdht.hyper.records import Peer

__all__ = [
    "Bootstrapped",
    "Event",
    "LookupResult",
    "MutablePutResult",
    "MutableRecord",
    "OpDone",
    "OpFailed",
    "PersistentChanged",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Bootstrapped:
    """The node finished its first bootstrap (dht-rpc ``ready``); emitted once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OpDone:
    """A command finished.

    Attributes:
        op: the id the command returned.
        result: command specific (see :class:`~peerdht.hyper.node.HyperDHTNode` methods).
    """

    op: int
    result: object


@dataclass(frozen=True, kw_only=True, slots=True)
class OpFailed:
    """A command failed.

    Attributes:
        op: the id the command returned.
        error: why; :class:`~peerdht.errors.RequestTimeout` when nobody answered,
            :class:`~peerdht.errors.RemoteError` (``code``) when a node answered with an error,
            :class:`~peerdht.errors.RequestError` when a query found too few nodes,
            :class:`~peerdht.errors.LocalProtocolError` when cancelled.
    """

    op: int
    error: PeerDHTError


@dataclass(frozen=True, kw_only=True, slots=True)
class LookupResult:
    """One reply of a LOOKUP or FIND_PEER query (hyperdht ``mapLookup`` / ``mapFindPeer``).

    Attributes:
        op: the query's operation id.
        from_addr: the node that answered, ``(host, port)``.
        peers: the peers it stores for the topic (FIND_PEER: exactly one).
        bump: the topic's bump value (ms since the epoch as the announcer set it, 0 if none).
    """

    op: int
    from_addr: tuple[str, int]
    peers: tuple[Peer, ...]
    bump: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class PersistentChanged:
    """The node switched between ephemeral and persistent (dht-rpc ``persistent``/``ephemeral``).

    Attributes:
        ephemeral: the new state; ``False`` means the node now has an id and serves records.
    """

    ephemeral: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class MutablePutResult:
    """Result of ``mutable_put`` (hyperdht ``mutablePut``).

    Attributes:
        public_key: the signer's Ed25519 public key, 32 bytes.
        seq: the sequence number stored.
        signature: Ed25519 signature, 64 bytes.
        stored: how many nodes accepted the write.
    """

    public_key: bytes
    seq: int
    signature: bytes
    stored: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class MutableRecord:
    """A verified mutable value (hyperdht ``mutableGet``).

    Attributes:
        seq: sequence number.
        value: the value bytes.
        signature: Ed25519 signature over ``NS_MUTABLE_PUT || hash(seq, value)``, 64 bytes.
        from_addr: the node that returned it.
    """

    seq: int
    value: bytes
    signature: bytes
    from_addr: tuple[str, int] | None = None


Event = Bootstrapped | OpDone | OpFailed | LookupResult | PersistentChanged
