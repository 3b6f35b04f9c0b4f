"""Node ids and the XOR metric (Kademlia; BEP 5; ``kademlia-routing-table/index.js``).

Ids are big-endian byte strings of one fixed length per profile: 32 bytes for HyperDHT
(dht-rpc), 20 bytes for Mainline (BEP 5). Both arguments of every function here must have the
same length; a mismatch is a caller bug and raises :class:`~peerdht.errors.LocalProtocolError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peerdht.errors import LocalProtocolError

if TYPE_CHECKING:
    import random

__all__ = ["common_prefix_length", "distance", "id_to_int", "random_id_in_bucket"]


def id_to_int(a: bytes) -> int:
    """The id ``a`` as a big-endian unsigned integer (the form the XOR metric works on)."""
    return int.from_bytes(a, "big")


def _check(a: bytes, b: bytes) -> None:
    if len(a) != len(b):
        raise LocalProtocolError(f"ids of different lengths: {len(a)} and {len(b)} bytes")


def distance(a: bytes, b: bytes) -> int:
    """The Kademlia XOR distance between two ids.

    Args:
        a: an id (``bytes``, 20 or 32 long).
        b: an id of the same length.

    Returns:
        ``int(a) XOR int(b)`` with both read big-endian; 0 iff ``a == b``. Smaller is closer.

    Raises:
        LocalProtocolError: the ids have different lengths.
    """
    _check(a, b)
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def common_prefix_length(a: bytes, b: bytes) -> int:
    """The number of leading bits ``a`` and ``b`` share.

    This is the row index of ``kademlia-routing-table`` (``_diff``) and the bucket depth of BEP 5.

    Args:
        a: an id (``bytes``).
        b: an id of the same length.

    Returns:
        An int in ``[0, 8 * len(a)]``; ``8 * len(a)`` iff ``a == b``.

    Raises:
        LocalProtocolError: the ids have different lengths.
    """
    _check(a, b)
    return 8 * len(a) - (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length()


def random_id_in_bucket(local_id: bytes, index: int, rng: random.Random) -> bytes:
    """A random id sharing exactly ``index`` leading bits with ``local_id`` (for bucket refresh).

    BEP 5: "a bucket is refreshed by picking a random ID in the range of the bucket and
    performing a find_nodes search on it". Bucket ``index`` of :class:`RoutingTable` holds the ids
    whose common prefix with the local id is ``index`` bits long (the last bucket of a split table
    also holds longer prefixes; an id with exactly ``index`` bits falls into it as well).

    Args:
        local_id: the local node id (``bytes``, 20 or 32 long).
        index: shared-prefix length in bits, ``0 <= index <= 8 * len(local_id)``
            (``8 * len(local_id)`` returns ``local_id`` itself).
        rng: the injected random source.

    Returns:
        ``bytes`` of ``len(local_id)``: bits ``[0, index)`` equal ``local_id``'s, bit ``index``
        differs, the rest are random.

    Raises:
        LocalProtocolError: ``index`` is out of range.
    """
    nbits = 8 * len(local_id)
    if not 0 <= index <= nbits:
        raise LocalProtocolError(f"bucket index {index} out of range [0, {nbits}]")
    if index == nbits:
        return local_id
    local = int.from_bytes(local_id, "big")
    shift = nbits - index - 1  # position of the first differing bit, counted from the right
    flip = 1 << shift
    prefix = (local >> (shift + 1)) << (shift + 1)
    value = prefix | (~local & flip) | (rng.getrandbits(shift) if shift else 0)
    return value.to_bytes(len(local_id), "big")
