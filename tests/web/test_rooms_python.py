"""peerdht.rooms.Room between Python peers: tracker management, request_more_peers, timeouts, close, bounds
(the parts of p2pt's own test suite that the browser tests do not cover). WebRTC over 198.51.100.2 inside
the test network namespace."""

from __future__ import annotations

import asyncio

import pytest
from tests.web.roomkit import PyPeer

from peerdht import Room as FlatRoom
from peerdht.aio.rooms.tracker import TrackerServer
from peerdht.errors import InvalidArgument, LocalProtocolError, RequestTimeout, StreamClosed, StreamReset
from peerdht.rooms import PeerClose, PeerConnect, Room, TrackerConnect


async def test_add_and_remove_tracker() -> None:
    assert FlatRoom is Room
    async with TrackerServer() as t1, TrackerServer() as t2, Room("adds", [t1.url]) as a, Room("adds", [t2.url]) as b:
        pa, pb = PyPeer(a), PyPeer(b)
        await pa.wait(lambda: pa.connects)
        await pb.wait(lambda: pb.connects)
        assert a.peers == {}  # different trackers: they cannot meet
        await a.add_tracker(t2.url)  # p2pt 'tracker addition'
        peer = await pa.peer()
        assert peer.id == b.id and a.tracker_stats() == (2, 2) and a.trackers == [t1.url, t2.url]
        with pytest.raises(InvalidArgument):
            await a.add_tracker(t2.url)
        await a.remove_tracker(t2.url)  # p2pt 'tracker removal': the connection stays
        assert a.tracker_stats() == (1, 1)
        assert (await a.send(peer, "after removal")).msg == "echo:after removal"
        with pytest.raises(InvalidArgument):
            await a.remove_tracker(t2.url)
        await pa.stop()
        await pb.stop()


async def test_request_more_peers_finds_a_late_peer_that_makes_no_offers() -> None:
    async with TrackerServer() as t, Room("more", [t.url]) as a:
        pa = PyPeer(a)
        await pa.wait(lambda: pa.connects)
        async with Room("more", [t.url], offers=0) as b:  # b's announces carry no offers; a's first ones are gone
            pb = PyPeer(b)
            await pb.wait(lambda: pb.connects)
            await asyncio.sleep(1.0)
            assert a.peers == {} and b.peers == {}
            known = await a.request_more_peers()
            assert known == {}
            await pa.peer()
            await pb.peer()
            assert [type(e) for e in pb.events if not isinstance(e, TrackerConnect)] == [PeerConnect]
            await pb.stop()
        await pa.wait(lambda: b.id in pa.closed)  # b left: PeerClose once
        assert sum(isinstance(e, PeerClose) for e in pa.events) == 1
        await pa.stop()


async def test_timeouts_close_and_bad_arguments() -> None:
    async with TrackerServer() as t, Room("close", [t.url]) as a:
        b = Room("close", [t.url])
        await b.start()
        pa, pb = PyPeer(a, answer=False), PyPeer(b)
        peer = await pa.peer()
        with pytest.raises(RequestTimeout):
            await a.send(peer, "no-answer please", timeout=0.5)
        with pytest.raises(TimeoutError):  # RequestTimeout is a TimeoutError too
            await a.send(peer, "no-answer again", timeout=0.2)
        # JSON values p2pt cannot send (numbers, booleans, null, empty string) travel both ways
        for value in (0, 1.5, True, None, "", [None]):
            assert (await a.send(peer, value)).msg == ("echo:" if value == "" else {"echo": value})
        pending = asyncio.create_task(a.send(peer, "no-answer: waiting while the peer leaves", timeout=60))
        await asyncio.sleep(0.2)
        await b.close()
        with pytest.raises(StreamReset):
            await pending
        await pa.wait(lambda: b.id in pa.closed)
        with pytest.raises(StreamReset):
            await a.send(peer, "gone")
        with pytest.raises(StreamClosed):
            await b.post(a.id, "closed")
        assert b.peers == {}
        events = [e async for e in b]  # the iterator of a closed room ends
        assert all(not isinstance(e, PeerClose) for e in events)
        await pa.stop()
        await pb.stop()
    with pytest.raises(InvalidArgument):
        Room("", ["ws://x"])
    with pytest.raises(InvalidArgument):
        Room("r", ["http://not-a-ws-url"])
    with pytest.raises(InvalidArgument):
        Room("r", [], peer_id=b"short")
    with pytest.raises(LocalProtocolError):
        await Room("r").__anext__()


async def test_max_peers_bounds_connections() -> None:
    async with TrackerServer() as t, Room("crowd", [t.url], max_peers=1) as hub:
        ph = PyPeer(hub)
        others = [Room("crowd", [t.url]) for _ in range(3)]
        for room in others:
            await room.start()
        try:
            await ph.peer()
            await asyncio.sleep(3.0)
            await hub.request_more_peers()
            await asyncio.sleep(3.0)
            assert len(hub.peers) == 1 and len(ph.connected_events()) == 1
        finally:
            for room in others:
                await room.close()
            await ph.stop()
