"""Runs a sans-IO punch session (:mod:`peerdht.holepunch.session`) on a HyperDHT node's sockets.

The runner only moves bytes: probes the session wants sent go out through the node's raw-stream pool,
probes arriving on any of its sockets go in, the PINGs and PEER_HOLEPUNCH rounds it asks for run as
requests of the node's RPC core (their replies go back in), birthday sockets are bound on request,
and its timer is one ``loop.call_at``. Outcome events (:class:`~peerdht.holepunch.events.Connected`,
``PunchFailed``, ``RoundAnswered``, ``PunchStarted``) go to the owner's ``on_event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from peerdht.errors import HolepunchAborted, PeerDHTError
from peerdht.holepunch.events import Event, PingWanted, PunchFailed, RoundWanted, SocketWanted
from peerdht.hyper.constants import Command, InternalCommand

if TYPE_CHECKING:
    from peerdht.aio.hyperdht import HyperDHT
    from peerdht.holepunch.client import ClientPunch
    from peerdht.holepunch.session import PunchSession

log = logging.getLogger(__name__)

Address = tuple[str, int]


class PunchRunner:
    """Drives one punch ``session`` for ``dht``; ``target`` is the server's target (32 bytes, the hash
    of its public key) for PEER_HOLEPUNCH requests. Call :meth:`start`, then :meth:`close` when done
    (idempotent; it cancels what is in flight and closes the session)."""

    def __init__(
        self,
        dht: HyperDHT,
        session: PunchSession,
        on_event: Callable[[Event], None],
        target: bytes = b"",
        *,
        probes: bool = True,
    ) -> None:
        self.dht = dht
        self.session = session
        self.on_event = on_event
        self.target = target
        self.raws = dht.raw_streams()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._listening = False
        self._probes = probes

    def start(self) -> None:
        """Start the session. With ``probes`` (the client side) every probe on the node's sockets goes
        to it; without (the server side, one runner per pending handshake) only once it asked for
        birthday sockets: a server's sessions need no other probe, and a flood of pending handshakes
        must not make every probe cost one call per handshake."""
        if self._probes:
            self._listen()
        self.session.start(self._loop.time())
        self.pump()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._listening:
            self.raws.probe_listeners.remove(self._on_probe)
            self._listening = False
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        self.session.close(self._loop.time())
        self._send()

    # ------------------------------------------------------------------ pumping

    def pump(self) -> None:
        """Send what the session wants sent, run what it asks for, pass on its outcomes, re-arm its timer."""
        if self.closed:
            return
        self._send()
        while (ev := self.session.next_event()) is not None:
            if isinstance(ev, PingWanted):
                self._spawn(self._ping(ev.addr))
            elif isinstance(ev, RoundWanted) and ev.abort:
                self.dht.spawn(self._abort(ev))  # the node's task: it outlives this runner
            elif isinstance(ev, RoundWanted):
                self._spawn(self._round(ev))
            elif isinstance(ev, SocketWanted):
                self._listen()
                self._spawn(self._open_socket())
            else:
                self.on_event(ev)
            if self.closed:
                return
        self._arm()

    def _send(self) -> None:
        for probe in self.session.datagrams_to_send():
            with contextlib.suppress(OSError, KeyError, PeerDHTError):
                self.raws.send_probe(probe.socket, probe.addr, probe.ttl)

    def _listen(self) -> None:
        if not self._listening:
            self._listening = True
            self.raws.probe_listeners.append(self._on_probe)

    def _arm(self) -> None:
        when = self.session.get_timer()
        if self._timer is not None and (when is None or self._timer.when() != when):
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._guarded(self.session.handle_timer, self._loop.time())

    def _on_probe(self, addr: Address, socket: int) -> None:
        self._guarded(self.session.receive_datagram, b"\x00", addr, socket, self._loop.time())

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a session input from a socket or timer callback: a bug in the session ends this punch
        (reported as :class:`~peerdht.holepunch.events.PunchFailed`), never the socket's reader."""
        if self.closed:
            return
        try:
            fn(*args)
            self.pump()
        except Exception:
            log.exception("punch session failed")
            self.close()
            self.on_event(PunchFailed(error=HolepunchAborted("internal error in the punch session")))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the I/O a session asks for

    async def _ping(self, addr: Address) -> None:
        dht, socket = self.dht, self.session.socket
        try:
            reply = await dht.run_op(
                lambda now: dht.core.request(addr, InternalCommand.PING, now, internal=True, retries=0, socket=socket)
            )
        except PeerDHTError:
            self._guarded(self.session.ping_failed, self._loop.time())
        else:
            self._guarded(self.session.ping_answered, reply.to, reply.from_addr, self._loop.time())

    def _request_round(self, ev: RoundWanted) -> Any:
        dht, socket, target = self.dht, self.session.socket, self.target
        return dht.run_op(
            lambda now: dht.core.request(
                ev.relay, Command.PEER_HOLEPUNCH, now, target=target, value=ev.value, socket=socket
            )
        )

    async def _round(self, ev: RoundWanted) -> None:
        session: ClientPunch = self.session  # type: ignore[assignment]
        try:
            reply = await self._request_round(ev)
        except PeerDHTError as exc:
            self._guarded(session.round_failed, str(exc), self._loop.time())
        else:
            self._guarded(session.round_reply, reply.message.value, reply.to, reply.from_addr, self._loop.time())

    async def _abort(self, ev: RoundWanted) -> None:
        with contextlib.suppress(PeerDHTError):
            await self._request_round(ev)

    async def _open_socket(self) -> None:
        try:
            index = await self.raws.add_socket()
        except OSError as exc:
            log.debug("birthday socket: %s", exc)
            self._guarded(self.session.socket_failed, self._loop.time())
        else:
            if self.closed:
                self.raws.close_socket(index)
                return
            self._guarded(self.session.socket_opened, index, self._loop.time())
