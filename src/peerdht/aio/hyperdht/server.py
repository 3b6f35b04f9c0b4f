"""A HyperDHT server: accept encrypted connections by public key (hyperdht ``lib/server.js``).

``listen`` registers the server with our node's router (so handshakes that reach this node are
answered), self-announces ``hash(public_key)`` to the closest nodes (they become our relays) and
refreshes that announce; ``close`` unannounces.

Under attack (where we differ from JS on purpose): a handshake costs O(1) before its Diffie-Hellman
(replies cached oldest-first for retries, failures not cached); new handshakes are rate-limited per
client address and host; accepted handshakes waiting for their stream are capped (per client host and
in total, oldest evicted); a stream we open towards a client's claimed address becomes a connection
only once the client's secret-stream header arrives; what was shed is counted in :attr:`Server.dropped`.

Example::

    async def on_connection(stream):
        stream.write(b"hello"); await stream.drain()

    server = dht.create_server(on_connection)
    await server.listen(key_pair)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from peerdht.aio.hyperdht.punch import PunchRunner
from peerdht.aio.hyperdht.relay_upgrade import wait_direct
from peerdht.aio.hyperdht.secretstream import SecretStream, open_secret_stream
from peerdht.aio.transport.socketpool import local_addresses
from peerdht.errors import LocalProtocolError, PeerDHTError
from peerdht.holepunch.events import PunchStarted, RoundAnswered
from peerdht.holepunch.server import ServerPunch
from peerdht.holepunch.strategy import Strategy
from peerdht.hyper.constants import Firewall, InternalCommand
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.events import HandshakeReceived, HolepunchReceived
from peerdht.hyper.handshake import make_payload, noise_key_pair, server_error_code
from peerdht.hyper.limits import FairSlots, KeyedBuckets
from peerdht.hyper.records import (
    HolepunchInfo,
    NoisePayload,
    RelayInfo,
    decode_noise_payload,
    encode_noise_payload,
)
from peerdht.hyper.router import ServerAnswer
from peerdht.hyper.rpc import CLIENT, SERVER
from peerdht.kademlia.store import ExpiringCache
from peerdht.secure.keys import KeyPair as NoiseKeyPair
from peerdht.secure.noise import HandshakeResult, peer_handshake

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.transport.udx import UDXStream

log = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[SecretStream], Awaitable[None] | None]
FirewallHook = Callable[[bytes, NoisePayload, Address], bool]
"""``firewall(remote_public_key, payload, client_address)``: True rejects the client."""

RELAY_CHECK_INTERVAL = 3.0
"""Seconds between two pings of our relays (announcer.js)."""
REFRESH_ROUNDS = 100
"""Relay checks between two re-announces (~5 min; records live 20 minutes on the relays)."""
MIN_ACTIVE = 3
"""Re-announce at once when fewer relays than this answer (announcer.js ``MIN_ACTIVE``)."""
HANDSHAKE_CLEAR_WAIT = 10.0
"""Seconds a handshake reply is kept for clients retrying through other relays (server.js)."""
MAX_REPLIES = 4096
"""Handshake replies cached at most (the oldest go first); failed handshakes are not cached."""
HANDSHAKE_RATE = (100.0, 200.0)
"""(per second, burst) of new handshakes from one client address (host, port); more are dropped
before any Diffie-Hellman is spent on them (replays of a cached one are always answered)."""
HANDSHAKE_HOST_RATE = (500.0, 1000.0)
"""(per second, burst) of new handshakes from one client host, whatever the port."""
MAX_PENDING = 512
"""Accepted handshakes waiting for their stream (each holds a UDX stream id or stream and its
holepunch state) per server; beyond it the oldest is released."""
MAX_PENDING_PER_HOST = 64
"""Of which one client host may hold at most this many; beyond it that host's oldest is released."""
PUNCH_SOCKET = CLIENT
"""The DHT socket we holepunch from (JS acquires a fresh pool socket per punch)."""
ACCEPT_TIMEOUT = 10.0
"""Seconds we wait for the client to open the stream (server.js ``HANDSHAKE_INITIAL_TIMEOUT``)."""
UPGRADE_TIMEOUT = 60.0
"""Seconds a relayed connection keeps its holepunch state so a punch can move it to a direct path."""
PUNCH_TIMEOUT = 45.0
"""Seconds we wait for the stream when holepunching (random probing runs ~35 s)."""


