"""The one exception tree of peerdht.

Errors say who is to blame (as h11 and trio do)::

    PeerDHTError
    ├── DecodeError            untrusted bytes did not parse (a peer's fault; the datagram is dropped)
    ├── LocalProtocolError     the API was misused by the caller (bad argument, wrong state)
    ├── RemoteProtocolError    a peer broke the protocol (bad signature, wrong key, bad frame)
    ├── RequestError           a DHT request failed
    │   ├── RequestTimeout     no reply after all retries
    │   └── RemoteError        the peer answered with an error code (``code`` attribute)
    ├── NotFound               a lookup finished without the value or peer asked for
    └── StreamError            a stream failed
        ├── StreamClosed       used after close() (local)
        └── StreamReset        destroyed by the peer or by a timeout (remote)

Protocol error codes are class attributes of :class:`RemoteError`.
Any other exception escaping peerdht is a bug.
"""

from __future__ import annotations


class PeerDHTError(Exception):
    """Base class of every error peerdht raises on purpose."""


class DecodeError(PeerDHTError, ValueError):
    """Untrusted bytes did not parse: truncated, oversized, wrongly typed or out of range."""


class LocalProtocolError(PeerDHTError):
    """The caller misused the API (bad argument or wrong state)."""


class RemoteProtocolError(PeerDHTError):
    """A peer violated the protocol (bad signature, unexpected message, wrong key)."""


class RequestError(PeerDHTError):
    """A DHT request did not succeed."""


class RequestTimeout(RequestError):
    """No reply arrived after all retries."""


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
