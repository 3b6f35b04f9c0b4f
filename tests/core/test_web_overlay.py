"""The web overlay core (:mod:`peerdht.web.overlay`) with a fake clock and fake links.

Links are moved by hand between cores; WebRTC is faked: an offer's SDP names the core and handle that made
it, an answer's SDP the core and handle that answered, so a ConnectAnswer can be paired with its AnswerOffer
and both ends told ``link_opened``.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.encoding.bencode import decode, encode
from peerdht.kademlia.table import Contact
from peerdht.mainline.crypto import immutable_target
from peerdht.mainline.events import GetResult, Item, LookupResult, OpDone
from peerdht.web.events import (
    AnswerOffer,
    BridgeLookup,
    BridgeStore,
    ConnectAnswer,
    DiscardOffer,
    LinkDropped,
    OffersWanted,
)
from peerdht.web.overlay import Handle, WebLimits, WebOverlay


class FakeWeb:
    """Cores, link pairs between them, a fake WebRTC that connects an answer to its offer."""

    def __init__(self, n: int, *, refuse: set[int] = frozenset(), limits: WebLimits | None = None,  # type: ignore[assignment]
                 ice_fails: bool = False) -> None:
        self.ice_fails = ice_fails
        self.now = 0.0
        self.cores = [WebOverlay(rng=random.Random(i), now=0.0, limits=limits) for i in range(n)]
        self.pairs: dict[tuple[int, Handle], tuple[int, Handle]] = {}
        self.refuse = refuse
        self.answered: dict[str, tuple[int, Handle]] = {}  # offer sdp tag -> (answering core, its handle)
        self.results: dict[int, list[object]] = {i: [] for i in range(n)}
        self.sent: list[tuple[int, bytes]] = []

    def ws(self, a: int, b: int) -> None:
        ha = self.cores[a].open_link("websocket", "127.0.0.1", self.now)
        hb = self.cores[b].open_link("websocket", "127.0.0.1", self.now)
        assert ha is not None and hb is not None
        self.pairs[(a, ha)] = (b, hb)
        self.pairs[(b, hb)] = (a, ha)

    def line(self) -> None:
        """Link the cores in a line by WebSocket (0 - 1 - ... - n-1); each pings its neighbours to learn their ids."""
        for x in range(len(self.cores) - 1):
            self.ws(x, x + 1)
        for core in self.cores:
            for link in list(core.table.by_handle.values()):
                core.node.ping(link.handle, self.now)
        self.run(2.0)

    def run(self, seconds: float = 30.0) -> None:
        end = self.now + seconds
        while self.now < end:
            moved = self.step()
            if not moved:
                timers = [t for c in self.cores if (t := c.get_timer()) is not None]
                nxt = min([*timers, end])
                self.now = max(self.now, nxt)
                for core in self.cores:
                    core.handle_timer(self.now)

    def step(self) -> bool:
        moved = False
        for i, core in enumerate(self.cores):
            for data, handle in core.datagrams_to_send(self.now):
                moved = True
                self.sent.append((i, data))
                peer = self.pairs.get((i, handle))
                if peer is not None:
                    self.cores[peer[0]].receive_datagram(data, peer[1], self.now)
            while (ev := core.next_event()) is not None:
                moved = True
                self.on_event(i, ev)
        return moved

    def on_event(self, i: int, ev: object) -> None:
        core = self.cores[i]
        if isinstance(ev, OffersWanted):
            for _ in range(ev.count):
                tag = f"offer-{i}-{len(self.answered)}-{random.random()}"
                handle = core.add_offer({"type": "offer", "sdp": f"v=0\r\n{tag}"}, self.now)
                if handle is not None:
                    self.answered[tag] = (i, handle)  # the offerer, for now
        elif isinstance(ev, AnswerOffer):
            if i in self.refuse:
                core.offer_answered(ev.handle, None, self.now)
                return
            tag = ev.offer["sdp"].split("\r\n")[1]
            offerer = self.answered[tag]
            core.offer_answered(ev.handle, {"type": "answer", "sdp": f"v=0\r\n{tag}"}, self.now)
            self.pending_answer = getattr(self, "pending_answer", {})
            self.pending_answer[tag] = (offerer, (i, ev.handle))
        elif isinstance(ev, ConnectAnswer):
            tag = ev.answer["sdp"].split("\r\n")[1]
            offerer, answerer = self.pending_answer[tag]
            assert offerer == (i, ev.handle)
            if self.ice_fails:  # both ends see the connection fail
                self.cores[offerer[0]].close_link(offerer[1], self.now)
                self.cores[answerer[0]].close_link(answerer[1], self.now)
                return
            self.pairs[offerer] = answerer
            self.pairs[answerer] = offerer
            self.cores[offerer[0]].link_opened(offerer[1], "198.51.100.2", self.now)
            self.cores[answerer[0]].link_opened(answerer[1], "198.51.100.2", self.now)
        elif isinstance(ev, (DiscardOffer, LinkDropped)):
            pass
        else:
            self.results[i].append(ev)


def _replies(web: FakeWeb, core: int) -> list[dict[bytes, object]]:
    out = []
    for i, data in web.sent:
        msg = decode(data)
        if i == core and isinstance(msg, dict) and msg.get(b"y") == b"r":
            out.append(msg[b"r"])
    return out


def test_offers_are_forwarded_and_a_webrtc_link_opens() -> None:
    web = FakeWeb(3)
    web.ws(0, 1)
    web.ws(0, 2)
    b, c = web.cores[1], web.cores[2]
    b.node.ping(b.link_of(web.cores[0].id) or ("web:1", 0), web.now)
    c.node.ping(("web:1", 0), web.now)
    web.run(1.0)
    op = b.node.find_node(c.id, web.now)
    web.run(30.0)
    assert b.link_of(c.id) is not None and c.link_of(b.id) is not None  # a direct WebRTC link
    done = [e for e in web.results[1] if isinstance(e, OpDone) and e.op == op]
    assert done and isinstance(done[0].result, LookupResult)
    assert c.id in [n.id for n in done[0].result.nodes]
    signalled = [r for r in _replies(web, 0) if b"signals" in r]
    assert signalled and all(isinstance(s, dict) for r in signalled for s in r[b"signals"])  # type: ignore[union-attr]
    assert web.cores[0].stats["peer_connections_sent"] >= 1 and c.stats["offers_answered"] >= 1
    kinds = {link["transport"] for link in b.links()}
    assert kinds == {"websocket", "webrtc"}


def test_a_refused_offer_becomes_a_filler_never_a_null() -> None:
    web = FakeWeb(3, refuse={2})
    web.ws(0, 1)
    web.ws(0, 2)
    b, c = web.cores[1], web.cores[2]
    b.node.ping(("web:1", 0), web.now)
    c.node.ping(("web:1", 0), web.now)
    web.run(1.0)
    b.node.find_node(c.id, web.now)
    web.run(30.0)
    assert b.link_of(c.id) is None
    for r in _replies(web, 0):
        for s in r.get(b"signals", []):  # type: ignore[attr-defined]
            assert isinstance(s, dict) and s.get(b"id") != c.id  # filler = the querier's own id, or trimmed
    assert c.stats["offers_received"] >= 1


def test_closing_a_link_drops_the_node_at_once() -> None:
    web = FakeWeb(2)
    web.ws(0, 1)
    a, b = web.cores
    b.node.ping(("web:1", 0), web.now)
    web.run(2.0)
    assert b.id in a.node.table and a.id in b.node.table
    a.close_link(("web:1", 0), web.now)
    assert b.id not in a.node.table and a.link_of(b.id) is None


def _query(q: bytes, a: dict[bytes, object], t: bytes = b"tt") -> bytes:
    return encode({b"t": t, b"y": b"q", b"q": q, b"a": a})  # type: ignore[dict-item]


def test_bounds_are_counted() -> None:
    core = WebOverlay(rng=random.Random(1), limits=WebLimits(max_webrtc=2))
    h = core.open_link("websocket", "127.0.0.1", 0.0)
    assert h is not None
    offer = {b"type": b"offer", b"sdp": b"v=0\r\nx", b"id": b"Q" * 20, b"extensions": []}
    core.receive_datagram(_query(b"find_node", {b"id": b"Q" * 20, b"target": b"T" * 20, b"signals": [offer] * 9}), h, 0.0)
    assert core.stats["dropped_too_many_signals"] == 1
    core.receive_datagram(b"d" + b"1:a" * 30000, h, 0.0)
    assert core.stats["dropped_oversize"] == 1
    for n in range(30):  # a peer_connection flood from one link
        sig = {b"type": b"offer", b"sdp": b"v=0\r\n", b"id": bytes([n]) * 20}
        core.receive_datagram(_query(b"peer_connection", {b"id": b"Q" * 20, b"signal": sig}, t=bytes([n, 0])), h, 0.0)
    assert core.stats["dropped_peer_connection_rate"] == 30 - 8
    assert core.stats["offers_received"] + core.stats["dropped_webrtc_cap"] + core.stats["dropped_answering_busy"] <= 8
    webrtc = sum(1 for e in iter(lambda: core.next_event(), None) if isinstance(e, AnswerOffer))
    assert webrtc <= 2  # never more WebRTC peers than the cap
    big = {b"type": b"offer", b"sdp": b"v=0\r\n" + b"a" * 20000, b"id": b"R" * 20}
    core.receive_datagram(_query(b"peer_connection", {b"id": b"Q" * 20, b"signal": big}, t=b"zz"), h, 100.0)
    assert core.stats["bad_signals"] >= 1
    # a link cannot change its id
    core.receive_datagram(_query(b"ping", {b"id": b"X" * 20}), h, 200.0)
    assert core.stats["dropped_wrong_id"] == 1


def test_handles_never_reach_compact_nodes() -> None:
    web = FakeWeb(3)
    web.ws(0, 1)
    web.ws(0, 2)
    web.cores[1].node.ping(("web:1", 0), web.now)
    web.cores[2].node.ping(("web:1", 0), web.now)
    web.run(2.0)
    h = web.cores[0].link_of(web.cores[1].id)
    assert h is not None
    web.cores[0].receive_datagram(_query(b"find_node", {b"id": web.cores[1].id, b"target": b"T" * 20}), h, web.now)
    web.step()
    plain = [r for r in _replies(web, 0) if b"signals" not in r and b"nodes" in r]
    assert plain and all(r[b"nodes"] == b"" for r in plain)  # no IPs for link handles


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_junk_never_raises(data: bytes) -> None:
    core = WebOverlay(rng=random.Random(0))
    h = core.open_link("websocket", "127.0.0.1", 0.0)
    assert h is not None
    core.receive_datagram(data, h, 0.0)
    core.receive_datagram(b"d1:ad2:id20:" + b"A" * 20 + b"7:signalsl" + data + b"ee1:q9:find_node1:t2:aa1:y1:qe", h, 0.0)
    core.handle_timer(1.0)
    core.datagrams_to_send(1.0)


def test_links_per_ip_are_capped() -> None:
    core = WebOverlay(rng=random.Random(1), limits=WebLimits(max_links_per_ip=3, max_links=5))
    got = [core.open_link("websocket", "203.0.113.9", 0.0) for _ in range(5)]
    assert sum(h is not None for h in got) == 3 and core.stats["dropped_links_per_ip"] == 2
    assert core.open_link("websocket", "203.0.113.10", 0.0) is not None
    assert core.open_link("websocket", "203.0.113.11", 0.0) is not None
    assert core.open_link("websocket", "203.0.113.12", 0.0) is None and core.stats["dropped_link_cap"] == 1


def test_relay_when_webrtc_fails() -> None:
    """ICE fails between B and C: B's lookup still reaches C through the hub's relay, and the relayed reply
    is accepted; both see the other as a ``relay`` peer."""
    web = FakeWeb(3, ice_fails=True)
    web.ws(0, 1)
    web.ws(0, 2)
    a, b, c = web.cores
    b.node.ping(("web:1", 0), web.now)
    c.node.ping(("web:1", 0), web.now)
    web.run(2.0)
    target = immutable_target(b"9:only on C")
    c.node.items.put(target, Item(v=b"only on C"), web.now)
    op = b.node.get(target, web.now)
    web.run(30.0)
    done = [e for e in web.results[1] if isinstance(e, OpDone) and e.op == op]
    assert done and isinstance(done[0].result, GetResult) and done[0].result.item is not None
    assert done[0].result.item.v == b"only on C"
    assert {lk["transport"] for lk in b.links() if lk["id"] == c.id.hex()} == {"relay"}
    assert a.stats["relay_forwarded"] >= 2 and b.stats["relay_delivered"] >= 1 and c.stats["relay_delivered"] >= 1
    assert c.stats["relay_hops_2"] >= 1


def _relay(to: bytes, origin: bytes, mid: bytes, hops: int, inner: bytes, sender: bytes) -> bytes:
    return _query(b"relay", {b"id": sender, b"to": to, b"from": origin, b"mid": mid, b"hops": hops, b"m": inner})


def test_relay_bad_input_is_dropped_and_counted() -> None:
    web = FakeWeb(3)
    web.ws(0, 1)
    web.ws(0, 2)
    a, b, c = web.cores
    b.node.ping(("web:1", 0), web.now)
    c.node.ping(("web:1", 0), web.now)
    web.run(2.0)
    hb = a.link_of(b.id)
    assert hb is not None
    ping = _query(b"ping", {b"id": b.id})
    a.receive_datagram(_relay(c.id, b.id, b"m0000000", 8, ping, b.id), hb, web.now)
    assert a.stats["dropped_relay_hops"] == 1
    a.receive_datagram(_relay(c.id, b"F" * 20, b"m0000001", 0, ping, b.id), hb, web.now)
    assert a.stats["dropped_relay_forged"] == 1  # hop 0 must come from its origin
    a.receive_datagram(_relay(c.id, b.id, b"m0000002", 0, ping, b.id), hb, web.now)
    a.receive_datagram(_relay(c.id, b.id, b"m0000002", 0, ping, b.id), hb, web.now)
    assert a.stats["relay_forwarded"] == 1 and a.stats["dropped_relay_duplicate"] == 1
    a.receive_datagram(_relay(c.id, a.id, b"m0000003", 3, ping, b.id), hb, web.now)
    assert a.stats["dropped_relay_loop"] == 1  # our own message came back
    a.receive_datagram(_relay(c.id, b.id, b"m00", 0, ping, b.id), hb, web.now)
    assert a.stats["dropped_relay_malformed"] == 1
    for n in range(100):  # a flood from one link
        a.receive_datagram(_relay(c.id, b.id, n.to_bytes(8, "big"), 1, ping, b.id), hb, web.now + 1)
    assert a.stats["dropped_relay_rate"] >= 50
    web.step()
    # a relayed message claiming another id inside is dropped at the destination
    hc = c.link_of(a.id)
    assert hc is not None
    forged = _query(b"ping", {b"id": b"Z" * 20})
    c.receive_datagram(_relay(c.id, b.id, b"x0000000", 1, forged, a.id), hc, web.now + 100)
    assert c.stats["dropped_wrong_id"] >= 1


def _drain(core: WebOverlay, now: float) -> tuple[list[dict[bytes, object]], list[object]]:
    msgs = [decode(d) for d, _ in core.datagrams_to_send(now)]
    events = list(iter(core.next_event, None))
    return [m for m in msgs if isinstance(m, dict)], events


def test_bridge_holds_a_get_until_the_udp_lookup_and_bridges_puts() -> None:
    core = WebOverlay(rng=random.Random(3), bridge=True)
    h = core.open_link("websocket", "127.0.0.1", 0.0)
    assert h is not None
    me = b"B" * 20
    target = immutable_target(b"5:hello")
    core.receive_datagram(_query(b"get", {b"id": me, b"target": target}, t=b"g1"), h, 0.0)
    msgs, events = _drain(core, 0.0)
    assert [e for e in events if isinstance(e, BridgeLookup)] == [BridgeLookup(method="get", target=target)]
    assert not [m for m in msgs if m.get(b"t") == b"g1"]  # held
    core.node.items.put(target, Item(v=b"hello"), 0.5)  # what the UDP lookup found
    core.bridge_done("get", target, 0.5)
    msgs, _ = _drain(core, 0.5)
    reply = [m for m in msgs if m.get(b"t") == b"g1"]
    assert reply and reply[0][b"r"][b"v"] == b"hello"  # type: ignore[index]
    # nothing found: answered anyway once the hold time is over
    other = immutable_target(b"5:other")
    core.receive_datagram(_query(b"get", {b"id": me, b"target": other}, t=b"g2"), h, 1.0)
    _drain(core, 1.0)
    core.handle_timer(1.0 + core.limits.bridge_hold)
    msgs, _ = _drain(core, 7.0)
    reply = [m for m in msgs if m.get(b"t") == b"g2"]
    assert reply and b"v" not in reply[0][b"r"] and core.stats["bridge_timeouts"] == 1  # type: ignore[operator]
    # a put with a good token is bridged; a bad token is not
    token = reply[0][b"r"][b"token"]  # type: ignore[index]
    core.receive_datagram(_query(b"put", {b"id": me, b"token": b"bad", b"v": b"x"}, t=b"p0"), h, 8.0)
    core.receive_datagram(_query(b"put", {b"id": me, b"token": token, b"v": b"other"}, t=b"p1"), h, 8.0)
    _, events = _drain(core, 8.0)
    stores = [e for e in events if isinstance(e, BridgeStore)]
    assert len(stores) == 1 and stores[0].target == other and stores[0].item.v == b"other"


def test_relay_travels_several_hops_on_a_line() -> None:
    """A - B - C - D linked in a line: A's ping to D (relay only) goes A>B>C>D and the reply comes back."""
    web = FakeWeb(4)
    web.line()
    a, d = web.cores[0], web.cores[3]
    relay = a.relay.link_to(d.id, web.now)
    assert relay is not None
    op = a.node.ping(relay.handle, web.now)
    web.run(10.0)
    done = [e for e in web.results[0] if isinstance(e, OpDone) and e.op == op]
    assert done and done[0].result.id == d.id  # type: ignore[attr-defined]
    assert d.stats["relay_hops_3"] >= 1 and a.stats["relay_hops_3"] >= 1  # 3 hops each way
    assert web.cores[1].stats["relay_forwarded"] >= 2 and web.cores[2].stats["relay_forwarded"] >= 2


