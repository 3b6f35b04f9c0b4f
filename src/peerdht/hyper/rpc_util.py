"""Small helpers of the dht-rpc node (:mod:`peerdht.hyper.rpc`): memoised node ids, a no-op callback,
argument checks. Stateless apart from the bounded id cache.
"""

from __future__ import annotations

from peerdht.errors import LocalProtocolError
from peerdht.hyper.crypto import node_id

Address = tuple[str, int]

_ID_CACHE: dict[Address, bytes] = {}
_ID_CACHE_MAX = 1 << 14


def cached_node_id(host: str, port: int) -> bytes:
    """``node_id(host, port)`` (32 bytes, dht-rpc ``peer.id``) memoised: ids are hashed for every message
    and closer node. The cache holds at most 16,384 addresses (cleared when full)."""
    key = (host, port)
    nid = _ID_CACHE.get(key)
    if nid is None:
        if len(_ID_CACHE) >= _ID_CACHE_MAX:
            _ID_CACHE.clear()
        nid = _ID_CACHE[key] = node_id(host, port)
    return nid


def noop(*_: object) -> None:
    """A callback that ignores its arguments."""
    return None


def check32(b: bytes, what: str) -> None:
    """Raise :class:`LocalProtocolError` unless ``b`` is 32 bytes long."""
    if len(b) != 32:
        raise LocalProtocolError(f"{what} must be 32 bytes, got {len(b)}")
