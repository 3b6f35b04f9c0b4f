"""Browser DHT peers: peerdht.js in Debian chromium vs webtorrent-dht 0.18.6 Node peers, in one run.

Measured on both sides, median of ``--rounds`` new nodes joining a small network (peerdht: a
:class:`~peerdht.aio.web.node.WebNode` over a UDP testnet, two pages already joined; webtorrent-dht: an HTTP
bootstrap node and one joined node, ``bench/js/webtorrent-bench.js``):

* join: from the start of the join (page: ``node.join()`` called; JS: ``new DHT()``) until ready;
* join + first lookup: until the first ``lookup(info hash)`` has finished (issue 9 target: < 2 s);
* WebRTC link: until the new node holds a data channel to a node other than the one it joined through,
  negotiated with ``signals`` / ``peer_connection``;
* KRPC round trip: ``ping`` over an open data channel (``--pings`` in a row).

Also printed for the page: the wall time from ``page.goto`` to ready (page load included). Ratios are
peerdht / webtorrent-dht (lower is better). webtorrent-dht's k-rpc query timeout is its default 2 s unless
``--js-timeout`` says otherwise; its join always waits one full query timeout (bittorrent-dht's bootstrap
waits for a query that is never answered), so its join time is about timeout + 0.5 s.

Runs only inside a throw-away network namespace (no STUN, iceServers: []):

    scripts/netns-run.sh python3 bench/web.py [--rounds 3] [--pings 30] [--js-timeout 2000] [--json]

Needs the ``[web]`` extra, Playwright with Debian chromium, and ``npm ci`` at the repo root.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def in_test_netns() -> bool:
    """Inside a namespace made by scripts/netns-run.sh (its only links are lo and the veth pair)?"""
    if os.environ.get("PEERDHT_TEST_NETNS") != "1":
        return False
    try:
        return {name for _, name in socket.if_nameindex()} <= {"lo", "pdw0", "pdw1"}
    except OSError:
        return False


def what_is_missing() -> str | None:
    """What this benchmark needs and is not installed, in one line (None when all is there)."""
    for mod, what in (("aiohttp", "pip install 'peerdht[web]'"), ("aiortc", "pip install 'peerdht[web]'"),
                      ("playwright", "pip install playwright")):
        if importlib.util.find_spec(mod) is None:
            return f"bench/web.py needs {mod}: {what}"
    if not Path(os.environ.get("PEERDHT_CHROMIUM", "/usr/bin/chromium")).exists():
        return "bench/web.py needs Debian chromium: apt-get install chromium"
    if shutil.which("node") is None or not (ROOT / "node_modules" / "webtorrent-dht").exists():
        return "bench/web.py needs node and the pinned JS peers: apt-get install nodejs npm && npm ci --ignore-scripts"
    return None

PAGE_ROUND = """async (pageIds) => {
  const node = window.dht.node;
  const t = node.timeline;
  const ih = crypto.getRandomValues(new Uint8Array(20));
  const l0 = performance.now();
  await node.getPeers(ih);
  const lookupMs = performance.now() - l0;
  let link = t.links.find((l) => pageIds.includes(l.id));
  let linkMs = link ? link.at - t.joinStart : null;
  let explicit = false;
  if (!link) {  // no page was linked during the join: look one up (one signalled find_node + link open)
    const target = Uint8Array.from(pageIds[0].match(/../g), (h) => parseInt(h, 16));
    const x0 = performance.now();
    await node._lookup(target, 'find_node');
    link = t.links.find((l) => pageIds.includes(l.id));
    linkMs = link ? link.at - x0 : null;
    explicit = true;
  }
  return { joinMs: t.ready - t.joinStart, joinLookupMs: t.ready - t.joinStart + lookupMs, linkMs, explicit };
}"""

PAGE_PINGS = """async ([n, transport]) => {
  const node = window.dht.node;
  const conn = [...node.conns].find((c) => c.transport === transport && c.id);
  if (!conn) return [];
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try { await node._send(conn, 'ping', {}, 5000); out.push(performance.now() - t); } catch { /* lost */ }
  }
  return out;
}"""


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


async def browser_side(rounds: int, pings: int) -> dict[str, Any]:
    from tests.web.browser import chromium
    from tests.web.webnet import open_page, stats, web_testnet

    out: dict[str, Any] = {"join": [], "joinLookup": [], "link": [], "linkExplicit": 0, "load": [], "rtt": [], "wsRtt": []}
    async with web_testnet() as (_, node), chromium() as browser:
        first = [await open_page(browser, node.url) for _ in range(2)]
        page_ids = [(await stats(p))["nodeId"] for p in first]
        last = None
        for _ in range(rounds):
            t0 = time.perf_counter()
            page = await open_page(browser, node.url)
            out["load"].append((time.perf_counter() - t0) * 1000)
            r = await page.evaluate(PAGE_ROUND, page_ids)
            out["join"].append(r["joinMs"])
            out["joinLookup"].append(r["joinLookupMs"])
            out["link"].append(r["linkMs"])
            out["linkExplicit"] += bool(r["explicit"])
            page_ids.append((await stats(page))["nodeId"])
            last = page
        assert last is not None
        out["rtt"] = await last.evaluate(PAGE_PINGS, [pings, "webrtc"])
        out["wsRtt"] = await last.evaluate(PAGE_PINGS, [pings, "websocket"])
    return out


def js_side(rounds: int, pings: int, timeout_ms: int) -> dict[str, Any]:
    proc = subprocess.run(
        ["node", str(ROOT / "bench" / "js" / "webtorrent-bench.js"), str(rounds), str(pings), str(timeout_ms)],
        cwd=ROOT, capture_output=True, text=True, timeout=60 + rounds * 40,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"webtorrent-bench.js failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


async def main(rounds: int, pings: int, js_timeout: int, as_json: bool) -> int:
    need = what_is_missing()
    if need:
        print(need, file=sys.stderr)
        return 1
    if not in_test_netns():
        print("bench/web.py runs only inside a throw-away network namespace: scripts/netns-run.sh python3 bench/web.py",
              file=sys.stderr)
        return 2
    py = await browser_side(rounds, pings)
    js = js_side(rounds, pings, js_timeout)
    rows = [
        ("join (ms)", median(py["join"]), median(js["join"])),
        ("join + first lookup (ms)", median(py["joinLookup"]), median(js["joinLookup"])),
        ("WebRTC link through the DHT (ms)", median(py["link"]), median(js["link"])),
        ("data-channel KRPC ping RTT (ms)", median(py["rtt"]), median(js["rtt"])),
    ]
    if as_json:
        print(json.dumps({"peerdht": py, "webtorrent_dht": js, "rounds": rounds, "js_timeout_ms": js_timeout}))
        return 0
    print(f"browser peers, median of {rounds} joins (peerdht.js in chromium vs webtorrent-dht 0.18.6 in Node, "
          f"its k-rpc timeout {js_timeout} ms), {pings} pings")
    print(f"{'':34} {'peerdht page':>14} {'webtorrent-dht':>15} {'ratio':>7}")
    for name, a, b in rows:
        ratio = "-" if a is None or not b else f"{a / b:.2f}"
        print(f"{name:34} {fmt(a):>14} {fmt(b):>15} {ratio:>7}")
    print(f"page: goto -> ready, page load included: {fmt(median(py['load']))} ms; "
          f"KRPC ping over the WebSocket to the serving node: {fmt(median(py['wsRtt']))} ms")
    if py["linkExplicit"]:
        print(f"({py['linkExplicit']} of {rounds} pages made no page link while joining; for those the link time is "
              "one explicit signalled find_node + link open)")
    missing = sum(v is None for v in js["link"])
    if missing:
        print(f"({missing} of {rounds} webtorrent-dht joins opened no link to the non-bootstrap node within 20 s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="new nodes joining on each side (default 3)")
    parser.add_argument("--pings", type=int, default=30, help="KRPC pings over a data channel (default 30)")
    parser.add_argument("--js-timeout", type=int, default=2000, help="webtorrent-dht k-rpc query timeout, ms (default: its own 2000)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main(args.rounds, args.pings, args.js_timeout, args.json)))
