"""peerdht: find peers through a DHT and talk to them over end-to-end encrypted connections.

See ``DESIGN.md`` in the shared notes for the architecture: sans-IO cores under
``peerdht.encoding``, ``peerdht.kademlia``, ``peerdht.hyper``, ``peerdht.mainline``,
``peerdht.secure`` and ``peerdht.udx``; all I/O in ``peerdht.aio``.
"""

from __future__ import annotations

__version__ = "0.1.0"
