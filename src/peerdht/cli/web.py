"""``peerdht web``: a Mainline node that browsers join (the page, KRPC over WebSocket and WebRTC).

``peerdht web --host H --port P [--udp-port U] [--size N | --bootstrap UDP_HOST:PORT] [--ice-server URL ...]
[--json]`` prints, as its first stdout line (flushed at once), ``{"url": "http://H:PORT/", "ws":
"ws://H:PORT/ws", "tracker": "ws://H:PORT/tracker", "bootstrap": ["UDP_HOST:PORT", ...]}`` with the real
ports: the page, the WebSocket, the WebTorrent tracker for P2PT rooms (``room.html``, ``peerdht room``), and
UDP Mainline nodes to bootstrap from (this node's own UDP socket first). Without ``--bootstrap`` a local
Mainline testnet of ``--size`` nodes runs behind it. Runs until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from peerdht.cli.common import (
    CLIError,
    Subparsers,
    add_json_arg,
    emit,
    fmt_addr,
    parse_hostport,
    run,
    status,
    wait_forever,
)

INSTALL_HINT = "the web node needs the [web] extra: pip install 'peerdht[web]' (aiohttp, aiortc); in a source checkout: bash scripts/setup.sh web"


def _bind_port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value!r}")
    return int(value)


def web_bind(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0: any free port) for ``peerdht mainline node --web``."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host, int(port_s))


def register(subparsers: Subparsers) -> None:
    """Add ``peerdht web``."""
    p = subparsers.add_parser(
        "web",
        help="run a Mainline node that browsers join: the page, KRPC over WebSocket/WebRTC (issue 9)",
        description="Serve the page at http://HOST:PORT/, KRPC over WebSocket at /ws, webtorrent-dht's "
        "HTTP bootstrap at POST /, and a UDP Mainline node behind them.",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP + WebSocket bind address")
    p.add_argument("--port", type=_bind_port, default=0, help="HTTP port (0: any free port)")
    p.add_argument("--udp-host", default=None, help="UDP Mainline bind address (default: --host)")
    p.add_argument("--udp-port", type=_bind_port, default=0, help="UDP Mainline port (0: any free port)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--size", type=int, default=None,
                       help="run a local Mainline testnet of N nodes behind it (the default, N=5, without --bootstrap)")
    group.add_argument("--bootstrap", metavar="HOST:PORT", action="append", type=parse_hostport, default=[],
                       help="a UDP Mainline node to join through (repeatable)")
    p.add_argument("--ice-server", metavar="URL", action="append", default=[],
                   help="a STUN/TURN server for WebRTC (repeatable; none by default)")
    p.add_argument("--advertise-host", default=None, help="the host to print in the URLs (behind a proxy)")
    add_json_arg(p)
    p.set_defaults(func=cmd_web)



def cmd_web(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise CLIError(INSTALL_HINT, 1) from exc
    from peerdht.aio.mainline import MainlineTestnet
    from peerdht.aio.web.node import WebNode

    size = args.size if args.size is not None else (0 if args.bootstrap else 5)
    if args.size is not None and args.size < 1:
        raise CLIError("--size must be at least 1", 2)

    async def main() -> int:
        testnet: Any = None
        boot = list(args.bootstrap)
        if size:
            testnet = await MainlineTestnet.create(size, host=args.udp_host or args.host)
            boot = list(testnet.bootstrap)
        node = WebNode(host=args.host, port=args.port, udp_host=args.udp_host, udp_port=args.udp_port,
                       bootstrap=boot, ice_servers=args.ice_server, advertise_host=args.advertise_host)
        try:
            await node.open()
            emit(args, {
                "url": node.url,
                "ws": node.ws_url,
                "tracker": node.tracker_url,
                "bootstrap": [fmt_addr(node.udp_address())] + [fmt_addr(a) for a in boot],
                "id": node.node_id.hex(),
            }, f"web node {node.node_id.hex()}: page {node.url} websocket {node.ws_url} "
               f"udp {fmt_addr(node.udp_address())}")
            status(f"udp mainline: {len(node.dht.core.table)} nodes in the routing table")
            await wait_forever()
        finally:
            await node.close()
            if testnet is not None:
                with contextlib.suppress(Exception):
                    await testnet.close()
        return 0

    return run(main())


def cmd_node_web(args: argparse.Namespace, boot: list[tuple[str, int]]) -> int:
    """``peerdht mainline node --web HOST:PORT``: the long-lived UDP node plus the browser endpoints."""
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise CLIError(INSTALL_HINT, 1) from exc
    from peerdht.aio.web.node import WebNode

    web_host, web_port = args.web

    async def main() -> int:
        node = WebNode(host=web_host, port=web_port, udp_host=args.host, udp_port=args.port, bootstrap=boot,
                       state_file=args.state, read_only=args.read_only)
        try:
            await node.open()
            host, port = node.udp_address()
            emit(args, {
                "host": host,
                "port": port,
                "id": node.node_id.hex(),
                "bootstrap": [fmt_addr(a) for a in boot],
                "url": node.url,
                "ws": node.ws_url,
                "tracker": node.tracker_url,
            }, f"mainline node {node.node_id.hex()} listening on {fmt_addr((host, port))}, page {node.url}")
            status(f"udp mainline: {len(node.dht.core.table)} nodes in the routing table")
            await wait_forever()
        finally:
            await node.close()
        return 0

    return run(main())
