"""Relay -> direct upgrade of a relayed UDX stream (relay-connection.js ``confirmDirectUpgrade``,
connect.js ``changeRemote``): which streams are still spliced through a blind relay, moving one to the
peer's direct address, and closing the relay connection once both sides have moved.

The relay itself (server, client, pairing) is :mod:`peerdht.aio.relay`; it marks the streams it makes
with :func:`watch_relayed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from peerdht.errors import PeerDHTError

if TYPE_CHECKING:
    from peerdht.aio.relay import Relayed
    from peerdht.aio.udx import UDXStream

log = logging.getLogger(__name__)

Address = tuple[str, int]


async def until_closed(stream: UDXStream, fut: asyncio.Future[Any], timeout: float | None = None) -> bool:
    """Wait for ``fut`` while ``stream`` is open, at most ``timeout`` seconds; True if ``fut`` finished
    first (its result or exception is left in it), False if the stream closed or the time ran out."""
    closed = asyncio.ensure_future(stream.wait_closed())
    try:
        done, _ = await asyncio.wait({fut, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    return fut in done


_upgraders: weakref.WeakKeyDictionary[UDXStream, tuple[Callable[[Address], None], asyncio.Future[None]]] = (
    weakref.WeakKeyDictionary()
)


def watch_relayed(stream: UDXStream, initiate: Callable[[Address], None], started: asyncio.Future[None]) -> None:
    """Mark ``stream`` as relayed (by :func:`peerdht.aio.relay.relayed_udx`): ``initiate(addr)`` starts
    its move to ``addr``, ``started`` resolves once either side has begun moving."""
    _upgraders[stream] = (initiate, started)


def forget_relayed(stream: UDXStream) -> None:
    """``stream`` is moving to a direct path (or gone): no longer relayed. No-op if unknown."""
    _upgraders.pop(stream, None)


def upgrade_relayed(stream: UDXStream, addr: Address) -> bool:
    """Move a stream made by :func:`relayed_udx` (with ``direct_id``) to the peer's direct address
    ``addr`` -- we punched through to it while relayed (connect.js ``onsocket`` -> ``changeRemote``
    + ``confirmDirectUpgrade``). What is in flight is resent there; the peer follows when our packets
    arrive straight from us (a JS peer moves when its own punch connects); the relay connection closes
    :data:`RELAY_LINGER` seconds after the peer is seen on the direct path. Runs in the background.

    Returns:
        False if ``stream`` is not a relayed stream or already moved (nothing done).
    """
    entry = _upgraders.get(stream)
    if entry is None or stream.remote_addr == addr:
        return False
    entry[0](addr)
    return True


def is_relayed(stream: UDXStream) -> bool:
    """Whether ``stream`` is still spliced through a blind relay (not yet moved to a direct path)."""
    return stream in _upgraders


async def wait_direct(stream: UDXStream, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a relayed stream to start moving to a direct path (either
    side's punch succeeded); True if it did (or was never relayed), False on timeout or close."""
    entry = _upgraders.get(stream)
    return entry is None or await until_closed(stream, entry[1], timeout)
UPGRADES: dict[str, int] = {"upgraded": 0, "failed": 0}
"""Relay -> direct upgrades done by this process (counters)."""


async def follow(stream: UDXStream, direct_id: int, addr: Address) -> None:
    """The peer moved again after the upgrade: send to its new address ``addr`` (errors ignored)."""
    with contextlib.suppress(PeerDHTError, OSError, TimeoutError):
        await asyncio.wait_for(stream.change_remote(direct_id, addr, resend=True), 30)


RELAY_LINGER = 5.0
"""Seconds the relay connection stays open after both sides moved to the direct path: packets the
peer sent before its move may still be retransmitted through the relay (libudx keeps their old path)."""


async def move_to_direct(r: Relayed, direct_id: int, addr: Address, peer_direct: asyncio.Future[None]) -> None:
    """Move ``r.stream`` to ``addr`` (connect.js ``changeRemote`` + relay-connection.js
    ``confirmDirectUpgrade``): what is in flight is resent on the direct path; the relay connection
    closes once our data sent before the move is acknowledged and the peer is seen on the direct
    path, after :data:`RELAY_LINGER`. If the peer never moves, the relay stays until the stream closes."""
    stream = r.stream
    try:
        changing = asyncio.ensure_future(stream.change_remote(direct_id, addr, resend=True))
        stream.send_message(b"")  # let the peer see the direct path (confirmDirectUpgrade)
        await asyncio.wait_for(changing, 30)
        if not await until_closed(stream, peer_direct):
            return  # closed while the peer stayed on the relay
    except (PeerDHTError, OSError, TimeoutError) as exc:
        log.debug("relay -> direct upgrade failed: %s", exc)
        UPGRADES["failed"] += 1
        return
    UPGRADES["upgraded"] += 1
    log.debug("stream %d: both sides on %s; closing the relay connection soon", stream.id, addr)
    asyncio.get_running_loop().call_later(RELAY_LINGER, r.close)  # the relay connection is no longer needed
