"""HyperDHT command payloads: the ``value`` of dht-rpc requests and replies.

Mirrors hyperdht 6.34 ``lib/messages.js`` (``peer``, ``peers``, ``lookupRawReply``, ``announce``,
``mutableSignable``, ``mutablePutRequest``, ``mutableGetResponse``, ``pluginRequest``,
``handshake``, ``holepunch``, ``noisePayload``, ``holepunchPayload``), written from the JS source.

Every ``decode_*`` function takes untrusted bytes and returns a value or raises
:class:`peerdht.errors.DecodeError`. As in JS, trailing bytes after a complete value are
ignored. Every ``encode_*`` function raises :class:`peerdht.errors.LocalProtocolError` for
fields out of range (wrong key length, bad address).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from peerdht.encoding.compact import Address, Decoder, Encoder
from peerdht.errors import DecodeError

__all__ = [
    "Announce",
    "Handshake",
    "Holepunch",
    "HolepunchInfo",
    "HolepunchPayload",
    "LookupReply",
    "MutableGetResponse",
    "MutablePutRequest",
    "NoisePayload",
    "Peer",
    "PluginRequest",
    "RelayInfo",
    "RelayThroughInfo",
    "SecretStreamInfo",
    "UdxInfo",
    "decode_announce",
    "decode_handshake",
    "decode_holepunch",
    "decode_holepunch_payload",
    "decode_lookup_reply",
    "decode_mutable_get_response",
    "decode_mutable_put_request",
    "decode_noise_payload",
    "decode_peer",
    "decode_peers",
    "decode_plugin_request",
    "encode_announce",
    "encode_handshake",
    "encode_holepunch",
    "encode_holepunch_payload",
    "encode_lookup_reply",
    "encode_mutable_get_response",
    "encode_mutable_put_request",
    "encode_mutable_signable",
    "encode_noise_payload",
    "encode_peer",
    "encode_peers",
    "encode_plugin_request",
]

_T = TypeVar("_T")


def _decode(data: bytes | bytearray | memoryview, read: Callable[[Decoder], _T]) -> _T:
    return read(Decoder(data))


# --------------------------------------------------------------------------- peer


@dataclass(frozen=True, kw_only=True, slots=True)
class Peer:
    """An announced peer (``peer``): who to connect to and through which relays.

    Attributes:
        public_key: the peer's 32-byte Ed25519 public key.
        relay_addresses: IPv4 addresses of DHT nodes that relay handshakes to it.
    """

    public_key: bytes
    relay_addresses: tuple[Address, ...] = ()


def _write_peer(enc: Encoder, p: Peer) -> None:
    enc.fixed(p.public_key, 32)
    enc.ipv4_array(p.relay_addresses)


def _read_peer(dec: Decoder) -> Peer:
    return Peer(public_key=dec.fixed(32), relay_addresses=dec.ipv4_array())


def encode_peer(p: Peer) -> bytes:
    """``peer``: publicKey (32) + ``ipv4Address[]`` relayAddresses."""
    enc = Encoder()
    _write_peer(enc, p)
    return enc.getvalue()


def decode_peer(data: bytes | bytearray | memoryview) -> Peer:
    """Decode ``peer`` (FIND_PEER reply value). Raises DecodeError."""
    return _decode(data, _read_peer)


def _read_peers(dec: Decoder) -> tuple[Peer, ...]:
    n = dec.array_length()
    return tuple(_read_peer(dec) for _ in range(n))


def encode_peers(peers: tuple[Peer, ...] | list[Peer]) -> bytes:
    """``peers`` = ``c.array(peer)``."""
    enc = Encoder()
    enc.array_length(len(peers))
    for p in peers:
        _write_peer(enc, p)
    return enc.getvalue()


def decode_peers(data: bytes | bytearray | memoryview) -> tuple[Peer, ...]:
    """Decode ``peers``. Raises DecodeError."""
    return _decode(data, _read_peers)


# --------------------------------------------------------------------------- lookup


@dataclass(frozen=True, kw_only=True, slots=True)
class LookupReply:
    """LOOKUP reply value (``lookupRawReply``).

    Attributes:
        peers: up to 20 peers announced under the topic.
        bump: the topic's bump counter (0 when the reply has none; it is an optional trailer).
    """

    peers: tuple[Peer, ...] = ()
    bump: int = 0


def encode_lookup_reply(m: LookupReply) -> bytes:
    """``lookupRawReply``: ``peer[]`` then bump (always written by JS)."""
    enc = Encoder()
    enc.array_length(len(m.peers))
    for p in m.peers:
        _write_peer(enc, p)
    enc.uint(m.bump)
    return enc.getvalue()


def _read_lookup_reply(dec: Decoder) -> LookupReply:
    peers = _read_peers(dec)
    bump = 0 if dec.at_end() else dec.uint()
    return LookupReply(peers=peers, bump=bump)


def decode_lookup_reply(data: bytes | bytearray | memoryview) -> LookupReply:
    """Decode ``lookupRawReply`` (bump defaults to 0 when absent). Raises DecodeError."""
    return _decode(data, _read_lookup_reply)


# --------------------------------------------------------------------------- announce


@dataclass(frozen=True, kw_only=True, slots=True)
class Announce:
    """ANNOUNCE / UNANNOUNCE request value (``announce``).

    Attributes:
        peer: the announced peer, or None for a refresh-only announce.
        refresh: 32-byte refresh token, or None.
        signature: 64-byte Ed25519 signature (see :func:`peerdht.hyper.crypto.sign_announce`).
        bump: bump counter, 0 for none (not covered by the signature).
    """

    peer: Peer | None = None
    refresh: bytes | None = None
    signature: bytes | None = None
    bump: int = 0


def encode_announce(m: Announce) -> bytes:
    """``announce``: flags (1 peer, 2 refresh, 4 signature, 8 bump) then the present fields."""
    enc = Encoder()
    enc.uint(
        (1 if m.peer is not None else 0)
        | (2 if m.refresh is not None else 0)
        | (4 if m.signature is not None else 0)
        | (8 if m.bump else 0)
    )
    if m.peer is not None:
        _write_peer(enc, m.peer)
    if m.refresh is not None:
        enc.fixed(m.refresh, 32)
    if m.signature is not None:
        enc.fixed(m.signature, 64)
    if m.bump:
        enc.uint(m.bump)
    return enc.getvalue()


def _read_announce(dec: Decoder) -> Announce:
    flags = dec.uint()
    return Announce(
        peer=_read_peer(dec) if flags & 1 else None,
        refresh=dec.fixed(32) if flags & 2 else None,
        signature=dec.fixed(64) if flags & 4 else None,
        bump=dec.uint() if flags & 8 else 0,
    )


def decode_announce(data: bytes | bytearray | memoryview) -> Announce:
    """Decode ``announce``. Raises DecodeError."""
    return _decode(data, _read_announce)


# --------------------------------------------------------------------------- mutable


def encode_mutable_signable(seq: int, value: bytes) -> bytes:
    """``mutableSignable``: uint seq + buffer value (hashed into the mutable signature)."""
    enc = Encoder()
    enc.uint(seq)
    enc.buffer(value)
    return enc.getvalue()


@dataclass(frozen=True, kw_only=True, slots=True)
class MutablePutRequest:
    """MUTABLE_PUT request value (``mutablePutRequest``).

    Attributes:
        public_key: 32-byte Ed25519 key; the request target is ``hash(public_key)``.
        seq: sequence number (uint).
        value: the stored bytes.
        signature: 64-byte signature (see :func:`peerdht.hyper.crypto.sign_mutable`).
    """

    public_key: bytes
    seq: int
    value: bytes
    signature: bytes


def encode_mutable_put_request(m: MutablePutRequest) -> bytes:
    """publicKey (32) + uint seq + buffer value + signature (64)."""
    enc = Encoder()
    enc.fixed(m.public_key, 32)
    enc.uint(m.seq)
    enc.buffer(m.value)
    enc.fixed(m.signature, 64)
    return enc.getvalue()


def _read_mutable_put_request(dec: Decoder) -> MutablePutRequest:
    return MutablePutRequest(
        public_key=dec.fixed(32), seq=dec.uint(), value=dec.buffer(), signature=dec.fixed(64)
    )


def decode_mutable_put_request(data: bytes | bytearray | memoryview) -> MutablePutRequest:
    """Decode ``mutablePutRequest``. Raises DecodeError."""
    return _decode(data, _read_mutable_put_request)


@dataclass(frozen=True, kw_only=True, slots=True)
class MutableGetResponse:
    """MUTABLE_GET reply value (``mutableGetResponse``).

    Attributes:
        seq: sequence number of the stored value.
        value: the stored bytes.
        signature: 64-byte signature over ``(seq, value)``.
    """

    seq: int
    value: bytes
    signature: bytes


def encode_mutable_get_response(m: MutableGetResponse) -> bytes:
    """uint seq + buffer value + signature (64)."""
    enc = Encoder()
    enc.uint(m.seq)
    enc.buffer(m.value)
    enc.fixed(m.signature, 64)
    return enc.getvalue()


def _read_mutable_get_response(dec: Decoder) -> MutableGetResponse:
    return MutableGetResponse(seq=dec.uint(), value=dec.buffer(), signature=dec.fixed(64))


def decode_mutable_get_response(data: bytes | bytearray | memoryview) -> MutableGetResponse:
    """Decode ``mutableGetResponse``. Raises DecodeError."""
    return _decode(data, _read_mutable_get_response)


# --------------------------------------------------------------------------- plugin


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginRequest:
    """PLUGIN request value (``pluginRequest``).

    Attributes:
        plugin: plugin name (UTF-8).
        version: plugin version.
        command: plugin-defined command number.
        value: payload or None.
    """

    plugin: str
    version: int
    command: int
    value: bytes | None = None


def encode_plugin_request(m: PluginRequest) -> bytes:
    """string plugin + uint version + uint command + flags (1 value) + [buffer value]."""
    enc = Encoder()
    enc.string(m.plugin)
    enc.uint(m.version)
    enc.uint(m.command)
    enc.uint(1 if m.value is not None else 0)
    if m.value is not None:
        enc.buffer(m.value)
    return enc.getvalue()


def _read_plugin_request(dec: Decoder) -> PluginRequest:
    plugin = dec.string()
    version = dec.uint()
    command = dec.uint()
    flags = dec.uint()
    value = dec.buffer() if flags & 1 else None
    return PluginRequest(plugin=plugin, version=version, command=command, value=value)


def decode_plugin_request(data: bytes | bytearray | memoryview) -> PluginRequest:
    """Decode ``pluginRequest``. Raises DecodeError."""
    return _decode(data, _read_plugin_request)


# --------------------------------------------------------------------------- handshake


@dataclass(frozen=True, kw_only=True, slots=True)
class Handshake:
    """PEER_HANDSHAKE request/reply value (``handshake``).

    Attributes:
        mode: :class:`peerdht.hyper.constants.HandshakeMode`.
        noise: the Noise IK message.
        peer_address: the client's (or server's) address as seen by a relay, or None.
        relay_address: the second relay's address, or None.
    """

    mode: int
    noise: bytes
    peer_address: Address | None = None
    relay_address: Address | None = None


def encode_handshake(m: Handshake) -> bytes:
    """flags (1 peerAddress, 2 relayAddress) + uint mode + buffer noise + [ipv4] + [ipv4]."""
    enc = Encoder()
    enc.uint((1 if m.peer_address is not None else 0) | (2 if m.relay_address is not None else 0))
    enc.uint(m.mode)
    enc.buffer(m.noise)
    if m.peer_address is not None:
        enc.ipv4_address(m.peer_address)
    if m.relay_address is not None:
        enc.ipv4_address(m.relay_address)
    return enc.getvalue()


def _read_handshake(dec: Decoder) -> Handshake:
    flags = dec.uint()
    return Handshake(
        mode=dec.uint(),
        noise=dec.buffer(),
        peer_address=dec.ipv4_address() if flags & 1 else None,
        relay_address=dec.ipv4_address() if flags & 2 else None,
    )


def decode_handshake(data: bytes | bytearray | memoryview) -> Handshake:
    """Decode ``handshake``. Raises DecodeError."""
    return _decode(data, _read_handshake)


@dataclass(frozen=True, kw_only=True, slots=True)
class Holepunch:
    """PEER_HOLEPUNCH request/reply value (``holepunch``).

    Attributes:
        mode: :class:`peerdht.hyper.constants.HandshakeMode`.
        id: the server's pending-handshake id.
        payload: the encrypted holepunch payload.
        peer_address: address as seen by a relay, or None.
    """

    mode: int
    id: int
    payload: bytes
    peer_address: Address | None = None


def encode_holepunch(m: Holepunch) -> bytes:
    """flags (1 peerAddress) + uint mode + uint id + buffer payload + [ipv4]."""
    enc = Encoder()
    enc.uint(1 if m.peer_address is not None else 0)
    enc.uint(m.mode)
    enc.uint(m.id)
    enc.buffer(m.payload)
    if m.peer_address is not None:
        enc.ipv4_address(m.peer_address)
    return enc.getvalue()


def _read_holepunch(dec: Decoder) -> Holepunch:
    flags = dec.uint()
    return Holepunch(
        mode=dec.uint(),
        id=dec.uint(),
        payload=dec.buffer(),
        peer_address=dec.ipv4_address() if flags & 1 else None,
    )


def decode_holepunch(data: bytes | bytearray | memoryview) -> Holepunch:
    """Decode ``holepunch``. Raises DecodeError."""
    return _decode(data, _read_holepunch)


# --------------------------------------------------------------------------- noise payload


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayInfo:
    """One ``relayInfo``: a relay's address and the peer's address as that relay sees it."""

    relay_address: Address
    peer_address: Address


@dataclass(frozen=True, kw_only=True, slots=True)
class HolepunchInfo:
    """``holepunchInfo``: pending-handshake id and the relays to holepunch through."""

    id: int
    relays: tuple[RelayInfo, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class UdxInfo:
    """``udxInfo``: the sender's UDX stream id and first sequence number.

    ``version`` is always written as 1; the decoded value is kept.
    """

    id: int
    seq: int
    reusable_socket: bool = False
    version: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class SecretStreamInfo:
    """``secretStreamInfo``: version is always written as 1."""

    version: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayThroughInfo:
    """``relayThroughInfo``: blind-relay public key and pairing token (32 bytes each)."""

    public_key: bytes
    token: bytes
    version: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class NoisePayload:
    """The payload carried inside the Noise IK handshake messages (``noisePayload``).

    A payload whose version is not 1 decodes to ``NoisePayload(version=v)`` with every other
    field at its default (JS does the same so the caller can report VERSION_MISMATCH).

    Attributes:
        version: payload version (1).
        error: :class:`peerdht.hyper.constants.PayloadErrorCode`.
        firewall: :class:`peerdht.hyper.constants.Firewall`.
        holepunch: holepunch info or None.
        addresses4: the sender's IPv4 addresses (empty: absent).
        addresses6: the sender's IPv6 addresses (empty: absent).
        udx: UDX stream info or None.
        secret_stream: secret-stream info or None.
        relay_through: blind-relay info or None.
        relay_addresses: the sender's relay addresses, or None (absent; ``()`` is present
            and empty).
    """

    version: int = 1
    error: int = 0
    firewall: int = 0
    holepunch: HolepunchInfo | None = None
    addresses4: tuple[Address, ...] = ()
    addresses6: tuple[Address, ...] = ()
    udx: UdxInfo | None = None
    secret_stream: SecretStreamInfo | None = None
    relay_through: RelayThroughInfo | None = None
    relay_addresses: tuple[Address, ...] | None = None


def encode_noise_payload(m: NoisePayload) -> bytes:
    """``noisePayload``: version 1, flags, error, firewall, then the present sections.

    Flags: 1 holepunch, 2 addresses4, 4 addresses6, 8 udx, 16 secretStream, 32 relayThrough,
    64 relayAddresses. The version is always written as 1 (as JS does).
    """
    flags = (
        (1 if m.holepunch is not None else 0)
        | (2 if m.addresses4 else 0)
        | (4 if m.addresses6 else 0)
        | (8 if m.udx is not None else 0)
        | (16 if m.secret_stream is not None else 0)
        | (32 if m.relay_through is not None else 0)
        | (64 if m.relay_addresses is not None else 0)
    )
    enc = Encoder()
    enc.uint(1)
    enc.uint(flags)
    enc.uint(m.error)
    enc.uint(m.firewall)
    if m.holepunch is not None:
        enc.uint(m.holepunch.id)
        enc.array_length(len(m.holepunch.relays))
        for r in m.holepunch.relays:
            enc.ipv4_address(r.relay_address)
            enc.ipv4_address(r.peer_address)
    if m.addresses4:
        enc.ipv4_array(m.addresses4)
    if m.addresses6:
        enc.ipv6_array(m.addresses6)
    if m.udx is not None:
        enc.uint(1)
        enc.uint(1 if m.udx.reusable_socket else 0)
        enc.uint(m.udx.id)
        enc.uint(m.udx.seq)
    if m.secret_stream is not None:
        enc.uint(1)
    if m.relay_through is not None:
        enc.uint(1)
        enc.uint(0)
        enc.fixed(m.relay_through.public_key, 32)
        enc.fixed(m.relay_through.token, 32)
    if m.relay_addresses is not None:
        enc.ipv4_array(m.relay_addresses)
    return enc.getvalue()


def _read_noise_payload(dec: Decoder) -> NoisePayload:
    version = dec.uint()
    if version != 1:
        return NoisePayload(version=version)
    flags = dec.uint()
    error = dec.uint()
    firewall = dec.uint()
    holepunch = None
    if flags & 1:
        hp_id = dec.uint()
        n = dec.array_length()
        if n * 12 > dec.remaining:
            raise DecodeError("out of bounds")
        relays = tuple(
            RelayInfo(relay_address=dec.ipv4_address(), peer_address=dec.ipv4_address()) for _ in range(n)
        )
        holepunch = HolepunchInfo(id=hp_id, relays=relays)
    addresses4 = dec.ipv4_array() if flags & 2 else ()
    addresses6 = dec.ipv6_array() if flags & 4 else ()
    udx = None
    if flags & 8:
        udx_version = dec.uint()
        features = dec.uint()
        udx = UdxInfo(
            version=udx_version,
            reusable_socket=bool(features & 1),
            id=dec.uint(),
            seq=dec.uint(),
        )
    secret_stream = SecretStreamInfo(version=dec.uint()) if flags & 16 else None
    relay_through = None
    if flags & 32:
        rt_version = dec.uint()
        dec.uint()  # flags, unused
        relay_through = RelayThroughInfo(version=rt_version, public_key=dec.fixed(32), token=dec.fixed(32))
    relay_addresses = dec.ipv4_array() if flags & 64 else None
    return NoisePayload(
        version=version,
        error=error,
        firewall=firewall,
        holepunch=holepunch,
        addresses4=addresses4,
        addresses6=addresses6,
        udx=udx,
        secret_stream=secret_stream,
        relay_through=relay_through,
        relay_addresses=relay_addresses,
    )


def decode_noise_payload(data: bytes | bytearray | memoryview) -> NoisePayload:
    """Decode ``noisePayload``. Raises DecodeError."""
    return _decode(data, _read_noise_payload)


# --------------------------------------------------------------------------- holepunch payload


@dataclass(frozen=True, kw_only=True, slots=True)
class HolepunchPayload:
    """The decrypted payload of a PEER_HOLEPUNCH message (``holepunchPayload``).

    Attributes:
        error: :class:`peerdht.hyper.constants.PayloadErrorCode`.
        firewall: :class:`peerdht.hyper.constants.Firewall`.
        round: punch round number.
        connected: the sender already has a connection.
        punching: the sender is punching now.
        addresses: the sender's candidate IPv4 addresses, or None.
        remote_address: the receiver's address as the sender sees it, or None.
        token: 32-byte address-verification token, or None.
        remote_token: the receiver's token echoed back, or None.
    """

    error: int = 0
    firewall: int = 0
    round: int = 0
    connected: bool = False
    punching: bool = False
    addresses: tuple[Address, ...] | None = None
    remote_address: Address | None = None
    token: bytes | None = None
    remote_token: bytes | None = None


def encode_holepunch_payload(m: HolepunchPayload) -> bytes:
    """flags (1 connected, 2 punching, 4 addresses, 8 remoteAddress, 16 token, 32 remoteToken),
    uint error, uint firewall, uint round, then the present fields."""
    enc = Encoder()
    enc.uint(
        (1 if m.connected else 0)
        | (2 if m.punching else 0)
        | (4 if m.addresses is not None else 0)
        | (8 if m.remote_address is not None else 0)
        | (16 if m.token is not None else 0)
        | (32 if m.remote_token is not None else 0)
    )
    enc.uint(m.error)
    enc.uint(m.firewall)
    enc.uint(m.round)
    if m.addresses is not None:
        enc.ipv4_array(m.addresses)
    if m.remote_address is not None:
        enc.ipv4_address(m.remote_address)
    if m.token is not None:
        enc.fixed(m.token, 32)
    if m.remote_token is not None:
        enc.fixed(m.remote_token, 32)
    return enc.getvalue()


def _read_holepunch_payload(dec: Decoder) -> HolepunchPayload:
    flags = dec.uint()
    return HolepunchPayload(
        error=dec.uint(),
        firewall=dec.uint(),
        round=dec.uint(),
        connected=bool(flags & 1),
        punching=bool(flags & 2),
        addresses=dec.ipv4_array() if flags & 4 else None,
        remote_address=dec.ipv4_address() if flags & 8 else None,
        token=dec.fixed(32) if flags & 16 else None,
        remote_token=dec.fixed(32) if flags & 32 else None,
    )


def decode_holepunch_payload(data: bytes | bytearray | memoryview) -> HolepunchPayload:
    """Decode ``holepunchPayload``. Raises DecodeError."""
    return _decode(data, _read_holepunch_payload)
