"""``peerdht tracker`` and ``peerdht room``: P2PT rooms over WebTorrent trackers (issue 11).

``peerdht tracker --host H --port P [--json]`` runs a WebTorrent WebSocket tracker (npm bittorrent-tracker's
protocol) and prints, as its first stdout line (flushed at once), ``{"url": "ws://H:REALPORT", "stats":
"http://H:REALPORT/stats"}``; ``/stats`` is an HTML page and ``/stats.json`` the same figures as JSON.

``peerdht room IDENTIFIER --tracker URL [--tracker URL ...] [--json] [--echo]`` joins the P2PT room
``IDENTIFIER`` (the same room JS p2pt joins with that identifier): ``peer joined <40-hex id>`` / ``peer left
<id>`` and tracker warnings go to stderr (with ``--json`` too); each stdin line is sent as a new message to
every connected peer (replies are not awaited; they arrive like any message); every message received is
printed on stdout, as ``<peer id>: <text>`` (control characters escaped) or with ``--json`` as ``{"peer",
"msg"}`` lines (``msg`` is the JSON value when it was sent as JSON). ``--echo`` answers every message with
``echo:`` + the message as a P2PT response (same id, so the sender's ``send`` resolves with it). Runs until
interrupted (end of stdin does not leave the room).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any

from peerdht.cli.common import CLIError, Subparsers, add_json_arg, emit, run, status, wait_forever

INSTALL_HINT = "rooms need the [web] extra: pip install 'peerdht[web]' (aiohttp, aiortc); in a source checkout: bash scripts/setup.sh web"


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value!r}")
    return int(value)


def _tracker_url(value: str) -> str:
    if not value.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"expected a ws:// or wss:// URL, got {value!r}")
    return value


def register(subparsers: Subparsers) -> None:
    """Add ``peerdht tracker`` and ``peerdht room``."""
    p = subparsers.add_parser(
        "tracker",
        help="run a WebTorrent WebSocket tracker (signalling for P2PT rooms and WebTorrent)",
        description="A WebTorrent WebSocket tracker compatible with npm bittorrent-tracker clients and p2pt. "
        "Prints {\"url\": \"ws://HOST:PORT\", \"stats\": ...} first; GET /stats (HTML) and /stats.json.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=_port, default=0, help="TCP port (0: any free port)")
    p.add_argument("--interval", type=float, default=120.0, help="announce interval told to clients, seconds")
    p.add_argument("--max-peers", type=int, default=1000, help="peers per swarm")
    add_json_arg(p)
    p.set_defaults(func=cmd_tracker)

    r = subparsers.add_parser(
        "room",
        help="join a P2PT room: chat over WebRTC with browsers and other peers",
        description="Join the P2PT room IDENTIFIER through WebTorrent trackers. Stdin lines go to every peer; "
        "messages received go to stdout; peers joining/leaving to stderr.",
    )
    r.add_argument("identifier", metavar="IDENTIFIER", help="the room's name (p2pt identifier)")
    r.add_argument("--tracker", metavar="URL", action="append", type=_tracker_url, default=[], required=True,
                   help="a WebSocket tracker (repeatable; all are used at once)")
    r.add_argument("--echo", action="store_true", help="answer every message with 'echo:' + the message")
    r.add_argument("--ice-server", metavar="URL", action="append", default=[],
                   help="a STUN/TURN server for WebRTC (repeatable; none by default)")
    add_json_arg(r)
    r.set_defaults(func=cmd_room)


def _need_web() -> None:
    try:
        import aiohttp  # noqa: F401
        import aiortc  # noqa: F401
    except ImportError as exc:
        raise CLIError(INSTALL_HINT, 1) from exc


def cmd_tracker(args: argparse.Namespace) -> int:
    _need_web()
    from peerdht.aio.rooms.tracker import TrackerServer

    async def main() -> int:
        server = TrackerServer(host=args.host, port=args.port, interval=args.interval, max_peers=args.max_peers)
        try:
            await server.start()
        except OSError as exc:
            raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        try:
            stats = server.url.replace("ws://", "http://", 1) + "/stats"
            emit(args, {"url": server.url, "stats": stats}, f"tracker {server.url} (stats: {stats})")
            await wait_forever()
        finally:
            await server.close()
        return 0

    return run(main())


def _printable(text: str) -> str:
    """A peer's text with control characters escaped (a peer must not drive the terminal)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def cmd_room(args: argparse.Namespace) -> int:
    _need_web()
    from peerdht.aio.rooms.room import Message, PeerClose, PeerConnect, Room, TrackerConnect, TrackerWarning

    async def main() -> int:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:  # a daemon thread: a blocked read never holds up exit
            for raw in sys.stdin.buffer:
                loop.call_soon_threadsafe(lines.put_nowait, raw.decode("utf-8", "replace").rstrip("\r\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, name="stdin", daemon=True).start()

        async with Room(args.identifier, args.tracker, ice_servers=args.ice_server) as room:
            status(f"joined room {args.identifier!r} as {room.id} via {', '.join(args.tracker)}")

            async def events() -> None:
                async for event in room:
                    if isinstance(event, PeerConnect):
                        status(f"peer joined {event.peer.id}")
                    elif isinstance(event, PeerClose):
                        status(f"peer left {event.peer.id}")
                    elif isinstance(event, TrackerWarning):
                        status(f"tracker warning {event.url}: {_printable(event.reason)}")
                    elif isinstance(event, TrackerConnect):
                        if args.verbose:
                            status(f"tracker {event.url}: connected ({event.connected}/{event.total})")
                    elif isinstance(event, Message):
                        _print_message(args, event)
                        if args.echo:
                            text = event.msg if isinstance(event.msg, str) else json.dumps(event.msg)
                            try:
                                await event.respond("echo:" + text)
                            except Exception as exc:  # the peer left meanwhile
                                status(f"could not answer {event.peer.id}: {exc}")

            async def stdin() -> None:
                while (line := await lines.get()) is not None:
                    if not await room.broadcast(line):
                        status("no peers in the room yet; line not sent")

            tasks = [asyncio.create_task(events()), asyncio.create_task(stdin())]
            try:
                await wait_forever()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return 0

    return run(main())


def _print_message(args: argparse.Namespace, event: Any) -> None:
    if args.json:
        sys.stdout.write(json.dumps({"peer": event.peer.id, "msg": event.msg}) + "\n")
    else:
        text = event.msg if isinstance(event.msg, str) else json.dumps(event.msg)
        sys.stdout.write(f"{event.peer.id}: {_printable(text)}\n")
    sys.stdout.flush()
