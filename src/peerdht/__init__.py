"""peerdht: find peers through a DHT and talk to them over end-to-end encrypted connections.

The public API is flat::

    from peerdht import HyperDHT, MainlineDHT, KeyPair, Testnet, MainlineTestnet, PeerDHTError

* :class:`HyperDHT` / :class:`Testnet`: a HyperDHT node (wire-compatible with npm ``hyperdht``) and a
  local in-process network of them; :class:`MainlineDHT` / :class:`MainlineTestnet` the same for the
  BitTorrent Mainline DHT (BEP 5/32/42/43/44/51). All four are closed with ``close()`` (``async with``).
* :class:`Server` and :class:`SecretStream`: a HyperDHT server's accepting side and the encrypted stream
  that ``HyperDHT.connect()`` and a server hand out.
* :class:`WebNode`: a Mainline node that browsers join (KRPC over WebSocket and WebRTC, the page it serves);
  :class:`Room`: a P2PT room (peers meet through WebTorrent trackers, talk over WebRTC).
* :class:`KeyPair`: an Ed25519 key pair (``KeyPair.from_seed(seed32)`` equals JS ``DHT.keyPair(seed)``);
  ``HyperDHT.hash(data)`` is BLAKE2b-256, the hash HyperDHT topics use.
* the error tree of :mod:`peerdht.errors` (``PeerDHTError`` and below).

Names are imported on first use, so ``import peerdht`` stays cheap. The package (architecture: ``DESIGN.md``
in the shared notes):

* sans-IO cores (bytes in, bytes and events out, time passed in as ``now``): :mod:`peerdht.encoding`
  (compact-encoding, bencode), :mod:`peerdht.kademlia` (routing table, lookup engine, request table, stores,
  tokens and rate limits shared by both DHTs), :mod:`peerdht.hyper` (dht-rpc and HyperDHT: node, records,
  handshake router), :mod:`peerdht.mainline` (KRPC, the BEPs), :mod:`peerdht.holepunch` (NAT classification,
  holepunch payloads, punch strategies), :mod:`peerdht.relay` (blind-relay over protomux),
  :mod:`peerdht.secure` (Noise, secret-stream), :mod:`peerdht.udx` (reliable UDP streams),
  :mod:`peerdht.tracker` (WebTorrent trackers, P2PT framing) and :mod:`peerdht.web` (the browser overlay;
  ``web/static`` holds the page and browser node a :class:`WebNode` serves);
* :mod:`peerdht.aio`: all I/O (asyncio sockets and timers, aiohttp, aiortc); :mod:`peerdht.cli`: the
  ``peerdht`` command;
* :mod:`peerdht.keys` (:class:`KeyPair`), :mod:`peerdht.errors` (the one error tree), :mod:`peerdht.rooms`
  (:class:`Room` and its events);
* :mod:`peerdht.testing`: :class:`~peerdht.testing.FakeNet` (a seeded network with a fake clock for sans-IO
  cores) and a soak simulation. The root-only network-namespace tooling (NAT lab, delay line, attack tools)
  is not installed: it lives in ``tools/`` at the repository root.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from peerdht import _build

_build.install_source_finder()  # PEERDHT_PURE_PYTHON=1, or a compiled module edited since its build

from peerdht import errors as _errors  # noqa: E402

__version__ = "0.1.0"

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.aio.hyperdht.secretstream import SecretStream
    from peerdht.aio.hyperdht.server import Server
    from peerdht.aio.hyperdht.testnet import Testnet
    from peerdht.aio.mainline import MainlineDHT, MainlineTestnet
    from peerdht.aio.rooms.room import Room
    from peerdht.aio.web.node import WebNode
    from peerdht.errors import (
        ConnectError,
        DecodeError,
        InvalidArgument,
        InvalidArgumentType,
        LocalProtocolError,
        NotFound,
        PairingError,
        PeerConnectionFailed,
        PeerDHTError,
        PeerNotFound,
        RelayAborted,
        RemoteError,
        RemoteProtocolError,
        RequestError,
        RequestTimeout,
        StreamClosed,
        StreamError,
        StreamReset,
    )
    from peerdht.keys import KeyPair

_LAZY: dict[str, str] = {
    "HyperDHT": "peerdht.aio.hyperdht.dht",
    "Testnet": "peerdht.aio.hyperdht.testnet",
    "MainlineDHT": "peerdht.aio.mainline",
    "MainlineTestnet": "peerdht.aio.mainline",
    "SecretStream": "peerdht.aio.hyperdht.secretstream",
    "Server": "peerdht.aio.hyperdht.server",
    "KeyPair": "peerdht.keys",
    "WebNode": "peerdht.aio.web.node",
    "Room": "peerdht.aio.rooms.room",
}

__all__ = [
    "ConnectError",
    "DecodeError",
    "HyperDHT",
    "InvalidArgument",
    "InvalidArgumentType",
    "KeyPair",
    "LocalProtocolError",
    "MainlineDHT",
    "MainlineTestnet",
    "NotFound",
    "PairingError",
    "PeerConnectionFailed",
    "PeerDHTError",
    "PeerNotFound",
    "RelayAborted",
    "RemoteError",
    "RemoteProtocolError",
    "RequestError",
    "RequestTimeout",
    "Room",
    "SecretStream",
    "Server",
    "StreamClosed",
    "StreamError",
    "StreamReset",
    "Testnet",
    "WebNode",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in __all__ and hasattr(_errors, name):
        return getattr(_errors, name)
    raise AttributeError(f"module 'peerdht' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
