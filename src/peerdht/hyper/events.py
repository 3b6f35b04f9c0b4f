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
    "HandshakeReceived",
    "HolepunchReceived",
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


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeReceived:
    """A client's PEER_HANDSHAKE reached a server hosted on this node (hyperdht ``lib/router.js``
    ``onpeerhandshake`` → ``Server._onpeerhandshake``).

    Answer it with :meth:`~peerdht.hyper.node.HyperDHTNode.answer` (the Noise reply) or
    :meth:`~peerdht.hyper.node.HyperDHTNode.decline`; the node sends the reply back through the
    same request (to the client when it came directly, else through the relaying DHT node).
    Unanswered requests are forgotten after :data:`peerdht.hyper.router.ANSWER_TIMEOUT` seconds.

    Attributes:
        request_id: the id to answer.
        target: the server's ``hash(public_key)``, 32 bytes.
        noise: the client's first Noise IK message.
        peer_address: the client's ``(host, port)`` as a relay saw it; ``None`` when the client
            sent the handshake to us directly (then ``from_addr`` is the client).
        from_addr: who sent the request, ``(host, port)``.
        socket: the node socket it arrived on (``CLIENT`` 0 / ``SERVER`` 1).
    """

    request_id: int
    target: bytes
    noise: bytes
    peer_address: tuple[str, int] | None
    from_addr: tuple[str, int]
    socket: int


@dataclass(frozen=True, kw_only=True, slots=True)
class HolepunchReceived:
    """A relayed PEER_HOLEPUNCH round for a server hosted on this node (hyperdht ``lib/router.js``
    ``onpeerholepunch`` → ``Server._onpeerholepunch``).

    Answer it (now or later) with :meth:`~peerdht.hyper.node.HyperDHTNode.answer` (the encrypted
    holepunch payload) or :meth:`~peerdht.hyper.node.HyperDHTNode.decline`; the answer goes back
    through the relay ``from_addr`` as the reply to this request.

    Attributes:
        request_id: the id to answer.
        target: the server's ``hash(public_key)``, 32 bytes.
        id: the server's holepunch id from the handshake reply.
        payload: the encrypted holepunch payload.
        peer_address: the client's ``(host, port)`` as the relay saw it.
        from_addr: the relay, ``(host, port)``.
        socket: the node socket it arrived on.
    """

    request_id: int
    target: bytes
    id: int
    payload: bytes
    peer_address: tuple[str, int]
    from_addr: tuple[str, int]
    socket: int


Event = (
    Bootstrapped
    | OpDone
    | OpFailed
    | LookupResult
    | PersistentChanged
    | HandshakeReceived
    | HolepunchReceived
)
