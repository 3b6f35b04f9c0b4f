"""Relay -> direct upgrade of a relayed UDX stream (relay-connection.js ``confirmDirectUpgrade``,
connect.js ``changeRemote``): which streams are still spliced through a blind relay, moving one to the
peer's direct address, and closing the relay connection once both sides have moved.

The relay itself (server, client, pairing) is :mod:`peerdht.aio.hyperdht.relay`; it marks the streams it makes
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
from peerdht.holepunch.upgrade import MOVE_TIMEOUT, DirectMove, FallBackToRelay, RelayNoLongerNeeded

if TYPE_CHECKING:
    from peerdht.aio.hyperdht.relay import Relayed
    from peerdht.aio.transport.udx import UDXStream

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
    """Mark ``stream`` as relayed (by :func:`peerdht.aio.hyperdht.relay.relayed_udx`): ``initiate(addr)`` starts
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
UPGRADES: dict[str, int] = {"upgraded": 0, "failed": 0, "fell_back": 0}
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
    ``confirmDirectUpgrade``), driven by a :class:`~peerdht.holepunch.upgrade.DirectMove`: what is in
    flight is resent on the direct path, then one empty message lets the peer see it. Once the peer
    acknowledged a packet sent there and is seen there itself, the relay connection closes after
    :data:`RELAY_LINGER`. If what was sent on the direct path stays unacknowledged for
    :data:`~peerdht.holepunch.upgrade.MOVE_TIMEOUT` seconds, the stream moves back to the relay (still
    connected) and stays there. If the peer never moves, the relay stays until the stream closes."""
    stream = r.stream
    loop = asyncio.get_running_loop()
    move = DirectMove()
    relay_side = (stream.remote_id, stream.remote_addr)
    changing = asyncio.ensure_future(stream.change_remote(direct_id, addr, resend=True))
    closed = asyncio.ensure_future(stream.wait_closed())
    try:
        await asyncio.sleep(0)  # the move applies first: the message below goes on the direct path
        if stream.is_closing():
            return
        stream.send_message(b"")  # let the peer see the direct path (confirmDirectUpgrade)
        move.moved(loop.time(), stream.send_progress()[0])
        while (when := move.get_timer()) is not None or not peer_direct.done():
            waits: set[asyncio.Future[Any]] = {closed} | ({peer_direct} if not peer_direct.done() else set())
            await asyncio.wait(waits, timeout=None if when is None else max(0.0, when - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                return
            now = loop.time()
            move.progress(now, *stream.send_progress())
            if peer_direct.done():
                move.peer_seen(now)
            move.handle_timer(now)
            ev = move.next_event()
            if isinstance(ev, FallBackToRelay):
                await _fall_back(stream, relay_side)
                return
            if isinstance(ev, RelayNoLongerNeeded):
                UPGRADES["upgraded"] += 1
                log.debug("stream %d: both sides on %s; closing the relay connection soon", stream.id, addr)
                loop.call_later(RELAY_LINGER, r.close)  # the relay connection is no longer needed
                return
    except (PeerDHTError, OSError) as exc:
        log.debug("relay -> direct upgrade failed: %s", exc)
        UPGRADES["failed"] += 1
    finally:
        changing.cancel()
        closed.cancel()


async def _fall_back(stream: UDXStream, relay_side: tuple[int | None, Address | None]) -> None:
    """The direct path carried nothing: send through the relay again (what is in flight is resent)."""
    remote_id, relay_addr = relay_side
    UPGRADES["fell_back"] += 1
    log.debug("stream %d: no progress on the direct path; back to the relay at %s", stream.id, relay_addr)
    if remote_id is None or relay_addr is None:
        return
    with contextlib.suppress(PeerDHTError, OSError, TimeoutError):
        await asyncio.wait_for(stream.change_remote(remote_id, relay_addr, resend=True), MOVE_TIMEOUT)
