"""The WebTorrent tracker core (peerdht.tracker.server) and the client messages (peerdht.tracker.messages).

Bytes in, explicit clock, seeded randomness; replies checked against what npm bittorrent-tracker 11.2.3's
server sends (``server.js`` ``_onWebSocketRequest``), which tests/web/test_rooms_p2pt.py also runs for real.
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.errors import DecodeError
from peerdht.tracker import messages as tm
from peerdht.tracker.server import CloseConnection, ServerWarning, TrackerCore

IH = bytes(range(200, 220))  # info hash with bytes above 0x7f: latin-1 strings on the wire
A, B, C = b"A" * 20, b"\x00\xff" * 10, b"C" * 20
OFFER = {"type": "offer", "sdp": "v=0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\n"}


def core(**kw: Any) -> TrackerCore:
    return TrackerCore(rng=random.Random(1), **kw)


def out(t: TrackerCore) -> list[tuple[Any, dict[str, Any]]]:
    return [(conn, json.loads(text)) for conn, text in t.messages_to_send()]


def joined(t: TrackerCore, *conns: tuple[str, bytes], now: float = 0.0) -> None:
    for conn, peer_id in conns:
        t.connect(conn, now)
        t.receive(conn, tm.announce(IH, peer_id), now)
    out(t)


def test_announce_reply_offer_and_answer_relay() -> None:
    t = core()
    t.connect("a", 0.0)
    t.receive("a", tm.announce(IH, A, []), 0.0)
    assert out(t) == [("a", {"complete": 0, "incomplete": 1, "action": "announce", "interval": 120,
                             "info_hash": IH.decode("latin-1")})]
    t.connect("b", 1.0)
    t.receive("b", tm.announce(IH, B, [(b"o" * 20, OFFER), (b"p" * 20, OFFER)]), 1.0)
    msgs = out(t)
    assert msgs[0][0] == "b" and msgs[0][1]["incomplete"] == 2
    # one other peer: offer 0 goes to it, offer 1 is dropped
    assert msgs[1:] == [("a", {"action": "announce", "offer": OFFER, "offer_id": "o" * 20,
                                "peer_id": B.decode("latin-1"), "info_hash": IH.decode("latin-1")})]
    # the answer goes back to b, and a gets no announce reply for it
    t.receive("a", tm.answer(IH, A, B, b"o" * 20, ANSWER), 2.0)
    assert out(t) == [("b", {"action": "announce", "answer": ANSWER, "offer_id": "o" * 20,
                             "peer_id": A.decode("latin-1"), "info_hash": IH.decode("latin-1")})]
    # what the client parses out of them
    assert tm.parse_reply(json.dumps({"action": "announce", "offer": OFFER, "offer_id": "o" * 20,
                                      "peer_id": B.decode("latin-1"), "info_hash": IH.decode("latin-1")})) == tm.Offer(
        info_hash=IH, peer_id=B, offer_id=b"o" * 20, offer=OFFER)


def test_offers_never_go_back_to_the_offerer_and_reach_distinct_peers() -> None:
    t = core()
    joined(t, ("a", A), ("b", B), ("c", C))
    t.receive("a", tm.announce(IH, A, [(bytes([i]) * 20, OFFER) for i in range(5)]), 1.0)
    targets = [conn for conn, msg in out(t) if "offer" in msg]
    assert sorted(targets) == ["b", "c"]


def test_stopped_disconnect_and_scrape() -> None:
    t = core()
    joined(t, ("a", A), ("b", B))
    t.receive("a", tm.announce(IH, A, event="stopped"), 1.0)
    assert out(t)[0][1]["incomplete"] == 1
    assert t.swarm_peers(IH) == [B]
    t.disconnect("b", 2.0)
    assert t.swarm_peers(IH) == [] and t.stats()["torrents"] == 0
    joined(t, ("c", C))
    t.receive("c", tm.scrape([IH, b"z" * 20]), 3.0)
    assert out(t) == [("c", {"action": "scrape", "files": {
        IH.decode("latin-1"): {"complete": 0, "incomplete": 1, "downloaded": 0},
        "z" * 20: {"complete": 0, "incomplete": 0, "downloaded": 0}}, "flags": {"min_request_interval": 60}})]
    reply = tm.parse_reply(t_scrape_text(t))
    assert isinstance(reply, tm.ScrapeReply) and reply.files[IH] == (0, 1, 0)


def t_scrape_text(t: TrackerCore) -> str:
    t.receive("c", json.dumps({"action": "scrape"}), 4.0)
    return t.messages_to_send()[0][1]


def test_invalid_requests_get_a_failure_reason() -> None:
    t = core()
    t.connect("a", 0.0)
    for bad in ["nope", "[]", json.dumps({"action": "x"}),
                json.dumps({"action": "announce", "info_hash": "short", "peer_id": "A" * 20}),
                json.dumps({"action": "announce", "info_hash": "ā" * 20, "peer_id": "A" * 20}),
                json.dumps({"action": "announce", "info_hash": "i" * 20, "peer_id": "A" * 20, "answer": ANSWER})]:
        t.receive("a", bad, 0.0)
        [(conn, msg)] = out(t)
        assert conn == "a" and "failure reason" in msg and "action" not in msg
    assert t.counters["bad_requests"] == 6
    assert t.stats()["peersAll"] == 0


def test_answer_to_an_unknown_peer_is_only_a_warning() -> None:
    t = core()
    joined(t, ("a", A))
    t.receive("a", tm.answer(IH, A, C, b"o" * 20, ANSWER), 1.0)
    assert out(t) == []
    assert t.counters["unknown_targets"] == 1
    assert isinstance(t.next_event(), ServerWarning)


def test_bounds_peers_per_swarm_swarms_and_peer_ids_per_connection() -> None:
    t = core(max_peers=3, max_swarms=2, max_joined=2, rate=1000, burst=1000)
    for i in range(4):
        t.connect(i, 0.0)
        t.receive(i, tm.announce(IH, bytes([i]) * 20), 0.0)
    assert len(t.swarm_peers(IH)) == 3
    assert out(t)[-1][1] == {"action": "announce", "failure reason": "swarm is full", "info_hash": IH.decode("latin-1")}
    t.receive(0, tm.announce(b"2" * 20, A), 0.0)
    t.receive(0, tm.announce(b"3" * 20, A), 0.0)
    assert out(t)[-1][1]["failure reason"] in ("tracker is full", "too many peer ids on this connection")
    assert t.stats()["torrents"] == 2 and t.counters["refused"] == 2
    t.receive(0, "x" * (t.max_message + 1), 0.0)
    assert "over" in out(t)[-1][1]["failure reason"]


def test_offers_per_announce_are_capped() -> None:
    t = core(max_offers=3)
    joined(t, *[(f"c{i}", bytes([i]) * 20) for i in range(10)])
    t.receive("c0", tm.announce(IH, bytes([0]) * 20, [(bytes([i]) * 20, OFFER) for i in range(50)]), 1.0)
    assert sum(1 for _, msg in out(t) if "offer" in msg) == 3


def test_announce_rate_is_limited_per_connection() -> None:
    t = core(rate=1.0, burst=5.0)
    t.connect("a", 0.0)
    for _ in range(50):
        t.receive("a", tm.announce(IH, A), 0.0)
    msgs = out(t)
    assert sum(1 for _, m in msgs if m.get("interval")) == 5
    assert t.counters["rate_limited"] == 45
    assert len(msgs) < 5 + 45  # refusals are not echoed one for one
    t.receive("a", tm.announce(IH, A), 100.0)
    assert out(t)[0][1]["interval"] == 120


def test_idle_connections_close_and_silent_peers_expire() -> None:
    t = core(interval=120.0, peer_ttl=1200.0)
    joined(t, ("a", A), ("b", B))
    assert t.get_timer() is not None
    now = 0.0
    closes = []
    while now < 400:
        now += 10
        t.receive("b", tm.announce(IH, B), now) if now % 100 == 0 else None
        t.handle_timer(now)
        while (ev := t.next_event()) is not None:
            if isinstance(ev, CloseConnection):
                closes.append((ev.conn, now))
    assert [c for c, _ in closes] == ["a"] and 300 <= closes[0][1] <= 340
    t.disconnect("a", now)
    out(t)
    # a peer that stops announcing but keeps its socket open still leaves after peer_ttl
    t2 = core(interval=120.0, peer_ttl=1200.0, idle_timeout=10_000.0)
    joined(t2, ("a", A), ("b", B))
    for step in range(1, 14):
        t2.receive("b", json.dumps({"action": "scrape"}), step * 100.0)
        t2.handle_timer(step * 100.0)
    assert t2.swarm_peers(IH) == [B] or t2.swarm_peers(IH) == []
    assert A not in t2.swarm_peers(IH) and t2.counters["expired_peers"] >= 1


def test_same_peer_id_on_a_new_socket_takes_over() -> None:
    t = core()
    joined(t, ("a", A), ("b", B))
    t.connect("a2", 1.0)
    t.receive("a2", tm.announce(IH, A), 1.0)
    t.disconnect("a", 2.0)  # the old socket going away does not remove the peer
    assert set(t.swarm_peers(IH)) == {A, B}
    t.receive("b", tm.announce(IH, B, [(b"o" * 20, OFFER)]), 3.0)
    assert [conn for conn, msg in out(t) if "offer" in msg] == ["a2"]


requests = st.one_of(
    st.text(max_size=100),
    st.builds(json.dumps, st.dictionaries(
        st.sampled_from(["action", "info_hash", "peer_id", "to_peer_id", "offers", "answer", "offer_id", "event",
                         "left", "numwant"]),
        st.one_of(st.sampled_from(["announce", "scrape", "stopped", "completed", "x"]),
                  st.sampled_from([IH.decode("latin-1"), A.decode("latin-1"), B.decode("latin-1"), "short"]),
                  st.integers(), st.none(), st.lists(st.one_of(
                      st.just({"offer": OFFER, "offer_id": "o" * 20}), st.integers(), st.dictionaries(
                          st.text(max_size=5), st.text(max_size=5), max_size=3)), max_size=4),
                  st.just(ANSWER)),
        max_size=8)),
)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["msg", "close", "tick"]), requests),
                max_size=40))
def test_any_request_sequence_keeps_the_core_consistent(ops: list[tuple[str, str, str]]) -> None:
    t = core(max_peers=2, max_joined=2, burst=10.0)
    live: set[str] = set()
    now = 0.0
    for conn, op, text in ops:
        now += 1.0
        if conn not in live:
            t.connect(conn, now)
            live.add(conn)
        if op == "msg":
            t.receive(conn, text, now)
        elif op == "close":
            t.disconnect(conn, now)
            live.discard(conn)
        else:
            t.handle_timer(now + 5000)
        for target, reply in t.messages_to_send():
            assert target in live or target == conn
            json.loads(reply)
        while t.next_event() is not None:
            pass
        for info_hash in list(t._swarms):
            assert 0 < len(t.swarm_peers(info_hash)) <= 2
    for conn in list(live):
        t.disconnect(conn, now)
    assert t.stats()["torrents"] == 0


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                 st.builds(json.dumps, st.dictionaries(st.sampled_from(
                     ["action", "info_hash", "peer_id", "offer", "answer", "offer_id", "failure reason", "interval",
                      "complete", "files", "warning message"]), st.one_of(
                     st.sampled_from(["announce", "scrape", IH.decode("latin-1")]), st.integers(), st.floats(),
                     st.none(), st.text(max_size=30), st.dictionaries(st.text(max_size=20), st.integers(), max_size=3)),
                     max_size=8))))
def test_parse_reply_only_raises_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        tm.parse_reply(text)


def test_parse_reply_shapes() -> None:
    ih = IH.decode("latin-1")
    assert tm.parse_reply(json.dumps({"complete": 0, "incomplete": 2, "action": "announce", "interval": 120,
                                      "info_hash": ih})) == tm.AnnounceReply(
        info_hash=IH, complete=0, incomplete=2, interval=120.0, warning=None)
    assert tm.parse_reply('{"failure reason":"invalid info_hash"}') == tm.Failure(reason="invalid info_hash", info_hash=None)
    with pytest.raises(DecodeError):
        tm.parse_reply('{"action":"announce","info_hash":"short"}')
    with pytest.raises(DecodeError):
        tm.parse_reply('{"action":"nope"}')
    assert tm.info_hash_of("p2pt").hex() == "c57028cb762b1de5a76250fce9797416a34919d3"  # node: createHash("sha1").update("p2pt")
    sent = json.loads(tm.announce(IH, A, [(b"o" * 20, OFFER)]))
    assert sent == {"numwant": 1, "uploaded": 0, "downloaded": 0, "action": "announce", "info_hash": ih,
                    "peer_id": "A" * 20, "offers": [{"offer": OFFER, "offer_id": "o" * 20}]}