_values = st.recursive(
    st.binary(max_size=30) | st.integers(min_value=-(2**70), max_value=2**70),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.binary(max_size=8), children, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from([b"id", b"target", b"info_hash", b"signals", b"signal", b"to", b"from", b"mid", b"hops",
                           b"m", b"token", b"v", b"port", b"sdp", b"type"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([b"find_node", b"get_peers", b"get", b"peer_connection", b"relay", b"put", b"announce_peer",
                     b"ping", b"x"]),
    st.dictionaries(_fields, _values, max_size=6),
    st.booleans(),
    st.sampled_from([b"q", b"r", b"e"]),
), max_size=6))
def test_shaped_junk_keeps_the_invariants(msgs: list[tuple[bytes, dict[bytes, object], bool, bytes]]) -> None:
    """KRPC-shaped junk on two links (with the bridge on): nothing raises, everything sent is one bencoded
    dict to a known link, and no signals list carries anything but dicts."""
    core = WebOverlay(rng=random.Random(0), bridge=True)
    links = [core.open_link("websocket", "127.0.0.1", 0.0), core.open_link("websocket", "127.0.0.2", 0.0)]
    now = 0.0
    for q, a, good_id, y in msgs:
        if good_id:
            a = {**a, b"id": b"P" * 20}
        body = {b"t": b"aa", b"y": y, b"q": q, (b"a" if y == b"q" else b"r"): a}
        link = links[len(a) % 2]
        assert link is not None
        core.receive_datagram(encode(body), link, now)  # type: ignore[arg-type]
        now += 0.7
        core.handle_timer(now)
        for data, handle in core.datagrams_to_send(now):
            assert handle in links
            out = decode(data)
            assert isinstance(out, dict)
            for part in (out.get(b"a"), out.get(b"r")):
                if isinstance(part, dict) and b"signals" in part:
                    assert all(isinstance(s, dict) for s in part[b"signals"])  # type: ignore[union-attr]
        list(iter(core.next_event, None))


