// KRPC (BEP 5) messages for the browser node: one bencoded dictionary per WebSocket / data-channel
// message (webtorrent-dht's framing: no length prefix, binary). Parsing is liberal about key order and
// strict about shapes: parseMessage() returns a plain {y, t, q, a, r, e, raw} or throws KrpcError.
//
// Compact formats: node info (BEP 5) is id(20) + IPv4(4) + port(2); nodes6 (BEP 32) id + IPv6(16) +
// port; peers are 6 (IPv4) or 18 (IPv6) bytes.

import { decode, encode, DecodeError } from './bencode.js';

export const MAX_MESSAGE = 64 * 1024;

export class KrpcError extends Error {
  constructor(message) { super(`krpc: ${message}`); this.name = 'KrpcError'; }
}

// KRPC error codes (BEP 5) plus webtorrent-dht's 201 for a failed peer_connection.
export const ERR_GENERIC = 201;
export const ERR_SERVER = 202;
export const ERR_PROTOCOL = 203;
export const ERR_METHOD = 204;

const isBytes = (v) => v instanceof Uint8Array;
const isDict = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !isBytes(v) && !(v instanceof Map);
const ascii = (b) => String.fromCharCode(...b);

/** Parse one KRPC message (Uint8Array). Throws KrpcError (bad shape) for anything that is not one. */
export function parseMessage(data) {
  if (!isBytes(data) || data.length > MAX_MESSAGE) throw new KrpcError('message too large or not bytes');
  let m;
  try { m = decode(data, { sortedKeys: false }); } catch (e) {
    if (e instanceof DecodeError) throw new KrpcError(e.message);
    throw e;
  }
  if (!isDict(m)) throw new KrpcError('not a dictionary');
  if (!isBytes(m.t) || m.t.length > 64) throw new KrpcError('missing t');
  if (!isBytes(m.y) || m.y.length !== 1) throw new KrpcError('missing y');
  const y = ascii(m.y);
  const out = { y, t: m.t, raw: m };
  if (y === 'q') {
    if (!isBytes(m.q) || m.q.length > 64) throw new KrpcError('missing q');
    if (!isDict(m.a) || !isBytes(m.a.id) || m.a.id.length !== 20) throw new KrpcError('missing a.id');
    out.q = ascii(m.q); out.a = m.a;
  } else if (y === 'r') {
    if (!isDict(m.r) || !isBytes(m.r.id) || m.r.id.length !== 20) throw new KrpcError('missing r.id');
    out.r = m.r;
  } else if (y === 'e') {
    const e = Array.isArray(m.e) ? m.e : [];
    out.e = [typeof e[0] === 'number' ? e[0] : 0, isBytes(e[1]) ? new TextDecoder().decode(e[1]) : ''];
  } else {
    throw new KrpcError(`unknown y ${JSON.stringify(y)}`);
  }
  return out;
}

export function encodeQuery(t, q, a) { return encode({ t, y: 'q', q, a }); }
export function encodeResponse(t, r) { return encode({ t, y: 'r', r }); }
export function encodeError(t, code, message) { return encode({ t, y: 'e', e: [code, message] }); }

/** Compact node info: [{id: Uint8Array(20), host, port}] -> bytes (IPv4 only; others skipped). */
export function encodeNodes(nodes) {
  const out = [];
  for (const n of nodes) {
    const ip = parseIPv4(n.host);
    if (!ip) continue;
    const b = new Uint8Array(26);
    b.set(n.id, 0); b.set(ip, 20); b[24] = (n.port >> 8) & 0xff; b[25] = n.port & 0xff;
    out.push(b);
  }
  const all = new Uint8Array(out.length * 26);
  out.forEach((b, i) => all.set(b, i * 26));
  return all;
}

/** Parse compact node info (26-byte entries; 38 with v6). Throws KrpcError on a bad length. */
export function decodeNodes(data, v6 = false) {
  const size = v6 ? 38 : 26;
  if (!isBytes(data) || data.length % size) throw new KrpcError('bad nodes length');
  const out = [];
  for (let i = 0; i < data.length; i += size) {
    const e = data.subarray(i, i + size);
    const addr = decodePeer(e.subarray(20));
    out.push({ id: e.slice(0, 20), host: addr.host, port: addr.port });
  }
  return out;
}

function parseIPv4(host) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host || '');
  if (!m) return null;
  const b = m.slice(1).map(Number);
  return b.every((x) => x < 256) ? Uint8Array.from(b) : null;
}

/** Compact peer (6 or 18 bytes) -> {host, port}. Throws KrpcError on another length. */
export function decodePeer(b) {
  if (b.length === 6) return { host: Array.from(b.subarray(0, 4)).join('.'), port: (b[4] << 8) | b[5] };
  if (b.length === 18) {
    const parts = [];
    for (let i = 0; i < 16; i += 2) parts.push(((b[i] << 8) | b[i + 1]).toString(16));
    return { host: parts.join(':').replace(/\b(?:0:){2,}/, ':'), port: (b[16] << 8) | b[17] };
  }
  throw new KrpcError('bad compact peer');
}

/** {host (IPv4), port} -> 6-byte compact peer, or null when the host is not IPv4. */
export function encodePeer(host, port) {
  const ip = parseIPv4(host);
  if (!ip || !(port >= 0 && port < 65536)) return null;
  const b = new Uint8Array(6);
  b.set(ip); b[4] = port >> 8; b[5] = port & 0xff;
  return b;
}
