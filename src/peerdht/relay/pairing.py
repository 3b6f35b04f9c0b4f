"""A blind relay's pairing table and capacity bounds, sans-IO (npm ``blind-relay`` ``Server``).

Two clients that want to be spliced each send ``pair`` with the same 32-byte secret token (it
travelled inside their end-to-end encrypted Noise payloads, so nobody else knows it), one as
initiator, one not. The relay matches them only on the exact token with opposite roles; a role
already taken for a pending token is ignored (a late third party cannot replace a side), and a
matched token is consumed (it cannot be paired again). Streams that did not both ask are never
spliced.

Bounds (JS has none): pending pairings per session and in total, active links per session and in
total, a pairing timeout, and a byte rate per session (:class:`~peerdht.kademlia.ratelimit.TokenBucket`, shared by the
session's relayed streams).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from peerdht.errors import PairingError
from peerdht.kademlia.ratelimit import TokenBucket as TokenBucket  # re-exported: its first home
from peerdht.relay.messages import TOKEN_SIZE

S = TypeVar("S")

PAIR_TIMEOUT: Final = 15.0
"""Seconds a half pairing waits for its other side (hyperdht aborts a relay attempt after 15 s)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Link(Generic[S]):
    """One side of a pairing: ``session`` asked with its UDX stream ``remote_id``."""

    session: S
    is_initiator: bool
    remote_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Matched(Generic[S]):
    """Both sides asked with ``token``: splice ``initiator`` and ``responder``."""

    token: bytes
    initiator: Link[S]
    responder: Link[S]


@dataclass(kw_only=True, slots=True)
class _Pending(Generic[S]):
    links: list[Link[S] | None] = field(default_factory=lambda: [None, None])
    deadline: float = 0.0


