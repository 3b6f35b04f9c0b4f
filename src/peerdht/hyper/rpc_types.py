"""The records of the dht-rpc node's request side: replies and requests in flight.

Shared by :mod:`peerdht.hyper.rpc_requests`, :mod:`peerdht.hyper.rpc_ops`, :mod:`peerdht.hyper.rpc_network`
and :mod:`peerdht.hyper.queries` (dht-rpc 6.27 keeps them in ``lib/io.js``). Queries and commits are typed ops
(:mod:`peerdht.hyper.queries` on :mod:`peerdht.kademlia.ops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from peerdht.errors import PeerDHTError
from peerdht.hyper.messages import Response
from peerdht.kademlia.requests import PendingRequest
from peerdht.kademlia.table import Contact

__all__ = ["OutgoingRequest", "Reply", "RequestOwner", "make_reply", "release"]

Address = tuple[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """A response matched to one of our requests.

    Attributes:
        from_addr: who answered, ``(host, port)``.
        from_id: their node id if they sent one and it equals ``node_id(from_addr)``, else None.
        message: the decoded response (``token``, ``closer_nodes``, ``error``, ``value``, ``to``).
        socket: the socket it arrived on.
    """

    from_addr: Address
    from_id: bytes | None
    message: Response
    socket: int

    @property
    def tid(self) -> int:
        """The response's transaction id."""
        return self.message.tid

    @property
    def to(self) -> Address:
        """How the responder sees us (``message.to``)."""
        return self.message.to

    @property
    def id(self) -> bytes | None:
        """The responder's verified id (``from_id``)."""
        return self.from_id

    @property
    def token(self) -> bytes | None:
        """The write token the responder gave us, 32 bytes, or None."""
        return self.message.token

    @property
    def closer_nodes(self) -> tuple[Address, ...]:
        """``message.closer_nodes``."""
        return self.message.closer_nodes

    @property
    def error(self) -> int:
        """``message.error`` (0 = OK)."""
        return self.message.error

    @property
    def value(self) -> bytes | None:
        """``message.value``."""
        return self.message.value


class RequestOwner(Protocol):
    """The op a request belongs to (a :class:`~peerdht.hyper.queries.HyperQuery` or a
    :class:`~peerdht.hyper.rpc_requests.RequestOp`): the node hands it the request's outcome."""

    def response(self, req: OutgoingRequest, contact: Contact | None, r: Reply, now: float) -> None:
        """``req`` (sent to ``contact``, ``None`` for a write or a single request) was answered with ``r``."""

    def failed(self, req: OutgoingRequest, contact: Contact | None, error: PeerDHTError, now: float) -> None:
        """``req`` got no reply after its retries (``error``)."""

    def on_slow(self, request: OutgoingRequest, contact: Contact) -> None:
        """``request`` (a query request to ``contact``) is being resent."""


class OutgoingRequest(PendingRequest):
    """One outgoing request: the dht-rpc node's fields on top of the request table's own
    (:class:`~peerdht.kademlia.requests.PendingRequest`; one object per request, tracked with
    :meth:`~peerdht.kademlia.requests.RequestTable.track` and its own ``context``).

    A slotted class with a positional constructor (one is made per request sent), compared by identity.
    Two kinds:

    * a request of an op (:class:`RequestOwner`: a query of :mod:`peerdht.hyper.queries`, or a
      :class:`~peerdht.hyper.rpc_requests.RequestOp`): ``owner`` is the op, ``contact`` the node a query
      asked (``None`` for a query's writes and single requests); ``on_response`` and ``on_error`` are None,
      and the node hands the outcome to the op itself (no closures per request);
    * a request of the node's own upkeep (table checks, DOWN_HINTs, the firewall check): ``on_response(reply)``
      or ``on_error(error)`` is called once.

    Attributes:
        addr: destination ``(host, port)``.
        socket: the socket index it leaves from (``SERVER`` 0 or ``CLIENT`` 1).
        internal, command, target, value, token: the request's fields (see :class:`~peerdht.hyper.messages.Request`).
        retries: resends allowed after the first send.
        timeout: seconds to wait for a reply after each send.
        to_id: the node id we expect to answer (a table node dropped on timeout), or None.
        tid: the transaction id, -1 while the request waits for the congestion window.
        done: answered, failed or aborted.
        payload, sent, deadline, tries, first_sent: the request table's, set when it is sent.
    """

    __slots__ = (
        "command", "contact", "done", "internal", "on_error", "on_response", "owner", "socket", "target",
        "to_id", "token", "value",
    )

    def __init__(
        self,
        addr: Address,
        socket: int,
        internal: bool,
        command: int,
        on_response: Callable[[Reply], None] | None,
        on_error: Callable[[PeerDHTError], None] | None,
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        retries: int = 3,
        timeout: float = 1.0,
        to_id: bytes | None = None,
        owner: RequestOwner | None = None,
        contact: Contact | None = None,
    ) -> None:
        self.addr = addr
        self.socket = socket
        self.internal = internal
        self.command = command
        self.on_response = on_response
        self.on_error = on_error
        self.target = target
        self.value = value
        self.token = token
        self.retries = retries
        self.timeout = timeout
        self.to_id = to_id
        self.owner = owner
        self.contact = contact
        self.tid = -1
        self.done = False
        self.payload = b""
        self.sent = self.deadline = self.first_sent = 0.0
        self.tries = 0

    @property
    def context(self) -> OutgoingRequest:  # type: ignore[override]
        """The request table's context: the request itself (a property, not a slot: a reference to itself
        would make every request a reference cycle, freed only by the cyclic GC)."""
        return self

    def __repr__(self) -> str:
        return f"<OutgoingRequest command={self.command} to={self.addr} tid={self.tid} done={self.done}>"


def release(req: OutgoingRequest) -> None:
    """Drop a finished request's callbacks, query and contact. Callbacks are closures over the request
    itself and often its operation, and a query holds its requests: left in place, every query with its
    lookup, candidates and replies stayed alive in reference cycles until the cyclic GC came by (~3,900
    objects per bench round, ~8 % of the client's CPU in gc); released, reference counting frees them as
    soon as they are done."""
    req.on_response = None
    req.on_error = None
    req.owner = None
    req.contact = None


_new = object.__new__
_SET_REPLY = tuple(Reply.__dict__[f].__set__ for f in Reply.__slots__)
assert Reply.__slots__ == ("from_addr", "from_id", "message", "socket")


def make_reply(from_addr: Address, from_id: bytes | None, message: Response, socket: int) -> Reply:
    """``Reply(from_addr=..., from_id=..., message=..., socket=...)`` with its slots set directly: the same
    frozen object without the keyword ``__init__`` that sets each field through ``object.__setattr__``
    (one is built for every reply a node receives)."""
    r: Reply = _new(Reply)
    s_addr, s_id, s_message, s_socket = _SET_REPLY
    s_addr(r, from_addr)
    s_id(r, from_id)
    s_message(r, message)
    s_socket(r, socket)
    return r