def test_answers_for_unlisted_nodes_are_dropped() -> None:
    core = WebOverlay(rng=random.Random(5))
    h = core.open_link("websocket", "127.0.0.1", 0.0)
    assert h is not None
    list(iter(core.next_event, None))
    for n in range(2):
        core.add_offer({"type": "offer", "sdp": f"v=0\r\nours-{n}"}, 0.0)
    core.node.table.add(Contact(id=b"P" * 20, host=h[0], port=h[1]), 0.0)
    core.node.find_node(b"T" * 20, 0.0)
    out = [decode(d) for d, hh in core.datagrams_to_send(0.0) if hh == h]
    query = next(m for m in out if isinstance(m, dict) and m.get(b"q") == b"find_node")
    assert len(query[b"a"][b"signals"]) == 2  # type: ignore[index, arg-type]
    stranger = {b"type": b"answer", b"sdp": b"v=0\r\nx", b"id": b"S" * 20}
    listed = {b"type": b"answer", b"sdp": b"v=0\r\ny", b"id": b"L" * 20}
    r = {b"id": b"P" * 20, b"nodes": b"L" * 20 + b"\x7f\x00\x00\x01\x00\x01", b"signals": [stranger, listed]}
    core.receive_datagram(encode({b"t": query[b"t"], b"y": b"r", b"r": r}), h, 0.1)
    answers = [e for e in iter(core.next_event, None) if isinstance(e, ConnectAnswer)]
    assert [e.node_id for e in answers] == [b"L" * 20]
    assert core.stats["dropped_signal_unlisted"] == 1


