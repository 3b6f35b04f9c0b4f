"""Blind relays over HyperDHT, asyncio: a relay server that splices UDX streams, and a client.

Mirrors npm ``blind-relay`` 1.6.1 (``Server``/``Client``) as hyperdht 6.34 uses it
(``lib/connect.js``/``lib/server.js`` ``relayConnection``): a relay is a HyperDHT server; a client
connects to it by public key, opens the protomux channel ``"blind-relay"`` (id = the client's public
key) and sends ``pair {isInitiator, token, id: its UDX stream id}``. When both sides of a token have
asked, the relay creates one UDX stream per side on the socket that side's relay connection runs
on, connected to that side's address and stream id, splices them (transport ``udx.splice``) and answers each
``pair`` with the id of its stream. Each side then connects its UDX stream to the relay's address
(from the same socket as its relay connection) and runs its end-to-end secret-stream over it: the
relay forwards encrypted UDX packets and never holds a key.

Differences from JS (all on the relay side; the wire is the same): the relay's stream is connected
to the session's address at once instead of to whichever address sends first (so nobody else can
take over a splice); pending pairings, links per session, sessions and bytes/s per session are
bounded; half pairings expire after 15 s; sessions are bounded per public key, per source host and
per subnet (a key costs nothing to make, an address does), a session without a link is closed after
:data:`UNPAIRED_TIMEOUT`, and when the relay is full the longest-unpaired session older than
:data:`EVICT_GRACE` makes room for a new one (so idle sessions cannot lock legitimate pairs out).

Discovery (our choice; HyperDHT has none): relay nodes announce their relay server's key pair under
:data:`RELAY_TOPIC` = BLAKE2b-256(``b"peerdht relay"``); :func:`find_relays` looks them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from peerdht.aio.hyperdht.relay_upgrade import (  # the relay -> direct upgrade
    follow,
    forget_relayed,
    move_to_direct,
    watch_relayed,
)
from peerdht.aio.transport.udx import splice
from peerdht.errors import DecodeError, LocalProtocolError, PairingError, PeerDHTError, RelayAborted
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.relay.messages import (
    PAIR,
    PROTOCOL,
    UNPAIR,
    Pair,
    Unpair,
    decode_pair,
    decode_unpair,
    encode_pair,
    encode_unpair,
)
from peerdht.relay.pairing import PAIR_TIMEOUT, Matched, Pairings, TokenBucket
from peerdht.relay.protomux import ChannelClosed, ChannelMessage, ChannelOpened, Mux

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.hyperdht.secretstream import SecretStream
    from peerdht.aio.transport.udx import UDXSocket, UDXStream

log = logging.getLogger(__name__)

Address = tuple[str, int]

RELAY_TOPIC: Final = blake2b(b"peerdht relay")
"""Topic relay nodes announce their relay key under (BLAKE2b-256 of ``b"peerdht relay"``)."""
DEFAULT_RATE: Final = 4 * 1024 * 1024
"""Bytes/s one relay session (one peer) may push through the relay, all its links together."""
DEFAULT_MAX_SESSIONS: Final = 256
"""Relay sessions (connections from peers) a relay serves at once."""
DEFAULT_MAX_SESSIONS_PER_PEER: Final = 16
"""Sessions one peer (remote public key) may hold at once: each relayed connection opens its own
(as hyperdht does), and a closed one lingers a few seconds."""
DEFAULT_MAX_SESSIONS_PER_HOST: Final = 64
"""Sessions one source IP address may hold at once."""
DEFAULT_MAX_SESSIONS_PER_SUBNET: Final = 128
"""Sessions one source subnet (IPv4 /24, IPv6 /48) may hold at once."""
UNPAIRED_TIMEOUT: Final = 20.0
"""Seconds a session may go without a spliced link (since it opened, or since its last link ended)
before it is closed: a client pairs at once, and its partner comes within the 15 s pairing timeout."""
EVICT_GRACE: Final = 5.0
"""When the relay is full, a session unpaired for at least this many seconds is closed to make room
(idle ones first, then the longest unpaired)."""
ANNOUNCE_INTERVAL: Final = 300.0
"""Seconds between re-announces of a relay under :data:`RELAY_TOPIC` (records live 20 minutes)."""
FIND_TIMEOUT: Final = 5.0
"""Seconds a relay lookup may take."""
REACHABLE_CHECK: Final = 5.0
"""Seconds between checks whether a not yet announced relay has become reachable."""
CACHE_TTL: Final = 120.0
"""Seconds a relay lookup result is reused."""


def token() -> bytes:
    """A fresh 32-byte pairing token (blind-relay ``token()``)."""
    return os.urandom(32)


def _random_id(sock: UDXSocket) -> int:
    while True:
        sid = int.from_bytes(os.urandom(4), "little")
        if sid and not sock.has_stream(sid) and not sock.core.has_stream(sid):
            return sid


# ------------------------------------------------------------------------------------ server


@dataclass(eq=False)
class _Session:
    stream: SecretStream
    raw: UDXStream
    mux: Mux
    channel: int
    bucket: TokenBucket
    peer: bytes
    host: str = ""
    subnet: str = ""
    unpaired_since: float = 0.0  # when it last had no link (opened, or its last link ended)
    links: dict[bytes, UDXStream] = field(default_factory=dict)

    def flush(self) -> None:
        for m in self.mux.data_to_send():
            with contextlib.suppress(PeerDHTError, OSError):
                self.stream.write(m)


class RelayServer:
    """A blind relay (npm ``blind-relay`` ``Server`` + the HyperDHT server it runs behind).

    Args:
        dht: an open :class:`~peerdht.aio.hyperdht.HyperDHT` (``connectable``).
        rate: bytes/s each peer (remote public key) may relay, all its sessions and links
            together (0: unlimited).
        max_sessions: sessions served at once; more are refused.
        max_sessions_per_peer: sessions one remote public key may hold at once.
        max_sessions_per_host: sessions one source IP address may hold at once.
        max_sessions_per_subnet: sessions one source subnet (IPv4 /24, IPv6 /48) may hold at once.
        unpaired_timeout: seconds a session may go without a link before it is closed.
        evict_grace: when full, a session unpaired this long (seconds) is closed to make room.
        pairings: the pairing table (its limits); default :class:`Pairings` defaults.

    Use ``await RelayServer(dht).listen(key_pair)`` for a HyperDHT server of its own, or call
    :meth:`accept` with connections of an existing server. ``stats`` counts sessions, pairings
    (``pairings.stats``), relayed bytes and refusals.
    """

    def __init__(
        self,
        dht: HyperDHT,
        *,
        rate: float = DEFAULT_RATE,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_sessions_per_peer: int = DEFAULT_MAX_SESSIONS_PER_PEER,
        max_sessions_per_host: int = DEFAULT_MAX_SESSIONS_PER_HOST,
        max_sessions_per_subnet: int = DEFAULT_MAX_SESSIONS_PER_SUBNET,
        unpaired_timeout: float = UNPAIRED_TIMEOUT,
        evict_grace: float = EVICT_GRACE,
        pairings: Pairings[_Session] | None = None,
    ) -> None:
        self.dht = dht
        self.rate = rate
        self.max_sessions = max_sessions
        self.max_sessions_per_peer = max_sessions_per_peer
        self.max_sessions_per_host = max_sessions_per_host
        self.max_sessions_per_subnet = max_sessions_per_subnet
        self.unpaired_timeout = unpaired_timeout
        self.evict_grace = evict_grace
        self._per_host: dict[str, int] = {}
        self._per_subnet: dict[str, int] = {}
        self._buckets: dict[bytes, tuple[TokenBucket, int]] = {}
        self.pairings: Pairings[_Session] = pairings if pairings is not None else Pairings()
        self.sessions: set[_Session] = set()
        self.server: Any = None
        self.stats = {
            "sessions": 0,
            "refused_sessions": 0,
            "links": 0,
            "relayed_bytes": 0,
            "bad_messages": 0,
            "evicted_sessions": 0,
            "unpaired_sessions": 0,
        }
        self.dropped: dict[str, int] = {}
        """Sessions refused or closed, by reason: ``full``, ``peer``, ``host``, ``subnet`` (over a
        limit), ``evicted`` (made room when full), ``unpaired`` (no link for ``unpaired_timeout``)."""
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcer: asyncio.Task[None] | None = None
        self.announced = False
        """Whether the relay has been announced under :data:`RELAY_TOPIC`."""
        self._announced_evt = asyncio.Event()
        self._closed = False

    @property
    def relayed_bytes(self) -> int:
        """Bytes relayed so far (UDX packets as received), all sessions."""
        return self.stats["relayed_bytes"] + sum(b.passed for b, _ in self._buckets.values())

    @property
    def public_key(self) -> bytes | None:
        """The relay server's public key (after :meth:`listen`)."""
        pk: bytes | None = self.server.public_key if self.server is not None else None
        return pk

    async def listen(self, key_pair: KeyPair | None = None, *, announce: bool = False) -> RelayServer:
        """Start a HyperDHT server that runs the relay protocol on every connection; with
        ``announce``, make it discoverable: announce its key pair under :data:`RELAY_TOPIC` every
        :data:`ANNOUNCE_INTERVAL` seconds while the node is reachable (it has a public address, so
        peers behind any NAT can connect to it without punching; checked every
        :data:`REACHABLE_CHECK` seconds until then), unannounced on :meth:`close`.

        Raises:
            PeerDHTError: the server cannot listen, or the first announce (when reachable) failed.
        """
        self.server = self.dht.create_server(self.accept)
        await self.server.listen(key_pair)
        if announce:
            if self.dht.core.remote_address() is not None:
                await announce_relay(self.dht, self.server.key_pair)
                self.announced = True
                self._announced_evt.set()
            self._announcer = asyncio.ensure_future(self._announce_loop())
        return self

    async def wait_announced(self) -> None:
        """Return once the relay is announced (discoverable by :func:`find_relays`)."""
        await self._announced_evt.wait()

    async def _announce_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(ANNOUNCE_INTERVAL if self.announced else REACHABLE_CHECK)
            if self.dht.core.remote_address() is None:
                continue  # not reachable (yet): a relay behind a NAT would not help anybody
            with contextlib.suppress(PeerDHTError, OSError):
                await announce_relay(self.dht, self.server.key_pair)
                self.announced = True
                self._announced_evt.set()

    async def close(self) -> None:
        """Stop: close the server, every session and every splice."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._announcer is not None:
            self._announcer.cancel()
            self._announcer = None
            with contextlib.suppress(PeerDHTError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self.dht.unannounce(RELAY_TOPIC, self.server.key_pair), 5)
        for s in list(self.sessions):
            self._end_session(s)
        if self.server is not None:
            await self.server.close()

    async def __aenter__(self) -> RelayServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _refuse(self, stream: SecretStream, reason: str) -> None:
        self.stats["refused_sessions"] += 1
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        stream.close()

    def _make_room(self, now: float) -> bool:
        """The relay is full: close the session that has been without a link longest, if that is
        at least ``evict_grace`` seconds (one with no pairing pending first). False if none may go."""
        best: tuple[bool, float] | None = None
        victim: _Session | None = None
        for s in self.sessions:
            if s.links or self.pairings.links_of(s) or now - s.unpaired_since < self.evict_grace:
                continue
            key = (self.pairings.pending_of(s) > 0, s.unpaired_since)
            if best is None or key < best:
                best, victim = key, s
        if victim is None:
            return False
        self.stats["evicted_sessions"] += 1
        self.dropped["evicted"] = self.dropped.get("evicted", 0) + 1
        self._end_session(victim)
        return True

    async def accept(self, stream: SecretStream) -> None:
        """Serve the relay protocol on ``stream`` (an accepted HyperDHT connection) until it ends."""
        raw = stream.raw
        if self._closed or not hasattr(raw, "relay_to"):
            self._refuse(stream, "closed")
            return
        try:
            await stream.wait_handshake()
        except (PeerDHTError, OSError):
            stream.close()
            return
        now = asyncio.get_running_loop().time()
        peer = stream.remote_public_key or b""
        addr = getattr(raw, "remote_addr", None)
        host = addr[0] if addr is not None else ""
        subnet = _subnet(host)
        bucket, n = self._buckets.get(peer, (None, 0))
        if n >= self.max_sessions_per_peer:
            self._refuse(stream, "peer")
            return
        if self._per_host.get(host, 0) >= self.max_sessions_per_host:
            self._refuse(stream, "host")
            return
        if self._per_subnet.get(subnet, 0) >= self.max_sessions_per_subnet:
            self._refuse(stream, "subnet")
            return
        if len(self.sessions) >= self.max_sessions and not self._make_room(now):
            self._refuse(stream, "full")
            return
        bucket, n = self._buckets.get(peer, (None, 0))
        if bucket is None:
            bucket = TokenBucket(self.rate)
        self._buckets[peer] = (bucket, n + 1)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self._per_subnet[subnet] = self._per_subnet.get(subnet, 0) + 1
        mux = Mux()
        channel = mux.open_channel(PROTOCOL, peer)
        s = _Session(
            stream=stream,
            raw=raw,  # type: ignore[arg-type]
            mux=mux,
            channel=channel,
            bucket=bucket,
            peer=peer,
            host=host,
            subnet=subnet,
            unpaired_since=now,
        )
        self.sessions.add(s)
        self.stats["sessions"] += 1
        if self._timer is None:
            self._timer = asyncio.ensure_future(self._expire_loop())
        s.flush()
        try:
            while True:
                data = await stream.read_message()
                if not data:
                    break
                try:
                    mux.receive_message(data)
                except DecodeError:
                    self.stats["bad_messages"] += 1
                    break
                if not self._events(s):
                    break
                s.flush()
        except (PeerDHTError, OSError) as exc:
            log.debug("relay session ended: %s", exc)
        finally:
            self._end_session(s)

    def _events(self, s: _Session) -> bool:
        while (ev := s.mux.next_event()) is not None:
            if isinstance(ev, ChannelClosed):
                return False
            if not isinstance(ev, ChannelMessage) or ev.channel != s.channel:
                continue
            try:
                if ev.type == PAIR:
                    self._on_pair(s, decode_pair(ev.payload))
                elif ev.type == UNPAIR:
                    self._on_unpair(s, decode_unpair(ev.payload))
            except DecodeError:
                self.stats["bad_messages"] += 1
                return False
        return True

    def _on_pair(self, s: _Session, m: Pair) -> None:
        now = asyncio.get_running_loop().time()
        try:
            matched = self.pairings.pair(s, m.is_initiator, m.token, m.id, now)
        except PairingError:
            return  # refused: the client times out (blind-relay has no refusal message)
        if matched is not None:
            self._splice(matched)

    def _splice(self, m: Matched[_Session]) -> None:
        ends: list[tuple[_Session, bool, int, UDXStream]] = []
        for link in (m.initiator, m.responder):
            sess = link.session
            sock = sess.raw.socket
            addr = sess.raw.remote_addr
            if addr is None or sess not in self.sessions:
                for _, _, _, st in ends:
                    st.destroy()
                self.pairings.link_closed(m.token)
                return
            stream = sock.create_stream(_random_id(sock))
            stream.connect_nowait(link.remote_id, addr)
            ends.append((sess, link.is_initiator, link.remote_id, stream))
        (s1, _, _, a), (s2, _, _, b) = ends
        splice(a, b, limiters=(s1.bucket, s2.bucket))
        self.stats["links"] += 1
        for sess, is_init, _, st in ends:
            sess.links[m.token] = st
            sess.mux.send(sess.channel, PAIR, encode_pair(Pair(is_initiator=is_init, token=m.token, id=st.id)))
            sess.flush()
        task = asyncio.ensure_future(self._watch(m.token, a, b))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, tok: bytes, a: UDXStream, b: UDXStream) -> None:
        with contextlib.suppress(Exception):
            await a.wait_closed()
        m = self.pairings.link_closed(tok)
        b.destroy()
        if m is not None:
            for sess in (m.initiator.session, m.responder.session):
                sess.links.pop(tok, None)
                self._maybe_unpaired(sess)

    def _maybe_unpaired(self, s: _Session) -> None:
        if not s.links:
            s.unpaired_since = asyncio.get_running_loop().time()

    def _on_unpair(self, s: _Session, m: Unpair) -> None:
        matched = self.pairings.unpair(s, m.token)
        if matched is not None:
            for sess in (matched.initiator.session, matched.responder.session):
                st = sess.links.pop(m.token, None)
                if st is not None:
                    st.destroy()
                self._maybe_unpaired(sess)

    def _end_session(self, s: _Session) -> None:
        if s not in self.sessions:
            return
        self.sessions.discard(s)
        for counts, key in ((self._per_host, s.host), (self._per_subnet, s.subnet)):
            left = counts.get(key, 1) - 1
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)
        bucket, n = self._buckets.get(s.peer, (s.bucket, 1))
        if n <= 1:
            self._buckets.pop(s.peer, None)
            self.stats["relayed_bytes"] += bucket.passed
        else:
            self._buckets[s.peer] = (bucket, n - 1)
        for m in self.pairings.remove_session(s):
            for sess in (m.initiator.session, m.responder.session):
                st = sess.links.pop(m.token, None)
                if st is not None:
                    st.destroy()
                if sess is not s:
                    self._maybe_unpaired(sess)
        for st in s.links.values():
            st.destroy()
        s.links.clear()
        s.mux.close_channel(s.channel)
        s.flush()
        s.stream.close()

    async def _expire_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(1.0)
            now = loop.time()
            self.pairings.handle_timer(now)
            for s in [s for s in self.sessions if not s.links and now - s.unpaired_since > self.unpaired_timeout]:
                self.stats["unpaired_sessions"] += 1
                self.dropped["unpaired"] = self.dropped.get("unpaired", 0) + 1
                self._end_session(s)


def _subnet(host: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) a source address belongs to, as text."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False))


# ------------------------------------------------------------------------------------ client


class RelayClient:
    """A blind-relay client on a connection to a relay (npm ``blind-relay`` ``Client``).

    Args:
        stream: a :class:`SecretStream` to the relay (``dht.connect(relay_key)``); its raw UDX
            stream's socket and remote address are where relayed streams go.
    """

    def __init__(self, stream: SecretStream) -> None:
        self.stream = stream
        self.mux = Mux()
        self.channel = self.mux.open_channel(PROTOCOL, stream.public_key)
        self._requests: dict[bytes, tuple[bool, asyncio.Future[int]]] = {}
        self._opened = asyncio.get_running_loop().create_future()
        self._closed = False
        self._flush()
        self._reader = asyncio.ensure_future(self._read_loop())

    def _flush(self) -> None:
        for m in self.mux.data_to_send():
            with contextlib.suppress(PeerDHTError, OSError):
                self.stream.write(m)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.read_message()
                if not data:
                    break
                self.mux.receive_message(data)
                while (ev := self.mux.next_event()) is not None:
                    if isinstance(ev, ChannelOpened) and not self._opened.done():
                        self._opened.set_result(None)
                    elif isinstance(ev, ChannelClosed):
                        return
                    elif isinstance(ev, ChannelMessage) and ev.type == PAIR:
                        with contextlib.suppress(DecodeError):
                            m = decode_pair(ev.payload)
                            req = self._requests.get(m.token)
                            if req is not None and req[0] == m.is_initiator and not req[1].done():
                                req[1].set_result(m.id)
                self._flush()
        except (PeerDHTError, OSError) as exc:
            log.debug("relay client ended: %s", exc)
        finally:
            self._closed = True
            for _, fut in self._requests.values():
                if not fut.done():
                    fut.set_exception(RelayAborted("relay connection closed"))
                    fut.exception()

    async def pair(self, is_initiator: bool, tok: bytes, stream_id: int, timeout: float = PAIR_TIMEOUT) -> int:
        """Ask the relay to pair our UDX stream ``stream_id`` under ``tok`` (32 bytes); returns the
        relay's stream id to connect to once the other side asked too.

        Raises:
            RelayAborted: timed out, or the relay connection closed.
            LocalProtocolError: already pairing this token.
        """
        if tok in self._requests:
            raise LocalProtocolError("already pairing this token")
        if self._closed:
            raise RelayAborted("relay connection closed")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._requests[tok] = (is_initiator, fut)
        self.mux.send(self.channel, PAIR, encode_pair(Pair(is_initiator=is_initiator, token=tok, id=stream_id)))
        self._flush()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self.unpair(tok)
            raise RelayAborted("relay pairing timed out") from None
        finally:
            self._requests.pop(tok, None)

    def unpair(self, tok: bytes) -> None:
        """Cancel a pairing or tear down a splice."""
        if self._closed:
            return
        self.mux.send(self.channel, UNPAIR, encode_unpair(Unpair(token=tok)))
        self._flush()

    def close(self) -> None:
        """Close the channel and the connection to the relay."""
        self.mux.close_channel(self.channel)
        self._flush()
        self._reader.cancel()
        self.stream.close()


@dataclass
class Relayed:
    """A UDX stream spliced through a relay: run the end-to-end secret-stream on ``stream``.

    Attributes:
        stream: our UDX stream, connected to the relay's stream.
        relay: the relay client (keep it open as long as ``stream`` is used; ``close()`` it after).
        relay_public_key: the relay's public key.
    """

    stream: UDXStream
    relay: RelayClient
    relay_public_key: bytes

    def close(self) -> None:
        """Close the relay connection (not ``stream``)."""
        self.relay.close()


async def relay_stream(
    dht: HyperDHT,
    relay_public_key: bytes,
    is_initiator: bool,
    tok: bytes,
    *,
    stream_id: int | None = None,
    timeout: float = PAIR_TIMEOUT,
) -> Relayed:
    """Connect to the relay ``relay_public_key``, pair ``tok`` in role ``is_initiator`` and return
    our UDX stream spliced to the other side's (hyperdht ``relayConnection``).

    ``stream_id`` reuses a UDX stream id we already gave the peer (it must not exist on the relay
    connection's socket yet); default: a fresh id.

    Raises:
        RelayAborted: pairing failed or timed out.
        peerdht.hyper.handshake.ConnectError: the relay cannot be reached.
    """
    conn: SecretStream = await asyncio.wait_for(dht.connect(relay_public_key), timeout)
    client = RelayClient(conn)
    ok = False
    try:
        raw = conn.raw
        sock: UDXSocket = raw.socket  # type: ignore[attr-defined]
        relay_addr: Address | None = raw.remote_addr  # type: ignore[attr-defined]
        if relay_addr is None:
            raise RelayAborted("relay connection has no address")
        sid = stream_id if stream_id is not None else _random_id(sock)
        stream = sock.create_stream(sid)
        try:
            remote_id = await client.pair(is_initiator, tok, sid, timeout)
            await stream.connect(remote_id, relay_addr)
            # a JS relay connects its end to whoever sends first, and drops what arrives for an end
            # not connected yet: show ourselves at once (an empty MESSAGE, as hyperdht's
            # confirmDirectUpgrade sends; secret-streams drop it) so the side that waits for the
            # other's first bytes (a responder) is reachable
            stream.send_message(b"")
        except BaseException:
            stream.destroy()
            raise
        ok = True
        return Relayed(stream=stream, relay=client, relay_public_key=relay_public_key)
    finally:
        if not ok:
            client.close()


async def announce_relay(dht: HyperDHT, key_pair: KeyPair) -> None:
    """Announce ``key_pair``'s public key (a relay server's) under :data:`RELAY_TOPIC`."""
    await dht.announce(RELAY_TOPIC, key_pair)


async def find_relays(dht: HyperDHT, *, limit: int = 8, exclude: Iterable[bytes] = ()) -> list[bytes]:
    """Public keys of relays announced under :data:`RELAY_TOPIC` (up to ``limit``, unique)."""
    skip = set(exclude)
    found: list[bytes] = []
    results: Any = dht.lookup(RELAY_TOPIC)
    async with contextlib.aclosing(results):
        async for result in results:
            for peer in result.peers:
                pk = bytes(peer.public_key)
                if pk not in skip and pk not in found:
                    found.append(pk)
            if len(found) >= limit:
                break
    return found[:limit]


_cache: weakref.WeakKeyDictionary[HyperDHT, tuple[float, list[bytes]]] = weakref.WeakKeyDictionary()


async def pick_relays(dht: HyperDHT, *, exclude: Iterable[bytes] = (), timeout: float = FIND_TIMEOUT) -> list[bytes]:
    """Relays to fall back on (:func:`find_relays`, cached per node for :data:`CACHE_TTL` seconds,
    at most ``timeout`` seconds of lookup); our own relay is excluded. Empty when none answers."""
    now = asyncio.get_running_loop().time()
    skip = set(exclude)
    own = getattr(dht, "relay", None)
    if own is not None and own.public_key is not None:
        skip.add(own.public_key)
    hit = _cache.get(dht)
    if hit is None or now - hit[0] > CACHE_TTL or not hit[1]:
        try:
            found = await asyncio.wait_for(find_relays(dht, limit=8), timeout)
        except (TimeoutError, PeerDHTError, OSError):
            found = []
        hit = (now, found)
        _cache[dht] = hit
    return [k for k in hit[1] if k not in skip]


async def relayed_udx(
    dht: HyperDHT,
    relay_public_key: bytes,
    is_initiator: bool,
    tok: bytes,
    stream_id: int,
    *,
    direct_id: int | None = None,
    timeout: float = PAIR_TIMEOUT,
) -> UDXStream:
    """Our side of a hyperdht ``relayThrough`` connection: pair ``tok`` at the relay with UDX stream
    ``stream_id`` (the id we gave the peer in our Noise payload) and return that stream, spliced to
    the peer's. The relay connection stays open until the stream closes (connect.js
    ``relayConnection`` + ``destroyRelayConnection``).

    With ``direct_id`` (the peer's own UDX stream id, from its Noise payload) the stream moves to a
    direct path when the peer does (relay -> direct upgrade, relay-connection.js
    ``confirmDirectUpgrade``): once packets arrive straight from the peer, we ``change_remote`` to
    that address, confirm with an empty MESSAGE, and close the relay connection when everything
    sent through the relay has been acknowledged.

    Raises:
        RelayAborted: pairing failed. peerdht.hyper.handshake.ConnectError: relay unreachable.
    """
    r = await relay_stream(dht, relay_public_key, is_initiator, tok, stream_id=stream_id, timeout=timeout)
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[None] = loop.create_future()
    peer_direct: asyncio.Future[None] = loop.create_future()

    if direct_id is not None:
        target: list[Address] = []

        def moved(addr: Address) -> None:
            """Packets from a new address: the peer moved first (follow it), or -- after our own
            move -- the peer is on the direct path too."""
            log.debug("stream %d: packets from %s", r.stream.id, addr)
            if upgraded.done():
                if target and addr != target[-1]:
                    # the peer moved again after the upgrade (a JS puncher may reopen its socket):
                    # follow it there, or the stream would keep sending to a dead mapping
                    target.append(addr)
                    dht.spawn(follow(r.stream, direct_id, addr))
                if not peer_direct.done():
                    peer_direct.set_result(None)
                return
            _start(addr, follow=True)

        def _start(addr: Address, follow: bool) -> None:
            upgraded.set_result(None)
            target.append(addr)
            if follow:
                peer_direct.set_result(None)
            forget_relayed(r.stream)
            dht.spawn(move_to_direct(r, direct_id, addr, peer_direct))

        def initiate(addr: Address) -> None:
            if not upgraded.done():
                _start(addr, follow=False)

        r.stream.watch_remote_address(moved)
        watch_relayed(r.stream, initiate, upgraded)

    async def hold() -> None:
        try:
            with contextlib.suppress(Exception):
                await r.stream.wait_closed()
        finally:
            r.close()

    dht.spawn(hold())
    return r.stream


async def start_relay(dht: HyperDHT, key_pair: KeyPair | None = None, **opts: Any) -> RelayServer:
    """Run a discoverable relay on ``dht`` (``HyperDHT(relay=True)`` / ``peerdht node --relay``):
    a :class:`RelayServer` with its own key pair (default: a fresh one), announced under
    :data:`RELAY_TOPIC` once the node is reachable. ``opts`` go to :class:`RelayServer`."""
    relay = RelayServer(dht, **opts)
    await relay.listen(key_pair or KeyPair.generate(), announce=True)
    return relay
