#!/usr/bin/env python3
"""Connect-by-key across every pair of NAT types, peerdht and JS hyperdht, and write docs/nat-matrix.md.

  sudo python3 scripts/nat-matrix.py                      # both implementations, 3 tries per pair
  sudo python3 scripts/nat-matrix.py --impl py --tries 5  # peerdht only
  sudo python3 scripts/nat-matrix.py --no-write --json out.json

Builds a NAT lab (docs/natlab.md): a testnet of peerdht nodes on the public segment, and one server host
and one client host on the public segment and behind each NAT type. For every (server, client) pair it
starts a fresh server (new key) and a fresh client and records success, the strategy used and the time
to open (from the ``connect`` call to an open encrypted stream, the DHT already bootstrapped), with a
4 KiB payload checked both ways. See tests/natlab/matrix_lib.py. Needs root, ``ip`` and ``nft``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tools/
sys.path.insert(0, str(ROOT / "tests" / "natlab"))

import matrix_lib as ml  # noqa: E402
from natlab_tools import start_testnet  # noqa: E402
from tools.natlab import Lab, unavailable_reason  # noqa: E402

DOC = ROOT / "docs" / "nat-matrix.md"
BEGIN = "<!-- matrix:begin -->"
END = "<!-- matrix:end -->"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=["py", "js", "both"], default="both")
    p.add_argument("--tries", type=int, default=3, help="attempts per pair (median time over successes)")
    p.add_argument(
        "--sequential", action="store_true", help="one pair at a time (default: disjoint pairs at once)"
    )
    p.add_argument("--size", type=int, default=4096, help="payload bytes each way")
    p.add_argument("--testnet-size", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a connect may take")
    p.add_argument(
        "--delay", type=float, default=0.0, help="one-way delay on every host's link, seconds (netem or the delay line)"
    )
    p.add_argument("--no-relay", action="store_true", help="do not start a relay node on the public segment")
    p.add_argument("--json", type=Path, help="also write every cell (with each try) here")
    p.add_argument("--no-write", action="store_true", help="do not update docs/nat-matrix.md")
    args = p.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(f"cannot build a lab: {reason}", file=sys.stderr)
        return 2
    impls = ["py", "js"] if args.impl == "both" else [args.impl]
    results: dict[str, dict[tuple[str, str], ml.Cell]] = {}
    started = time.monotonic()
    with Lab() as lab:
        hosts = ml.build_lab(lab)
        if args.delay:
            for host in hosts.values():  # every host's (or its router's) link to the public segment
                lab.netem(host, delay=args.delay)
        testnet, bootstrap = start_testnet(lab, hosts["boot"], size=args.testnet_size)
        relay, relay_info = (None, "not started (--no-relay)")
        if not args.no_relay:
            relay, relay_info = ml.start_relay_node(lab, hosts["relay"], bootstrap)
        args.relay_info = f"running, key {relay_info[:16]}..." if relay is not None else relay_info
        print(f"relay node: {args.relay_info}", flush=True)
        try:
            for impl in impls:
                results[impl] = ml.run_matrix(
                    lab,
                    hosts,
                    bootstrap,
                    impl=impl,
                    tries=args.tries,
                    parallel=not args.sequential,
                    size=args.size,
                    timeout=args.timeout,
                    log=lambda m: print(m, flush=True),
                )
        finally:
            if relay is not None:
                relay.close()
            testnet.close(interrupt=True)
    elapsed = time.monotonic() - started
    for impl, cells in results.items():
        print(f"\n{impl}:\n{ml.markdown(cells)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {impl: [c.as_dict() for c in cells.values()] for impl, cells in results.items()}, indent=1
            )
        )
    if not args.no_write:
        write_doc(results, args, elapsed)
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_doc(
    results: dict[str, dict[tuple[str, str], ml.Cell]], args: argparse.Namespace, elapsed: float
) -> None:
    """Replace the generated part of docs/nat-matrix.md (between the markers), keeping the prose."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        BEGIN,
        f"Generated by `python3 scripts/nat-matrix.py` on {now} at commit {_commit()}: {args.tries} "
        f"tr{'y' if args.tries == 1 else 'ies'} per pair, {'one pair at a time' if args.sequential else 'disjoint pairs in parallel'}, "
        f"{args.size} bytes each way, testnet of {args.testnet_size} peerdht nodes, "
        f"{f'{args.delay * 1000:.0f} ms one-way delay on every link, ' if args.delay else 'links without delay, '}"
        f"{elapsed:.0f} s in all. "
        f"peerdht relay node on the public segment: {args.relay_info}.",
        "",
    ]
    names = {"py": "peerdht (Python)", "js": "JS hyperdht 6.34.0"}
    for impl, cells in results.items():
        parts += [f"### {names[impl]}", "", ml.markdown(cells), ""]
    if set(results) == {"py", "js"}:
        parts += [
            "### Side by side (peerdht | JS hyperdht)",
            "",
            side_by_side(results["py"], results["js"]),
            "",
        ]
    parts.append(END)
    block = "\n".join(parts)
    text = DOC.read_text() if DOC.exists() else f"# NAT matrix\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def _range(cell: ml.Cell | None) -> str:
    if cell is None or not cell.seconds:
        return "-"
    lo, hi = min(cell.seconds), max(cell.seconds)
    return f"{lo * 1000:.0f}-{hi * 1000:.0f} ms" if hi < 1 else f"{lo:.1f}-{hi:.1f} s"


def side_by_side(py: dict[tuple[str, str], ml.Cell], js: dict[tuple[str, str], ml.Cell]) -> str:
    """One row per pair: strategy and median time to open, then the fastest and slowest try, both
    implementations."""
    rows = [
        "| server | client | peerdht | (min-max) | JS hyperdht | (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for s in ml.KINDS:
        for c in ml.KINDS:
            if (s, c) in py or (s, c) in js:
                p, j = py.get((s, c)), js.get((s, c))
                rows.append(
                    f"| {ml.LABEL[s]} | {ml.LABEL[c]} | {ml.cell_text(p)} | {_range(p)} | {ml.cell_text(j)} | {_range(j)} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