class Pairings(Generic[S]):
    """The relay's table of pending pairings and active links; sessions are any hashable value.

    Args:
        max_pending_per_session: half pairings one session may hold.
        max_links_per_session: active spliced links one session may hold.
        max_pending: half pairings in total.
        max_links: active links in total (each splices two streams).
        timeout: seconds a half pairing waits.
    """

    def __init__(
        self,
        *,
        max_pending_per_session: int = 8,
        max_links_per_session: int = 16,
        max_pending: int = 1024,
        max_links: int = 512,
        timeout: float = PAIR_TIMEOUT,
    ) -> None:
        self.max_pending_per_session = max_pending_per_session
        self.max_links_per_session = max_links_per_session
        self.max_pending = max_pending
        self.max_links = max_links
        self.timeout = timeout
        self._pending: dict[bytes, _Pending[S]] = {}
        self._by_session: dict[S, set[bytes]] = {}
        self._links: dict[bytes, Matched[S]] = {}
        self._link_count: dict[S, int] = {}
        self.stats = {"requested": 0, "matched": 0, "cancelled": 0, "expired": 0, "refused": 0}

    @property
    def pending(self) -> int:
        """Half pairings waiting."""
        return len(self._pending)

    @property
    def active(self) -> int:
        """Active links."""
        return len(self._links)

    def pending_of(self, session: S) -> int:
        """Half pairings ``session`` is waiting on."""
        mine = self._by_session.get(session)
        return len(mine) if mine is not None else 0

    def links_of(self, session: S) -> int:
        """Active links ``session`` takes part in."""
        return self._link_count.get(session, 0)

    def pair(self, session: S, is_initiator: bool, token: bytes, remote_id: int, now: float) -> Matched[S] | None:
        """``session`` asks to pair ``token`` in one role with its stream ``remote_id``.

        Returns:
            :class:`Matched` when this completes the pairing (the link is then active), else None
            (waiting, or a duplicate of a taken role: ignored as JS does).

        Raises:
            PairingError: over capacity, or a malformed token.
        """
        if len(token) != TOKEN_SIZE:
            self.stats["refused"] += 1
            raise PairingError("bad-token")
        if token in self._links:
            return None  # consumed
        role = 1 if is_initiator else 0
        p = self._pending.get(token)
        if p is not None and p.links[role] is not None:
            return None
        mine = self._by_session.get(session, set())
        if p is None and (len(mine) >= self.max_pending_per_session or len(self._pending) >= self.max_pending):
            self.stats["refused"] += 1
            raise PairingError("capacity")
        if p is not None:
            other = p.links[1 - role]
            assert other is not None
            if (
                len(self._links) >= self.max_links
                or self.links_of(session) >= self.max_links_per_session
                or self.links_of(other.session) >= self.max_links_per_session
            ):
                self.stats["refused"] += 1
                raise PairingError("capacity")
        self.stats["requested"] += 1
        link = Link(session=session, is_initiator=is_initiator, remote_id=remote_id)
        if p is None:
            p = _Pending(deadline=now + self.timeout)
            p.links[role] = link
            self._pending[token] = p
            self._by_session.setdefault(session, set()).add(token)
            return None
        p.links[role] = link
        del self._pending[token]
        for ln in p.links:
            assert ln is not None
            self._forget_pending(ln.session, token)
        init, resp = p.links[1], p.links[0]
        assert init is not None and resp is not None
        m = Matched(token=token, initiator=init, responder=resp)
        self._links[token] = m
        for s in {init.session, resp.session}:
            self._link_count[s] = self._link_count.get(s, 0) + 1
        self.stats["matched"] += 1
        return m

    def unpair(self, session: S, token: bytes) -> Matched[S] | None:
        """``session`` cancels ``token``: a pending half is dropped; an active link it is part of
        is returned (tear both streams down) and forgotten. Another session's token is untouched."""
        p = self._pending.get(token)
        if p is not None:
            if any(ln is not None and ln.session == session for ln in p.links):
                del self._pending[token]
                for ln in p.links:
                    if ln is not None:
                        self._forget_pending(ln.session, token)
                self.stats["cancelled"] += 1
            return None
        m = self._links.get(token)
        if m is not None and session in (m.initiator.session, m.responder.session):
            self.link_closed(token)
            self.stats["cancelled"] += 1
            return m
        return None

    def link_closed(self, token: bytes) -> Matched[S] | None:
        """A spliced link ended (either stream closed); returns it if it was active."""
        m = self._links.pop(token, None)
        if m is not None:
            for s in {m.initiator.session, m.responder.session}:
                n = self._link_count.get(s, 0) - 1
                if n > 0:
                    self._link_count[s] = n
                else:
                    self._link_count.pop(s, None)
        return m

    def remove_session(self, session: S) -> list[Matched[S]]:
        """``session`` went away: its half pairings are dropped; returns its active links (close them)."""
        for token in list(self._by_session.get(session, ())):
            p = self._pending.pop(token, None)
            if p is not None:
                self.stats["cancelled"] += 1
                for ln in p.links:
                    if ln is not None:
                        self._forget_pending(ln.session, token)
        gone = [m for m in self._links.values() if session in (m.initiator.session, m.responder.session)]
        for m in gone:
            self.link_closed(m.token)
        return gone

    def get_timer(self) -> float | None:
        """When the next half pairing expires, or None."""
        return min((p.deadline for p in self._pending.values()), default=None)

    def handle_timer(self, now: float) -> list[tuple[bytes, S]]:
        """Expire half pairings; returns ``(token, session)`` of each dropped half."""
        out: list[tuple[bytes, S]] = []
        for token, p in list(self._pending.items()):
            if now >= p.deadline:
                del self._pending[token]
                self.stats["expired"] += 1
                for ln in p.links:
                    if ln is not None:
                        self._forget_pending(ln.session, token)
                        out.append((token, ln.session))
        return out

    def _forget_pending(self, session: S, token: bytes) -> None:
        mine = self._by_session.get(session)
        if mine is not None:
            mine.discard(token)
            if not mine:
                del self._by_session[session]
