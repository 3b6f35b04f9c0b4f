"""Soak: one long-lived node of each profile under steady synthetic load for a simulated day (fake clock).

Clients from ``--addresses`` distinct simulated IPs (10,000 by default), ``--rate`` per fake second, each
bootstrap from the node and run one operation (HyperDHT: lookup, announce, mutable put/get, immutable put;
Mainline: find_node, get_peers, announce_peer, put, put_mutable, get). Every simulated hour the node's
deep size and the length of every container it holds are printed; the run ends with the verdict on
flatness (the largest value of the last 8 hours against the largest of hours 4-12) and the growth of
each container. See :mod:`peerdht.testing.soak`.

The lengths of the containers held as globals of the loaded ``peerdht`` modules are sampled too
(``module:...``: the process-wide address memos of ``encoding/compact.py``, ``hyper/rpc_requests.py``,
``hyper/rpc_util.py``, cleared when they reach 16,384 entries, and the ``lru_cache``s): they live outside
the node object, and here they serve the node and every simulated client at once. Those of 1,000 entries
or more are printed with the watched containers.

    python bench/soak.py [--profile hyper|mainline] [--hours 24] [--rate 2] [--addresses 10000] [--json F]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from peerdht.testing.soak import Sample, Soak, module_containers

WATCH = (
    # the stores, tokens, request table and rate-limit tables of each core
    "storage.records",
    "storage.mutables",
    "storage.immutables",
    "_requests",
    "_delayed",
    "_down_hinted",
    "router",
    "table",
    "peers",
    "items",
    "_verified",
    "requests",
    "limiter._buckets",
    "_fails",
    "_ops",
)


# stores whose entries live longer than half a day (hyperdht keeps mutable and immutable records 48 h):
# within a 24 h run they fill up by design, so they are judged by their size bound, not by flatness
LONG_LIVED = ("storage.mutables", "storage.immutables")


def flat(samples: list[Sample], hours: float) -> tuple[bool, dict[str, tuple[int, int]]]:
    """(flat?, {path: (max of hours 4-12, max of the last 8 hours)}) for every container (the deep size
    too, unless a long-lived store is present: it then grows with that store up to its bound)."""
    early = [s for s in samples if 4 * 3600 <= s.t <= 12 * 3600] or samples[: len(samples) // 2]
    late = [s for s in samples if s.t >= (hours - 8) * 3600] or samples[len(samples) // 2 :]
    keys = set().union(*(s.sizes for s in samples))
    out: dict[str, tuple[int, int]] = {}
    ok = True
    for k in sorted(keys):
        e = max(s.sizes.get(k, 0) for s in early)
        lt = max(s.sizes.get(k, 0) for s in late)
        out[k] = (e, lt)
        if lt > 1.5 * e + 16 and not k.startswith(LONG_LIVED):
            ok = False
    eb, lb = max(s.bytes for s in early), max(s.bytes for s in late)
    out["(deep bytes)"] = (eb, lb)
    if lb > 1.5 * eb + 65536 and not any(k.startswith(LONG_LIVED) for k in keys):
        ok = False
    return ok, out


def _get(obj: object, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["hyper", "mainline"], action="append")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--rate", type=float, default=2.0, help="clients per fake second")
    ap.add_argument("--addresses", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the samples here")
    args = ap.parse_args()
    dump = {}
    for profile in args.profile or ["mainline", "hyper"]:
        t0 = time.perf_counter()
        soak = Soak(profile, addresses=args.addresses, rate=args.rate, seed=args.seed)

        def show(s: Sample, profile: str = profile, t0: float = t0) -> None:
            s.sizes.update(module_containers("module:"))  # judged for flatness with the node's own containers
            watched = {k: v for k, v in s.sizes.items() if k in WATCH or (k.startswith("module:") and v >= 1000)}
            print(
                f"{profile:8} {s.t / 3600:5.1f} h  {s.bytes / 1024:8.1f} KiB  clients {s.clients_done:7}  "
                f"wall {time.perf_counter() - t0:6.1f} s  {watched}",
                flush=True,
            )

        samples = soak.run(args.hours, on_sample=show)
        ok, table = flat(samples, args.hours)
        grown = {k: v for k, v in table.items() if v[1] > v[0]}
        print(
            f"{profile}: {'FLAT' if ok else 'GROWING'} after {args.hours} h simulated, {soak.done} clients "
            f"({soak.failed} ops failed), {soak.next_client} client addresses used "
            f"({min(soak.next_client, args.addresses)} distinct), wall {time.perf_counter() - t0:.0f} s"
        )
        print(f"  early max -> late max (grown only): {grown}")
        bounds = {
            p: (len(c), c.max_size, c.max_age)
            for p, c in ((p, _get(soak.node, p)) for p in LONG_LIVED)
            if c is not None
        }
        if bounds:
            print(f"  long-lived stores (entries, max_size, max_age s): {bounds}")
        dump[profile] = {
            "ok": ok,
            "clients": soak.done,
            "failed": soak.failed,
            "samples": [{"t": s.t, "bytes": s.bytes, "sizes": s.sizes} for s in samples],
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dump, f)


if __name__ == "__main__":
    main()
