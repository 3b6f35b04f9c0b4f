"""Connect-by-key errors and the pure parts of the PEER_HANDSHAKE exchange.

Error names and codes mirror hyperdht ``lib/errors.js`` (``err.code``); payload rules mirror
``lib/connect.js`` (client) and ``lib/server.js`` (server).
"""

from __future__ import annotations

import ipaddress

from peerdht.errors import PeerDHTError
from peerdht.hyper.constants import ConnectError as Err
from peerdht.hyper.constants import Firewall
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


class ConnectError(PeerDHTError):
    """A connect-by-key failure; ``code`` is hyperdht's error code string (``lib/errors.js``)."""

    code = "CONNECT_ERROR"

    def __init__(self, message: str = "") -> None:
        super().__init__(f"{message or self.__class__.__doc__ or ''} ({self.code})".strip())


class PeerNotFound(ConnectError):
    """No node holds the server's announce."""

    code = "PEER_NOT_FOUND"


class PeerConnectionFailed(ConnectError):
    """Nodes held the announce but no handshake got through (server gone or firewalled us)."""

    code = "PEER_CONNECTION_FAILED"


class HandshakeInvalid(ConnectError):
    """The handshake reply did not decrypt or came from the wrong key."""

    code = "HANDSHAKE_INVALID"


class ServerError(ConnectError):
    """The server answered with an error."""

    code = "SERVER_ERROR"


class ServerIncompatible(ConnectError):
    """The server speaks another payload version."""

    code = "SERVER_INCOMPATIBLE"


class HolepunchAborted(ConnectError):
    """Holepunching was aborted (or the direct connection never opened)."""

    code = "HOLEPUNCH_ABORTED"


class CannotHolepunch(ConnectError):
    """The server cannot be holepunched and has no reachable address."""

    code = "CANNOT_HOLEPUNCH"


class HolepunchInvalid(ConnectError):
    """A holepunch reply did not decrypt or decode."""

    code = "HOLEPUNCH_INVALID"


class HolepunchProbeTimeout(ConnectError):
    """The NAT analysis of one side did not conclude."""

    code = "HOLEPUNCH_PROBE_TIMEOUT"


class HolepunchDoubleRandomized(ConnectError):
    """Both sides are behind port-randomising NATs."""

    code = "HOLEPUNCH_DOUBLE_RANDOMIZED_NATS"


class RemoteAborted(ConnectError):
    """The server aborted the holepunch."""

    code = "REMOTE_ABORTED"


class RemoteNotHolepunching(ConnectError):
    """The server did not start punching."""

    code = "REMOTE_NOT_HOLEPUNCHING"


class RemoteNotHolepunchable(ConnectError):
    """No punch strategy fits the two NATs."""

    code = "REMOTE_NOT_HOLEPUNCHABLE"


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
