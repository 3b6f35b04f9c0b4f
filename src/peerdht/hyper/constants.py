"""HyperDHT and dht-rpc protocol constants.

Sources: dht-rpc 6.27 ``lib/commands.js``, ``lib/errors.js``, ``lib/io.js``; hyperdht 6.34
``lib/constants.js``, ``lib/router.js``, ``lib/persistent.js``, ``index.js``;
hypercore-crypto ``namespace()``.
"""

from __future__ import annotations

import warnings
from enum import IntEnum
from typing import Any

from peerdht.secure.keys import namespace
from peerdht.secure.noise import NS_PEER_HANDSHAKE, NS_PEER_HOLEPUNCH

__all__ = [
    "BUMP_MAX_DRIFT",
    "COMMANDS",
    "ERROR",
    "FIREWALL",
    "IMMUTABLE_MAX_AGE",
    "INTERNAL_COMMANDS",
    "MAX_RECORDS_PER_LOOKUP",
    "MAX_RELAY_ADDRESSES",
    "MAX_VALUE_SIZE",
    "MUTABLE_MAX_AGE",
    "NS_ANNOUNCE",
    "NS_MUTABLE_PUT",
    "NS_PEER_HANDSHAKE",
    "NS_PEER_HOLEPUNCH",
    "NS_PLUGIN",
    "NS_UNANNOUNCE",
    "RECORD_CACHE_MAX_SIZE",
    "RECORD_MAX_AGE",
    "Command",
    "Error",
    "Firewall",
    "HandshakeMode",
    "InternalCommand",
    "PayloadErrorCode",
    "namespace",
]


class InternalCommand(IntEnum):
    """dht-rpc internal commands (requests with the ``internal`` flag; ``lib/commands.js``)."""

    PING = 0
    PING_NAT = 1
    FIND_NODE = 2
    DOWN_HINT = 3
    DELAYED_PING = 4


class Command(IntEnum):
    """HyperDHT application commands (requests without the ``internal`` flag; ``lib/constants.js``)."""

    PEER_HANDSHAKE = 0
    PEER_HOLEPUNCH = 1
    FIND_PEER = 2
    LOOKUP = 3
    ANNOUNCE = 4
    UNANNOUNCE = 5
    MUTABLE_PUT = 6
    MUTABLE_GET = 7
    IMMUTABLE_PUT = 8
    IMMUTABLE_GET = 9
    PLUGIN = 10


class Error(IntEnum):
    """Error codes in dht-rpc responses (``lib/errors.js`` + hyperdht ``ERROR`` >= 16)."""

    NONE = 0
    UNKNOWN_COMMAND = 1
    INVALID_TOKEN = 2
    SEQ_REUSED = 16
    SEQ_TOO_LOW = 17


class PayloadErrorCode(IntEnum):
    """``error`` of the Noise and holepunch payloads (hyperdht ``ERROR`` < 16). Not an exception: the
    connect errors a caller catches are :class:`peerdht.errors.ConnectError` and its subclasses."""

    NONE = 0
    ABORTED = 1
    VERSION_MISMATCH = 2
    TRY_LATER = 3


class Firewall(IntEnum):
    """A node's NAT/firewall class as reported in payloads (``FIREWALL``)."""

    UNKNOWN = 0
    OPEN = 1
    CONSISTENT = 2
    RANDOM = 3


class HandshakeMode(IntEnum):
    """``mode`` of ``handshake`` and ``holepunch`` messages (``lib/router.js``)."""

    FROM_CLIENT = 0
    FROM_SERVER = 1
    FROM_RELAY = 2
    FROM_SECOND_RELAY = 3
    REPLY = 4


# Short aliases shaped like the JS objects.
INTERNAL_COMMANDS = InternalCommand
COMMANDS = Command
ERROR = Error
FIREWALL = Firewall


NS_ANNOUNCE, NS_UNANNOUNCE, NS_MUTABLE_PUT, NS_PLUGIN = namespace(
    "hyperswarm/dht", (Command.ANNOUNCE, Command.UNANNOUNCE, Command.MUTABLE_PUT, Command.PLUGIN)
)
"""32-byte signing/prologue namespaces of ``lib/constants.js`` ``NS``."""

MAX_RECORDS_PER_LOOKUP = 20
"""Peers returned per LOOKUP reply (``persistent.js onlookup``: ``records.get(k, 20)``)."""

MAX_RELAY_ADDRESSES = 3
"""Relay addresses kept per announced peer (``persistent.js onannounce``)."""

MAX_VALUE_SIZE = 65_000
"""Bytes of a mutable or immutable value that peerdht sends. hyperdht sets no limit of its own, but a
request and its reply are one UDP datagram each (65,507 bytes of payload at most; the message header,
signature, token and up to 20 closer nodes take the rest). Measured on loopback: 65,318 bytes still
round-trip through a 5-node testnet."""

RECORD_CACHE_MAX_SIZE = 65536
"""Default max entries of the record, refresh, bump and router caches (``index.js``)."""

RECORD_MAX_AGE = 20 * 60.0
"""Seconds an announce record, refresh, bump and router forward live (``index.js``: 20 min)."""

MUTABLE_MAX_AGE = 48 * 60 * 60.0
"""Seconds a mutable value lives (``index.js``: 48 h; cache size ``RECORD_CACHE_MAX_SIZE // 2``)."""

IMMUTABLE_MAX_AGE = 48 * 60 * 60.0
"""Seconds an immutable value lives (``index.js``: 48 h; cache size ``RECORD_CACHE_MAX_SIZE // 2``)."""

BUMP_MAX_DRIFT = 60.0
"""Seconds a bump may lie in the future (``persistent.js MAX_BUMP_DRIFT`` = 60 000 ms)."""


def __getattr__(name: str) -> Any:
    # ``ConnectError`` was this module's name of :class:`PayloadErrorCode`; it clashed with the exception
    # :class:`peerdht.errors.ConnectError`, so it is only kept as a deprecated alias.
    if name == "ConnectError":
        warnings.warn(
            "peerdht.hyper.constants.ConnectError is PayloadErrorCode (the exception is peerdht.errors.ConnectError)",
            DeprecationWarning,
            stacklevel=2,
        )
        return PayloadErrorCode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
