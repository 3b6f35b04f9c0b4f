"""Relayed messages in the browser (issue 10 item 2): two pages whose WebRTC links cannot connect (a test
hook strips every ICE candidate from the SDP they send and receive) still reach each other's values through a
relay (the serving WebNode forwards the one-way ``relay`` queries), and ``stats()`` shows the other page with
transport ``relay``. A third page with working WebRTC reaches a relay-only page too, and relayed traffic obeys
the hop limit. The relay bookkeeping (forged origin, duplicates, hop limit, loops, rate) is checked directly in
the page.

Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

from typing import Any

from tests.web.browser import chromium
from tests.web.static_server import static_server
from tests.web.test_browser_modules import module_page
from tests.web.webnet import JOIN_TIMEOUT_MS, stats, web_testnet

BLOCK_ICE = "window.PEERDHT_OPTIONS = { blockIce: true, openTimeout: 4000 };"

KEEP_LOCAL = """async (text) => {
  const b = await import('./bencode.js'); const bep44 = await import('./bep44.js');
  const v = b.bytes(text);
  const t = await bep44.immutableTarget(b.encode(v));
  window.dht.node.immutable.set(b.toHex(t), { v, at: Date.now() });
  return b.toHex(t);
}"""


async def _blocked_page(browser: Any, url: str, errors: list[str]) -> Any:
    ctx = await browser.new_context()
    await ctx.add_init_script(BLOCK_ICE)
    page = await ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.wait_for_function("window.dht && window.dht.ready === true", timeout=JOIN_TIMEOUT_MS)
    return page


async def test_pages_without_webrtc_reach_each_other_through_a_relay() -> None:
    errors: list[str] = []
    async with web_testnet() as (_, node), chromium() as browser:
        a = await _blocked_page(browser, node.url, errors)
        b = await _blocked_page(browser, node.url, errors)
        a_id, b_id = (await stats(a))["nodeId"], (await stats(b))["nodeId"]
        # a value held only by page A (not put anywhere): B's get must reach A itself
        target = await a.evaluate(KEEP_LOCAL, "only on page A")
        assert node.overlay.node.items.stored_at(bytes.fromhex(target)) is None  # not held by the Python node
        assert await b.evaluate("(t) => window.dht.get(t)", target) == "only on page A"
        sb, sa = await stats(b), await stats(a)
        assert [p["transport"] for p in sb["peers"] if p["id"] == a_id] == ["relay"], sb["peers"]
        assert [p["transport"] for p in sa["peers"] if p["id"] == b_id] == ["relay"], sa["peers"]
        assert sb["webrtcLinks"] == 0 and sb["linksFailed"] >= 1
        assert sa["delivered"] >= 1 and sb["delivered"] >= 1 and sb["maxHops"] == 2  # page -> WebNode -> page
        # the other way round, and a put through the relay: B puts, A stores it (one of the closest), A reads it
        target2 = await b.evaluate("() => window.dht.put('from B through the relay')")
        assert await a.evaluate("(t) => window.dht.get(t)", target2) == "from B through the relay"
        # a page with working WebRTC reaches the relay-only page's value too
        c = await _open(browser, node.url, errors)
        target3 = await a.evaluate(KEEP_LOCAL, "A again")
        assert await c.evaluate("(t) => window.dht.get(t)", target3) == "A again"
        assert any(p["id"] == a_id and p["transport"] == "relay" for p in (await stats(c))["peers"])
    assert not errors, errors


async def _open(browser: Any, url: str, errors: list[str]) -> Any:
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    await page.wait_for_function("window.dht && window.dht.ready === true", timeout=JOIN_TIMEOUT_MS)
    return page


async def test_relay_rules() -> None:
    async with static_server() as base, chromium() as browser:
        page = await module_page(browser, base)
        out = await page.evaluate(
            """() => {
              const { Relay, nextHop, MAX_HOPS } = m.relay; const { encode } = m.bencode;
              const id = (n) => new Uint8Array(20).fill(n);
              const own = id(1); const r = new Relay(own);
              const link = { id: id(2), open: true, transport: 'websocket' };
              const m8 = () => crypto.getRandomValues(new Uint8Array(8));
              const inner = encode({ t: 'x', y: 'q', q: 'ping', a: { id: id(2) } });
              const a = (o) => ({ to: own, from: id(2), mid: m8(), hops: 0, m: inner, ...o });
              const res = {};
              const dup = a();
              res.deliver = !!r.receive(link, dup, 100).deliver;
              res.duplicate = r.receive(link, dup, 100).drop;
              res.forged = r.receive(link, a({ from: id(3) }), 100).drop;
              res.relayedFromFar = !!r.receive(link, a({ from: id(3), hops: 3 }), 100).deliver;
              res.hops = r.receive(link, a({ hops: MAX_HOPS }), 100).drop;
              res.loop = r.receive(link, a({ from: own, hops: 2 }), 100).drop;
              res.bad = r.receive(link, a({ mid: new Uint8Array(3) }), 100).drop;
              const fwd = r.receive(link, a({ to: id(9), hops: 1 }), 100).forward;
              res.forwardHops = m.bencode.decode(fwd.bytes).a.hops;
              let rated = 0;
              const flood = { id: id(4), open: true, transport: 'webrtc' };
              for (let i = 0; i < 50; i++) if (r.receive(flood, a({ from: id(4) }), 10).drop === 'relay: rate') rated++;
              res.rated = rated;
              const big = { id: id(5), open: true, transport: 'webrtc' };
              res.bytesRated = r.receive(big, a({ from: id(5) }), 70000).drop;
              const conns = [link, flood, { id: id(9), open: true, transport: 'relay' }, { id: id(8), open: false, transport: 'webrtc' }];
              res.next = m.bencode.toHex(nextHop(conns, id(9)).id);
              res.nextExcept = m.bencode.toHex(nextHop(conns, id(9), link).id);
              // reverse path: replies to id 3 (whose message came in on `link`) go back over `link`, even though
              // `flood` (id 4) is XOR-closer to 3; not when `link` is the link it came from
              res.back = m.bencode.toHex(nextHop(conns, id(3), null, r.routes).id);
              res.backExcept = m.bencode.toHex(nextHop(conns, id(3), link, r.routes).id);
              return res;
            }""")
    assert out["deliver"] is True and out["relayedFromFar"] is True
    assert out["duplicate"] == "relay: duplicate"
    assert out["forged"] == "relay: forged origin"
    assert out["hops"] == "relay: too many hops"
    assert out["loop"] == "relay: loop"
    assert out["bad"] == "relay: bad fields"
    assert out["forwardHops"] == 2
    assert out["rated"] >= 25  # 20 per second per link
    assert out["bytesRated"] == "relay: rate"
    # next hop: the open direct link closest to id 9 (0x09 ^ 0x02 = 0x0b < 0x09 ^ 0x04 = 0x0d), not the link it came
    # from; relay routes and closed links never
    assert out["next"] == "02" * 20 and out["nextExcept"] == "04" * 20
    assert out["back"] == "02" * 20 and out["backExcept"] == "04" * 20


async def test_relay_over_several_hops() -> None:
    """Page C (on web node W2) and page A (on W1, W1 <-> W2 over a WebSocket), both without working WebRTC:
    C reads a value held only by A; the messages cross C -> W2 -> W1 -> A (3 links) and back."""
    errors: list[str] = []
    async with web_testnet() as (testnet, w1), chromium() as browser:
        from peerdht.aio.web.node import WebNode

        async with WebNode(host="127.0.0.1", udp_host="127.0.0.1", bootstrap=testnet.bootstrap) as w2:
            await w2.connect(w1.ws_url)
            a = await _blocked_page(browser, w1.url, errors)
            c = await _blocked_page(browser, w2.url, errors)
            a_id = (await stats(a))["nodeId"]
            target = await a.evaluate(KEEP_LOCAL, "three links away")
            assert await c.evaluate("(t) => window.dht.get(t)", target) == "three links away"
            sa, sc = await stats(a), await stats(c)
            assert [p["transport"] for p in sc["peers"] if p["id"] == a_id] == ["relay"], sc["peers"]
            assert sa["maxHops"] == 3 and sc["maxHops"] == 3, (sa["maxHops"], sc["maxHops"])
            assert [p["transport"] for p in sc["peers"] if p["transport"] != "relay"] == ["websocket"]
    assert not errors, errors
