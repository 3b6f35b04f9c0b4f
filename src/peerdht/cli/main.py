"""``peerdht``: the command line entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from peerdht import __version__
from peerdht.cli.common import CLIError
from peerdht.errors import PeerDHTError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerdht",
        description="Find peers through a DHT and talk to them over end-to-end encrypted connections. "
        "HyperDHT commands are at the top level; Mainline (BitTorrent) commands under `peerdht mainline`.",
    )
    parser.add_argument("--version", action="version", version=f"peerdht {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from peerdht.cli import hyper, mainline, pipe

    hyper.register(sub)
    pipe.register(sub)
    mainline.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
        return code
    except CLIError as exc:
        sys.stderr.write(f"peerdht: {exc}\n")
        if exc.code == 2:
            parser.print_usage(sys.stderr)
        return exc.code
    except PeerDHTError as exc:
        sys.stderr.write(f"peerdht: {type(exc).__name__}: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"peerdht: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
