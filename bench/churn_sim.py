"""Churn by simulation (a first step on issue 14 item 3; the real-time run with JS nodes is not this).

A network of ``--size`` sans-IO nodes of one profile on FakeNet (10 ms one-way delay) is built by protocol;
then for ``--minutes`` of fake time nodes leave (vanish: their datagrams are dropped, no goodbye) and new
ones join (bootstrapping from three live nodes) until ``--churn`` of the original size has been replaced.
Meanwhile, every few seconds a random live node announces a new topic (HyperDHT ``announce``; Mainline
``announce_peer``) and puts a mutable record (HyperDHT ``mutable_put``; Mainline ``put_mutable``), and
30 s later another random live node looks both up (``lookup`` / ``get_peers``; ``mutable_get`` /
``get_mutable``). Printed: the success rates of those lookups and gets, and how many operations failed.

    python bench/churn_sim.py [--profile hyper|mainline] [--size 200] [--minutes 10] [--churn 0.3]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from scale import Sim  # bench/scale.py

from peerdht.hyper.events import LookupResult as HyperLookupResult
from peerdht.keys import KeyPair
from peerdht.mainline.crypto import KeyPair as MlKeyPair
from peerdht.mainline.events import GetResult, PeersFound

Addr = tuple[str, int]


class Churn:
    def __init__(self, profile: str, size: int, seed: int) -> None:
        self.sim = Sim(profile, seed)
        self.profile = profile
        self.rng = random.Random(seed + 7)
        self.size = size
        self.alive: list[int] = []
        self.found: dict[tuple[Addr, int], set[object]] = {}
        hook = self.sim.net.on_event
        assert hook is not None

        def on_event(addr: Addr, ev: object, now: float) -> None:
            if isinstance(ev, HyperLookupResult):
                self.found.setdefault((addr, ev.op), set()).update(p.public_key for p in ev.peers)
            elif isinstance(ev, PeersFound):
                self.found.setdefault((addr, ev.op), set()).update(ev.peers)
            hook(addr, ev, now)

        self.sim.net.on_event = on_event

    def build(self) -> None:
        self.sim.build(self.size, 1000)
        self.alive = list(range(self.size))

    def leave(self) -> None:
        idx = self.alive.pop(
            self.rng.randrange(1, len(self.alive))
        )  # node 0 stays: it is everyone's bootstrap
        addr = self.sim.addrs[idx]
        if self.profile == "hyper":
            self.sim.net.down.update({addr, (addr[0], addr[1] + 1)})
        else:
            self.sim.net.down.add(addr)

    def join(self) -> None:
        boot = [self.sim.addrs[i] for i in self.rng.sample(self.alive, 3)]
        idx = self.sim.add(boot)
        self.sim.start(idx, "bootstrap")
        self.alive.append(idx)

    def run(self, minutes: float, churn: float, every: float) -> dict[str, Any]:
        net = self.sim.net
        end = net.now + minutes * 60
        steps = int(churn * self.size)
        churn_every = minutes * 60 / max(steps, 1)
        next_churn = net.now + churn_every
        next_op = net.now
        pending: list[tuple[float, Any]] = []  # (due, check)
        stats = {"lookups": 0, "lookups_ok": 0, "gets": 0, "gets_ok": 0, "stores": 0, "stores_failed": 0}
        checks: list[Any] = []
        seq = 0
        while net.now < end:
            if net.now >= next_churn and steps > 0:
                self.leave()
                self.join()
                steps -= 1
                next_churn += churn_every
            if net.now >= next_op:
                next_op += every
                a, b = self.rng.sample(self.alive, 2)
                topic = self.rng.randbytes(32)
                seq += 1
                if self.profile == "hyper":
                    kp = KeyPair.generate()
                    keys = [
                        self.sim.start(a, "announce", topic, kp, []),
                        self.sim.start(a, "mutable_put", kp, b"churn %d" % seq, 1),
                    ]
                    want: object = kp.public_key
                    ih: bytes = topic
                else:
                    mkp = MlKeyPair.from_seed(self.rng.randbytes(32))
                    ih = topic[:20]
                    port = self.rng.randrange(1, 65536)
                    keys = [
                        self.sim.start(a, "announce_peer", ih, port),
                        self.sim.start(a, "put_mutable", mkp, b"churn %d" % seq),
                    ]
                    want = (self.sim.addrs[a][0], port)
                    kp = mkp  # type: ignore[assignment]
                pending.append((net.now + 30.0, (b, ih, want, kp, keys)))
            while pending and pending[0][0] <= net.now:
                _, (b, ih, want, kp, keys) = pending.pop(0)
                stats["stores"] += 2
                for k in keys:
                    res = self.sim.done.pop(k, None)
                    if res is None or isinstance(res[1], Exception):
                        stats["stores_failed"] += 1
                if b not in self.alive:
                    b = self.rng.choice(self.alive)
                if self.profile == "hyper":
                    lk = self.sim.start(b, "lookup", ih)
                    gk = self.sim.start(b, "mutable_get", kp.public_key)
                else:
                    lk = self.sim.start(b, "get_peers", ih)
                    gk = self.sim.start(b, "get_mutable", kp.public_key)
                checks.append((lk, gk, want))
            net.run_to(min(net.now + 1.0, end), poll=False)
        net.run_for(30.0, poll=False)
        for lk, gk, want in checks:
            stats["lookups"] += 1
            stats["gets"] += 1
            if want in self.found.get(lk, set()):
                stats["lookups_ok"] += 1
            res = self.sim.done.get(gk)
            value = res[1] if res is not None else None
            if isinstance(value, GetResult):
                value = value.item
            if value is not None and not isinstance(value, Exception):
                stats["gets_ok"] += 1
        return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["hyper", "mainline"], action="append")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--churn", type=float, default=0.3, help="fraction of the nodes replaced")
    ap.add_argument("--every", type=float, default=5.0, help="fake seconds between store/lookup pairs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for profile in args.profile or ["mainline", "hyper"]:
        t0 = time.perf_counter()
        c = Churn(profile, args.size, args.seed)
        c.build()
        s = c.run(args.minutes, args.churn, args.every)
        print(
            f"{profile}: {args.size} nodes, {args.churn:.0%} replaced over {args.minutes} fake min: "
            f"lookups {s['lookups_ok']}/{s['lookups']} ({s['lookups_ok'] / max(1, s['lookups']):.1%}), "
            f"mutable gets {s['gets_ok']}/{s['gets']} ({s['gets_ok'] / max(1, s['gets']):.1%}), "
            f"stores failed {s['stores_failed']}/{s['stores']}; {time.perf_counter() - t0:.0f} s wall",
            flush=True,
        )


if __name__ == "__main__":
    main()
