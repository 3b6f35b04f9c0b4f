"""The tracker client core (peerdht.tracker.client): announce schedule, offers, answers, reconnects; no I/O."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from peerdht.tracker import client as tc

IH, ME, OTHER = b"i" * 20, b"m" * 20, b"o" * 20
OFFER = {"type": "offer", "sdp": "v=0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\n"}


def events(c: tc.TrackerClient) -> list[Any]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def sent(c: tc.TrackerClient) -> list[dict[str, Any]]:
    return [json.loads(t) for t in c.messages_to_send()]


def s(b: bytes) -> str:
    return b.decode("latin-1")


def joined(**kw: Any) -> tc.TrackerClient:
    c = tc.TrackerClient(IH, ME, rng=random.Random(7), **kw)
    c.start(0.0)
    assert events(c) == [tc.ConnectNow()]
    c.connected(0.0)
    assert events(c) == [tc.NeedOffers(count=5)]
    return c


def test_announce_with_offers_then_on_the_trackers_interval() -> None:
    c = joined()
    ids = c.offers_ready([OFFER, OFFER], 0.0)
    [msg] = sent(c)
    assert msg["action"] == "announce" and msg["numwant"] == 2 and "event" not in msg
    assert [o["offer_id"] for o in msg["offers"]] == [s(i) for i in ids]
    c.receive(json.dumps({"complete": 0, "incomplete": 3, "action": "announce", "interval": 30, "info_hash": s(IH)}),
              1.0)
    assert events(c) == [tc.Announced(complete=0, incomplete=3)]
    assert c.get_timer() == 50.0  # the offers expire first (50 s), the next announce is at 0 + 120 s
    c.handle_timer(50.0)
    assert sorted(e.offer_id for e in events(c)) == sorted(ids)  # OfferExpired for both
    c.handle_timer(119.0)
    assert events(c) == []
    c.handle_timer(120.0)
    assert events(c) == [tc.NeedOffers(count=5)]
    c.offers_ready([], 120.0)
    assert c.get_timer() == 150.0  # the tracker's interval (30 s) now


def test_offers_answers_and_junk() -> None:
    c = joined()
    [mine] = c.offers_ready([OFFER], 0.0)
    sent(c)
    c.receive(json.dumps({"action": "announce", "offer": OFFER, "offer_id": "x" * 20, "peer_id": s(OTHER),
                          "info_hash": s(IH)}), 1.0)
    assert events(c) == [tc.OfferReceived(peer_id=OTHER, offer_id=b"x" * 20, offer=OFFER)]
    c.send_answer(OTHER, b"x" * 20, ANSWER)
    assert sent(c) == [{"action": "announce", "info_hash": s(IH), "peer_id": s(ME), "to_peer_id": s(OTHER),
                        "answer": ANSWER, "offer_id": "x" * 20}]
    answer = {"action": "announce", "answer": ANSWER, "offer_id": s(mine), "peer_id": s(OTHER), "info_hash": s(IH)}
    c.receive(json.dumps(answer), 2.0)
    assert events(c) == [tc.AnswerReceived(peer_id=OTHER, offer_id=mine, answer=ANSWER)]
    c.receive(json.dumps(answer), 3.0)  # the same answer again: that offer is used up
    c.receive(json.dumps({**answer, "offer_id": "?" * 20}), 3.0)  # an offer we never made
    c.receive(json.dumps({**answer, "info_hash": "j" * 20}), 3.0)  # another room on a shared socket
    c.receive(json.dumps({"action": "announce", "offer": OFFER, "offer_id": "y" * 20, "peer_id": s(ME),
                          "info_hash": s(IH)}), 3.0)  # our own offer echoed back
    assert events(c) == []
    assert c.dropped == {"bad_reply": 0, "unknown_answer": 2, "foreign": 1}
    c.receive("{oops", 4.0)
    c.receive(json.dumps({"failure reason": "invalid info_hash"}), 4.0)
    c.receive(json.dumps({"action": "announce", "failure reason": "swarm is full", "info_hash": s(IH)}), 4.0)
    assert [e.reason for e in events(c)] == ["Invalid tracker response", "invalid info_hash", "swarm is full"]


def test_reconnect_back_off_and_offers_die_with_the_socket() -> None:
    c = joined(reconnect_min=2.0, reconnect_max=20.0)
    [mine] = c.offers_ready([OFFER], 0.0)
    c.disconnected(5.0)
    assert events(c) == [tc.OfferExpired(offer_id=mine), tc.TrackerProblem(reason="connection closed")]
    waits = []
    now = 5.0
    for _ in range(6):
        timer = c.get_timer()
        assert timer is not None
        waits.append(timer - now)
        now = timer
        c.handle_timer(now)
        assert events(c) == [tc.ConnectNow()]
        c.connect_failed("refused", now)
        assert events(c) == [tc.TrackerProblem(reason="refused")]
    for wait, base in zip(waits, [2, 4, 8, 16, 20, 20], strict=True):  # doubling, capped, + up to 25 % jitter
        assert base <= wait <= base * 1.25
    c.handle_timer(now + 100)
    c.connected(now + 100)
    assert events(c) == [tc.ConnectNow(), tc.NeedOffers(count=5)]
    # offers made while the socket closed again are expired at once, nothing is sent
    c.disconnected(now + 101)
    events(c)
    ids = c.offers_ready([OFFER], now + 102)
    assert events(c) == [tc.OfferExpired(offer_id=ids[0])] and sent(c) == []


def test_request_more_and_stop() -> None:
    c = joined()
    c.offers_ready([OFFER] * 5, 0.0)
    sent(c)
    c.announce_now(1.0)
    assert events(c) == [tc.NeedOffers(count=5)]  # up to 10 offers may wait at once
    c.announce_now(1.0)
    assert events(c) == []  # one announce at a time
    c.offers_ready([OFFER] * 5, 1.0)
    c.announce_now(2.0)
    assert events(c) == [tc.NeedOffers(count=0)]
    c.offers_ready([], 2.0)
    assert [len(m["offers"]) for m in sent(c)] == [5, 0]
    last = c.stop()
    assert [json.loads(t)["event"] for t in last] == ["stopped"]
    assert len([e for e in events(c) if isinstance(e, tc.OfferExpired)]) == 10
    c.disconnected(3.0)
    c.handle_timer(1000.0)
    assert events(c) == [] and c.get_timer() is None


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["recv", "tick", "up", "down", "offers", "more"]), st.text(max_size=80),
                          st.floats(0, 100)), max_size=40))
def test_any_input_sequence_keeps_the_client_sane(ops: list[tuple[str, str, float]]) -> None:
    c = tc.TrackerClient(IH, ME, rng=random.Random(1))
    c.start(0.0)
    now = 0.0
    for op, text, step in ops:
        now += step
        if op == "recv":
            c.receive(text, now)
            c.receive(json.dumps({"action": "announce", "answer": ANSWER, "offer_id": text[:20].ljust(20),
                                  "peer_id": s(OTHER), "info_hash": s(IH)}), now)
        elif op == "tick":
            c.handle_timer(now)
        elif op == "up":
            c.connected(now)
        elif op == "down":
            c.disconnected(now)
        elif op == "offers":
            c.offers_ready([OFFER], now)
        else:
            c.announce_now(now)
        events(c)
        for text_out in c.messages_to_send():
            tm_msg = json.loads(text_out)
            assert tm_msg["info_hash"] == s(IH)
        assert c.pending_offers <= 10 + len(ops)
        timer = c.get_timer()
        assert timer is None or timer >= 0
