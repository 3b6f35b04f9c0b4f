"""``MainlineDHT``: an asyncio BitTorrent Mainline DHT node (BEP 5, 32, 42, 43, 44, 51).

All protocol logic lives in the sans-IO core :class:`peerdht.mainline.node.MainlineNode`; this module
owns the UDP socket (through :class:`~peerdht.aio.transport.driver.DatagramDriver`), resolves bootstrap host
names, reads and writes the routing-table file, and maps the core's op ids to futures and async
iterators.

Example::

    async with MainlineDHT(bootstrap=[("127.0.0.1", 6881)], host="127.0.0.1") as dht:
        await dht.announce_peer(info_hash, 6881)
        async for host, port in dht.get_peers(info_hash):
            print(host, port)
        target = await dht.put(b"Hello World!")
        assert await dht.get(target) == b"Hello World!"

peerdht never contacts the public Mainline network unless given its bootstrap nodes explicitly
(:data:`DEFAULT_BOOTSTRAP`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from peerdht.aio.transport.driver import DatagramDriver
from peerdht.aio.transport.ops import Operations, Start
from peerdht.encoding.bencode import Value
from peerdht.errors import DecodeError, InvalidArgument, InvalidArgumentType, LocalProtocolError, PeerDHTError
from peerdht.mainline.crypto import KeyPair
from peerdht.mainline.events import (
    AnnounceResult,
    GetResult,
    Item,
    LookupResult,
    OpDone,
    OpFailed,
    PeersFound,
    PingResult,
    PutResult,
    SampleResult,
)
from peerdht.mainline.messages import NodeInfo
from peerdht.mainline.node import MainlineNode

__all__ = ["DEFAULT_BOOTSTRAP", "MainlineDHT", "MainlineTestnet"]

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: The usual public Mainline routers. Never used unless passed explicitly: ``MainlineDHT(bootstrap=DEFAULT_BOOTSTRAP)``.
DEFAULT_BOOTSTRAP: tuple[Address, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("dht.libtorrent.org", 25401),
)



class MainlineDHT:
    """A Mainline DHT node on one UDP socket.

    Args:
        bootstrap: nodes to join through, ``(host, port)`` (names are resolved once at start). Empty (the
            default) starts a network of one.
        host: address to bind to (``"::"``/an IPv6 address makes an IPv6 node, BEP 32).
        port: UDP port (0 = any free port).
        node_id: our 20-byte id (default: from ``state_file``, else BEP 42 from ``external_ip``, else random).
        external_ip: our public IP when known (BEP 42 id).
        read_only: BEP 43 read-only mode (answer nothing; queries carry ``ro=1``).
        state_file: where the routing table is restored from at start and saved to at close.
        seed: bytes for the core's randomness (tests); default from the OS.
        **options: more :class:`~peerdht.mainline.node.MainlineNode` options (``concurrency``, ``timeout``,
            ``retries``, ``rate_limit``, ``enforce_bep42``, ``k``).

    Use as ``async with MainlineDHT(...) as dht`` (binds and bootstraps) or ``await dht.open()`` /
    ``await dht.close()``.
    """

    def __init__(
        self,
        *,
        bootstrap: Sequence[Address] = (),
        host: str = "0.0.0.0",
        port: int = 0,
        node_id: bytes | None = None,
        external_ip: str | None = None,
        read_only: bool = False,
        state_file: str | os.PathLike[str] | None = None,
        seed: bytes | None = None,
        **options: Any,
    ) -> None:
        self._bootstrap = list(bootstrap)
        self._host = host
        self._port = port
        self._state_file = Path(state_file) if state_file is not None else None
        self._rng = random.Random(seed if seed is not None else os.urandom(32))
        self._node_id = node_id
        self._external_ip = external_ip
        self._read_only = read_only
        self._options = options
        self._core: MainlineNode | None = None
        self._driver: DatagramDriver | None = None
        self._ops = Operations(lambda op: self.core.cancel(op))
        self._closed = False

    # ------------------------------------------------------------------ lifetime

    async def open(self, *, bootstrap: bool = True) -> MainlineDHT:
        """Bind the socket, restore the routing table and (unless ``bootstrap=False``) wait for the
        bootstrap lookup.

        Raises:
            OSError: the address cannot be bound or a bootstrap name not resolved.
        """
        if self._driver is not None:
            return self
        state: bytes | None = None
        node_id = self._node_id
        if self._state_file is not None and self._state_file.exists():
            try:
                state = self._state_file.read_bytes()
                saved_id, _ = MainlineNode.parse_state(state)
                node_id = node_id or saved_id
            except (OSError, DecodeError) as exc:
                log.warning("ignoring unreadable routing table %s: %s", self._state_file, exc)
                state = None
        ipv6 = ":" in self._host
        resolved = [await _resolve(h, p, ipv6) for h, p in self._bootstrap]
        loop = asyncio.get_running_loop()
        self._core = MainlineNode(
            rng=self._rng,
            node_id=node_id,
            external_ip=self._external_ip,
            bootstrap=resolved,
            read_only=self._read_only,
            ipv6=ipv6,
            now=loop.time(),
            **self._options,
        )
        if state is not None:
            self._core.load_state(state, loop.time())
        self._driver = await DatagramDriver.create(self._core, self._host, self._port, self._on_event)
        if bootstrap and (resolved or len(self._core.table)):
            with contextlib.suppress(PeerDHTError):
                await self._run(self._core.bootstrap)
        return self

    async def __aenter__(self) -> MainlineDHT:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Save the routing table (if a ``state_file`` was given), close the socket, fail pending ops.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._core is not None and self._state_file is not None:
            try:
                tmp = self._state_file.with_suffix(self._state_file.suffix + ".tmp")
                tmp.write_bytes(self._core.save_state())
                tmp.replace(self._state_file)
            except OSError as exc:
                log.warning("could not save the routing table to %s: %s", self._state_file, exc)
        if self._driver is not None:
            self._driver.close()
        self._ops.close(LocalProtocolError("the DHT was closed"))

    async def destroy(self) -> None:
        """The same as :meth:`close` (bittorrent-dht's name, ``dht.destroy()``)."""
        await self.close()

    # ------------------------------------------------------------------ state

    @property
    def core(self) -> MainlineNode:
        """The sans-IO node (after :meth:`open`)."""
        if self._core is None:
            raise LocalProtocolError(
                "the DHT is not open: use `async with MainlineDHT(...)` or `await dht.open()`"
            )
        return self._core

    @property
    def node_id(self) -> bytes:
        """Our 20-byte node id."""
        return self.core.id

    def address(self) -> Address:
        """The bound ``(host, port)`` of the UDP socket."""
        return self._require_open().local_address

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: datagrams sent/received, drops by reason (flat ``dropped_<reason>`` keys, and the
        same as a ``dropped`` mapping ``{reason: count}``, as :attr:`HyperDHT.stats` has), table size,
        stored peers and items."""
        out: dict[str, Any] = dict(self.core.snapshot())
        out["dropped"] = {k[len("dropped_") :]: v for k, v in out.items() if k.startswith("dropped_")}
        return out

    def add_node(self, addr: Address) -> None:
        """Ping ``addr``; it joins the routing table if it answers."""
        driver = self._require_open()
        self.core.add_node(addr, driver.now())
        driver.kick()

    # ------------------------------------------------------------------ commands

    async def ping(self, addr: Address) -> bytes:
        """Ping a node; returns its 20-byte id.

        Raises:
            RequestTimeout: no answer. RemoteError: it answered with an error. RequestError: no transaction
            id free (every 2-byte KRPC ``t`` in flight).
        """
        result = await self._run(lambda now: self.core.ping(addr, now))
        assert isinstance(result, PingResult)
        return result.id

    async def bootstrap(self) -> int:
        """Run the bootstrap lookup again; returns the routing table size."""
        await self._run(self.core.bootstrap)
        return len(self.core.table)

    async def find_node(self, target: bytes) -> list[NodeInfo]:
        """Iterative ``find_node``: the k closest nodes that answered, closest first.

        Raises:
            RequestTimeout: nobody answered.
        """
        _check_bytes("target", target, 20)
        result = await self._run(lambda now: self.core.find_node(target, now))
        assert isinstance(result, LookupResult)
        return list(result.nodes)

    async def get_peers(self, info_hash: bytes) -> AsyncIterator[Address]:
        """Iterative ``get_peers``: yields each peer ``(host, port)`` once, as replies arrive.

        Raises:
            RequestTimeout: nobody answered the lookup.
        """
        _check_bytes("info_hash", info_hash, 20)
        async for event in self._stream(lambda now: self.core.get_peers(info_hash, now)):
            for peer in event.peers:
                yield peer

    async def announce_peer(self, info_hash: bytes, port: int, implied_port: bool = False) -> int:
        """Announce that we are a peer for ``info_hash`` on ``port``; returns how many nodes stored it."""
        _check_bytes("info_hash", info_hash, 20)
        result = await self._run(
            lambda now: self.core.announce_peer(info_hash, port, now, implied_port=implied_port)
        )
        assert isinstance(result, AnnounceResult)
        return result.stored

    async def put(self, value: Value) -> bytes:
        """BEP 44 immutable put; returns the 20-byte target ``SHA1(bencode(value))``.

        Raises:
            LocalProtocolError: ``bencode(value)`` is longer than 1000 bytes.
        """
        result = await self._run(lambda now: self.core.put(value, now))
        assert isinstance(result, PutResult)
        return result.target

    async def put_result(self, value: Value) -> PutResult:
        """Like :meth:`put`, returning the full :class:`~peerdht.mainline.events.PutResult`."""
        result = await self._run(lambda now: self.core.put(value, now))
        assert isinstance(result, PutResult)
        return result

    async def get(self, target: bytes) -> Value | None:
        """BEP 44 immutable get: the value whose bencoding hashes to ``target``, or ``None``."""
        _check_bytes("target", target, 20)
        result = await self._run(lambda now: self.core.get(target, now))
        assert isinstance(result, GetResult)
        return None if result.item is None else result.item.v

    async def put_mutable(
        self,
        key_pair: KeyPair,
        value: Value,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> PutResult:
        """BEP 44 mutable put (``seq=None``: one more than the highest found). ``result.seq`` is the seq used."""
        result = await self._run(
            lambda now: self.core.put_mutable(key_pair, value, now, salt=salt, seq=seq, cas=cas)
        )
        assert isinstance(result, PutResult)
        return result

    async def get_item(self, target: bytes) -> Item | None:
        """BEP 44 get by target alone: the immutable item, or the salt-less mutable item (``SHA1(k) == target``)
        with the highest verified seq, or ``None``."""
        _check_bytes("target", target, 20)
        result = await self._run(lambda now: self.core.get_item(target, now))
        assert isinstance(result, GetResult)
        return result.item

    async def put_item(self, item: Item, cas: int | None = None) -> PutResult:
        """BEP 44 put of an item signed elsewhere (mutable: its own ``k``/``seq``/``sig``/``salt``; ``cas``:
        storers refuse it with 301 unless their seq equals this).

        Raises:
            LocalProtocolError: too long, or the signature does not verify.
        """
        result = await self._run(lambda now: self.core.put_item(item, now, cas=cas))
        assert isinstance(result, PutResult)
        return result

    async def get_mutable(self, public_key: bytes, salt: bytes = b"") -> Item | None:
        """BEP 44 mutable get: the verified item with the highest ``seq``, or ``None``."""
        _check_bytes("public_key", public_key, 32)
        result = await self._run(lambda now: self.core.get_mutable(public_key, now, salt=salt))
        assert isinstance(result, GetResult)
        return result.item

    async def sample_infohashes(self, addr: Address, target: bytes | None = None) -> SampleResult:
        """BEP 51: ask one node for a sample of the info hashes it stores.

        Raises:
            RequestTimeout, RemoteError, RequestError: as :meth:`ping`.
        """
        result = await self._run(lambda now: self.core.sample_infohashes(addr, now, target=target))
        assert isinstance(result, SampleResult)
        return result

    # ------------------------------------------------------------------ plumbing

    def _require_open(self) -> DatagramDriver:
        if self._driver is None:
            raise LocalProtocolError(
                "the DHT is not open: use `async with MainlineDHT(...)` or `await dht.open()`"
            )
        if self._closed:
            raise LocalProtocolError("the DHT was closed")
        return self._driver

    async def _run(self, start: Start) -> object:
        return await self._ops.run(self._require_open(), start)

    async def _stream(self, start: Start) -> AsyncIterator[PeersFound]:
        async for item in self._ops.stream(self._require_open(), start):
            yield item

    def _on_event(self, event: object) -> None:
        if isinstance(event, PeersFound):
            self._ops.item(event.op, event)
        elif isinstance(event, OpDone):
            self._ops.done(event.op, event.result)
        elif isinstance(event, OpFailed):
            self._ops.failed(event.op, event.error)


def _check_bytes(name: str, value: object, length: int) -> None:
    """:class:`InvalidArgumentType` (a ``TypeError``) unless bytes; :class:`InvalidArgument` (a
    ``ValueError``) unless ``length`` bytes long."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgumentType(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise InvalidArgument(f"{name} must be {length} bytes, got {len(value)}")


async def _resolve(host: str, port: int, ipv6: bool) -> Address:
    """Resolve a bootstrap name to an address of our socket's family (replies must match it exactly)."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    sockaddr = infos[0][4]
    return (str(sockaddr[0]), int(sockaddr[1]))


class MainlineTestnet:
    """``size`` Mainline nodes on ``host`` (ports chosen by the OS), bootstrapped from the first one.

    Testnet nodes run without the per-IP rate limit (they all share one IP).

    Attributes:
        nodes: the running nodes; ``nodes[0]`` is the bootstrap node.
        bootstrap: ``[(host, port)]`` to pass to other nodes (Python or JS) joining this network.
    """

    def __init__(self, nodes: list[MainlineDHT], bootstrap: list[Address], host: str) -> None:
        self.nodes = nodes
        self.bootstrap = bootstrap
        self.host = host
        self._extra: list[MainlineDHT] = []

    @classmethod
    async def create(cls, size: int = 10, *, host: str = "127.0.0.1", **options: Any) -> MainlineTestnet:
        """Start ``size`` nodes; ``options`` go to every :class:`MainlineDHT`.

        Raises:
            OSError: a socket cannot be bound on ``host``.
        """
        options.setdefault("rate_limit", None)
        nodes: list[MainlineDHT] = []
        boot: list[Address] = []
        try:
            for _ in range(size):
                node = MainlineDHT(bootstrap=boot, host=host, **options)
                await node.open()
                nodes.append(node)
                if not boot:
                    boot = [node.address()]
            # a second pass so the first nodes learn about the later ones
            for node in nodes[: max(1, size // 2)]:
                with contextlib.suppress(PeerDHTError):
                    await node.bootstrap()
        except BaseException:
            for node in nodes:
                await node.close()
            raise
        return cls(nodes, boot, host)

    def node(self, **options: Any) -> MainlineDHT:
        """A new node bootstrapped from this testnet; open it with ``async with``."""
        options.setdefault("bootstrap", self.bootstrap)
        options.setdefault("host", self.host)
        dht = MainlineDHT(**options)
        self._extra.append(dht)
        return dht

    async def close(self) -> None:
        """Stop every node, including those made with :meth:`node`."""
        for node in [*self._extra, *reversed(self.nodes)]:
            with contextlib.suppress(Exception):
                await node.close()

    async def destroy(self) -> None:
        """The same as :meth:`close` (bittorrent-dht's name)."""
        await self.close()

    async def __aenter__(self) -> MainlineTestnet:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
