// Relayed messages (issue 10 item 2; our own wire format, the Python node's, not peer-relay's): a KRPC
// message for a node we have no link to travels as a one-way KRPC query that is never answered:
//   {t, y:'q', q:'relay', a:{id: <this hop>, to: <20 B>, from: <20 B origin>, mid: <8 B>, hops: <int>, m: <bencoded KRPC>}}
// Each hop drops: a mid already seen, hops >= 8, hops == 0 from a link whose node is not `from` (forged),
// from == own id (a loop), more than 20 messages or 64 KiB per second per link. Delivered when to == own
// id, else forwarded with hops + 1 over the open link XOR-closest to `to`, never back where it came from.
// This module is the bookkeeping; peerdht.js moves the bytes.

import { encode, toHex, bytesEqual, compareBytes } from './bencode.js';
import { xor } from './table.js';

export const MAX_HOPS = 8;
export const RATE_MSGS = 20; // per second per link
export const RATE_BYTES = 64 * 1024; // per second per link
const SEEN_MAX = 4096;

const is20 = (b) => b instanceof Uint8Array && b.length === 20;

export class Relay {
  constructor(ownId) {
    this.own = ownId;
    this.seen = new Map(); // mid hex -> true, oldest first
    this.routes = new Map(); // origin hex -> the link its last relayed message arrived on (reverse path)
    this.counters = { relayedIn: 0, relayedOut: 0, forwarded: 0, delivered: 0, relayDropped: 0, maxHops: 0 }; // maxHops: links crossed by a delivered message
  }

  /** A relay query (bytes) for `m` from us to `to`. */
  wrap(to, m) {
    const mid = globalThis.crypto.getRandomValues(new Uint8Array(8));
    this._remember(toHex(mid));
    this.counters.relayedOut++;
    return this._encode({ to, from: this.own, mid, hops: 0, m });
  }

  _encode({ to, from, mid, hops, m }) {
    const t = globalThis.crypto.getRandomValues(new Uint8Array(2));
    return encode({ t, y: 'q', q: 'relay', a: { id: this.own, to, from, mid, hops, m } });
  }

  _remember(hex) {
    this.seen.set(hex, true);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.keys().next().value);
  }

  _allow(conn, size) {
    const now = performance.now();
    const r = conn.relayRate || (conn.relayRate = { msgs: RATE_MSGS, bytes: RATE_BYTES, at: now });
    const dt = (now - r.at) / 1000;
    r.at = now;
    r.msgs = Math.min(RATE_MSGS, r.msgs + dt * RATE_MSGS);
    r.bytes = Math.min(RATE_BYTES, r.bytes + dt * RATE_BYTES);
    if (r.msgs < 1 || r.bytes < size) return false;
    r.msgs -= 1; r.bytes -= size;
    return true;
  }

  /**
   * Judge an incoming relay query `a` that arrived on `conn` (size = its bytes). Returns
   * {drop: reason} | {deliver: {from, m}} | {forward: {to, bytes}}.
   */
  receive(conn, a, size) {
    this.counters.relayedIn++;
    const drop = (why) => { this.counters.relayDropped++; return { drop: why }; };
    if (!is20(a.to) || !is20(a.from) || !(a.mid instanceof Uint8Array) || a.mid.length !== 8
        || !Number.isInteger(a.hops) || !(a.m instanceof Uint8Array)) return drop('relay: bad fields');
    if (!this._allow(conn, size)) return drop('relay: rate');
    const mid = toHex(a.mid);
    if (this.seen.has(mid)) return drop('relay: duplicate');
    if (a.hops < 0 || a.hops >= MAX_HOPS) return drop('relay: too many hops');
    if (a.hops === 0 && !(conn.id && bytesEqual(conn.id, a.from))) return drop('relay: forged origin');
    if (bytesEqual(a.from, this.own)) return drop('relay: loop');
    this._remember(mid);
    this.routes.set(toHex(a.from), conn);
    if (this.routes.size > SEEN_MAX) this.routes.delete(this.routes.keys().next().value);
    if (bytesEqual(a.to, this.own)) {
      this.counters.delivered++;
      this.counters.maxHops = Math.max(this.counters.maxHops, a.hops + 1);
      return { deliver: { from: a.from, m: a.m } };
    }
    this.counters.forwarded++;
    return { forward: { to: a.to, bytes: this._encode({ to: a.to, from: a.from, mid: a.mid, hops: a.hops + 1, m: a.m }) } };
  }
}

/**
 * The link to send a relayed message for `to` over: the link messages from `to` last arrived on (reverse
 * path, when still open and not `except`), else the open direct link (not a relay route) whose node id is
 * XOR-closest to `to`, excluding `except` and links that cannot relay (webtorrent-dht peers answer 'relay' with
 * error 204). Greedy XOR alone can walk into a dead end (a node whose only
 * link is the one the message came from); the reverse path cannot, for replies.
 */
export function nextHop(conns, to, except = null, routes = null) {
  const back = routes && routes.get(toHex(to));
  if (back && back !== except && back.open && back.transport !== 'relay' && back.relays !== false) return back;
  let best = null; let bestD = null;
  for (const c of conns) {
    if (c === except || !c.open || !c.id || c.transport === 'relay' || c.relays === false) continue;
    const d = xor(to, c.id);
    if (best === null || compareBytes(d, bestD) < 0) { best = c; bestD = d; }
  }
  return best;
}
