"""``peerdht``: the command line entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from peerdht import __version__
from peerdht.cli.common import EXIT_CODES, CLIError
from peerdht.errors import PeerDHTError, RequestTimeout


class _VersionAction(argparse.Action):
    """``--version``: ``peerdht 0.1.0 (compiled with mypyc: peerdht.kademlia.lookup, ...)`` or ``(pure Python)``;
    works out the build only when asked (it imports the compiled modules)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from peerdht import _build

        compiled = _build.compiled_modules()
        build = f"compiled with mypyc: {', '.join(compiled)}" if compiled else "pure Python"
        print(f"peerdht {__version__} ({build})")
        parser.exit()


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, adding ``(default: X)`` to every option whose default says something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or default == []
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse's parser, remembering the sub-command groups added to it (argparse keeps them private)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommand_groups: list[Any] = []

    def add_subparsers(self, **kwargs: Any) -> Any:
        group = super().add_subparsers(**kwargs)
        self.subcommand_groups.append(group)
        return group


def _subparsers(parser: Parser) -> Iterator[Parser]:
    for group in parser.subcommand_groups:
        for sub in dict.fromkeys(group.choices.values()):
            if isinstance(sub, Parser):
                yield sub
                yield from _subparsers(sub)


def build_parser() -> Parser:
    parser = Parser(
        prog="peerdht",
        description="Find peers through a DHT and talk to them over end-to-end encrypted connections. "
        "HyperDHT commands are at the top level; Mainline (BitTorrent) commands under `peerdht mainline`.",
        epilog=EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the version and whether the cores run compiled, and exit"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more, with progress (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from peerdht.cli import hyper, mainline, pipe, rooms, web

    hyper.register(sub)
    pipe.register(sub)
    mainline.register(sub)
    web.register(sub)
    rooms.register(sub)
    parser.set_defaults(commands=tuple(sub.choices))
    for p in _subparsers(parser):
        p.formatter_class = HelpFormatter
        p.epilog = f"{p.epilog}\n\n{EXIT_CODES}" if p.epilog else EXIT_CODES
        if not p.subcommand_groups:
            # accepted after the sub-command too: `peerdht lookup TOPIC -v`
            p.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0,
                           help="log more, with progress (repeatable)")
            p.set_defaults(parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose += getattr(args, "sub_verbose", 0)
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
            getattr(args, "parser", parser).print_usage(sys.stderr)
        return exc.code
    except RequestTimeout as exc:
        sys.stderr.write(f"peerdht: timed out: {exc}\n")
        return 1
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
