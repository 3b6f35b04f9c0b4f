"""WebTorrent WebSocket tracker, server side (sans-IO): swarms, offer and answer relay, bounds.

Behaviour of npm ``bittorrent-tracker`` 11.2.3 for WebSocket clients (``server.js`` ``_onWebSocketRequest``,
``_onWebSocketClose``; ``lib/server/parse-websocket.js``; ``lib/server/swarm.js``):

* ``announce``: ``info_hash`` and ``peer_id`` must be 20-character strings (``to_peer_id`` too with an
  ``answer``), else the reply is ``{"failure reason": "invalid info_hash"}`` (no ``action``). ``event``
  ``started``/``update``/``completed``/``paused`` (absent = ``update``, an unknown peer's update = ``started``)
  join or refresh the peer; ``stopped`` leaves. The reply is ``{"complete", "incomplete", "action":
  "announce", "interval", "info_hash"}`` with ``interval`` in seconds (:attr:`TrackerCore.interval`, 120 s
  as JS's 10 min / 5), except for ``answer`` messages, which get no reply.
* offers: up to ``min(len(offers), 82)`` random other peers of the swarm get one offer each (offer ``i`` to
  peer ``i``) as ``{"action": "announce", "offer", "offer_id", "peer_id": <offerer>, "info_hash"}``.
* ``answer``: relayed to ``to_peer_id`` as ``{"action": "announce", "answer", "offer_id", "peer_id":
  <answerer>, "info_hash"}``; an unknown target is only a server-side warning (:class:`ServerWarning` event).
* ``scrape``: ``{"action": "scrape", "files": {<info_hash>: {"complete", "incomplete", "downloaded"}},
  "flags": {"min_request_interval": 60}}``; no ``info_hash`` scrapes every swarm.
* a closed connection leaves every swarm it joined; peers that have not announced for
  :attr:`TrackerCore.peer_ttl` (20 min) are dropped.

Bounds (JS has only the 1000-peer LRU per swarm): message size, offers relayed per announce, peers per
swarm and swarms (a full swarm or tracker refuses newcomers with a ``failure reason`` rather than evicting
live peers), ``(swarm, peer id)`` entries per connection, announces per second per connection (a token
bucket; over it the request is refused), and idle connections (nothing received for
:attr:`TrackerCore.idle_timeout`) are closed (:class:`CloseConnection` event).

Connections are opaque hashable handles chosen by the I/O layer. Shape as the other cores: inputs
:meth:`~TrackerCore.connect`, :meth:`~TrackerCore.receive`, :meth:`~TrackerCore.disconnect`,
:meth:`~TrackerCore.handle_timer`; outputs :meth:`~TrackerCore.messages_to_send`,
:meth:`~TrackerCore.next_event`, :meth:`~TrackerCore.get_timer`.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from peerdht.errors import DecodeError
from peerdht.tracker.messages import b2s, s2b

if TYPE_CHECKING:
    import random

__all__ = ["CloseConnection", "ServerWarning", "TrackerCore"]

#: bittorrent-tracker ``common.MAX_ANNOUNCE_PEERS``: most peers an announce can reach.
MAX_ANNOUNCE_PEERS: Final = 82
EVENTS: Final = frozenset({"started", "stopped", "completed", "update", "paused"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerWarning:
    """A request was refused or dropped (counted in :attr:`TrackerCore.stats`); ``reason`` is for logs."""

    conn: Hashable
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseConnection:
    """The I/O layer should close ``conn`` (idle for too long); :meth:`TrackerCore.disconnect` follows."""

    conn: Hashable
    reason: str


@dataclass(slots=True)
class _Peer:
    conn: Hashable
    complete: bool
    touched: float


@dataclass(slots=True)
class _Swarm:
    peers: OrderedDict[bytes, _Peer] = field(default_factory=OrderedDict)
    downloaded: int = 0

    def counts(self) -> tuple[int, int]:
        complete = sum(1 for p in self.peers.values() if p.complete)
        return complete, len(self.peers) - complete


@dataclass(slots=True)
class _Conn:
    last_seen: float
    tokens: float
    refilled: float
    joined: set[tuple[bytes, bytes]] = field(default_factory=set)


class TrackerCore:
    """The tracker's state machine.

    Args:
        interval: seconds clients are told to wait between announces (JS: 120 for WebSocket clients).
        peer_ttl: seconds a peer stays without announcing (JS ``peersCacheTtl``: 20 min).
        idle_timeout: seconds of silence after which a connection is closed (default ``2 * interval + 60``).
        max_swarms: info hashes tracked at once.
        max_peers: peers per swarm (JS ``peersCacheLength``: 1000).
        max_offers: offers relayed per announce (JS: 82; its client sends at most 5).
        max_joined: ``(swarm, peer id)`` entries one connection may hold.
        max_message: largest request accepted, in characters.
        rate, burst: announces per second per connection (token bucket) and the bucket size.
        rng: randomness for choosing which peers get the offers (injected; seeded in tests).
    """

    def __init__(
        self,
        *,
        interval: float = 120.0,
        peer_ttl: float = 1200.0,
        idle_timeout: float | None = None,
        max_swarms: int = 10_000,
        max_peers: int = 1000,
        max_offers: int = 10,
        max_joined: int = 64,
        max_message: int = 256 * 1024,
        rate: float = 10.0,
        burst: float = 40.0,
        rng: random.Random,
    ) -> None:
        self.interval = interval
        self.peer_ttl = peer_ttl
        self.idle_timeout = idle_timeout if idle_timeout is not None else 2 * interval + 60
        self.max_swarms = max_swarms
        self.max_peers = max_peers
        self.max_offers = min(max_offers, MAX_ANNOUNCE_PEERS)
        self.max_joined = max_joined
        self.max_message = max_message
        self.rate = rate
        self.burst = burst
        self._rng = rng
        self._swarms: dict[bytes, _Swarm] = {}
        self._conns: dict[Hashable, _Conn] = {}
        self._out: list[tuple[Hashable, str]] = []
        self._events: deque[ServerWarning | CloseConnection] = deque()
        self._next_sweep: float | None = None
        self.counters: dict[str, int] = {
            "announces": 0, "offers_relayed": 0, "answers_relayed": 0, "scrapes": 0,
            "bad_requests": 0, "rate_limited": 0, "refused": 0, "unknown_targets": 0,
            "expired_peers": 0, "idle_closed": 0,
        }

    # ------------------------------------------------------------------ inputs

    def connect(self, conn: Hashable, now: float) -> None:
        """A WebSocket connection opened."""
        self._conns[conn] = _Conn(last_seen=now, tokens=self.burst, refilled=now)
        if self._next_sweep is None:
            self._next_sweep = now + self._sweep_every()

    def receive(self, conn: Hashable, text: str | bytes, now: float) -> None:
        """One WebSocket message from ``conn`` (untrusted); replies go to :meth:`messages_to_send`."""
        state = self._conns.get(conn)
        if state is None:
            return
        state.last_seen = now
        state.tokens = min(self.burst, state.tokens + (now - state.refilled) * self.rate)
        state.refilled = now
        if state.tokens < 1.0:
            self.counters["rate_limited"] += 1
            self._warn(conn, "rate limited")
            if state.tokens > -self.burst:  # say it once per burst, then drop silently
                self._send(conn, {"failure reason": "too many requests, slow down"})
            state.tokens -= 1.0
            return
        state.tokens -= 1.0
        if len(text) > self.max_message:
            self._fail(conn, f"message of {len(text)} over {self.max_message}")
            return
        try:
            params = json.loads(text)
        except (ValueError, RecursionError):
            self._fail(conn, "invalid JSON")
            return
        if not isinstance(params, dict):
            self._fail(conn, "invalid request")
            return
        action = params.get("action")
        try:
            if action == "announce":
                self._announce(conn, state, params, now)
            elif action == "scrape":
                self._scrape(conn, params)
            else:
                self._fail(conn, f"invalid action in WS request: {str(action)[:20]}")
        except DecodeError as e:
            self._fail(conn, str(e))

    def disconnect(self, conn: Hashable, now: float) -> None:
        """The connection closed: it leaves every swarm it joined (JS ``_onWebSocketClose``)."""
        state = self._conns.pop(conn, None)
        if state is None:
            return
        for info_hash, peer_id in state.joined:
            self._leave(info_hash, peer_id, conn)

    def handle_timer(self, now: float) -> None:
        """Drop peers past :attr:`peer_ttl`; ask to close connections idle past :attr:`idle_timeout`."""
        if self._next_sweep is None or now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every() if self._conns or self._swarms else None
        for info_hash, swarm in list(self._swarms.items()):
            stale = [pid for pid, p in swarm.peers.items() if now - p.touched >= self.peer_ttl]
            for peer_id in stale:
                self.counters["expired_peers"] += 1
                peer = swarm.peers[peer_id]
                holder = self._conns.get(peer.conn)
                if holder is not None:
                    holder.joined.discard((info_hash, peer_id))
                self._leave(info_hash, peer_id, peer.conn)
        for conn, state in self._conns.items():
            if now - state.last_seen >= self.idle_timeout:
                self.counters["idle_closed"] += 1
                state.last_seen = now  # ask once per timeout
                self._events.append(CloseConnection(conn=conn, reason="idle"))

    # ------------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[tuple[Hashable, str]]:
        """``(conn, text)`` pairs to send, in order; the list is emptied."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> ServerWarning | CloseConnection | None:
        """The next :class:`ServerWarning` or :class:`CloseConnection`, or ``None``."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should run next (same clock as ``now``), or ``None``."""
        return self._next_sweep

    # ------------------------------------------------------------------ queries

    def stats(self) -> dict[str, Any]:
        """Figures in the shape of bittorrent-tracker's ``/stats.json`` plus our counters."""
        seeders = leechers = 0
        active = 0
        for swarm in self._swarms.values():
            complete, incomplete = swarm.counts()
            seeders += complete
            leechers += incomplete
            active += bool(swarm.peers)
        return {
            "torrents": len(self._swarms),
            "activeTorrents": active,
            "peersAll": seeders + leechers,
            "peersSeederOnly": seeders,
            "peersLeecherOnly": leechers,
            "peersSeederAndLeecher": 0,
            "peersIPv4": seeders + leechers,
            "peersIPv6": 0,
            "clients": {},
            "connections": len(self._conns),
            "counters": dict(self.counters),
        }

    def swarm_peers(self, info_hash: bytes) -> list[bytes]:
        """Peer ids in a swarm (for tests and stats)."""
        swarm = self._swarms.get(info_hash)
        return list(swarm.peers) if swarm else []

    # ------------------------------------------------------------------ requests

    def _announce(self, conn: Hashable, state: _Conn, params: dict[str, Any], now: float) -> None:
        self.counters["announces"] += 1
        info_hash = s2b(params.get("info_hash"), "info_hash")
        peer_id = s2b(params.get("peer_id"), "peer_id")
        has_answer = bool(params.get("answer"))
        to_peer_id = s2b(params.get("to_peer_id"), "`to_peer_id` (required with `answer`)") if has_answer else b""
        event = params.get("event") or "update"
        if event == "empty":
            event = "update"
        if event not in EVENTS:
            self._fail(conn, "invalid event", info_hash)
            return
        swarm = self._swarms.get(info_hash)
        if event == "stopped":
            if swarm is not None and (peer := swarm.peers.get(peer_id)) is not None and peer.conn == conn:
                state.joined.discard((info_hash, peer_id))
                self._leave(info_hash, peer_id, conn)
            swarm = self._swarms.get(info_hash)
        else:
            if swarm is None:
                if len(self._swarms) >= self.max_swarms:
                    self._refuse(conn, "tracker is full", info_hash)
                    return
                swarm = self._swarms[info_hash] = _Swarm()
            peer = swarm.peers.get(peer_id)
            if peer is None:
                if len(swarm.peers) >= self.max_peers:
                    self._refuse(conn, "swarm is full", info_hash)
                    self._drop_empty(info_hash)
                    return
                if len(state.joined) >= self.max_joined:
                    self._refuse(conn, "too many peer ids on this connection", info_hash)
                    self._drop_empty(info_hash)
                    return
                peer = swarm.peers[peer_id] = _Peer(conn=conn, complete=False, touched=now)
            elif peer.conn != conn:  # the same peer id from a new socket: the newest socket wins
                old = self._conns.get(peer.conn)
                if old is not None:
                    old.joined.discard((info_hash, peer_id))
                peer.conn = conn
            state.joined.add((info_hash, peer_id))
            peer.touched = now
            swarm.peers.move_to_end(peer_id)
            left = params.get("left")
            if event == "completed" and not peer.complete:
                swarm.downloaded += 1
            if event == "completed" or left == 0:
                peer.complete = True
        complete, incomplete = swarm.counts() if swarm is not None else (0, 0)
        if not has_answer:
            self._send(conn, {"complete": complete, "incomplete": incomplete, "action": "announce",
                              "interval": int(-(-self.interval // 1)), "info_hash": b2s(info_hash)})
        offers = params.get("offers")
        if isinstance(offers, list) and swarm is not None and event != "stopped":
            self._relay_offers(conn, swarm, info_hash, peer_id, offers[: self.max_offers])
        if has_answer:
            self._relay_answer(conn, info_hash, peer_id, to_peer_id, params)

    def _relay_offers(self, conn: Hashable, swarm: _Swarm, info_hash: bytes, peer_id: bytes,
                      offers: list[Any]) -> None:
        valid = []
        for item in offers:
            if not isinstance(item, dict) or not isinstance(item.get("offer"), dict):
                continue
            try:
                s2b(item.get("offer_id"), "offer_id")
            except DecodeError:
                continue
            valid.append(item)
        if not valid:
            return
        others = [pid for pid in swarm.peers if pid != peer_id]
        chosen = self._rng.sample(others, min(len(valid), len(others)))
        for item, target in zip(valid, chosen, strict=False):
            self.counters["offers_relayed"] += 1
            self._send(swarm.peers[target].conn, {"action": "announce", "offer": item["offer"],
                                                  "offer_id": item["offer_id"], "peer_id": b2s(peer_id),
                                                  "info_hash": b2s(info_hash)})

    def _relay_answer(self, conn: Hashable, info_hash: bytes, peer_id: bytes, to_peer_id: bytes,
                      params: dict[str, Any]) -> None:
        swarm = self._swarms.get(info_hash)
        target = swarm.peers.get(to_peer_id) if swarm is not None else None
        if target is None:
            self.counters["unknown_targets"] += 1
            self._warn(conn, "no peer with that `to_peer_id`")
            return
        answer = params.get("answer")
        try:
            offer_id = s2b(params.get("offer_id"), "offer_id")
        except DecodeError:
            self._fail(conn, "invalid offer_id", info_hash)
            return
        if not isinstance(answer, dict):
            self._fail(conn, "invalid answer", info_hash)
            return
        self.counters["answers_relayed"] += 1
        self._send(target.conn, {"action": "announce", "answer": answer, "offer_id": b2s(offer_id),
                                 "peer_id": b2s(peer_id), "info_hash": b2s(info_hash)})

    def _scrape(self, conn: Hashable, params: dict[str, Any]) -> None:
        self.counters["scrapes"] += 1
        raw = params.get("info_hash")
        if raw is None:
            hashes = list(self._swarms)[:100]
        else:
            items = [raw] if isinstance(raw, str) else raw
            if not isinstance(items, list):
                raise DecodeError("invalid info_hash")
            hashes = [s2b(h, "info_hash") for h in items[:100]]
        files = {}
        for info_hash in hashes:
            swarm = self._swarms.get(info_hash)
            complete, incomplete = swarm.counts() if swarm is not None else (0, 0)
            downloaded = swarm.downloaded if swarm is not None else 0
            files[b2s(info_hash)] = {"complete": complete, "incomplete": incomplete, "downloaded": downloaded}
        self._send(conn, {"action": "scrape", "files": files, "flags": {"min_request_interval": 60}})

    # ------------------------------------------------------------------ helpers

    def _leave(self, info_hash: bytes, peer_id: bytes, conn: Hashable) -> None:
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return
        peer = swarm.peers.get(peer_id)
        if peer is not None and peer.conn == conn:
            del swarm.peers[peer_id]
        self._drop_empty(info_hash)

    def _drop_empty(self, info_hash: bytes) -> None:
        swarm = self._swarms.get(info_hash)
        if swarm is not None and not swarm.peers:
            del self._swarms[info_hash]

    def _sweep_every(self) -> float:
        return max(1.0, min(self.peer_ttl, self.idle_timeout) / 10)

    def _send(self, conn: Hashable, msg: dict[str, Any]) -> None:
        self._out.append((conn, json.dumps(msg, separators=(",", ":"))))

    def _warn(self, conn: Hashable, reason: str) -> None:
        self._events.append(ServerWarning(conn=conn, reason=reason))

    def _fail(self, conn: Hashable, reason: str, info_hash: bytes | None = None) -> None:
        self.counters["bad_requests"] += 1
        self._warn(conn, reason)
        msg: dict[str, Any] = {"failure reason": reason}
        if info_hash is not None:
            msg = {"action": "announce", "failure reason": reason, "info_hash": b2s(info_hash)}
        self._send(conn, msg)

    def _refuse(self, conn: Hashable, reason: str, info_hash: bytes) -> None:
        self.counters["refused"] += 1
        self._warn(conn, reason)
        self._send(conn, {"action": "announce", "failure reason": reason, "info_hash": b2s(info_hash)})
