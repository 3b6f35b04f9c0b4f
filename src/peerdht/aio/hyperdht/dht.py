"""``HyperDHT``: an asyncio HyperDHT node, wire-compatible with npm ``hyperdht`` 6.x / ``dht-rpc`` 6.x.

All protocol logic lives in the sans-IO core :class:`peerdht.hyper.node.HyperDHTNode`; this module owns the
two UDP sockets (dht-rpc's server and client sockets), the timer, and maps the core's op ids to futures and
async iterators.

Example::

    async with HyperDHT(bootstrap=[("127.0.0.1", 49737)]) as dht:
        await dht.fully_bootstrapped()
        await dht.announce(topic, key_pair)
        async for reply in dht.lookup(topic):
            print(reply.peers)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.aio.transport.ops import Operations, Start
from peerdht.errors import InvalidArgument, InvalidArgumentType, LocalProtocolError, PeerDHTError
from peerdht.hyper.constants import MAX_VALUE_SIZE
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b256
from peerdht.hyper.events import (
    Bootstrapped,
    HandshakeReceived,
    HolepunchReceived,
    LookupResult,
    MutablePutResult,
    MutableRecord,
    OpDone,
    OpFailed,
)
from peerdht.hyper.messages import Response
from peerdht.hyper.node import HyperDHTNode
from peerdht.hyper.records import Peer
from peerdht.kademlia.table import Contact

if TYPE_CHECKING:
    from peerdht.aio.hyperdht.relay import RelayServer
    from peerdht.aio.hyperdht.secretstream import SecretStream
    from peerdht.aio.hyperdht.server import FirewallHook, Handler, Server
    from peerdht.aio.transport.socketpool import RawStreams

Address = tuple[str, int]

#: The public HyperDHT bootstrap nodes (hyperdht ``lib/constants.js``). peerdht never uses them unless passed
#: explicitly: ``HyperDHT(bootstrap=DEFAULT_BOOTSTRAP)``.
DEFAULT_BOOTSTRAP: tuple[Address, ...] = (
    ("88.99.3.86", 49737),
    ("142.93.90.113", 49737),
    ("138.68.147.8", 49737),
)

log = logging.getLogger(__name__)
RELAY_RETRY = 10.0
"""Seconds between attempts to start the relay of a ``relay=True`` node."""
CLOSE_TASKS_TIMEOUT = 2.0
"""Seconds :meth:`HyperDHT.close` waits for its cancelled background tasks to end."""


class HyperDHT:
    """A HyperDHT node (dht-rpc + hyperdht ``index.js``).

    Args:
        bootstrap: nodes to join through, ``(host, port)``. Empty (the default) starts a network of one:
            peerdht never contacts the public network unless told to (see :data:`DEFAULT_BOOTSTRAP`).
        host: address to bind both UDP sockets to.
        port: server socket port (0 = any free port).
        ephemeral: ``None`` adapts like dht-rpc (ephemeral until found reachable and stable); ``False``
            makes the node persistent at once (testnets, bootstrap nodes); ``True`` keeps it ephemeral.
        firewalled: assume we are firewalled until a PING_NAT check says otherwise.
        public_host: our public IPv4 address when known (bootstrap nodes): with the port it gives the node id.
        key_pair: default key pair for announce/servers.
        seed: 32 random bytes for the node's internal randomness (tests); default from the OS.
        connectable: share the two sockets with UDX streams (needed by :meth:`connect` and
            :meth:`create_server`); False runs the DHT alone on plain asyncio datagram sockets.
        relay: offer blind relaying to others (:func:`peerdht.aio.hyperdht.relay.start_relay`): once
            bootstrapped, a relay server with its own key pair runs on this node and is announced
            under :data:`peerdht.aio.hyperdht.relay.RELAY_TOPIC`; its public key is ``dht.relay.public_key``.

    Use as ``async with HyperDHT(...) as dht`` or ``await dht.open()`` / ``await dht.close()``
    (``destroy()`` is the same, named as in JS).
    """

    def __init__(
        self,
        *,
        bootstrap: Sequence[Address] = (),
        host: str = "0.0.0.0",
        port: int = 0,
        ephemeral: bool | None = None,
        firewalled: bool = True,
        public_host: str | None = None,
        key_pair: KeyPair | None = None,
        seed: bytes | None = None,
        connectable: bool = True,
        relay: bool = False,
    ) -> None:
        self._bootstrap_nodes = list(bootstrap)
        self._host = host
        self._port = port
        self.default_key_pair = key_pair or KeyPair.generate()
        rng = random.Random(seed if seed is not None else os.urandom(32))
        self.core = HyperDHTNode(
            rng=rng,
            secrets=rng.randbytes(64),
            bootstrap=self._bootstrap_nodes,
            ephemeral=ephemeral,
            firewalled=firewalled,
            host=public_host,
        )
        self._driver: DatagramDriver | None = None
        self._ops = Operations(self.core.cancel)
        self._bootstrapped = asyncio.Event()
        self._bootstrap_error: PeerDHTError | None = None
        self._connect_paths: dict[str, int] = {}
        self._destroyed = False
        self._connectable = connectable
        self._raw: RawStreams | None = None
        self._servers: set[Server] = set()
        self._offer_relay = relay
        self.relay: RelayServer | None = None
        """The relay this node offers (``relay=True``), once started."""
        self._relay_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifetime

    async def open(self) -> HyperDHT:
        """Bind the sockets and start bootstrapping (does not wait for it: see :meth:`fully_bootstrapped`).

        Raises:
            OSError: the port cannot be bound.
        """
        if self._driver is not None:
            return self
        create = DatagramDriver.create_udx if self._connectable else DatagramDriver.create
        self._driver = await create(self.core, self._host, self._port, self._on_event, sockets=2)
        now = self._driver.now()
        self.core.bind(self._driver.address(0), self._driver.address(1), now)
        op = self.core.bootstrap(now)
        fut = self._ops.track(op)
        fut.add_done_callback(self._on_bootstrap_done)
        self._driver.kick()
        if self._offer_relay:
            self._relay_task = asyncio.ensure_future(self._start_relay())
        return self

    async def _start_relay(self) -> None:
        from peerdht.aio.hyperdht.relay import start_relay

        while not self._destroyed:
            try:
                await self.fully_bootstrapped()
                self.relay = await start_relay(self)
                return
            except (PeerDHTError, OSError) as exc:
                log.warning("could not start the relay (retrying in %.0f s): %s", RELAY_RETRY, exc)
            await asyncio.sleep(RELAY_RETRY)

    async def relay_ready(self) -> RelayServer:
        """Wait until the relay of a ``relay=True`` node runs, and return it (a node that cannot
        announce yet, e.g. alone, retries every :data:`RELAY_RETRY` seconds).

        Raises:
            LocalProtocolError: this node was not created with ``relay=True``, or was destroyed.
        """
        if self._relay_task is None:
            raise LocalProtocolError("this node does not offer relaying (relay=True)")
        task = self._relay_task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise LocalProtocolError("the DHT was destroyed") from None
            raise
        if self.relay is None:
            raise LocalProtocolError("the DHT was destroyed")
        return self.relay

    async def __aenter__(self) -> HyperDHT:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def destroy(self) -> None:
        """The same as :meth:`close` (hyperdht's name, ``dht.destroy()``)."""
        await self.close()

    async def close(self) -> None:
        """Close the sockets, end the node's background tasks (cancelled, then awaited for up to
        :data:`CLOSE_TASKS_TIMEOUT` seconds) and fail every pending operation. Idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        if self._relay_task is not None:
            self._relay_task.cancel()
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.relay.close(), 2)
        for server in list(self._servers):
            server.shutdown()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:  # the node's tasks end with it (a task that ignores cancellation is not waited for forever)
            await asyncio.wait(tasks, timeout=CLOSE_TASKS_TIMEOUT)
        if self._raw is not None:
            self._raw.close_all()
        if self._driver is not None:
            self._driver.close()
        self._ops.close(LocalProtocolError("the DHT was destroyed"))

    async def fully_bootstrapped(self) -> None:
        """Wait until the initial bootstrap lookup has finished (dht-rpc ``fullyBootstrapped()``)."""
        self.require_open()
        await self._bootstrapped.wait()
        if self._bootstrap_error is not None:
            raise self._bootstrap_error

    # ------------------------------------------------------------------ state

    @property
    def id(self) -> bytes | None:
        """Our node id (32 bytes) once persistent, else ``None``."""
        return self.core.id

    @property
    def ephemeral(self) -> bool:
        return self.core.ephemeral

    @property
    def firewalled(self) -> bool:
        return self.core.firewalled

    @property
    def stats(self) -> dict[str, Any]:
        """Counters like dht-rpc's ``stats`` plus ``dropped`` (malformed or unexpected datagrams, by reason;
        handshakes our servers shed count as ``handshake_<reason>``, see :attr:`Server.dropped
        <peerdht.aio.hyperdht.server.Server.dropped>`) and ``connects`` (connections opened by :meth:`connect`, by
        path: see :data:`peerdht.aio.hyperdht.connect.PATHS`)."""
        out = dict(self.core.stats)
        dropped: dict[str, int] = dict(out.get("dropped") or {})  # type: ignore[call-overload]
        for server in self._servers:
            for reason, n in server.dropped.items():
                dropped[f"handshake_{reason}"] = dropped.get(f"handshake_{reason}", 0) + n
        out["dropped"] = dropped
        out["connects"] = dict(self._connect_paths)
        return out

    def address(self) -> Address:
        """How the network sees our server socket if known (NAT sampling), else the bound address."""
        remote = self.core.remote_address()
        if remote is not None:
            return remote
        return self.local_address()

    def local_address(self) -> Address:
        """The bound (host, port) of the server socket."""
        return self.require_open().address(0)

    def to_array(self) -> list[Address]:
        """The routing table's nodes as (host, port)."""
        return [c.addr for c in self.core.table]

    # ------------------------------------------------------------------ operations

    async def ping(self, addr: Address) -> Response:
        """PING a node (dht-rpc ``ping``).

        Raises:
            RequestTimeout: no reply after retries.
        """
        result: Response = await self.run_op(lambda now: self.core.ping(addr, now))
        return result

    async def find_node(self, target: bytes) -> list[Contact]:
        """Iterative FIND_NODE: the closest nodes to ``target`` (32 bytes)."""
        _check_len("target", target, 32)
        result: list[Contact] = await self.run_op(lambda now: self.core.find_node(target, now))
        return result

    async def lookup(self, topic: bytes) -> AsyncIterator[LookupResult]:
        """LOOKUP ``topic`` (32 bytes): yields each node's reply (``from_addr``, ``peers``) as it arrives."""
        _check_len("topic", topic, 32)
        async for item in self._stream(lambda now: self.core.lookup(topic, now)):
            yield item

    async def lookup_peers(self, topic: bytes) -> AsyncIterator[Peer]:
        """LOOKUP ``topic`` (32 bytes): yields each announced peer once (by public key), as replies arrive.

        :meth:`lookup` yields every node's reply, so a peer stored on several nodes comes several times;
        this is the one-entry-per-peer view users usually want (hyperdht has no such helper).

        Raises:
            InvalidArgument: ``topic`` is not 32 bytes. InvalidArgumentType: it is not bytes.
        """
        seen: set[bytes] = set()
        async for reply in self.lookup(topic):
            for peer in reply.peers:
                if peer.public_key not in seen:
                    seen.add(peer.public_key)
                    yield peer

    async def find_peer(self, public_key: bytes) -> AsyncIterator[LookupResult]:
        """FIND_PEER at ``hash(public_key)``: yields replies of nodes holding the server's self-announce."""
        _check_len("public_key", public_key, 32)
        async for item in self._stream(lambda now: self.core.find_peer(public_key, now)):
            yield item

    async def announce(
        self, topic: bytes, key_pair: KeyPair | None = None, relay_addresses: Sequence[Address] = ()
    ) -> int:
        """Announce ``key_pair`` under ``topic`` to the closest nodes (signed ANNOUNCE).

        Returns:
            How many nodes stored the record.
        """
        _check_len("topic", topic, 32)
        kp = key_pair or self.default_key_pair
        result: int = await self.run_op(lambda now: self.core.announce(topic, kp, list(relay_addresses), now))
        return result

    async def unannounce(self, topic: bytes, key_pair: KeyPair | None = None) -> None:
        """Remove our record for ``topic`` from the nodes holding it (signed UNANNOUNCE)."""
        _check_len("topic", topic, 32)
        kp = key_pair or self.default_key_pair
        await self.run_op(lambda now: self.core.unannounce(topic, kp, now))

    async def immutable_put(self, value: bytes) -> bytes:
        """Store ``value`` at ``hash(value)``; returns that hash (32 bytes).

        Raises:
            InvalidArgument: ``value`` is longer than :data:`~peerdht.hyper.constants.MAX_VALUE_SIZE`.
        """
        _check_value(value)
        result: bytes = await self.run_op(lambda now: self.core.immutable_put(bytes(value), now))
        return result

    async def immutable_get(self, hash: bytes) -> bytes | None:
        """Fetch the value stored at ``hash`` (32 bytes), checked against the hash; ``None`` if not found."""
        _check_len("hash", hash, 32)
        result: bytes | None = await self.run_op(lambda now: self.core.immutable_get(hash, now))
        return result

    async def mutable_put(self, key_pair: KeyPair, value: bytes, *, seq: int = 0) -> MutablePutResult:
        """Store a signed ``value`` at ``hash(key_pair.public_key)`` with sequence number ``seq``.

        Raises:
            RemoteError: code 16 (SEQ_REUSED) or 17 (SEQ_TOO_LOW) from every node asked.
            InvalidArgument: ``value`` is longer than :data:`~peerdht.hyper.constants.MAX_VALUE_SIZE`.
        """
        _check_value(value)
        if seq < 0:
            raise LocalProtocolError("seq must be >= 0")
        result: MutablePutResult = await self.run_op(
            lambda now: self.core.mutable_put(key_pair, bytes(value), seq, now)
        )
        return result

    async def mutable_get(self, public_key: bytes, *, seq: int = 0, latest: bool = True) -> MutableRecord | None:
        """Fetch the newest signed value of ``public_key`` (32 bytes) with seq >= ``seq``; ``None`` if none."""
        _check_len("public_key", public_key, 32)
        result: MutableRecord | None = await self.run_op(
            lambda now: self.core.mutable_get(public_key, now, seq=seq, latest=latest)
        )
        return result

    def create_server(self, handler: Handler, firewall: FirewallHook | None = None) -> Server:
        """A :class:`peerdht.aio.hyperdht.server.Server` calling ``handler(stream)`` for each connection;
        ``firewall(remote_public_key, payload, client_address)`` returning True rejects a client.
        Call ``await server.listen(key_pair)`` to start accepting (hyperdht ``createServer``)."""
        from peerdht.aio.hyperdht.server import Server

        return Server(self, handler, firewall)

    async def connect(
        self,
        public_key: bytes,
        *,
        key_pair: KeyPair | None = None,
        relay_addresses: Sequence[Address] = (),
        relay_through: bytes | None = None,
        upgrade: bool = True,
    ) -> SecretStream:
        """Connect to the server with ``public_key`` (32 bytes); returns the encrypted stream
        (:class:`peerdht.aio.hyperdht.secretstream.SecretStream`; its ``path`` says how it was opened). See
        :func:`peerdht.aio.hyperdht.connect.connect`. ``relay_through``: a relay's public key to relay through
        from the start (hyperdht ``relayThrough``); without it, a relay is found and used automatically
        only when punching fails. ``upgrade``: while relayed, punch on and move to a direct path.

        Raises:
            peerdht.hyper.handshake.ConnectError: PEER_NOT_FOUND, PEER_CONNECTION_FAILED,
                SERVER_ERROR, HOLEPUNCH_ABORTED, ... (``err.code``).
        """
        from peerdht.aio.hyperdht.connect import connect

        _check_len("public_key", public_key, 32)
        return await connect(
            self,
            bytes(public_key),
            key_pair=key_pair,
            relay_addresses=list(relay_addresses),
            relay_through=relay_through,
            upgrade=upgrade,
        )

    @staticmethod
    def hash(data: bytes) -> bytes:
        """BLAKE2b-256 (hyperdht ``DHT.hash``)."""
        return blake2b256(data)

    @staticmethod
    def key_pair(seed: bytes | None = None) -> KeyPair:
        """An Ed25519 key pair, from a 32-byte ``seed`` if given (equal to JS ``DHT.keyPair(seed)``)."""
        return KeyPair.from_seed(seed) if seed is not None else KeyPair.generate()

    # ------------------------------------------------------------------ node interface (aio.connect, aio.server)

    @property
    def destroyed(self) -> bool:
        """True once :meth:`close` has started."""
        return self._destroyed

    def require_open(self) -> DatagramDriver:
        """The datagram driver of this open node.

        Raises:
            LocalProtocolError: the node is not open yet, or was destroyed.
        """
        if self._driver is None:
            raise LocalProtocolError("the DHT is not open: use `async with HyperDHT(...)` or `await dht.open()`")
        if self._destroyed:
            raise LocalProtocolError("the DHT was destroyed")
        return self._driver

    def raw_streams(self) -> RawStreams:
        """The node's raw UDX streams (one pool over its UDX sockets), created on first use.

        Raises:
            LocalProtocolError: the node is not open, or was created with ``connectable=False``.
        """
        if self._raw is None:
            from peerdht.aio.transport.socketpool import RawStreams

            driver = self.require_open()
            if not driver.udx_sockets:
                raise LocalProtocolError("this node was created with connectable=False")
            self._raw = RawStreams(driver)
        return self._raw

    async def run_op(self, start: Start) -> Any:
        """Start a core operation (``start(now) -> op id``) and await its result.

        Raises:
            LocalProtocolError: the node is not open or was destroyed.
            PeerDHTError: the operation failed (its own subclass).
        """
        return await self._ops.run(self.require_open(), start)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a background task of this node (relay holders, relay -> direct upgrades):
        kept referenced until it ends, cancelled by :meth:`close`."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def count_connect(self, path: str) -> None:
        """Count one connection that took ``path`` (``direct``, ``holepunch``, ``relayed``, ``upgraded``...),
        reported in ``stats()['connects']``."""
        self._connect_paths[path] = self._connect_paths.get(path, 0) + 1

    def add_server(self, server: Server) -> None:
        """Register a listening server: router events for its target go to it."""
        self._servers.add(server)

    def remove_server(self, server: Server) -> None:
        """Forget a closed server (no-op if unknown)."""
        self._servers.discard(server)

    def serves(self, target: bytes, *, besides: Server | None = None) -> bool:
        """True if an open server other than ``besides`` listens on ``target`` (32 bytes)."""
        return any(s is not besides and s.target == target and not s.closed for s in self._servers)

    async def _stream(self, start: Start) -> AsyncIterator[Any]:
        async for item in self._ops.stream(self.require_open(), start):
            yield item

    def _on_event(self, event: object) -> None:
        if isinstance(event, LookupResult):
            self._ops.item(event.op, event)
        elif isinstance(event, OpDone):
            self._ops.done(event.op, event.result)
        elif isinstance(event, OpFailed):
            self._ops.failed(event.op, event.error)
        elif isinstance(event, Bootstrapped):
            self._bootstrapped.set()
        elif isinstance(event, HandshakeReceived | HolepunchReceived):
            self._on_router_event(event)

    def _on_router_event(self, event: HandshakeReceived | HolepunchReceived) -> None:
        """Hand a handshake or holepunch round for a server hosted here to that server, which
        answers through ``core.answer`` / ``core.decline`` (now or, for rounds, later)."""
        server = next((s for s in self._servers if s.target == event.target and not s.closed), None)
        if server is None:
            self.core.decline(event.request_id, asyncio.get_running_loop().time())
        elif isinstance(event, HandshakeReceived):
            server.on_handshake(event)
        else:
            server.on_holepunch(event)

    def _on_bootstrap_done(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            exc = fut.exception()
            self._bootstrap_error = exc if isinstance(exc, PeerDHTError) else None
        self._bootstrapped.set()


def _check_len(name: str, value: bytes, length: int) -> None:
    """Raise :class:`InvalidArgumentType` (a ``TypeError``) unless ``value`` is bytes, and
    :class:`InvalidArgument` (a ``ValueError``) unless it is ``length`` bytes long."""
    if not isinstance(value, bytes | bytearray | memoryview):
        hint = " (hash a string with HyperDHT.hash(text.encode()))" if isinstance(value, str) else ""
        raise InvalidArgumentType(f"{name} must be bytes, not {type(value).__name__}{hint}")
    if len(value) != length:
        raise InvalidArgument(f"{name} must be {length} bytes, got {len(value)}")


def _check_value(value: bytes) -> None:
    if len(value) > MAX_VALUE_SIZE:
        raise InvalidArgument(f"value is {len(value):,} bytes; the limit is {MAX_VALUE_SIZE:,} for HyperDHT")
