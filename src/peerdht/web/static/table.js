// The web overlay's routing table: node id -> live connection (WebSocket, WebRTC data channel or a
// relay route), bucketed by XOR distance to our own id (Kademlia). A bucket keeps at most `k` WebRTC
// links (K = 2 by default, as webtorrent-dht's k-rpc-webrtc); WebSocket links to serving nodes and
// relay routes are always kept (they cost no RTCPeerConnection). Entries leave the moment their
// connection closes (remove()).

import { compareBytes, toHex } from './bencode.js';

export function xor(a, b) {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** Index of the bucket for `id` seen from `own`: the number of leading bits they share (0..159). */
export function bucketIndex(own, id) {
  for (let i = 0; i < own.length; i++) {
    const x = own[i] ^ id[i];
    if (x) return i * 8 + Math.clz32(x) - 24;
  }
  return own.length * 8;
}

/** Sort helper: is `a` closer to `target` than `b` (XOR metric)? */
export function closer(target, a, b) { return compareBytes(xor(target, a), xor(target, b)) < 0; }

export function sortByDistance(target, items, idOf = (x) => x.id) {
  return items
    .map((x) => [xor(target, idOf(x)), x])
    .sort((p, q) => compareBytes(p[0], q[0]))
    .map((p) => p[1]);
}

export class RoutingTable {
  /** own: Uint8Array(20); k: WebRTC links per bucket. */
  constructor(own, { k = 2 } = {}) {
    this.own = own; this.k = k;
    this.entries = new Map(); // hex id -> entry {id, conn}
  }

  get size() { return this.entries.size; }

  get(idHex) { return this.entries.get(idHex); }

  has(idHex) { return this.entries.has(idHex); }

  /** Would a WebRTC link to `id` be kept (its bucket has room)? */
  wants(id) {
    const hex = toHex(id);
    if (hex === toHex(this.own) || this.entries.has(hex)) return false;
    const b = bucketIndex(this.own, id);
    let n = 0;
    for (const e of this.entries.values()) {
      if (e.conn.transport === 'webrtc' && bucketIndex(this.own, e.id) === b) n++;
    }
    return n < this.k;
  }

  /** Add or replace the entry for conn.id. Returns false when refused (full bucket, own id). */
  add(conn) {
    const hex = toHex(conn.id);
    if (hex === toHex(this.own)) return false;
    const old = this.entries.get(hex);
    if (old && old.conn === conn) return true;
    const rank = { websocket: 3, webrtc: 2, relay: 1 };
    if (old && rank[old.conn.transport] > rank[conn.transport] && old.conn.open) return false;
    if (!old && conn.transport === 'webrtc' && !this.wants(conn.id)) return false;
    this.entries.set(hex, { id: conn.id, conn });
    return true;
  }

  /** Remove the entry for `idHex`, but only if it still points at `conn` (when given). */
  remove(idHex, conn = null) {
    const e = this.entries.get(idHex);
    if (e && (conn === null || e.conn === conn)) { this.entries.delete(idHex); return true; }
    return false;
  }

  /** The `n` entries closest to `target`, excluding ids in `exclude` (a Set of hex ids). */
  closest(target, n = 8, exclude = new Set()) {
    const all = [...this.entries.values()].filter((e) => !exclude.has(toHex(e.id)));
    return sortByDistance(target, all).slice(0, n);
  }

  all() { return [...this.entries.values()]; }
}
