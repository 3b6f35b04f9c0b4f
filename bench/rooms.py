#!/usr/bin/env python3
"""P2PT rooms: message round trips and messages per second, Python <-> Python, Python <-> Chromium and
Chromium <-> Chromium, side by side in one run.

Pairs (all through one peerdht tracker on 127.0.0.1, WebRTC over the namespace's veth address, no STUN):

* ``py-py``: two :class:`peerdht.rooms.Room` in this process;
* ``py-page``: a Room sends, our page (``static/room.html`` + ``rooms.js``) in chromium answers;
* ``page-py``: the page sends, the Room answers;
* ``page-page``: two of our pages (one browser, two tabs);
* ``p2pt-p2pt``: two pages running the JS p2pt 1.6.2 bundle (the reference implementation's own figure).

For each pair: a round trip of a 1 MB and a 10 MB message (UTF-16 units of 'abé€x😀' text: 2 bytes of UTF-8
per unit; the answer is ``'echo:' + message``, so the round trip moves the message both ways: MB/s counts
2 x size / time, in millions of units; the median of ``--rounds``), and one-way messages/s (``--count`` short messages posted back to back
until the receiver has all of them). Ratio: py-page / page-page (issue 11 target >= 0.5).

Runs only inside a throw-away network namespace:

    scripts/netns-run.sh python3 bench/rooms.py [--count 2000] [--sizes 1,10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.web.browser import chromium  # noqa: E402
from tests.web.roomkit import OURS_ADAPTER, PyPeer, big_text, static_server  # noqa: E402

from peerdht.aio.rooms.tracker import TrackerServer  # noqa: E402
from peerdht.rooms import Room  # noqa: E402

TIMEOUT = 300_000  # ms


def units(mb: int) -> int:
    n = mb * 1_000_000
    return n + (-n) % 7  # a multiple of 7 (big_text)


async def page_start(browser: Any, base: str, url: str, room: str, kind: str) -> tuple[Any, str]:
    page = await browser.new_page()
    if kind == "ours":
        await page.goto(base + "/static/room.html")
        await page.wait_for_function("() => window.roomReady === true")
        await page.add_script_tag(content=OURS_ADAPTER)
    else:
        await page.goto(base + "/p2pt.html")
    peer_id = await page.evaluate("([t, r]) => window.start(t, r)", [[url], room])
    return page, peer_id


JS_ROUND = """async ([id, n]) => { const big = bigText(n); const t0 = performance.now();
  const [peer, m] = await R.send(st.peers[id], big); const dt = (performance.now() - t0) / 1000;
  if (m !== 'echo:' + big) throw new Error('bad echo'); return dt; }"""
JS_POST = """([id, k]) => { const t0 = performance.now(); for (let i = 0; i < k; i++) R.send(st.peers[id], 'no-answer ' + i);
  return t0; }"""


async def median(make: Any, rounds: int) -> float | str:
    """The median of ``rounds`` runs of the coroutine ``make()`` returns (seconds), or why it failed."""
    try:
        times = sorted([await make() for _ in range(rounds)])
    except Exception as exc:  # p2pt has no back-pressure: Chromium's send queue overflows on 10 MB
        return f"failed: {str(exc).splitlines()[0][:80]}"
    return float(statistics.median(times))


async def py_round(room: Room, peer: Any, n: int) -> float:
    big = big_text(n)
    t0 = time.perf_counter()
    reply = await room.send(peer, big, timeout=300)
    dt = time.perf_counter() - t0
    assert reply.msg == "echo:" + big
    return dt


async def py_posts(room: Room, peer: Any, count: int, received: Any) -> float:
    t0 = time.perf_counter()
    for i in range(count):
        await room.post(peer, f"no-answer {i}")
    await received()
    return time.perf_counter() - t0


async def wait_page_count(page: Any, count: int, start: int) -> None:
    await page.wait_for_function(f"() => window.st.msgs.length >= {start + count}", timeout=TIMEOUT, polling=5)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []

    def report(pair: str, **figures: Any) -> None:
        row = {"pair": pair, **figures}
        results.append(row)
        if not args.json:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    def rounds(times: dict[int, float | str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mb, dt in times.items():
            if isinstance(dt, str):
                out[f"rt_{mb}MB_s"] = dt
                continue
            out[f"rt_{mb}MB_s"] = round(dt, 3)
            out[f"rt_{mb}MB_MBps"] = round(2 * units(mb) / dt / 1e6, 2)
        return out

    async with TrackerServer(host="127.0.0.1") as tracker, static_server() as base, chromium() as browser:
        url = tracker.url
        # ---------------------------------------------------------------- py-py
        async with Room("bench-py", [url]) as a, Room("bench-py", [url]) as b:
            pb, pa = PyPeer(b), PyPeer(a, answer=False)
            peer = await pa.peer()
            times = {mb: await median(lambda mb=mb: py_round(a, peer, units(mb)), args.rounds) for mb in sizes}
            start = len(pb.messages)
            dt = await py_posts(a, peer, args.count, lambda: pb.wait(lambda: len(pb.messages) >= start + args.count,
                                                                     300))
            report("py-py", **rounds(times), msgs_per_s=round(args.count / dt))
            await pa.stop()
            await pb.stop()
        # ---------------------------------------------------------------- py-page and page-py
        async with Room("bench-mixed", [url]) as room:
            py = PyPeer(room)
            page, page_id = await page_start(browser, base, url, "bench-mixed", "ours")
            peer = await py.peer(peer_id=page_id)
            await page.wait_for_function(f"() => window.st.peers['{room.id}']", timeout=TIMEOUT)
            times = {mb: await median(lambda mb=mb: py_round(room, peer, units(mb)), args.rounds) for mb in sizes}
            start = await page.evaluate("() => window.st.msgs.length")
            dt = await py_posts(room, peer, args.count, lambda: wait_page_count(page, args.count, start))
            report("py-page", **rounds(times), msgs_per_s=round(args.count / dt))
            times = {mb: await median(lambda mb=mb: page.evaluate(JS_ROUND, [room.id, units(mb)]), args.rounds)
                     for mb in sizes}
            start = len(py.messages)
            t0 = time.perf_counter()
            await page.evaluate(JS_POST, [room.id, args.count])
            await py.wait(lambda: len(py.messages) >= start + args.count, 300)
            report("page-py", **rounds(times), msgs_per_s=round(args.count / (time.perf_counter() - t0)))
            await page.close()
            await py.stop()
        # ---------------------------------------------------------------- page-page (ours), p2pt-p2pt
        for kind, pair in (("ours", "page-page"), ("p2pt", "p2pt-p2pt")):
            a_page, _a_id = await page_start(browser, base, url, f"bench-{kind}", kind)
            b_page, b_id = await page_start(browser, base, url, f"bench-{kind}", kind)
            await a_page.wait_for_function(f"() => window.st.peers['{b_id}']", timeout=TIMEOUT)
            times = {mb: await median(lambda mb=mb, pg=a_page, to=b_id: pg.evaluate(JS_ROUND, [to, units(mb)]), args.rounds)
                     for mb in sizes}
            rate: float | str
            try:
                start = await b_page.evaluate("() => window.st.msgs.length")
                t0 = time.perf_counter()
                await a_page.evaluate(JS_POST, [b_id, args.count])
                await wait_page_count(b_page, args.count, start)
                rate = round(args.count / (time.perf_counter() - t0))
            except Exception as exc:
                rate = f"failed: {str(exc).splitlines()[0][:80]}"
            report(pair, **rounds(times), msgs_per_s=rate)
            await a_page.close()
            await b_page.close()

    by = {r["pair"]: r for r in results}
    ratios: dict[str, Any] = {"pair": "ratio py-page / page-page"}
    for key in by["page-page"]:
        ours, theirs = by["py-page"].get(key), by["page-page"][key]
        if (key.endswith("_MBps") or key == "msgs_per_s") and isinstance(ours, int | float) \
                and isinstance(theirs, int | float):
            ratios[key] = round(ours / theirs, 2)
    results.append(ratios)
    if not args.json:
        print("  " + "  ".join(f"{k}={v}" for k, v in ratios.items()), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="short messages for the messages/s figure")
    parser.add_argument("--sizes", default="1,10", help="round-trip sizes in MB (millions of UTF-16 units)")
    parser.add_argument("--rounds", type=int, default=3, help="round trips per size (the median is reported)")
    parser.add_argument("--json", action="store_true", help="one JSON line per pair")
    args = parser.parse_args()
    if os.environ.get("PEERDHT_TEST_NETNS") != "1":
        print("run inside scripts/netns-run.sh (WebRTC must stay in a throw-away namespace)", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    if args.json:
        for row in results:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