def test_link_churn_leaves_nothing_behind() -> None:
    """1000 links that open, talk (queries, signals, relays, bridged gets) and close: no state outlives them."""
    core = WebOverlay(rng=random.Random(9), bridge=True)
    now = 0.0
    for n in range(1000):
        h = core.open_link("websocket", f"10.0.{n // 250}.{n % 250}", now)
        assert h is not None
        nid = n.to_bytes(20, "big")
        offer = {b"type": b"offer", b"sdp": b"v=0\r\nx", b"id": nid, b"extensions": []}
        core.receive_datagram(_query(b"get", {b"id": nid, b"target": bytes([n % 256]) * 20, b"signals": [offer]}), h, now)
        core.receive_datagram(_query(b"peer_connection", {b"id": nid, b"signal": offer}, t=b"pc"), h, now)
        core.receive_datagram(_relay(b"Z" * 20, nid, n.to_bytes(8, "big"), 0, _query(b"ping", {b"id": nid}), nid), h, now)
        for ev in iter(core.next_event, None):
            if isinstance(ev, AnswerOffer):
                core.offer_answered(ev.handle, None, now)
        core.datagrams_to_send(now)
        now += 0.01
        core.close_link(h, now)
        core.handle_timer(now)
    core.handle_timer(now + 100.0)
    core.datagrams_to_send(now + 100.0)
    assert core.table.by_handle == {} and core.table.by_id == {} and core._answering == {} and core._sent == {}
    assert core._forwards == {} and core._open_forwards == [] and core.bridging.held == {}
    assert len(core.node.table) == 0 and len(core.relay.seen) <= core.limits.relay_seen


