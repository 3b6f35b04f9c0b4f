"""Connect to a HyperDHT server by its public key (hyperdht ``lib/connect.js``).

FIND_PEER finds the nodes holding the server's self-announce; a PEER_HANDSHAKE (Noise IK, our
payload inside) goes through one of them to the server; the reply tells where to open the UDX
stream; secret-stream runs on top with the keys of the Noise handshake.

Paths, in connect.js's order: the server is reachable (firewall OPEN, or relayed without
holepunch relays: its address as the relay saw it); the handshake went straight to the server's
own node; we are reachable (the server connects to us); we share the server's public IP
(same-LAN shortcut: PING its LAN address); else holepunching (:class:`Puncher`, running a
:class:`~peerdht.holepunch.client.ClientPunch`): NAT sampling of our client socket, a probe round and
a punch round of PEER_HOLEPUNCH through the relays (payloads sealed with the handshake's holepunch
secret, address tokens echoed), then consistent probing, random-port probing (the server randomises)
or birthday sockets (we randomise).

Blind relays (:mod:`peerdht.aio.hyperdht.relay`): with ``relay_through`` (JS ``relayThrough``) our Noise
payload carries ``{relay key, token}`` and both sides pair at that relay; a server's
``relayThrough`` in its reply is followed too. Beyond JS, when punching is impossible or fails
(:data:`RELAY_FALLBACK_ERRORS`) the connect is retried once more through a relay found by LOOKUP
of :data:`peerdht.aio.hyperdht.relay.RELAY_TOPIC` (automatic fallback). While relayed both sides keep
punching (:func:`_upgrade`, and the server's holepunch state stays up); when a punch gets through,
the stream moves to the direct path -- whichever side moves first, the other follows
(relay -> direct upgrade, interoperable with JS ``changeRemote``).

Differences from JS: the punch socket is the DHT's client socket (JS takes a fresh pool socket
and may re-open it when the NAT looks unstable), so a relayed stream is not upgraded through
birthday sockets; JS races relay pairing against its punch, we open through the relay first and
upgrade; no connection pool / reusable sockets; TRY_LATER ends the attempt (JS waits when it has
a relay; we fall back to a relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
from typing import TYPE_CHECKING, Any

from peerdht.aio.hyperdht.punch import PunchRunner
from peerdht.aio.hyperdht.relay_upgrade import is_relayed, until_closed, upgrade_relayed, wait_direct
from peerdht.aio.hyperdht.secretstream import SecretStream, open_secret_stream
from peerdht.aio.transport.socketpool import local_addresses
from peerdht.errors import (
    CannotHolepunch,
    HandshakeInvalid,
    HolepunchAborted,
    HolepunchDoubleRandomized,
    HolepunchProbeTimeout,
    LocalProtocolError,
    PeerConnectionFailed,
    PeerDHTError,
    PeerNotFound,
    RemoteAborted,
    RemoteNotHolepunchable,
    RemoteNotHolepunching,
    ServerError,
    ServerIncompatible,
)
from peerdht.holepunch.client import ClientPunch
from peerdht.holepunch.events import Connected, PunchFailed
from peerdht.holepunch.strategy import Strategy, match_address
from peerdht.hyper.constants import Command, Firewall, InternalCommand
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.handshake import (
    first_remote_address,
    is_reserved,
    make_payload,
    noise_key_pair,
)
from peerdht.hyper.records import (
    Handshake,
    NoisePayload,
    RelayThroughInfo,
    decode_handshake,
    decode_noise_payload,
    encode_handshake,
    encode_noise_payload,
)
from peerdht.hyper.router import FROM_CLIENT, REPLY
from peerdht.hyper.rpc import CLIENT, SERVER, Reply
from peerdht.keys import is_public_key
from peerdht.secure.noise import HandshakeResult, peer_handshake

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.transport.udx import UDXStream

Address = tuple[str, int]

log = logging.getLogger(__name__)

PARALLEL = 3
"""Handshakes in flight through different relays at once (connect.js uses 2-3)."""
PASSIVE_CONNECT_TIMEOUT = 10.0
"""Seconds we wait for a server to open the stream to us (connect.js ``passiveConnectTimeout``)."""


RELAY_FALLBACK_ERRORS = (
    CannotHolepunch,
    HolepunchAborted,
    HolepunchDoubleRandomized,
    HolepunchProbeTimeout,
    RemoteNotHolepunchable,
    RemoteNotHolepunching,
    RemoteAborted,
)
"""Failures after which :func:`connect` retries through a blind relay (punching impossible or failed)."""
RELAY_TRIES = 2
"""Relays tried, one after the other, by the automatic fallback."""

UPGRADE_TIMEOUT = 60.0
"""Seconds a relayed connection keeps trying to punch a direct path (then it stays relayed)."""
OPEN_WAIT = 3600.0
"""Seconds a punch waits for the server's first UDX packet at most (the punch session itself ends
far sooner: ~36 s for the longest strategy); a bound, not a protocol timer."""
"""Seconds a relayed connection keeps trying to punch a direct path (then it stays relayed)."""

PATHS = ("direct", "reverse", "lan", "consistent", "random-probes", "birthday", "relay")
"""Values of :attr:`SecretStream.path` for a connection opened by :func:`connect`: ``direct`` (to the
server's own address: it is reachable, or the handshake went straight to its node), ``reverse`` (we
are reachable and the server opened the stream to us), ``lan`` (same-LAN shortcut), ``consistent`` /
``random-probes`` / ``birthday`` (holepunch strategies, see :mod:`peerdht.holepunch.strategy`),
``relay`` (a blind relay splices the two streams; it may later move to a direct path)."""


async def connect(
    dht: HyperDHT,
    public_key: bytes,
    *,
    key_pair: KeyPair | None = None,
    relay_addresses: list[Address] | None = None,
    lan: bool = True,
    relay_through: bytes | None = None,
    relay_fallback: bool = True,
    upgrade: bool = True,
) -> SecretStream:
    """Connect to the server with ``public_key`` (32 bytes) and return the encrypted stream.

    ``relay_through`` (a relay's public key; hyperdht's ``relayThrough``) relays the connection
    through that blind relay from the start. Otherwise, when punching is impossible or fails
    (:data:`RELAY_FALLBACK_ERRORS`) and ``relay_fallback`` is on, the connect is retried once through
    a relay found under :data:`peerdht.aio.hyperdht.relay.RELAY_TOPIC` -- automatic, nothing to configure
    (beyond hyperdht, which only relays when told to). The server side follows any ``relayThrough``
    it is sent, as JS servers do. While relayed, and with ``upgrade`` on, we keep punching (for up to
    :data:`UPGRADE_TIMEOUT` seconds) and move the stream to the direct path once the server answers
    our probes (connect.js does the same; birthday sockets excepted: the stream cannot change
    socket). The returned stream's ``path`` tells how it was opened (one of
    :data:`PATHS`), and ``dht.stats["connects"]`` counts paths taken.

    Raises:
        PeerNotFound: no node knows the server.
        PeerConnectionFailed: nodes knew it but no handshake was answered (closed or firewalled).
        ServerError / ServerIncompatible: the server answered with an error / another version.
        CannotHolepunch / HolepunchAborted: no way to open the UDX stream (and no relay helped).
        peerdht.aio.hyperdht.relay.RelayAborted: relaying failed.
        LocalProtocolError: ``public_key`` is not a valid Ed25519 public key.
    """
    if not is_public_key(public_key):
        raise LocalProtocolError("not a valid Ed25519 public key (32 bytes, a point on the curve)")
    try:
        return await _connect(dht, public_key, key_pair, relay_addresses, lan, relay_through, upgrade)
    except RELAY_FALLBACK_ERRORS:
        if relay_through is not None or not relay_fallback:
            raise
        from peerdht.aio.hyperdht.relay import pick_relays

        relays = await pick_relays(dht)
        if not relays:
            raise
        random.shuffle(relays)
        tries = relays[:RELAY_TRIES]
        for relay in tries[:-1]:
            with contextlib.suppress(PeerDHTError):
                return await _connect(dht, public_key, key_pair, relay_addresses, lan, relay, upgrade)
        return await _connect(dht, public_key, key_pair, relay_addresses, lan, tries[-1], upgrade)


async def _connect(
    dht: HyperDHT,
    public_key: bytes,
    key_pair: KeyPair | None,
    relay_addresses: list[Address] | None,
    lan: bool,
    relay_through: bytes | None,
    upgrade: bool = True,
) -> SecretStream:
    driver = dht.require_open()
    raws = dht.raw_streams()
    kp = key_pair or dht.default_key_pair
    target = blake2b(public_key)
    log.debug("connecting to %s", public_key.hex()[:16])
    sid = raws.reserve()
    try:
        noise = peer_handshake(noise_key_pair(kp), bytes(public_key), os.urandom(32))
        ours = make_payload(
            remote_address=dht.core.remote_address(),
            udx_id=sid,
            local_addresses=local_addresses(dht.local_address()) if lan else (),
        )
        if relay_through is not None:
            ours = dataclasses.replace(
                ours, relay_through=RelayThroughInfo(version=1, public_key=relay_through, token=os.urandom(32))
            )
        msg1 = noise.send(encode_noise_payload(ours))
        got, attempts = await _handshake(dht, public_key, target, msg1, relay_addresses or [])
        if got is None:
            raise PeerConnectionFailed() if attempts else PeerNotFound()
        reply, hs, relay = got
        log.debug("handshake answered through %s after %d attempts", relay, attempts)
        try:
            remote = decode_noise_payload(noise.recv(hs.noise))
        except (PeerDHTError, ValueError) as exc:
            raise HandshakeInvalid(str(exc)) from exc
        result = noise.result()
        if result.remote_public_key != public_key:
            raise HandshakeInvalid("reply from a different public key")
        if remote.version != 1:
            raise ServerIncompatible()
        if remote.error != Err.NONE:
            raise ServerError(f"server error {remote.error}")
        if remote.udx is None:
            raise ServerError("server did not send UDX data")
        raws.expect(sid, remote.udx.id)
        server_address = hs.peer_address or relay
        relayed = server_address != relay
        stream = raws.opened(sid)
        relay_info = ours.relay_through or remote.relay_through
        direct = remote.firewall == Firewall.OPEN or not relayed
        if stream is None and relay_info is not None and not direct:
            # blind relay (connect.js relayConnection): we initiate when we chose the relay
            from peerdht.aio.hyperdht.relay import relayed_udx

            raws.release(sid)
            initiator = ours.relay_through is not None
            stream = await relayed_udx(
                dht, relay_info.public_key, initiator, relay_info.token, sid, direct_id=remote.udx.id
            )
            sid = 0
            driver.kick()
            secure = await _secure(stream, True, result, dht, "relay")
            holepunchable = remote.holepunch is not None and len(remote.holepunch.relays) > 0
            if relayed and holepunchable and upgrade:
                dht.spawn(_upgrade(dht, stream, remote, result, target, relay, server_address))
            return secure
        path = "reverse"  # the server's first packet reached us before we chose a path
        if stream is None:
            holepunchable = remote.holepunch is not None and len(remote.holepunch.relays) > 0
            # connect.js order: a reachable server (OPEN, or relayed and not holepunchable) gets a direct
            # stream, and an OPEN client waits for the server to connect to it, before any LAN race
            passive_or_direct = remote.firewall == Firewall.OPEN or not holepunchable or ours.firewall == Firewall.OPEN
            if lan and relayed and not passive_or_direct and reply.to[0] == server_address[0]:
                stream = await _lan_shortcut(dht, sid, remote)
                path = "lan"
            if stream is None:
                stream, path = await _open(
                    dht, sid, remote, relayed, server_address, relay, ours, result, target
                )
        raws.forget(sid)
        sid = 0
        driver.kick()
        return await _secure(stream, True, result, dht, path)
    finally:
        if sid:
            raws.release(sid)


async def _handshake(
    dht: HyperDHT, public_key: bytes, target: bytes, msg1: bytes, relay_addresses: list[Address]
) -> tuple[tuple[Reply, Handshake, Address] | None, int]:
    """Send the handshake through the given relays and every node FIND_PEER finds, up to
    ``PARALLEL`` at a time (connect.js ``findAndConnect``); the first valid reply wins."""
    tried: set[Address] = set()
    pending: set[asyncio.Task[tuple[Reply, Handshake, Address] | None]] = set()
    attempts = 0

    def winner() -> tuple[Reply, Handshake, Address] | None:
        for t in [t for t in pending if t.done()]:
            pending.discard(t)
            if not t.cancelled() and t.exception() is None and t.result() is not None:
                return t.result()
        return None

    async def start(addr: Address) -> tuple[Reply, Handshake, Address] | None:
        nonlocal attempts
        while len(pending) >= PARALLEL:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if (w := winner()) is not None:
                return w
        tried.add(addr)
        attempts += 1
        pending.add(asyncio.ensure_future(_try_node(dht, addr, target, msg1)))
        return winner()

    try:
        for addr in relay_addresses:
            if (w := await start(addr)) is not None:
                return w, attempts
        async for res in dht.find_peer(public_key):
            if res.from_addr in tried:
                continue
            if (w := await start(res.from_addr)) is not None:
                return w, attempts
        while pending:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if (w := winner()) is not None:
                return w, attempts
        return None, attempts
    finally:
        for t in pending:
            t.cancel()


async def _lan_shortcut(dht: HyperDHT, sid: int, remote: NoisePayload) -> UDXStream | None:
    """We share the server's public IP: try its LAN address first (connect.js, ``c.lan``): a PING
    to it from our server socket, and on an answer open the stream there."""
    assert remote.udx is not None
    candidates = [a for a in remote.addresses4 if not is_reserved(a[0])]
    if not candidates:
        return None
    addr = match_address(list(local_addresses(dht.local_address())), candidates) or candidates[0]
    try:
        await dht.run_op(
            lambda now: dht.core.request(
                addr, InternalCommand.PING, now, internal=True, retries=1, socket=SERVER
            )
        )
    except PeerDHTError:
        return None
    stream = dht.raw_streams().opened(sid)
    if stream is not None:
        return stream
    return dht.raw_streams().connect(sid, SERVER, remote.udx.id, addr)


async def _try_node(
    dht: HyperDHT, addr: Address, target: bytes, msg1: bytes
) -> tuple[Reply, Handshake, Address] | None:
    value = encode_handshake(Handshake(mode=FROM_CLIENT, noise=msg1))
    try:
        reply: Reply = await dht.run_op(
            lambda now: dht.core.request(addr, Command.PEER_HANDSHAKE, now, target=target, value=value)
        )
    except PeerDHTError:
        return None
    v = reply.message.value
    if v is None or reply.from_addr != addr:
        return None
    try:
        hs = decode_handshake(v)
    except PeerDHTError:
        return None
    if hs.mode != REPLY or not hs.noise:
        return None
    return reply, hs, addr


async def _upgrade(
    dht: HyperDHT,
    stream: UDXStream,
    remote: NoisePayload,
    result: HandshakeResult,
    target: bytes,
    relay: Address,
    server_address: Address,
) -> None:
    """Punch while relayed (connect.js runs its Holepuncher next to ``relayConnection``); when the
    server answers our probes, move the stream to that direct path (:func:`upgrade_relayed`). Every
    failure just leaves the connection on the relay."""
    socket = dht.raw_streams().index_of(stream.socket)
    if socket is None:
        return
    puncher = Puncher(dht, 0, remote, result, target, relayed=stream, socket=socket)
    punch = asyncio.ensure_future(puncher.run(relay, server_address))
    try:
        if not await until_closed(stream, punch, UPGRADE_TIMEOUT):
            return  # the stream closed, or no punch within UPGRADE_TIMEOUT
    finally:
        punch.cancel()
    exc = punch.exception()
    if exc is not None:
        if isinstance(exc, (PeerDHTError, OSError)):
            log.debug("no direct path while relayed: %r", exc)
        else:
            log.warning("relay -> direct punch failed unexpectedly", exc_info=exc)
        return
    if puncher.direct is not None and is_relayed(stream) and upgrade_relayed(stream, puncher.direct):
        dht.count_connect("upgraded")


async def _open(
    dht: HyperDHT,
    sid: int,
    remote: NoisePayload,
    relayed: bool,
    server_address: Address,
    relay: Address,
    ours: NoisePayload,
    result: HandshakeResult,
    target: bytes,
) -> tuple[UDXStream, str]:
    """Open the UDX stream to the server; returns it and the path taken (see :data:`PATHS`)."""
    raws = dht.raw_streams()
    assert remote.udx is not None
    holepunchable = remote.holepunch is not None and len(remote.holepunch.relays) > 0
    sock = CLIENT if dht.core.firewalled else SERVER
    if remote.firewall == Firewall.OPEN or (relayed and not holepunchable):
        addr = first_remote_address(remote.addresses4, server_address)
        return raws.connect(sid, sock, remote.udx.id, addr), "direct"
    if not relayed:
        return raws.connect(sid, sock, remote.udx.id, relay), "direct"
    if ours.firewall == Firewall.OPEN:
        try:
            return await raws.wait(sid, PASSIVE_CONNECT_TIMEOUT), "reverse"
        except TimeoutError:
            raise HolepunchAborted("the server never connected to us") from None
    if not holepunchable:
        raise CannotHolepunch()
    puncher = Puncher(dht, sid, remote, result, target)
    stream = await puncher.run(relay, server_address)
    return stream, puncher.strategy.value.replace("_", "-") if puncher.strategy else "consistent"


async def _secure(
    stream: UDXStream, initiator: bool, result: HandshakeResult, dht: HyperDHT, path: str
) -> SecretStream:
    try:
        secure = await open_secret_stream(stream, initiator=initiator, handshake=result)
    except PeerDHTError:
        stream.destroy()
        raise
    secure.path = path
    log.debug("open (%s) to %s", path, stream.remote_addr)
    dht.count_connect(path)
    return secure


class Puncher:
    """The client side of PEER_HOLEPUNCH: runs a :class:`~peerdht.holepunch.client.ClientPunch` (the
    sans-IO rounds, NAT sampling and strategies) on the DHT's client socket, and opens the stream
    where it connected (or takes the stream the server's first UDX packet opened)."""

    def __init__(
        self,
        dht: HyperDHT,
        sid: int,
        remote: NoisePayload,
        result: HandshakeResult,
        target: bytes,
        *,
        relayed: UDXStream | None = None,
        socket: int = CLIENT,
    ) -> None:
        assert remote.holepunch is not None and remote.udx is not None
        self.dht = dht
        self.raws = dht.raw_streams()
        self.sid = sid
        self.remote = remote
        self.remote_udx = remote.udx.id
        self.result = result
        self.target = target
        self.socket = socket
        self.relayed = relayed
        """Upgrade mode: the stream already runs through a blind relay; a punch only finds
        :attr:`direct`, the server's address that answered our probes on :attr:`socket`."""
        self.direct: Address | None = None
        self.strategy: Strategy | None = None
        """The punch strategy chosen in the punch round (None before it)."""

    def _session(self, relay: Address, server_address: Address) -> ClientPunch:
        assert self.remote.holepunch is not None
        recent = [c.addr for c in self.dht.core.table][-8:]
        return ClientPunch(
            hp_id=self.remote.holepunch.id,
            relays=self.remote.holepunch.relays,
            relay=relay,
            server_address=server_address,
            remote_firewall=self.remote.firewall,
            secret=self.result.holepunch_secret,
            firewalled=self.dht.core.firewalled,
            punch_socket=self.socket,
            sample_nodes=list(reversed(recent)),
            limit=self.raws.random_punch_limit,
            random_bytes=os.urandom,
            relayed=self.relayed is not None,
        )

    async def run(self, relay: Address, server_address: Address) -> UDXStream:
        """Punch until a probe from the server comes through (then open the stream there), the
        server's first UDX packet opens it, or (upgrade mode) the server moves the relayed stream.

        Raises:
            ConnectError: the punch failed (hyperdht's holepunch error codes).
        """
        session = self._session(relay, server_address)
        outcome: asyncio.Future[Connected | PunchFailed] = asyncio.get_running_loop().create_future()

        def on_event(ev: object) -> None:
            if isinstance(ev, (Connected, PunchFailed)) and not outcome.done():
                outcome.set_result(ev)

        runner = PunchRunner(self.dht, session, on_event, self.target)
        other: asyncio.Future[Any] = asyncio.ensure_future(
            self.raws.wait(self.sid, OPEN_WAIT) if self.relayed is None else wait_direct(self.relayed, OPEN_WAIT)
        )
        stream: UDXStream | None = None
        try:
            runner.start()
            await asyncio.wait({outcome, other}, return_when=asyncio.FIRST_COMPLETED)
            self.strategy = session.strategy
            if outcome.done():
                ev = outcome.result()
                if isinstance(ev, Connected):
                    log.debug("punch: %s reached at %s (socket %d)", self.strategy, ev.addr, ev.socket)
                    stream = self._reached_at(ev.addr, ev.socket)
                    return stream
                stream = self.raws.opened(self.sid) if self.relayed is None else None
                if stream is not None:
                    return stream
                raise ev.error
            if self.relayed is None:
                stream = other.result()
            elif other.result():
                stream = self.relayed  # the server moved the relayed stream to a direct path itself
            else:
                raise HolepunchAborted("the relayed stream closed while punching")
            assert stream is not None
            return stream
        finally:
            runner.close()
            other.cancel()
            winner = self.raws.sockets.get(self.sid)
            for index in session.sockets:
                self.raws.close_socket(index, after=stream if index == winner else None)

    def _reached_at(self, addr: Address, socket: int) -> UDXStream:
        """A probe from ``addr`` came through on ``socket``: open the stream there (upgrade mode: note
        it as :attr:`direct`)."""
        if self.relayed is not None:
            self.direct = addr
            return self.relayed
        return self.raws.connect(self.sid, socket, self.remote_udx, addr)
