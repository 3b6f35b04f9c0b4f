"""A HyperDHT server: accept encrypted connections by public key (hyperdht ``lib/server.js``).

``listen`` registers the server with our node's router (so handshakes that reach this node are
answered), self-announces ``hash(public_key)`` to the closest nodes (they become our relays) and
refreshes that announce; ``close`` unannounces.

Example::

    async def on_connection(stream):
        stream.write(b"hello"); await stream.drain()

    server = dht.create_server(on_connection)
    await server.listen(key_pair)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from peerdht.aio.secretstream import SecretStream, open_secret_stream
from peerdht.errors import LocalProtocolError, PeerDHTError
from peerdht.hyper.constants import ConnectError as Err
from peerdht.hyper.constants import Firewall
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.handshake import make_payload, noise_key_pair, server_error_code
from peerdht.hyper.records import NoisePayload, decode_noise_payload, encode_noise_payload
from peerdht.hyper.router import ServerAnswer
from peerdht.hyper.rpc import CLIENT, SERVER
from peerdht.secure.noise import HandshakeResult, peer_handshake

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.udx import UDXStream

log = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[SecretStream], Awaitable[None] | None]
Firewall_ = Callable[[bytes, NoisePayload, Address], bool]

REFRESH_INTERVAL = 5 * 60.0
"""Seconds between self-announce refreshes (records live 20 minutes on the relays)."""
HANDSHAKE_CLEAR_WAIT = 10.0
"""Seconds a handshake reply is kept for clients retrying through other relays (server.js)."""
ACCEPT_TIMEOUT = 10.0
"""Seconds we wait for the client to open the stream (server.js ``HANDSHAKE_INITIAL_TIMEOUT``)."""


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

    def __init__(self, dht: HyperDHT, handler: Handler, firewall: Firewall_ | None = None) -> None:
        self.dht = dht
        self.handler = handler
        self.firewall = firewall
        self.key_pair: KeyPair | None = None
        self.target: bytes | None = None
        self.relays = 0
        self.closed = False
        self.connections: set[SecretStream] = set()
        self._replies: dict[bytes, tuple[float, ServerAnswer | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @property
    def public_key(self) -> bytes | None:
        return self.key_pair.public_key if self.key_pair is not None else None

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
        self.dht._require_open()
        self.key_pair = kp
        self.target = target
        self.dht.core.router.listen(target, self)
        self.dht._servers.add(self)
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

    async def _refresh_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(REFRESH_INTERVAL)
            if not self.closed:
                await self._announce()

    async def close(self) -> None:
        """Stop accepting, unannounce, and close open connections. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        if self.target is not None:
            self.dht.core.router.unlisten(self.target, self)
        self.dht._servers.discard(self)
        if self.target is not None and self.key_pair is not None and not self.dht._destroyed:
            with contextlib.suppress(PeerDHTError):
                await asyncio.wait_for(self.dht.unannounce(self.target, self.key_pair), 10)
            with contextlib.suppress(TimeoutError):
                pass
        for t in list(self._tasks):
            t.cancel()
        for s in list(self.connections):
            s.close()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ router hooks (sync)

    def on_peer_handshake(
        self, noise: bytes, peer_address: Address | None, from_addr: Address, socket: int, now: float
    ) -> ServerAnswer | None:
        """Answer a client's Noise message (server.js ``_onpeerhandshake`` / ``_addHandshake``)."""
        if self.closed or self.key_pair is None:
            return None
        for k in [k for k, (t, _) in self._replies.items() if now - t > HANDSHAKE_CLEAR_WAIT]:
            del self._replies[k]
        cached = self._replies.get(noise)
        if cached is not None:
            return cached[1]
        answer = self._add_handshake(noise, peer_address, from_addr, socket)
        self._replies[noise] = (now, answer)
        return answer

    def _add_handshake(
        self, noise: bytes, peer_address: Address | None, from_addr: Address, socket: int
    ) -> ServerAnswer | None:
        assert self.key_pair is not None
        hs = peer_handshake(noise_key_pair(self.key_pair), None, os.urandom(32))
        try:
            remote = decode_noise_payload(hs.recv(noise))
        except (PeerDHTError, ValueError):
            return None
        remote_pk = hs.remote_public_key
        assert remote_pk is not None
        client_address = peer_address or from_addr
        direct = peer_address is None
        if self.firewall is not None:
            try:
                if self.firewall(remote_pk, remote, client_address):
                    return None
            except Exception:
                log.exception("firewall raised")
                return None
        error = server_error_code(remote)
        raws = self.dht._raw_streams()
        sid = raws.reserve() if error == Err.NONE else 0
        ours = make_payload(remote_address=self.dht.core.remote_address(), udx_id=sid, error=error)
        reply = hs.send(encode_noise_payload(ours))
        result = hs.result()
        if error != Err.NONE:
            return ServerAnswer(value=reply)
        assert remote.udx is not None
        raws.expect(sid, remote.udx.id)
        if remote.firewall == Firewall.OPEN or direct:
            sock = socket if direct else (CLIENT if self.dht.core.firewalled else SERVER)
            stream = raws.connect(sid, sock, remote.udx.id, client_address)
            self._spawn(self._accept(sid, stream, result))
        else:
            self._spawn(self._accept(sid, None, result))
        return ServerAnswer(value=reply)

    def on_peer_holepunch(
        self, id: int, payload: bytes, peer_address: Address, from_addr: Address, socket: int, now: float
    ) -> ServerAnswer | None:
        """PEER_HOLEPUNCH rounds: not implemented (we never advertise holepunch relays)."""
        return None

    # ------------------------------------------------------------------ accepting

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, sid: int, stream: UDXStream | None, result: HandshakeResult) -> None:
        raws = self.dht._raw_streams()
        try:
            if stream is None:
                try:
                    stream = await raws.wait(sid, ACCEPT_TIMEOUT)
                except TimeoutError:
                    return
        finally:
            if stream is None:
                raws.release(sid)
            else:
                raws.forget(sid)
        try:
            secure = await open_secret_stream(stream, initiator=False, handshake=result)
        except PeerDHTError as exc:
            log.debug("secret-stream failed: %s", exc)
            stream.destroy()
            return
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