def test_relay_replies_follow_the_reverse_path() -> None:
    """A - W1 = W2 - C: C's relayed query to W1 is answered back the way it came (via W2), not greedily to A,
    whose id is closer to C but who is a dead end (found by the browser engineer's multi-hop page test)."""
    ids = [b"\xf1" + bytes(19), b"\x00" + bytes(19), b"\x10" + bytes(19), b"\xf0" + bytes(19)]  # A, W1, W2, C
    web = FakeWeb(0)
    web.cores = [WebOverlay(rng=random.Random(i), node_id=nid) for i, nid in enumerate(ids)]
    web.results = {i: [] for i in range(4)}
    web.line()
    c, w1 = web.cores[3], web.cores[1]
    relay = c.relay.link_to(w1.id, web.now)
    assert relay is not None
    op = c.node.ping(relay.handle, web.now)
    web.run(5.0)
    done = [e for e in web.results[3] if isinstance(e, OpDone) and e.op == op]
    assert done and done[0].result.id == w1.id  # type: ignore[attr-defined]
    assert web.cores[0].stats["relay_forwarded"] == 0 and web.cores[0].stats["dropped_relay_no_route"] == 0


def test_relayed_messages_are_taken_while_a_webrtc_link_is_still_connecting() -> None:
    """B answered C's offer (link connecting, ICE not done) but C reaches B by relay meanwhile: B takes it on a
    relay link at once instead of dropping it until the WebRTC attempt times out; when the WebRTC link opens,
    it replaces the relay path."""
    web = FakeWeb(3)
    web.ws(0, 1)
    web.ws(0, 2)
    a, b, c = web.cores
    for core in (b, c):
        core.node.ping(("web:1", 0), web.now)
    web.run(2.0)
    offer = {b"type": b"offer", b"sdp": b"v=0\r\nc", b"id": c.id, b"extensions": [b"peerdht"]}
    hb = b.link_of(a.id)
    assert hb is not None
    b.receive_datagram(_query(b"peer_connection", {b"id": a.id, b"signal": offer}, t=b"p1"), hb, web.now)
    pending = [e for e in iter(b.next_event, None) if isinstance(e, AnswerOffer)]
    assert len(pending) == 1
    b.offer_answered(pending[0].handle, {"type": "answer", "sdp": "v=0\r\nb"}, web.now)  # now connecting
    relay = c.relay.link_to(b.id, web.now)
    assert relay is not None
    op = c.node.ping(relay.handle, web.now)
    web.run(3.0)
    assert [e for e in web.results[2] if isinstance(e, OpDone) and e.op == op]
    assert b.stats["dropped_relay_no_link"] == 0 and b.stats["relay_delivered"] >= 1
    b.link_opened(pending[0].handle, "198.51.100.2", web.now)
    assert b.link_of(c.id) == pending[0].handle  # the direct link took over
