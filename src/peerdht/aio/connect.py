"""Connect to a HyperDHT server by its public key (hyperdht ``lib/connect.js``).

FIND_PEER finds the nodes holding the server's self-announce; a PEER_HANDSHAKE (Noise IK, our
payload inside) goes through one of them to the server; the reply tells where to open the UDX
stream; secret-stream runs on top with the keys of the Noise handshake.

Paths implemented: the server is reachable (firewall OPEN, or relayed without holepunch relays:
its address as the relay saw it, as JS does), we are reachable (the server connects to us), or
the handshake went straight to the server's own node. Holepunching through PEER_HOLEPUNCH
rounds is not implemented yet: such servers fail with :class:`CannotHolepunch`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from peerdht.aio.secretstream import SecretStream, open_secret_stream
from peerdht.errors import PeerDHTError
from peerdht.hyper.constants import Command, Firewall
from peerdht.hyper.constants import ConnectError as Err
from peerdht.hyper.crypto import KeyPair
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.handshake import (
    CannotHolepunch,
    HandshakeInvalid,
    HolepunchAborted,
    PeerConnectionFailed,
    PeerNotFound,
    ServerError,
    ServerIncompatible,
    first_remote_address,
    make_payload,
    noise_key_pair,
)
from peerdht.hyper.records import (
    Handshake,
    NoisePayload,
    decode_handshake,
    decode_noise_payload,
    encode_handshake,
    encode_noise_payload,
)
from peerdht.hyper.router import FROM_CLIENT, REPLY
from peerdht.hyper.rpc import CLIENT, SERVER, Reply
from peerdht.secure.noise import HandshakeResult, peer_handshake

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.udx import UDXStream

Address = tuple[str, int]

PASSIVE_CONNECT_TIMEOUT = 10.0
"""Seconds we wait for a server to open the stream to us (connect.js ``passiveConnectTimeout``)."""


async def connect(
    dht: HyperDHT,
    public_key: bytes,
    *,
    key_pair: KeyPair | None = None,
    relay_addresses: list[Address] | None = None,
) -> SecretStream:
    """Connect to the server with ``public_key`` (32 bytes) and return the encrypted stream.

    Raises:
        PeerNotFound: no node knows the server.
        PeerConnectionFailed: nodes knew it but no handshake was answered (closed or firewalled).
        ServerError / ServerIncompatible: the server answered with an error / another version.
        CannotHolepunch / HolepunchAborted: no way to open the UDX stream.
    """
    driver = dht._require_open()
    raws = dht._raw_streams()
    kp = key_pair or dht.default_key_pair
    target = blake2b(public_key)
    sid = raws.reserve()
    try:
        noise = peer_handshake(noise_key_pair(kp), bytes(public_key), os.urandom(32))
        ours = make_payload(remote_address=dht.core.remote_address(), udx_id=sid)
        msg1 = noise.send(encode_noise_payload(ours))
        attempts = 0
        got: tuple[Reply, Handshake, Address] | None = None
        tried: set[Address] = set()
        for addr in relay_addresses or []:
            tried.add(addr)
            attempts += 1
            got = await _try_node(dht, addr, target, msg1)
            if got is not None:
                break
        if got is None:
            async for res in dht.find_peer(public_key):
                if res.from_addr in tried:
                    continue
                tried.add(res.from_addr)
                attempts += 1
                got = await _try_node(dht, res.from_addr, target, msg1)
                if got is not None:
                    break
        if got is None:
            raise PeerConnectionFailed() if attempts else PeerNotFound()
        _reply, hs, relay = got
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
        if stream is None:
            stream = await _open(dht, sid, remote, relayed, server_address, relay, ours)
        raws.forget(sid)
        sid = 0
        driver.kick()
        return await _secure(stream, True, result, dht)
    finally:
        if sid:
            raws.release(sid)


async def _try_node(
    dht: HyperDHT, addr: Address, target: bytes, msg1: bytes
) -> tuple[Reply, Handshake, Address] | None:
    value = encode_handshake(Handshake(mode=FROM_CLIENT, noise=msg1))
    try:
        reply: Reply = await dht._run(
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


async def _open(
    dht: HyperDHT,
    sid: int,
    remote: NoisePayload,
    relayed: bool,
    server_address: Address,
    relay: Address,
    ours: NoisePayload,
) -> UDXStream:
    raws = dht._raw_streams()
    assert remote.udx is not None
    holepunchable = remote.holepunch is not None and len(remote.holepunch.relays) > 0
    sock = CLIENT if dht.core.firewalled else SERVER
    if remote.firewall == Firewall.OPEN or (relayed and not holepunchable):
        addr = first_remote_address(remote.addresses4, server_address)
        return raws.connect(sid, sock, remote.udx.id, addr)
    if not relayed:
        return raws.connect(sid, sock, remote.udx.id, relay)
    if ours.firewall == Firewall.OPEN:
        try:
            return await raws.wait(sid, PASSIVE_CONNECT_TIMEOUT)
        except TimeoutError:
            raise HolepunchAborted("the server never connected to us") from None
    raise CannotHolepunch("holepunching through PEER_HOLEPUNCH is not implemented yet")


async def _secure(stream: UDXStream, initiator: bool, result: HandshakeResult, dht: HyperDHT) -> SecretStream:
    try:
        return await open_secret_stream(stream, initiator=initiator, handshake=result)
    except PeerDHTError:
        stream.destroy()
        raise
