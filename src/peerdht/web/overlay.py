"""The web overlay core: Mainline KRPC over WebSocket and WebRTC links, with webtorrent-dht's signalling.

Sans-IO, aioquic's shape (:meth:`WebOverlay.receive_datagram`, :meth:`~WebOverlay.handle_timer`,
:meth:`~WebOverlay.datagrams_to_send`, :meth:`~WebOverlay.get_timer`, :meth:`~WebOverlay.next_event`),
so :class:`peerdht.aio.transport.driver.DatagramDriver` runs it. It wraps a :class:`~peerdht.mainline.node.MainlineNode`
(the overlay's own routing table, K = 2 by default as webtorrent-dht) whose "addresses" are link handles
``("web:N", 0)``: one WebSocket, data channel or aiortc peer connection each, given out by this core. Compact
addresses named in replies mean nothing here; nodes are reached by id through a link we hold
(:class:`~peerdht.mainline.node.LinkMap`), and a node leaves the table the moment its link closes.

Wire format (webtorrent-dht 0.18.6, ``k-rpc-socket-webrtc.js`` ``query()``/``response()``/``emit()``):

* every link message is one bencoded KRPC message (WebSocket: one binary message; data channel: one binary
  message). A first data-channel message that is JSON (``{"http_server": ...}``) is skipped.
* ``find_node``/``get_peers``/``get`` may carry ``a.signals``: a list of offers ``{type: "offer", sdp, id:
  <querier id>, extensions: []}``. The responder forwards ``signals[i]`` to the i-th node it returns with
  ``peer_connection {id: <own id>, signal: <offer>}``; that node answers ``{id, signal: {type: "answer", sdp,
  id: <its id>, extensions: []}}`` or, when it already has a link to the querier, the id-only ``{id, signal:
  {id: <its id>}}``. The response carries ``r.signals`` lined up with ``r.nodes``.

Where webtorrent-dht is broken we are liberal (research ``browser-dht.md`` §1.6/§1.7): queries without
``signals`` are answered normally; we never emit a null signal: an entry whose node gave no answer becomes
``(querier id, 0.0.0.0:1)`` with the id-only signal ``{id: <querier id>}``, which a webtorrent-dht querier skips
(``signal.id == own id``) and which keeps later entries aligned with the querier's offers; answers are matched
to nodes by ``signal.id``; a ``get`` hit or a ``get_peers`` with values is answered without ``signals``; our
own signalled queries wait 10 s (the core's ``timeout``).

Relayed messages (issue 10) for nodes we have no link to travel inside one-way ``relay`` queries
(:mod:`peerdht.web.relay`, wire format there). A WebRTC link that fails before it opens (ICE) turns into a relay
link in place, so a lookup that was about to use it goes on through relays. The bridge to UDP Mainline
(:mod:`peerdht.web.bridge`) holds a link's unanswerable ``get``/``get_peers`` for a UDP lookup and copies its
``put``/``announce_peer`` to UDP.

Bounds (:class:`~peerdht.web.links.WebLimits`): message size, bytes per second per link, links, WebRTC links (pooled offers and
connecting links count), signals per query, SDP size, ``peer_connection`` rate per link, signalled queries
being answered, messages held for a connecting link. Everything dropped is counted in :attr:`WebOverlay.stats`.
This core never sends UDP: the web overlay and UDP Mainline are separate cores, and handles never reach a
UDP reply. The parts: :mod:`peerdht.web.links` (link table, bounds), :mod:`peerdht.web.signals` (signal checks,
signalling records), :mod:`peerdht.web.relay`, :mod:`peerdht.web.bridge`; this module ties them to the Mainline
core and owns the signalling logic.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING, cast

from peerdht.encoding.bencode import Value, decode, encode
from peerdht.errors import DecodeError
from peerdht.mainline import messages as m
from peerdht.mainline.node import VERSION, MainlineNode
from peerdht.web.bridge import Bridge, answers_locally
from peerdht.web.events import (
    AnswerOffer,
    ConnectAnswer,
    DiscardOffer,
    LinkDropped,
    OffersWanted,
)
from peerdht.web.links import Handle, Link, LinkTable, WebLimits, valid_id
from peerdht.web.relay import RelayRouter
from peerdht.web.signals import EXTENSION, LOOKUP_QUERIES, Answering, Forward, Sent, check_sdp, extensions

if TYPE_CHECKING:
    import random

__all__ = ["Handle", "WebLimits", "WebOverlay"]

K = 2  # webtorrent-dht's k-rpc-webrtc.js default


class WebOverlay:
    """The web overlay node core (no I/O, no clock).

    Args:
        rng: injected randomness (node id, transaction ids, tokens).
        node_id: our 20-byte id (random if ``None``).
        k: bucket size and lookup width of the overlay (webtorrent-dht: 2).
        webrtc: whether the asyncio layer can make WebRTC peers (aiortc); without it no offers are wanted and
            ``peer_connection`` offers are refused.
        bridge: this node is also on UDP Mainline: links' ``get``/``get_peers`` we cannot answer are looked
            up there first (:class:`~peerdht.web.events.BridgeLookup`), their ``put``/``announce_peer`` are
            stored there too (:class:`~peerdht.web.events.BridgeStore`, :class:`~peerdht.web.events.BridgeAnnounce`);
            rate-limited per link.
        limits: bounds (:class:`WebLimits`).
        timeout: seconds before our own queries fail (webtorrent-dht: 2; signalled queries need >= 10).
        now: creation time (seconds).

    Attributes:
        node: the Mainline core of the overlay (its table, stores, lookups: ``node.put(...)``, ...).
        stats: overlay counters (drops by reason, signalling); :meth:`snapshot` adds the core's.
        table: the links (:class:`~peerdht.web.links.LinkTable`).
        relay: relayed messages (:class:`~peerdht.web.relay.RelayRouter`).
        bridging: queries held for UDP lookups, checks on bridged writes (:class:`~peerdht.web.bridge.Bridge`).
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        node_id: bytes | None = None,
        k: int = K,
        webrtc: bool = True,
        bridge: bool = False,
        limits: WebLimits | None = None,
        timeout: float = 10.0,
        now: float = 0.0,
    ) -> None:
        self.bridge = bridge
        self.limits = limits or WebLimits()
        self.webrtc = webrtc
        self.rng = rng
        self.node = MainlineNode(
            rng=rng, node_id=node_id, k=k, timeout=timeout, retries=0, links=self, now=now
        )
        self.id = self.node.id
        self.k = k
        self.stats: Counter[str] = Counter()
        self.table = LinkTable(self.limits, self.stats)
        self._links = self.table.by_handle  # the same dicts, by their short names
        self._by_id = self.table.by_id
        self._out: list[tuple[bytes, Handle]] = []
        self._events: deque[object] = deque()
        self.relay = RelayRouter(node_id=self.id, links=self.table, limits=self.limits, rng=rng, stats=self.stats,
                                 emit=self._emit)
        self.bridging = Bridge(node=self.node, limits=self.limits, stats=self.stats, events=self._events)
        self._pool: deque[Handle] = deque()
        self._requested = 0
        self._sent: dict[tuple[Handle, bytes], Sent] = {}
        self._forwards: dict[bytes, tuple[Forward, int]] = {}
        self._open_forwards: list[Forward] = []
        self._answering: dict[Handle, Answering] = {}

    # ------------------------------------------------------------------------------------------ links

    def open_link(self, kind: str, ip: str | None, now: float) -> Handle | None:
        """A WebSocket (``kind="websocket"``) or data channel (``"webrtc"``) from ``ip`` opened at ``now``
        (seconds); returns its handle, or ``None`` when over :attr:`~peerdht.web.links.WebLimits.max_links`,
        ``max_links_per_ip`` or ``max_webrtc`` (close it; counted)."""
        if ip is not None and self.table.count_ip(ip) >= self.limits.max_links_per_ip:
            self.stats["dropped_links_per_ip"] += 1
            return None
        link = self.table.new(kind, "open", now)
        if link is None:
            return None
        link.ip = ip
        self._want_offers()
        return link.handle

    def reserve_link(self, now: float) -> Handle | None:
        """A WebRTC link we answer outside KRPC (the HTTP POST bootstrap): its handle, or ``None`` over the
        limits. Report :meth:`link_opened` or :meth:`close_link`."""
        link = self.table.new("webrtc", "connecting", now)
        if link is None:
            return None
        link.deadline = now + self.limits.connect_timeout
        return link.handle

    def link_opened(self, handle: Handle, ip: str | None, now: float) -> None:
        """The data channel of ``handle`` opened at ``now`` (seconds; ``ip``: the remote ICE address, if known).
        Our messages for it are released (after the settle hold for a webtorrent-dht peer,
        :attr:`~peerdht.web.links.WebLimits.settle`); a relay link to the same node is replaced."""
        link = self._links.get(handle)
        if link is None or link.state == "open":
            return
        link.state, link.ip, link.deadline = "open", ip, None
        if link.node_id is not None:  # a direct link beats a relay path made while it was connecting
            other = self._links.get(self._by_id.get(link.node_id, ("", -1)))
            if other is not None and other is not link and other.kind == "relay":
                self._by_id[link.node_id] = handle
                self.close_link(other.handle, now)
            elif other is None:
                self._by_id[link.node_id] = handle
        if link.kind == "webrtc" and self.limits.settle > 0 and not link.peerdht:
            link.hold = now + self.limits.settle
        else:
            self._release(link, now)
        self._want_offers()

    def _release(self, link: Link, now: float) -> None:
        link.hold = None
        queued, link.queue = link.queue, []
        for data in queued:
            self._route(data, link.handle, now)

    def close_link(self, handle: Handle, now: float) -> None:
        """The link (or pooled offer) ``handle`` closed or failed: forget it and everything waiting on it.

        A WebRTC link that fails before it opens (ICE failed) becomes a ``relay`` link in place, keeping its
        handle: what was queued for it, and the requests waiting on it, go through relays instead.
        """
        link = self._links.get(handle)
        if link is None:
            return
        if (link.kind == "webrtc" and link.state == "connecting" and link.node_id is not None
                and self._by_id.get(link.node_id) == handle):
            link.kind, link.state, link.deadline = "relay", "open", now + self.limits.relay_idle
            self.stats["relay_fallbacks"] += 1
            self._release(link, now)
            return
        del self._links[handle]
        if link.node_id is not None and self._by_id.get(link.node_id) == handle:
            del self._by_id[link.node_id]
        if handle in self._pool:
            self._pool.remove(handle)
        answering = self._answering.pop(handle, None)
        if answering is not None:
            self._error(answering.t, answering.asker, m.ERROR_GENERIC, "connection failed")
        for key in [key for key in self._sent if key[0] == handle]:
            for offer in self._sent.pop(key).offers:
                self._discard_offer(offer)
        for fw in list(self._open_forwards):
            if fw.querier == handle:
                fw.done = True
                self._open_forwards.remove(fw)
        for tid, (fw, i) in list(self._forwards.items()):
            if fw.entries[i][1] == handle:
                del self._forwards[tid]
                self._forward_answer(fw, i, None, now)
        self.node.forget_address(handle, now)
        self.stats["links_closed"] += 1
        self._want_offers()

    def links(self) -> list[dict[str, object]]:
        """Open links: ``{"handle", "transport", "id" (hex or None), "ip", "received", "sent"}``."""
        return self.table.rows()

    def link_of(self, node_id: bytes) -> Handle | None:
        """The handle of the open link (any kind, relay included) to the 20-byte ``node_id``, if any."""
        handle = self._by_id.get(node_id)
        link = self._links.get(handle) if handle is not None else None
        return handle if link is not None and link.state == "open" else None

    # LinkMap (for the Mainline core)
    def handle_for(self, node: m.NodeInfo) -> Handle | None:
        """:class:`~peerdht.mainline.node.LinkMap`: a node named in a reply is reachable only through our open or
        connecting link to its id (its compact address means nothing here): that handle, else ``None``."""
        handle = self._by_id.get(node.id)
        if handle is None:
            return None
        link = self._links.get(handle)
        return handle if link is not None and link.state in ("open", "connecting") else None

    def peer_host(self, addr: Handle) -> str | None:
        """:class:`~peerdht.mainline.node.LinkMap`: the IP of the link an ``announce_peer`` came on (stored as the
        announcer's address, BEP 5), or ``None`` when the link has no valid IP."""
        return self.table.peer_host(addr)

    # ------------------------------------------------------------------------------------------ offers

    def add_offer(self, offer: dict[str, str] | None, now: float) -> Handle | None:
        """An offer asked for by :class:`OffersWanted` (``None``: making it failed). Returns the handle of
        its peer connection, or ``None`` if it is not wanted any more (close it)."""
        self._requested = max(0, self._requested - 1)
        if offer is None:
            return None
        sdp = offer.get("sdp", "")
        if len(sdp.encode()) > self.limits.max_sdp:
            self.stats["dropped_own_offer_too_big"] += 1
            return None
        link = self.table.new("webrtc", "offer", now)
        if link is None:
            return None
        link.offer = {"type": "offer", "sdp": sdp}
        link.deadline = now + self.limits.offer_ttl
        self._pool.append(link.handle)
        return link.handle

    def offer_answered(self, handle: Handle, answer: dict[str, str] | None, now: float) -> None:
        """Our answer to the offer of :class:`AnswerOffer` ``handle`` (``None``: it could not be answered)."""
        pending = self._answering.pop(handle, None)
        link = self._links.get(handle)
        if pending is None or link is None:
            return
        if answer is None or len(answer.get("sdp", "").encode()) > self.limits.max_sdp:
            self._error(pending.t, pending.asker, m.ERROR_GENERIC, "cannot answer the offer")
            self.close_link(handle, now)
            return
        link.state, link.deadline = "connecting", now + self.limits.connect_timeout
        signal: dict[bytes, Value] = {
            b"type": b"answer",
            b"sdp": answer["sdp"].encode(),
            b"id": self.id,
            b"extensions": [EXTENSION],
        }
        self._reply(pending.t, pending.asker, {b"id": self.id, b"signal": signal})
        self.stats["offers_answered"] += 1

    # ------------------------------------------------------------------------------------------ sans-IO

    def receive_datagram(self, data: bytes, addr: Handle, now: float) -> None:
        """One message (bencoded KRPC, at most :attr:`~peerdht.web.links.WebLimits.max_message` bytes) from link
        ``addr`` at ``now`` (seconds). Never raises: bad input is dropped and counted in :attr:`stats`."""
        link = self._links.get(addr)
        if link is None or link.state != "open":
            self.stats["dropped_no_link"] += 1
            return
        link.received += 1
        self.stats["received"] += 1
        if link.hold is not None:
            self._release(link, now)  # it spoke: it is ready for ours
        if len(data) > self.limits.max_message:
            self.stats["dropped_oversize"] += 1
            return
        if not link.bytes_in.allow(len(data), now):
            self.stats["dropped_rate"] += 1
            return
        if link.received == 1 and data[:1] == b"{":
            self.stats["skipped_json_hello"] += 1  # webtorrent-dht's {"http_server": ...}
            return
        try:
            msg = decode(data, sorted_keys=False, max_depth=32)
        except DecodeError:
            msg = None
        if isinstance(msg, dict) and not self._inspect(msg, link, now, data):
            return
        self._to_core(msg, data, link, now)

    def _to_core(self, msg: object, data: bytes, link: Link, now: float) -> None:
        write = self.bridging.write_before(msg, link, now) if self.bridge else None
        self.node.receive_datagram(data, link.handle, now)
        if write is not None:
            self.bridging.write_after(write, now)

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now`` (seconds): core timers, settle holds, bridged queries, forwarded queries,
        unanswered offers, links that never opened, idle relay links."""
        self.node.handle_timer(now)
        for link in [lk for lk in self._links.values() if lk.hold is not None and lk.hold <= now]:
            self._release(link, now)
        for method, target in self.bridging.due(now):
            self.stats["bridge_timeouts"] += 1
            self.bridge_done(method, target, now)
        for fw in [fw for fw in self._open_forwards if fw.deadline <= now]:
            for tid in [tid for tid, (f, _) in self._forwards.items() if f is fw]:
                del self._forwards[tid]
            self.stats["forward_timeouts"] += 1
            self._finish_forward(fw)
        for key in [key for key, sent in self._sent.items() if sent.deadline <= now]:
            for offer in self._sent.pop(key).offers:
                self._discard_offer(offer)
        for handle, pending in list(self._answering.items()):
            if pending.deadline <= now:
                self.stats["answer_timeouts"] += 1
                self._events.append(LinkDropped(handle=handle, reason="offer not answered in time"))
                self.close_link(handle, now)
        for link in list(self._links.values()):
            if link.kind == "relay" and link.deadline is not None and link.deadline <= now:
                self.stats["relay_links_expired"] += 1
                self.close_link(link.handle, now)
            elif link.deadline is not None and link.deadline <= now and link.state != "open":
                self.stats["links_expired"] += 1
                if link.state == "offer":
                    self._discard_offer(link.handle)
                else:
                    self._events.append(LinkDropped(handle=link.handle, reason="not open in time"))
                    self.close_link(link.handle, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Handle]]:
        """Messages to send, ``(data, handle)``; each is one binary WebSocket/data-channel message."""
        for data, addr in self.node.datagrams_to_send(now):
            self._route(data, addr, now)
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should run next (seconds)."""
        times = [t for t in (self.node.get_timer(),) if t is not None]
        times += [fw.deadline for fw in self._open_forwards]
        times += [s.deadline for s in self._sent.values()]
        times += [p.deadline for p in self._answering.values()]
        times += [link.deadline for link in self._links.values() if link.deadline is not None]
        times += [link.hold for link in self._links.values() if link.hold is not None]
        times += self.bridging.deadlines()
        return min(times) if times else None

    def next_event(self) -> object | None:
        """The next overlay event (:mod:`peerdht.web.events`) or core event (:mod:`peerdht.mainline.events`)."""
        if self._events:
            return self._events.popleft()
        return self.node.next_event()

    def snapshot(self) -> dict[str, int]:
        """Overlay and core counters plus sizes (links by kind, pooled offers, signalled queries open)."""
        out = self.node.snapshot()
        for key, value in self.stats.items():
            out[f"web_{key}" if key in out else key] = value
        out["links"] = sum(1 for link in self._links.values() if link.state == "open")
        out["webrtc_links"] = sum(
            1 for link in self._links.values() if link.state == "open" and link.kind == "webrtc"
        )
        out["websocket_links"] = sum(1 for link in self._links.values() if link.kind == "websocket")
        out["offers_pooled"] = len(self._pool)
        out["forwards_open"] = len(self._open_forwards)
        return out

    # ------------------------------------------------------------------------------------------ inbound

    def _inspect(self, msg: dict[bytes, Value], link: Link, now: float, data: bytes = b"", *,
                 bridged: bool = False) -> bool:
        """Signalling and id bookkeeping; ``True`` when the core should see the message too."""
        y = msg.get(b"y")
        body = msg.get(b"a") if y == b"q" else msg.get(b"r")
        claimed = valid_id(body.get(b"id")) if isinstance(body, dict) else None
        if claimed is not None and not self._claim(link, claimed):
            return False
        t = msg.get(b"t")
        if not isinstance(t, bytes):
            return True
        if y == b"q" and isinstance(body, dict):
            q = msg.get(b"q")
            if q == b"peer_connection":
                self._on_peer_connection(t, body, link, now)
                return False
            if q == b"relay":
                self._on_relay(body, link, now)
                return False
            if (self.bridge and not bridged and q in (b"get", b"get_peers")
                    and self.bridging.read(q, body, data, link, now)):
                return False
            if q in LOOKUP_QUERIES and isinstance(body.get(b"signals"), list):
                return not self._on_signalled_query(t, q, body, link, now)
            return True
        if y in (b"r", b"e"):
            if len(t) == 4 and t in self._forwards:
                self._on_forward_reply(t, msg, link, now)
                return False
            sent = self._sent.pop((link.handle, t), None)
            if sent is not None:
                self._on_signals_reply(sent, body if y == b"r" else None, link, now)
        return True

    def _claim(self, link: Link, node_id: bytes) -> bool:
        if link.node_id is not None:
            if link.node_id != node_id:
                self.stats["dropped_wrong_id"] += 1
                return False
            if node_id not in self._by_id:
                self._by_id[node_id] = link.handle
            return True
        if node_id == self.id:
            self.stats["dropped_own_id"] += 1
            return False
        other = self._by_id.get(node_id)
        older = self._links.get(other) if other is not None and other != link.handle else None
        if older is not None and older.kind == "relay" and link.kind != "relay":
            self._by_id[node_id] = link.handle  # a direct link beats the relay path
            self.close_link(older.handle, link.created)
        elif older is not None:
            self.stats["duplicate_id_links"] += 1  # an older link holds this id; keep it
        else:
            self._by_id[node_id] = link.handle
        link.node_id = node_id
        return True

    def _on_peer_connection(self, t: bytes, a: dict[bytes, Value], link: Link, now: float) -> None:
        if not link.peer_connections.allow(1, now):
            self.stats["dropped_peer_connection_rate"] += 1
            return
        signal = a.get(b"signal")
        sid = valid_id(signal.get(b"id")) if isinstance(signal, dict) else None
        if sid is None:
            self.stats["bad_signals"] += 1
            self._error(t, link.handle, m.ERROR_PROTOCOL, "bad signal")
            return
        if sid == self.id or sid in self._by_id:
            self.stats["id_only_answers"] += 1
            self._reply(t, link.handle, {b"id": self.id, b"signal": {b"id": self.id}})
            return
        offer = check_sdp(signal, b"offer", self.limits.max_sdp)
        if offer is None:
            self.stats["bad_signals"] += 1
            self._error(t, link.handle, m.ERROR_PROTOCOL, "bad offer")
            return
        if not self.webrtc or len(self._answering) >= self.limits.max_answering:
            self.stats["dropped_answering_busy"] += 1
            self._error(t, link.handle, m.ERROR_GENERIC, "busy")
            return
        new = self.table.new("webrtc", "answering", now)
        if new is None:
            self._error(t, link.handle, m.ERROR_GENERIC, "too many connections")
            return
        new.node_id = sid
        new.peerdht = isinstance(signal, dict) and EXTENSION in extensions(signal)
        self._by_id[sid] = new.handle
        self._answering[new.handle] = Answering(t=t, asker=link.handle, deadline=now + self.limits.forward_timeout * 2)
        self._events.append(AnswerOffer(handle=new.handle, node_id=sid, offer=offer))
        self.stats["offers_received"] += 1

    def _on_signalled_query(self, t: bytes, q: bytes, a: dict[bytes, Value], link: Link, now: float) -> bool:
        """Answer a query carrying ``a.signals`` (``False``: let the core answer it plainly)."""
        signals = cast(list[Value], a[b"signals"])
        if len(signals) > self.limits.max_signals:
            self.stats["dropped_too_many_signals"] += 1
            return True
        qid = valid_id(a.get(b"id"))
        target = valid_id(a.get(b"info_hash" if q == b"get_peers" else b"target"))
        if qid is None or target is None:
            return False  # the core answers with a protocol error
        if answers_locally(self.node, q, target, now):
            return False  # a hit (item, peers): answered without signals (as webtorrent-dht)
        if not self.node.limiter_allows(link.handle, now):
            return True
        self.node.note_querier(qid, link.handle, now)
        fw = Forward(t=t, querier=link.handle, querier_id=qid, method=q, target=target,
                      deadline=now + self.limits.forward_timeout)
        busy = (
            len(self._open_forwards) >= self.limits.max_forwards
            or link.forwards >= self.limits.max_forwards_per_link
        )
        if busy:
            self.stats["forwards_refused"] += 1
        else:
            # every node we hold an open link to is reachable for the querier (the table keeps only K per
            # bucket; a hub with many browsers on WebSockets should still introduce them to each other)
            n = min(len(signals), self.k)
            point = int.from_bytes(target, "big")
            linked = sorted(
                (int.from_bytes(lk.node_id, "big") ^ point, lk.node_id, lk.handle)
                for lk in self._links.values()
                if lk.state == "open" and lk.node_id is not None and lk.node_id != qid
                and self._by_id.get(lk.node_id) == lk.handle
            )
            fw.entries = [(nid, handle) for _, nid, handle in linked[:n]]
        fw.answers = [None] * len(fw.entries)
        for i, (_nid, handle) in enumerate(fw.entries):
            signal = signals[i]
            if not isinstance(signal, dict) or check_sdp(signal, b"offer", self.limits.max_sdp) is None:
                self.stats["bad_signals"] += 1
                continue
            sid = valid_id(signal.get(b"id"))
            if sid is None:
                self.stats["bad_signals"] += 1
                continue
            tid = self.rng.randbytes(4)
            while tid in self._forwards:
                tid = self.rng.randbytes(4)
            self._forwards[tid] = (fw, i)
            fw.waiting += 1
            clean: dict[bytes, Value] = {b"type": b"offer", b"sdp": signal[b"sdp"], b"id": sid,
                                         b"extensions": extensions(signal)}
            query = {b"t": tid, b"y": b"q", b"q": b"peer_connection", b"a": {b"id": self.id, b"signal": clean}}
            self._route(encode(query), handle, now)
            self.stats["peer_connections_sent"] += 1
        if fw.waiting == 0:
            self._finish_forward(fw)
        else:
            link.forwards += 1
            self._open_forwards.append(fw)
        return True

    def _on_forward_reply(self, tid: bytes, msg: dict[bytes, Value], link: Link, now: float) -> None:
        fw, i = self._forwards[tid]
        nid, handle = fw.entries[i]
        if handle != link.handle:
            self.stats["dropped_unexpected"] += 1
            return
        del self._forwards[tid]
        answer: dict[bytes, Value] | None = None
        r = msg.get(b"r")
        signal = r.get(b"signal") if isinstance(r, dict) else None
        if isinstance(signal, dict) and signal.get(b"id") == nid:
            checked = check_sdp(signal, b"answer", self.limits.max_sdp)
            if checked is not None:
                answer = {b"type": b"answer", b"sdp": checked["sdp"].encode(), b"id": nid,
                          b"extensions": extensions(signal)}
            elif b"sdp" not in signal:
                answer = {b"id": nid}  # id-only: it already has a link to the querier
        if answer is None:
            self.stats["forward_failed"] += 1
        self._forward_answer(fw, i, answer, now)

    def _forward_answer(self, fw: Forward, i: int, answer: dict[bytes, Value] | None, now: float) -> None:
        fw.answers[i] = answer
        fw.waiting -= 1
        if fw.waiting <= 0:
            self._finish_forward(fw)

    def _finish_forward(self, fw: Forward) -> None:
        if fw.done:
            return
        fw.done = True
        if fw in self._open_forwards:
            self._open_forwards.remove(fw)
            querier = self._links.get(fw.querier)
            if querier is not None:
                querier.forwards -= 1
        nodes: list[bytes] = []
        signals: list[Value] = []
        for (nid, handle), answer in zip(fw.entries, fw.answers, strict=True):
            if answer is None:  # never a null: the querier's own id, which it skips
                nodes.append(fw.querier_id + b"\x00\x00\x00\x00\x00\x01")
                signals.append({b"id": fw.querier_id})
            else:
                nodes.append(nid + self.table.compact(handle))
                signals.append(answer)
        while signals and cast(dict[bytes, Value], signals[-1]).get(b"id") == fw.querier_id:
            signals.pop()
            nodes.pop()
        r: dict[bytes, Value] = {b"id": self.id, b"nodes": b"".join(nodes), b"signals": signals}
        if fw.method != b"find_node":
            r[b"token"] = self.node.tokens.issue(fw.querier[0].encode())
        self._reply(fw.t, fw.querier, r)
        self.stats["signalled_replies"] += 1

    def _on_signals_reply(
        self, sent: Sent, r: Value | None, link: Link, now: float
    ) -> None:
        signals = r.get(b"signals") if isinstance(r, dict) else None
        used: set[Handle] = set()
        if isinstance(r, dict) and isinstance(signals, list):
            responder = valid_id(r.get(b"id"))
            listed = r.get(b"nodes")
            named = {listed[i : i + 20] for i in range(0, len(listed) - 25, 26)} if isinstance(listed, bytes) else set()
            for i, signal in enumerate(signals[: self.limits.max_signals]):
                offer = sent.offers[i] if i < len(sent.offers) else None
                if offer is None or not isinstance(signal, dict):
                    continue
                sid = valid_id(signal.get(b"id"))
                if sid is None or sid in (self.id, responder) or sid in self._by_id:
                    continue  # id-only / already linked: the existing link serves
                if sid not in named:
                    self.stats["dropped_signal_unlisted"] += 1  # an answer for a node the reply does not name
                    continue
                answer = check_sdp(signal, b"answer", self.limits.max_sdp)
                olink = self._links.get(offer)
                if answer is None or olink is None:
                    if b"sdp" in signal:
                        self.stats["bad_signals"] += 1
                    continue
                olink.state, olink.node_id = "connecting", sid
                olink.peerdht = EXTENSION in extensions(signal)
                olink.deadline = now + self.limits.connect_timeout
                self._by_id[sid] = offer
                used.add(offer)
                self._events.append(ConnectAnswer(handle=offer, node_id=sid, answer=answer))
                self.stats["answers_received"] += 1
        for offer in sent.offers:
            if offer not in used:
                self._discard_offer(offer)



    # ------------------------------------------------------------------------------------------ bridge

    def bridge_done(self, method: str, target: bytes, now: float) -> None:
        """The UDP lookup of :class:`~peerdht.web.events.BridgeLookup` finished (its results are in the
        stores): answer the queries that waited for it."""
        for data, handle, _ in self.bridging.take(method, target):
            link = self._links.get(handle)
            if link is None or link.state != "open":
                continue
            try:
                msg = decode(data, sorted_keys=False, max_depth=32)
            except DecodeError:  # pragma: no cover - it decoded when it arrived
                continue
            if isinstance(msg, dict) and self._inspect(msg, link, now, data, bridged=True):
                self._to_core(msg, data, link, now)

    def add_peers(self, info_hash: bytes, peers: list[tuple[str, int]], now: float) -> None:
        """Peers ``(host, port)`` found on UDP Mainline for the 20-byte ``info_hash`` (a bridged ``get_peers``):
        served to links' ``get_peers`` (:meth:`peerdht.web.bridge.Bridge.add_peers`)."""
        self.bridging.add_peers(info_hash, peers, now)

    # ------------------------------------------------------------------------------------------ relay

    def _on_relay(self, a: dict[bytes, Value], link: Link, now: float) -> None:
        """A ``relay`` query from ``link`` (:mod:`peerdht.web.relay`): forwarded, dropped, or delivered here."""
        delivered = self.relay.receive(a, link, now)
        if delivered is not None:
            self.receive_datagram(delivered[1], delivered[0], now)

    # ------------------------------------------------------------------------------------------ outbound

    def _route(self, data: bytes, handle: Handle, now: float) -> None:
        link = self._links.get(handle)
        if link is None:
            self.stats["dropped_send_no_link"] += 1
            return
        if link.state != "open" or link.hold is not None:
            if link.state in ("connecting", "open") and len(link.queue) < self.limits.max_queued:
                link.queue.append(data)
            else:
                self.stats["dropped_send_not_open"] += 1
            return
        if data[:1] == b"d" and b"1:y1:q" in data and link.kind != "relay":
            data = self._attach_signals(data, link, now)
        if link.kind == "relay":
            self.relay.send(data, link, now)
            return
        self._emit(data, link)

    def _attach_signals(self, data: bytes, link: Link, now: float) -> bytes:
        try:
            msg = decode(data)
        except DecodeError:  # pragma: no cover - our own core's bytes
            return data
        if not isinstance(msg, dict) or msg.get(b"q") not in LOOKUP_QUERIES:
            return data
        a, t = msg.get(b"a"), msg.get(b"t")
        if not isinstance(a, dict) or not isinstance(t, bytes) or b"signals" in a:
            return data
        offers: list[Handle] = []
        while self._pool and len(offers) < self.limits.offers_per_query:
            offers.append(self._pool.popleft())
            self._links[offers[-1]].deadline = now + 3 * self.limits.forward_timeout + self.limits.connect_timeout
        signals: list[Value] = []
        for h in offers:
            offer = self._links[h].offer
            assert offer is not None
            signals.append({b"type": b"offer", b"sdp": offer["sdp"].encode(), b"id": self.id,
                            b"extensions": [EXTENSION]})
        a[b"signals"] = signals  # an empty list still gets an answer from webtorrent-dht
        if offers:
            self._sent[(link.handle, t)] = Sent(offers=offers, deadline=now + 3 * self.limits.forward_timeout)
            self.stats["offers_sent"] += len(offers)
        self._want_offers()
        return encode(msg)

    def _emit(self, data: bytes, link: Link) -> None:
        """Send ``data`` on the open, non-relay ``link`` now."""
        link.sent += 1
        self.stats["sent"] += 1
        self._out.append((data, link.handle))

    def _reply(self, t: bytes, handle: Handle, r: dict[bytes, Value]) -> None:
        self._route_raw(encode({b"t": t, b"y": b"r", b"r": r, b"v": VERSION}), handle)

    def _error(self, t: bytes, handle: Handle, code: int, text: str) -> None:
        self._route_raw(encode({b"t": t, b"y": b"e", b"e": [code, text.encode()]}), handle)

    def _route_raw(self, data: bytes, handle: Handle) -> None:
        link = self._links.get(handle)
        if link is not None and link.state == "open" and link.hold is not None and len(link.queue) < self.limits.max_queued:
            link.queue.append(data)
            return
        if link is None or link.state != "open":
            self.stats["dropped_send_not_open"] += 1
            return
        if link.kind == "relay":
            self.relay.send(data, link, 0.0)
            return
        self._emit(data, link)

    # ------------------------------------------------------------------------------------------ helpers

    def _want_offers(self) -> None:
        if not self.webrtc or not any(lk.state == "open" for lk in self._links.values()):
            return
        webrtc = self.table.count_webrtc()
        room = self.limits.max_webrtc - webrtc - self._requested
        need = min(self.limits.offer_pool - len(self._pool) - self._requested, room)
        if need > 0:
            self._requested += need
            self._events.append(OffersWanted(count=need))

    def _discard_offer(self, handle: Handle) -> None:
        link = self._links.pop(handle, None)
        if handle in self._pool:
            self._pool.remove(handle)
        if link is not None:
            self._events.append(DiscardOffer(handle=handle))
            self._want_offers()


