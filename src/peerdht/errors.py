"""The one exception tree of peerdht.

Errors say who is to blame (as h11 and trio do); where the meaning is a standard one, the error is also
that standard exception, so ``except TimeoutError`` / ``except ValueError`` work as users expect::

    PeerDHTError
    ├── DecodeError (ValueError)        untrusted bytes did not parse (a peer's fault; the datagram is dropped)
    ├── LocalProtocolError              the API was misused by the caller (bad argument, wrong state)
    │   ├── InvalidArgument (ValueError)    a bad value: wrong length (topic, key, hash), out of range
    │   └── InvalidArgumentType (TypeError) a bad type: ``str`` where ``bytes`` are needed
    ├── RemoteProtocolError             a peer broke the protocol (bad signature, wrong key, bad frame)
    ├── RequestError                    a DHT request failed
    │   ├── RequestTimeout (TimeoutError)   no reply after all retries
    │   └── RemoteError                 the peer answered with an error code (``code`` attribute)
    ├── NotFound                        a lookup finished without the value or peer asked for
    ├── StreamError                     a stream failed
    │   ├── StreamClosed                used after close() (local)
    │   └── StreamReset                 destroyed by the peer or by a timeout (remote)
    │       └── StreamTimeout (TimeoutError)  the peer went silent (killed, unplugged)
    ├── ConnectError                    connect by public key failed (hyperdht ``lib/errors.js``; ``code``)
    │   ├── PeerNotFound, PeerConnectionFailed, HandshakeInvalid, ServerError, ServerIncompatible
    │   ├── HolepunchAborted, CannotHolepunch, HolepunchInvalid, HolepunchProbeTimeout
    │   └── HolepunchDoubleRandomized, RemoteAborted, RemoteNotHolepunching, RemoteNotHolepunchable
    ├── RelayAborted                    relaying failed (hyperdht ``RELAY_ABORTED``)
    └── PairingError                    a relay refused a ``pair`` (``reason``: capacity, bad-token)

Protocol error codes are class attributes (:class:`RemoteError`, :class:`ConnectError` ``code``).
The integer codes carried inside handshake payloads are the enum
:class:`peerdht.hyper.constants.PayloadErrorCode`, not an exception.
Any other exception escaping peerdht is a bug.
"""

from __future__ import annotations

__all__ = [
    "CannotHolepunch",
    "ConnectError",
    "DecodeError",
    "HandshakeInvalid",
    "HolepunchAborted",
    "HolepunchDoubleRandomized",
    "HolepunchInvalid",
    "HolepunchProbeTimeout",
    "InvalidArgument",
    "InvalidArgumentType",
    "LocalProtocolError",
    "NotFound",
    "PairingError",
    "PeerConnectionFailed",
    "PeerDHTError",
    "PeerNotFound",
    "RelayAborted",
    "RemoteAborted",
    "RemoteError",
    "RemoteNotHolepunchable",
    "RemoteNotHolepunching",
    "RemoteProtocolError",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "ServerIncompatible",
    "StreamClosed",
    "StreamError",
    "StreamReset",
    "StreamTimeout",
]


class PeerDHTError(Exception):
    """Base class of every error peerdht raises on purpose."""


class DecodeError(PeerDHTError, ValueError):
    """Untrusted bytes did not parse: truncated, oversized, wrongly typed or out of range."""


class LocalProtocolError(PeerDHTError):
    """The caller misused the API (bad argument or wrong state)."""


class InvalidArgument(LocalProtocolError, ValueError):
    """An argument has a bad value: wrong length (a topic, key or hash that is not 32 bytes), out of range."""


class InvalidArgumentType(LocalProtocolError, TypeError):
    """An argument has a bad type (``str`` where ``bytes`` are needed)."""


class RemoteProtocolError(PeerDHTError):
    """A peer violated the protocol (bad signature, unexpected message, wrong key)."""


class RequestError(PeerDHTError):
    """A DHT request did not succeed."""


class RequestTimeout(RequestError, TimeoutError):
    """No reply arrived after all retries (also a :class:`TimeoutError`)."""


class RemoteError(RequestError):
    """The remote node answered with an error code.

    Codes (dht-rpc ``lib/errors.js`` and hyperdht ``lib/constants.js``; BEP 5/44 for Mainline):
    """

    UNKNOWN_COMMAND = 1
    INVALID_TOKEN = 2
    SEQ_REUSED = 16
    SEQ_TOO_LOW = 17

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        super().__init__(message or f"remote error {code}")


class NotFound(PeerDHTError):
    """A lookup finished without finding what was asked for."""


class StreamError(PeerDHTError):
    """A stream failed."""


class StreamClosed(StreamError):
    """The stream was closed locally and cannot be used."""


class StreamReset(StreamError):
    """The stream was destroyed by the peer or timed out."""


class StreamTimeout(StreamReset, TimeoutError):
    """Nothing arrived from the peer for the stream's timeout: it vanished (killed, unplugged, gone
    offline) without closing. Also a :class:`TimeoutError`."""


# ---------------------------------------------------------------- connect by public key (hyperdht lib/errors.js)


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


# ---------------------------------------------------------------- relays


class RelayAborted(PeerDHTError):
    """Relaying failed (hyperdht ``RELAY_ABORTED``): pairing timed out or the relay went away."""

    code = "RELAY_ABORTED"


class PairingError(PeerDHTError):
    """A relay refused a ``pair`` (``reason``: ``"capacity"``, ``"bad-token"``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