class _Pending:
    """One accepted handshake waiting for its stream (server.js ``_holepunches[id]``)."""

    __slots__ = ("connected", "relayed", "remote_udx", "runner", "session", "sid")

    def __init__(self, sid: int, remote_udx: int) -> None:
        self.sid = sid
        self.remote_udx = remote_udx
        self.session: ServerPunch | None = None  # holepunching offered: its sans-IO punch session
        self.runner: PunchRunner | None = None
        self.connected = False
        self.relayed: UDXStream | None = None  # the relay opened the stream; punching goes on


class _Accepting:
    """One accept in progress: its pending slot, and whether it cleaned up after itself."""

    __slots__ = ("settled", "slot")

    def __init__(self) -> None:
        self.slot = 0
        self.settled = False  # the accept released its stream id / holepunch state itself


class Server:
    """Accepts connections to one key pair. Create with :meth:`HyperDHT.create_server`.

    Args:
        dht: the node.
        handler: called with each :class:`SecretStream` (may be a coroutine function).
        firewall: ``firewall(remote_public_key, payload, client_address)``; True rejects the client.

    Attributes:
        public_key: our 32-byte public key once listening.
        connections: the open streams.
    """

    def __init__(self, dht: HyperDHT, handler: Handler, firewall: FirewallHook | None = None) -> None:
        self.dht = dht
        self.handler = handler
        self.firewall = firewall
        self.key_pair: KeyPair | None = None
        self.target: bytes | None = None
        self.relays = 0
        self.closed = False
        self.connections: set[SecretStream] = set()
        self._replies: ExpiringCache[bytes, ServerAnswer] = ExpiringCache(
            max_size=MAX_REPLIES, max_age=HANDSHAKE_CLEAR_WAIT)
        self._address_rate: KeyedBuckets[Address] = KeyedBuckets(*HANDSHAKE_RATE)
        self._host_rate: KeyedBuckets[str] = KeyedBuckets(*HANDSHAKE_HOST_RATE)
        self._pending: FairSlots[str, asyncio.Task[None]] = FairSlots(MAX_PENDING, MAX_PENDING_PER_HOST)
        self._noise_key_pair: NoiseKeyPair | None = None
        self.dropped: dict[str, int] = {}
        """Handshakes not served, by reason: ``rate`` (over a client's rate), ``invalid`` (the Noise
        message did not decrypt or decode), ``firewalled`` (refused by the firewall hook), ``evicted``
        (an accepted handshake released to make room; see :data:`MAX_PENDING`)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._holepunches: list[_Pending | None] = []
        self.relay_infos: tuple[RelayInfo, ...] = ()
        self.stats = {
            "holepunch_rounds": 0,
            "bad_payloads": 0,
            "unknown_rounds": 0,
            "try_later": 0,
            "punches": 0,
            "relays_lost": 0,
            "abandoned": 0,
        }

    @property
    def public_key(self) -> bytes | None:
        return self.key_pair.public_key if self.key_pair is not None else None

    @property
    def pending(self) -> int:
        """Accepted handshakes whose client has not opened the stream yet (at most :data:`MAX_PENDING`)."""
        return len(self._pending)

    def address(self) -> tuple[bytes, str, int] | None:
        """``(public_key, host, port)`` (server.js ``address()``), None before :meth:`listen`."""
        if self.key_pair is None:
            return None
        host, port = self.dht.address()
        return (self.key_pair.public_key, host, port)

    async def listen(self, key_pair: KeyPair | None = None) -> Server:
        """Register with the router and self-announce to the closest nodes.

        Raises:
            LocalProtocolError: already listening, or the key pair is used by another server here.
        """
        if self.key_pair is not None:
            raise LocalProtocolError("already listening")
        kp = key_pair or self.dht.default_key_pair
        target = blake2b(kp.public_key)
        if target in self.dht.core.router.servers:
            raise LocalProtocolError("key pair already used by another server")
        self.dht.require_open()
        self.key_pair = kp
        self.target = target
        self.dht.core.router.listen(target)
        self.dht.raw_streams().probe_listeners.append(self._on_probe)
        self.dht.add_server(self)
        await self.dht.fully_bootstrapped()
        await self._announce()
        self._refresher = asyncio.ensure_future(self._refresh_loop())
        return self

    async def _announce(self) -> None:
        assert self.key_pair is not None and self.target is not None
        try:
            self.relays = await self.dht.announce(self.target, self.key_pair)
        except PeerDHTError as exc:
            log.debug("self-announce failed: %s", exc)
            self.relays = 0
        await self._find_relays()

    async def _find_relays(self) -> None:
        """The nodes holding our self-announce, with our address as each sees it: the ``relays``
        a client holepunches through, and whose holepunch rounds we trust for address tokens
        (announcer.js ``relays`` / ``isRelay``)."""
        assert self.key_pair is not None
        found: list[Address] = []
        with contextlib.suppress(PeerDHTError):
            async for res in self.dht.find_peer(self.key_pair.public_key):
                if res.from_addr not in found:
                    found.append(res.from_addr)

        async def info(addr: Address) -> RelayInfo | None:
            try:
                reply = await self.dht.ping(addr)
            except PeerDHTError:
                return None
            return RelayInfo(relay_address=addr, peer_address=reply.to)

        infos = await asyncio.gather(*(info(a) for a in found))
        self.relay_infos = tuple(i for i in infos if i is not None)

    async def _refresh_loop(self) -> None:
        """announcer.js ``_background``: every 3 s ping the relays; re-announce when fewer than 3
        (or all, if fewer) answer, and anyway after 100 rounds (~5 min)."""
        while not self.closed:
            for _ in range(REFRESH_ROUNDS):
                if self.closed:
                    return
                relays = [r.relay_address for r in self.relay_infos]
                answers = await asyncio.gather(*(self._alive(a) for a in relays))
                if sum(answers) < min(len(relays), MIN_ACTIVE):
                    self.stats["relays_lost"] += 1
                    break
                await asyncio.sleep(RELAY_CHECK_INTERVAL)
            if not self.closed:
                await self._announce()

    async def _alive(self, addr: Address) -> bool:
        try:
            await self.dht.run_op(
                lambda now: self.dht.core.request(addr, InternalCommand.PING, now, internal=True, retries=1)
            )
        except PeerDHTError:
            return False
        return True

    async def close(self) -> None:
        """Stop accepting, unannounce, and close open connections. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        if self.target is not None:
            self._unlisten()
        self.dht.remove_server(self)
        if self._on_probe in self.dht.raw_streams().probe_listeners:
            self.dht.raw_streams().probe_listeners.remove(self._on_probe)
        if self.target is not None and self.key_pair is not None and not self.dht.destroyed:
            with contextlib.suppress(PeerDHTError):
                await asyncio.wait_for(self.dht.unannounce(self.target, self.key_pair), 10)
            with contextlib.suppress(TimeoutError):
                pass
        for t in list(self._tasks):
            t.cancel()
        self._stop_punches()
        for s in list(self.connections):
            s.close()

    def shutdown(self) -> None:
        """Stop at once without unannouncing (the node is being destroyed)."""
        self.closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        if self.target is not None:
            self._unlisten()
        for t in list(self._tasks):
            t.cancel()
        self._stop_punches()

    def _stop_punches(self) -> None:
        """Stop every punch session now (their timers and requests), not only once their accepts settle."""
        for h in self._holepunches:
            if h is not None and h.runner is not None:
                h.runner.close()

    def _unlisten(self) -> None:
        # another server may have taken the key pair over since (after our close)
        if self.target is not None and not self.dht.serves(self.target, besides=self):
            self.dht.core.router.unlisten(self.target)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ router events (sync)

    def on_handshake(self, event: HandshakeReceived) -> None:
        """Answer a :class:`HandshakeReceived` for us through the node (or decline it)."""
        now = asyncio.get_running_loop().time()
        ans = self.on_peer_handshake(event.noise, event.peer_address, event.from_addr, event.socket, now)
        if ans is None:
            self.dht.core.decline(event.request_id, now)
        else:
            self.dht.core.answer(event.request_id, ans.value, now, ans.socket)

    def on_holepunch(self, event: HolepunchReceived) -> None:
        """Take a :class:`HolepunchReceived` round for us; it is answered by the round's punch session
        (at once, or once our NAT is sampled), or declined at once when it is not ours to answer."""
        if not self.on_peer_holepunch(event.request_id, event.id, event.payload, event.peer_address, event.from_addr):
            self.dht.core.decline(event.request_id, asyncio.get_running_loop().time())

    def on_peer_handshake(
        self, noise: bytes, peer_address: Address | None, from_addr: Address, socket: int, now: float
    ) -> ServerAnswer | None:
        """Answer a client's Noise message (server.js ``_onpeerhandshake`` / ``_addHandshake``).

        O(1) per message before the Diffie-Hellman: a replay of a handshake answered in the last
        :data:`HANDSHAKE_CLEAR_WAIT` seconds gets the same answer; a new one is dropped when its
        client address or host is over its rate (:data:`HANDSHAKE_RATE`, :data:`HANDSHAKE_HOST_RATE`).
        """
        if self.closed or self.key_pair is None:
            return None
        self._replies.prune(now)  # oldest first: O(1) amortized per handshake
        cached = self._replies.get(noise, now)
        if cached is not None:
            return cached
        client = peer_address or from_addr
        if not self._address_rate.allow(client, now) or not self._host_rate.allow(client[0], now):
            self._drop("rate")
            return None
        answer = self._add_handshake(noise, peer_address, from_addr, socket)
        if answer is not None:
            self._replies.put(noise, answer, now)
        return answer

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _add_handshake(
        self, noise: bytes, peer_address: Address | None, from_addr: Address, socket: int
    ) -> ServerAnswer | None:
        assert self.key_pair is not None
        if self._noise_key_pair is None:
            self._noise_key_pair = noise_key_pair(self.key_pair)
        hs = peer_handshake(self._noise_key_pair, None, os.urandom(32))
        try:
            remote = decode_noise_payload(hs.recv(noise))
        except (PeerDHTError, ValueError):
            self._drop("invalid")
            return None
        remote_pk = hs.remote_public_key
        assert remote_pk is not None
        client_address = peer_address or from_addr
        direct = peer_address is None
        if self.firewall is not None:
            try:
                if self.firewall(remote_pk, remote, client_address):
                    self._drop("firewalled")
                    return None
            except Exception:
                log.exception("firewall raised")
                self._drop("firewalled")
                return None
        error = server_error_code(remote)
        raws = self.dht.raw_streams()
        sid = raws.reserve() if error == Err.NONE else 0
        our_remote = self.dht.core.remote_address()
        hid = self._holepunches.index(None) if None in self._holepunches else len(self._holepunches)
        holepunch = None
        if our_remote is None and error == Err.NONE:
            holepunch = HolepunchInfo(id=hid, relays=self.relay_infos)
        ours = make_payload(
            remote_address=our_remote,
            udx_id=sid,
            error=error,
            local_addresses=local_addresses(self.dht.local_address()),
        )
        ours = dataclasses.replace(ours, holepunch=holepunch)
        reply = hs.send(encode_noise_payload(ours))
        result = hs.result()
        if error != Err.NONE:
            return ServerAnswer(value=reply)
        assert remote.udx is not None
        raws.expect(sid, remote.udx.id)
        if remote.firewall == Firewall.OPEN or direct:
            sock = socket if direct else (CLIENT if self.dht.core.firewalled else SERVER)
            stream = raws.connect(sid, sock, remote.udx.id, client_address)
            self._spawn_accept(client_address[0], sid, stream, result)
            return ServerAnswer(value=reply)
        if remote.relay_through is not None and our_remote is None:
            # the client chose a blind relay (server.js _relayConnection): pair there, in parallel
            # with punching; whichever opens the stream first wins
            self._spawn(
                self._relay(
                    sid, remote.relay_through.public_key, remote.relay_through.token, remote.udx.id, hid
                )
            )
        pending = _Pending(sid, remote.udx.id)
        if holepunch is not None:
            self._start_session(pending, result, remote.firewall)
        if hid == len(self._holepunches):
            self._holepunches.append(pending)
        else:
            self._holepunches[hid] = pending
        self._spawn_accept(client_address[0], sid, None, result, hid, pending)
        return ServerAnswer(value=reply, socket=PUNCH_SOCKET if holepunch is not None else None)

    def on_peer_holepunch(
        self, request_id: int, id: int, payload: bytes, peer_address: Address, from_addr: Address
    ) -> bool:
        """A PEER_HOLEPUNCH round (server.js ``_onpeerholepunch``) for the punch session ``id``.

        Returns:
            True when the session will answer ``request_id`` (at most once); False when the round is
            dropped (unknown id, not holepunching, bad payload).
        """
        h = self._holepunches[id] if 0 <= id < len(self._holepunches) else None
        if h is None or self.closed:
            self.stats["unknown_rounds"] += 1
            return False
        if h.session is None or h.runner is None:
            return False  # not holepunching (server.js answers an abort only once it has a payload)
        trusted = any(r.relay_address == from_addr for r in self.relay_infos)
        now = asyncio.get_running_loop().time()
        if not h.session.receive_round(request_id, payload, peer_address, trusted=trusted, now=now):
            self.stats["bad_payloads"] += 1
            return False
        self.stats["holepunch_rounds"] += 1
        h.runner.pump()
        return True

    def _start_session(self, h: _Pending, result: HandshakeResult, remote_firewall: int) -> None:
        """Holepunching was offered: run a :class:`~peerdht.holepunch.server.ServerPunch` (NAT sampling
        starts now) on the punch socket."""
        raws = self.dht.raw_streams()
        recent = [c.addr for c in self.dht.core.table][-8:]
        h.session = ServerPunch(
            secret=result.holepunch_secret,
            firewalled=self.dht.core.firewalled,
            punch_socket=PUNCH_SOCKET,
            sample_nodes=list(reversed(recent)),
            limit=raws.random_punch_limit,
            random_bytes=os.urandom,
            remote_firewall=remote_firewall,
        )
        h.runner = PunchRunner(self.dht, h.session, self._on_punch_event, probes=False)
        h.runner.start()

    def _on_punch_event(self, ev: object) -> None:
        if isinstance(ev, RoundAnswered):
            if ev.error == Err.TRY_LATER:
                self.stats["try_later"] += 1
            if not self.dht.destroyed:
                self.dht.core.answer(ev.request_id, ev.value, asyncio.get_running_loop().time(), ev.socket)
                self.dht.require_open().kick()
        elif isinstance(ev, PunchStarted):
            self.stats["punches"] += 1

    def _on_probe(self, addr: Address, socket: int) -> None:
        """Answer every probe with a probe while we have punches running (holepuncher.js: the
        responder echoes so the initiator learns the path is open)."""
        if socket == PUNCH_SOCKET and any(h is not None and not h.connected for h in self._holepunches):
            self.dht.raw_streams().send_probe(socket, addr)

    # ------------------------------------------------------------------ accepting

    async def _relay(
        self, sid: int, relay_public_key: bytes, token: bytes, direct_id: int, hid: int
    ) -> None:
        from peerdht.aio.hyperdht.relay import relayed_udx

        raws = self.dht.raw_streams()
        self.stats["relay_attempts"] = self.stats.get("relay_attempts", 0) + 1
        try:
            stream = await relayed_udx(self.dht, relay_public_key, False, token, sid, direct_id=direct_id)
        except (PeerDHTError, OSError) as exc:
            log.debug("relaying failed: %s", exc)
            self.stats["relay_aborts"] = self.stats.get("relay_aborts", 0) + 1
            return
        h = self._holepunches[hid] if hid < len(self._holepunches) else None
        if h is not None and h.sid == sid:
            h.relayed = stream  # before adopt: _accept sees it when the stream opens
            if h.session is not None:
                h.session.relayed = True
        if not raws.adopt(sid, stream):
            if h is not None and h.relayed is stream:
                h.relayed = None
                if h.session is not None:
                    h.session.relayed = False
            stream.destroy()  # the punch won meanwhile
            return
        self.stats["relayed"] = self.stats.get("relayed", 0) + 1

    def _end_holepunch(self, hid: int, stream: UDXStream | None) -> None:
        raws = self.dht.raw_streams()
        h = self._holepunches[hid] if hid < len(self._holepunches) else None
        if h is not None:
            h.connected = stream is not None
            if h.runner is not None and h.session is not None:
                if stream is not None:
                    h.session.connected(asyncio.get_running_loop().time())
                h.runner.close()
                winner = raws.sockets.get(h.sid)
                for index in h.session.sockets:
                    raws.close_socket(index, after=stream if index == winner else None)
            self._holepunches[hid] = None
        while self._holepunches and self._holepunches[-1] is None:
            self._holepunches.pop()

    async def _linger(self, hid: int, h: _Pending, stream: UDXStream) -> None:
        """A relayed connection: punch on until the stream moves to a direct path (our punch or the
        client's), closes, or :data:`UPGRADE_TIMEOUT` passes; then end the holepunch state."""
        if h.session is not None and h.session.strategy is Strategy.BIRTHDAY:
            # the client could only reach a birthday socket, where the relayed stream cannot follow
            h.session.stop_punching(asyncio.get_running_loop().time())
            raws = self.dht.raw_streams()
            for index in h.session.sockets:
                raws.close_socket(index)
        try:
            if await wait_direct(stream, UPGRADE_TIMEOUT):
                self.stats["upgraded"] = self.stats.get("upgraded", 0) + 1
        finally:
            if hid < len(self._holepunches) and self._holepunches[hid] is h:
                self._end_holepunch(hid, stream)

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_accept(
        self,
        host: str,
        sid: int,
        stream: UDXStream | None,
        result: HandshakeResult,
        hid: int | None = None,
        h: _Pending | None = None,
    ) -> None:
        """Run :meth:`_accept` in one of the bounded pending slots of ``host``, evicting (cancelling)
        the accepts that must make room. The accept gives its slot back once the stream is open;
        one cancelled before it ran is cleaned up here (stream id, stream, holepunch state)."""
        state = _Accepting()
        task = self._spawn(self._accept(sid, stream, result, hid, state=state))
        state.slot, evicted = self._pending.take(host, task)

        def settle(_: object) -> None:
            self._pending.release(state.slot)
            if state.settled:
                return
            if stream is not None:
                stream.destroy()
            try:
                raws = self.dht.raw_streams()
            except PeerDHTError:
                return  # the node is closed: its sockets and streams are gone anyway
            if stream is not None:
                raws.forget(sid)
            else:
                raws.release(sid)
            if hid is not None and hid < len(self._holepunches) and self._holepunches[hid] is h:
                self._end_holepunch(hid, None)

        task.add_done_callback(settle)
        for other in evicted:
            self._drop("evicted")
            other.cancel()

    @staticmethod
    async def _hear_client(stream: UDXStream, result: HandshakeResult, opened_by_us: bool) -> SecretStream:
        """The secret stream; if we opened the stream towards the client's claimed address, only once
        the client's header arrived on it: until then a fake client (a valid Noise message and
        nothing behind it) holds only a bounded pending slot. (A stream the client opened, by its
        first packet or through a relay pairing, is already proof that it is there.)"""
        secure = await open_secret_stream(stream, initiator=False, handshake=result)
        if not opened_by_us:
            return secure
        try:
            await secure.wait_peer()
        except BaseException:
            secure.close()
            raise
        return secure

    async def _accept(
        self,
        sid: int,
        stream: UDXStream | None,
        result: HandshakeResult,
        hid: int | None = None,
        *,
        state: _Accepting,
    ) -> None:
        raws = self.dht.raw_streams()
        opened_by_us = stream is not None  # else the client's first packet (or a relay splice) opened it
        try:
            if stream is None:
                try:
                    stream = await raws.wait(sid, ACCEPT_TIMEOUT if hid is None else PUNCH_TIMEOUT)
                except TimeoutError:
                    return
        finally:
            state.settled = True
            if hid is not None and hid < len(self._holepunches):
                h = self._holepunches[hid]
                if h is not None and stream is not None and h.relayed is stream and h.session is not None:
                    # relayed: keep answering holepunch rounds and punching, so either side can move
                    # the stream to a direct path (server.js keeps its Holepuncher next to the relay)
                    self._spawn(self._linger(hid, h, stream))
                else:
                    self._end_holepunch(hid, stream)
            if stream is None:
                raws.release(sid)
            else:
                raws.forget(sid)
        try:
            secure = await asyncio.wait_for(self._hear_client(stream, result, opened_by_us), ACCEPT_TIMEOUT)
        except (PeerDHTError, TimeoutError) as exc:
            # the client never spoke on the stream (or broke it): release it now, not after UDX gives up
            log.debug("secret-stream failed: %r", exc)
            self.stats["abandoned"] += 1
            stream.destroy()
            return
        except asyncio.CancelledError:
            stream.destroy()
            raise
        self._pending.release(state.slot)
        if self.closed:
            secure.close()
            return
        self.connections.add(secure)
        try:
            res = self.handler(secure)
            if inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("connection handler raised")
        finally:
            self.connections.discard(secure)
