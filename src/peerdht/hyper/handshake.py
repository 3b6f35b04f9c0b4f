"""The pure parts of the PEER_HANDSHAKE exchange (and the connect-by-key errors, re-exported).

The errors live in :mod:`peerdht.errors` (names and codes mirror hyperdht ``lib/errors.js``, ``err.code``)
and are re-exported here for older imports; payload rules mirror
``lib/connect.js`` (client) and ``lib/server.js`` (server).
"""

from __future__ import annotations

import ipaddress

from peerdht.errors import (
    CannotHolepunch,
    ConnectError,
    HandshakeInvalid,
    HolepunchAborted,
    HolepunchDoubleRandomized,
    HolepunchInvalid,
    HolepunchProbeTimeout,
    PeerConnectionFailed,
    PeerNotFound,
    RemoteAborted,
    RemoteNotHolepunchable,
    RemoteNotHolepunching,
    ServerError,
    ServerIncompatible,
)
from peerdht.hyper.constants import Firewall
from peerdht.hyper.constants import PayloadErrorCode as Err
from peerdht.hyper.records import NoisePayload, SecretStreamInfo, UdxInfo
from peerdht.secure.keys import KeyPair as SecureKeyPair

Address = tuple[str, int]

__all__ = [
    "CannotHolepunch",
    "ConnectError",
    "HandshakeInvalid",
    "HolepunchAborted",
    "HolepunchDoubleRandomized",
    "HolepunchInvalid",
    "HolepunchProbeTimeout",
    "PeerConnectionFailed",
    "PeerNotFound",
    "RemoteAborted",
    "RemoteNotHolepunchable",
    "RemoteNotHolepunching",
    "ServerError",
    "ServerIncompatible",
    "first_remote_address",
    "is_bogon",
    "is_reserved",
    "make_payload",
    "noise_key_pair",
    "server_error_code",
]


def is_bogon(host: str) -> bool:
    """True for addresses that are not publicly routable (npm ``bogon``: private, loopback, ...)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_reserved
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or (ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


def is_reserved(host: str) -> bool:
    """True for addresses never worth dialling on a LAN (npm ``bogon`` ``isReserved``: unspecified,
    loopback, link-local, multicast, reserved)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return bool(ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved)


def first_remote_address(addresses: tuple[Address, ...], fallback: Address) -> Address:
    """The first public address of ``addresses``, else ``fallback`` (connect.js ``getFirstRemoteAddress``)."""
    for a in addresses:
        if not is_bogon(a[0]):
            return a
    return fallback


def make_payload(
    *,
    remote_address: Address | None,
    udx_id: int,
    error: int = Err.NONE,
    holepunch: None = None,
    local_addresses: tuple[Address, ...] = (),
) -> NoisePayload:
    """The Noise payload both sides send (connect.js ``connectThroughNode`` / server.js ``_addHandshake``).

    Args:
        remote_address: our publicly reachable server-socket address (firewall OPEN) or None (UNKNOWN).
        udx_id: the id of our (not yet connected) UDX stream, u32.
        local_addresses: our LAN addresses (server socket port), for the same-LAN shortcut.
        error: hyperdht ``ERROR`` code.
    """
    return NoisePayload(
        version=1,
        error=error,
        firewall=Firewall.OPEN if remote_address is not None else Firewall.UNKNOWN,
        holepunch=holepunch,
        addresses4=((remote_address,) if remote_address is not None else ()) + tuple(local_addresses),
        udx=UdxInfo(id=udx_id, seq=0),
        secret_stream=SecretStreamInfo(),
    )


def server_error_code(remote: NoisePayload) -> int:
    """What a server answers to the client's payload: NONE, ABORTED (no udx) or VERSION_MISMATCH."""
    if remote.version != 1:
        return int(Err.VERSION_MISMATCH)
    return int(Err.NONE) if remote.udx is not None else int(Err.ABORTED)


def noise_key_pair(key_pair: object) -> SecureKeyPair:
    """The :class:`peerdht.secure.keys.KeyPair` (what the Noise layer takes) of a hyper ``KeyPair``."""
    if isinstance(key_pair, SecureKeyPair):
        return key_pair
    return SecureKeyPair(public_key=key_pair.public_key, secret_key=key_pair.secret_key)  # type: ignore[attr-defined]
