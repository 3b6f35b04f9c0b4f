#!/usr/bin/env python3
"""Run the NAT lab by hand (root only). See docs/natlab.md.

  python scripts/natlab.py up                 # build a lab: public "boot" + one host behind each NAT type,
                                              # print it, keep it until Ctrl-C, then tear it down
  python scripts/natlab.py up --detach        # build it and leave it (until `down`)
  python scripts/natlab.py up --public boot --nat alice=symmetric --nat bob=full-cone --loss alice=0.05 \
                             --behind carol=bob   # carol shares bob's LAN and NAT
  python scripts/natlab.py run alice -- python3 -m peerdht lookup --bootstrap 203.0.113.10:PORT TOPIC
  python scripts/natlab.py shell alice        # an interactive shell inside alice's namespace
  python scripts/natlab.py list               # labs on this machine and their namespaces
  python scripts/natlab.py down               # delete detached labs (and with --all, every lab)
  python scripts/natlab.py matrix             # UDP holepunch between every pair of NAT types

Everything happens in network namespaces the lab creates; public addresses are TEST-NET-3 (203.0.113.0/24).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tools/

from tools.natlab import (  # noqa: E402
    DEFAULT_PREFIX,
    Host,
    Lab,
    NatType,
    lab_ids,
    sweep,
    unavailable_reason,
)

MANUAL_PREFIX = "pdlman"  # labs left running by `up --detach`; test sessions never sweep these
UDP_TOOL = str(ROOT / "tests" / "natlab" / "udp_tool.py")
DEFAULT_HOSTS = {
    "fullcone": NatType.FULL_CONE,
    "restricted": NatType.RESTRICTED_CONE,
    "portrestr": NatType.PORT_RESTRICTED_CONE,
    "symmetric": NatType.SYMMETRIC,
}
# what theory says about a UDP punch between two NAT types (research/peers.md §3b)
_FAILS = {frozenset({NatType.SYMMETRIC}), frozenset({NatType.SYMMETRIC, NatType.PORT_RESTRICTED_CONE})}


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def _need_root() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"natlab: {reason}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    _need_root()
    nats = _pairs(args.nat) or {name: nat.value for name, nat in DEFAULT_HOSTS.items()}
    behind = _pairs(args.behind)
    losses = {k: float(v) for k, v in _pairs(args.loss).items()}
    delays = {k: float(v) for k, v in _pairs(args.delay).items()}
    lab = Lab(prefix=MANUAL_PREFIX if args.detach else DEFAULT_PREFIX)
    lab.start()
    try:
        for name in args.public or ["boot"]:
            lab.add_public(name, extra_ips=1, loss=losses.get(name, 0.0), delay=delays.get(name, 0.0))
        for name, nat in nats.items():
            lab.add_private(
                name,
                nat,
                udp_timeout=args.udp_timeout,
                loss=losses.get(name, 0.0),
                delay=delays.get(name, 0.0),
            )
        for name, other in behind.items():
            lab.add_private(name, behind=other)
    except BaseException:
        lab.close()
        raise
    print(f"lab {lab.id}")
    for line in lab.describe():
        print("  " + line)
    first = next(iter(lab.hosts))
    print(f"\nrun a command: sudo ip netns exec {lab.hosts[first].netns} <command>")
    print(f"          or: python {sys.argv[0]} run {first} -- <command>")
    if args.detach:
        print(f"\nleft running; remove it with: python {sys.argv[0]} down")
        return 0
    print("\nCtrl-C to tear it down")
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        lab.close()
        print("torn down")
    return 0


def _find_netns(host: str, lab_id: str | None) -> str:
    labs = {**lab_ids(MANUAL_PREFIX), **lab_ids(DEFAULT_PREFIX)}
    if lab_id is not None:
        labs = {k: v for k, v in labs.items() if k == lab_id}
    matches = [ns for names in labs.values() for ns in names if ns.endswith(f"-{host}")]
    if len(matches) != 1:
        raise SystemExit(f"natlab: {len(matches)} namespaces for host {host!r}; name one lab with --lab")
    return matches[0]


def cmd_run(args: argparse.Namespace) -> int:
    _need_root()
    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise SystemExit("natlab run: no command given")
    return subprocess.call(["ip", "netns", "exec", _find_netns(args.host, args.lab), *argv])


def cmd_shell(args: argparse.Namespace) -> int:
    _need_root()
    shell = os.environ.get("SHELL", "/bin/bash")
    return subprocess.call(["ip", "netns", "exec", _find_netns(args.host, args.lab), shell])


def cmd_list(args: argparse.Namespace) -> int:
    _need_root()
    for prefix in (MANUAL_PREFIX, DEFAULT_PREFIX):
        for lab_id, names in sorted(lab_ids(prefix).items()):
            print(lab_id)
            for name in sorted(names):
                print(f"  {name}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _need_root()
    gone = sweep(MANUAL_PREFIX, everything=True)
    gone += sweep(DEFAULT_PREFIX, everything=args.all)
    print(f"deleted {len(gone)} namespaces")
    for name in gone:
        print(f"  {name}")
    return 0


def _punch(lab: Lab, rdv: Host, a: Host, b: Host, secs: float) -> tuple[dict[str, Any], dict[str, Any]]:
    common = ["--rdv", f"{rdv.ip}:3478", "--room", "m", "--port", "4000", "--secs", str(secs)]
    py = sys.executable
    pa = lab.popen(a, [py, "-u", UDP_TOOL, "punch", "--name", "a", *common], stdin=subprocess.DEVNULL)
    pb = lab.popen(b, [py, "-u", UDP_TOOL, "punch", "--name", "b", *common], stdin=subprocess.DEVNULL)
    out_a, _ = pa.communicate(timeout=3 * secs + 10)
    out_b, _ = pb.communicate(timeout=3 * secs + 10)
    return json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])


def cmd_matrix(args: argparse.Namespace) -> int:
    _need_root()
    kinds: list[NatType | None] = [None, *NatType]  # None: a host on the public segment
    results: dict[tuple[str, str], dict[str, Any]] = {}
    pairs = itertools.combinations_with_replacement(kinds, 2)
    for nat_a, nat_b in pairs:
        if nat_a is None and nat_b is None:
            continue
        with Lab() as lab:
            rdv = lab.add_public("rdv", extra_ips=1)
            hosts = []
            for name, nat in (("a", nat_a), ("b", nat_b)):
                if nat is None:
                    hosts.append(lab.add_public(name, loss=args.loss, delay=args.delay))
                else:
                    hosts.append(lab.add_private(name, nat, loss=args.loss, delay=args.delay))
            stun = lab.popen(rdv, [sys.executable, "-u", UDP_TOOL, "stun", "--ips", rdv.ip, *rdv.extra_ips])
            assert stun.stdout is not None
            stun.stdout.readline()  # {"ready": true}
            ra, rb = _punch(lab, rdv, hosts[0], hosts[1], args.secs)
        na = nat_a.value if nat_a else "public"
        nb = nat_b.value if nat_b else "public"
        theory = nat_a is None or nat_b is None or frozenset({nat_a, nat_b}) not in _FAILS
        res = {
            "a": na,
            "b": nb,
            "ok": bool(ra["ok"] and rb["ok"]),
            "theory": theory,
            "time_s": max(ra.get("time_s", 0.0), rb.get("time_s", 0.0)) if ra["ok"] and rb["ok"] else None,
            "peer_reflexive": "peer_reflexive" in ra or "peer_reflexive" in rb,
        }
        results[(na, nb)] = results[(nb, na)] = res
        if args.json:
            print(json.dumps(res), flush=True)
    if not args.json:
        names = ["public", *(n.value for n in NatType)]
        width = 22
        print(
            "UDP holepunch (simultaneous open, 20 ms pacing); cell: ok/FAIL, time to open, * = prflx learnt"
        )
        print(" " * width + "".join(n.ljust(width) for n in names))
        for na in names:
            row = na.ljust(width)
            for nb in names:
                r = results.get((na, nb))
                if r is None:
                    cell = "-"
                elif r["ok"]:
                    cell = f"ok {r['time_s']:.2f}s{'*' if r['peer_reflexive'] else ''}"
                else:
                    cell = "FAIL"
                if r is not None and r["ok"] != r["theory"]:
                    cell += " (!theory)"
                row += cell.ljust(width)
            print(row)
    mismatches = sum(1 for r in results.values() if r["ok"] != r["theory"]) // 2
    return 1 if mismatches else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("up", help="build a lab")
    q.add_argument("--detach", action="store_true", help="leave the lab running and exit")
    q.add_argument("--public", action="append", metavar="NAME", help="a public host (repeatable)")
    q.add_argument(
        "--nat",
        action="append",
        metavar="NAME=TYPE",
        help=f"a host behind a NAT ({', '.join(n.value for n in NatType)}), repeatable",
    )
    q.add_argument(
        "--behind", action="append", metavar="NAME=OTHER", help="a host on the LAN of private host OTHER"
    )
    q.add_argument("--loss", action="append", metavar="NAME=P", help="packet loss on NAME's link, 0-1")
    q.add_argument("--delay", action="append", metavar="NAME=SECONDS", help="one-way delay (tc netem, or the userspace delay line where the kernel has no netem)")
    q.add_argument("--udp-timeout", type=float, help="conntrack UDP timeout of every NAT, seconds")
    q.set_defaults(func=cmd_up)
    for name, func, hlp in (
        ("run", cmd_run, "run a command in a host"),
        ("shell", cmd_shell, "a shell there"),
    ):
        q = sub.add_parser(name, help=hlp)
        q.add_argument("--lab", help="lab id, if several exist")
        q.add_argument("host")
        if name == "run":
            q.add_argument("argv", nargs=argparse.REMAINDER)
        q.set_defaults(func=func)
    q = sub.add_parser("list", help="list labs")
    q.set_defaults(func=cmd_list)
    q = sub.add_parser("down", help="delete detached and stale labs")
    q.add_argument("--all", action="store_true", help="also labs of running processes (e.g. tests)")
    q.set_defaults(func=cmd_down)
    q = sub.add_parser("matrix", help="UDP holepunch matrix over all NAT type pairs")
    q.add_argument("--secs", type=float, default=2.0, help="punch for at most this long")
    q.add_argument("--loss", type=float, default=0.0, help="loss on every host's link, 0-1")
    q.add_argument("--delay", type=float, default=0.0, help="one-way delay on every link (tc netem or the userspace delay line)")
    q.add_argument("--json", action="store_true", help="one JSON object per pair")
    q.set_defaults(func=cmd_matrix)
    args = p.parse_args()
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
