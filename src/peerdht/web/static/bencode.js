// Strict bencode (BEP 3) for the browser node: the wire format of KRPC (BEP 5).
//
// Mirrors peerdht.encoding.bencode byte for byte: sorted unique dictionary keys, canonical integers
// (no leading zeros, no -0), bounded nesting depth and integer size. decode() throws DecodeError for
// every malformed input and nothing else, and encode(decode(x)) equals x for every x it accepts
// (BEP 44 signatures cover `v` exactly as received).
//
// Value model (decode):  byte string -> Uint8Array, integer -> number (BigInt beyond 2^53),
// list -> Array, dictionary -> plain object keyed by UTF-8 keys (a Map keyed by Uint8Array when a
// key is not valid UTF-8). encode() also takes strings (UTF-8), BigInt, Map and ArrayBuffer views;
// it refuses booleans, null/undefined and non-integer numbers (TypeError).

export const MAX_DEPTH = 64;
export const MAX_INT_DIGITS = 64;

export class DecodeError extends Error {
  constructor(message) { super(`bencode: ${message}`); this.name = 'DecodeError'; }
}

const utf8 = new TextEncoder();
const utf8strict = new TextDecoder('utf-8', { fatal: true });

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return utf8.encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return null;
}

class Writer {
  constructor() { this.parts = []; this.size = 0; }
  bytes(b) { this.parts.push(b); this.size += b.length; }
  ascii(s) { this.bytes(utf8.encode(s)); }
  done() {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

function encodeInto(w, v, depth) {
  if (depth > MAX_DEPTH) throw new TypeError('bencode: nested too deeply');
  const b = toBytes(v);
  if (b) { w.ascii(`${b.length}:`); w.bytes(b); return; }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`bencode: not an integer: ${v}`);
    w.ascii(`i${Object.is(v, -0) ? 0 : v}e`); return;
  }
  if (typeof v === 'bigint') { w.ascii(`i${v}e`); return; }
  if (Array.isArray(v)) {
    w.ascii('l');
    for (const item of v) encodeInto(w, item, depth + 1);
    w.ascii('e'); return;
  }
  if (v instanceof Map || (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v))) {
    const entries = [];
    const src = v instanceof Map ? v.entries() : Object.entries(v);
    for (const [k, val] of src) {
      if (val === undefined) continue;
      const kb = toBytes(k);
      if (!kb) throw new TypeError('bencode: dictionary keys must be strings or bytes');
      entries.push([kb, val]);
    }
    entries.sort((x, y) => compareBytes(x[0], y[0]));
    for (let i = 1; i < entries.length; i++) {
      if (compareBytes(entries[i - 1][0], entries[i][0]) === 0) throw new TypeError('bencode: duplicate key');
    }
    w.ascii('d');
    for (const [kb, val] of entries) { w.ascii(`${kb.length}:`); w.bytes(kb); encodeInto(w, val, depth + 1); }
    w.ascii('e'); return;
  }
  throw new TypeError(`bencode: cannot encode ${v === null ? 'null' : typeof v}`);
}

/** Bencode `value` into a Uint8Array (keys sorted). Throws TypeError for values bencode cannot hold. */
export function encode(value) {
  const w = new Writer();
  encodeInto(w, value, 0);
  return w.done();
}

class Reader {
  constructor(data, maxDepth, maxIntDigits, sortedKeys) {
    this.d = data; this.maxDepth = maxDepth; this.maxIntDigits = maxIntDigits; this.sortedKeys = sortedKeys;
  }

  value(i, depth) {
    const d = this.d;
    if (i >= d.length) throw new DecodeError('truncated');
    const c = d[i];
    if (c === 0x69) return this.integer(i + 1);
    if (c >= 0x30 && c <= 0x39) return this.string(i);
    if (c === 0x6c) {
      if (depth >= this.maxDepth) throw new DecodeError('nested too deeply');
      const out = [];
      i += 1;
      for (;;) {
        if (i >= d.length) throw new DecodeError('truncated list');
        if (d[i] === 0x65) return [out, i + 1];
        const [item, j] = this.value(i, depth + 1);
        out.push(item); i = j;
      }
    }
    if (c === 0x64) {
      if (depth >= this.maxDepth) throw new DecodeError('nested too deeply');
      const keys = []; const vals = [];
      let prev = null;
      i += 1;
      for (;;) {
        if (i >= d.length) throw new DecodeError('truncated dictionary');
        if (d[i] === 0x65) { i += 1; break; }
        if (d[i] < 0x30 || d[i] > 0x39) throw new DecodeError('dictionary key is not a string');
        const [k, j] = this.string(i);
        if (this.sortedKeys) {
          if (prev !== null && compareBytes(prev, k) >= 0) throw new DecodeError('dictionary keys not sorted or not unique');
          prev = k;
        } else if (keys.some((x) => compareBytes(x, k) === 0)) {
          throw new DecodeError('duplicate dictionary key');
        }
        const [val, m] = this.value(j, depth + 1);
        keys.push(k); vals.push(val); i = m;
      }
      let names = [];
      try { names = keys.map((k) => utf8strict.decode(k)); } catch { names = null; }
      if (names && names.every((n, x) => compareBytes(utf8.encode(n), keys[x]) === 0)) {
        const obj = {};
        names.forEach((n, x) => Object.defineProperty(obj, n, { value: vals[x], enumerable: true, writable: true, configurable: true }));
        return [obj, i];
      }
      return [new Map(keys.map((k, x) => [k, vals[x]])), i];
    }
    throw new DecodeError(`unexpected byte 0x${c.toString(16)}`);
  }

  integer(i) {
    const d = this.d;
    const start = i;
    let neg = false;
    if (d[i] === 0x2d) { neg = true; i += 1; }
    const digitsStart = i;
    while (i < d.length && d[i] >= 0x30 && d[i] <= 0x39) {
      i += 1;
      if (i - digitsStart > this.maxIntDigits) throw new DecodeError('integer too long');
    }
    if (i >= d.length) throw new DecodeError('truncated integer');
    if (d[i] !== 0x65) throw new DecodeError('bad integer');
    const n = i - digitsStart;
    if (n === 0) throw new DecodeError('empty integer');
    if (d[digitsStart] === 0x30 && (n > 1 || neg)) throw new DecodeError('non-canonical integer');
    const text = String.fromCharCode(...d.subarray(start, i));
    const big = BigInt(text);
    const v = (big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER)) ? Number(big) : big;
    return [v, i + 1];
  }

  string(i) {
    const d = this.d;
    const start = i;
    while (i < d.length && d[i] >= 0x30 && d[i] <= 0x39) {
      i += 1;
      if (i - start > 10) throw new DecodeError('string length too long');
    }
    if (i >= d.length || d[i] !== 0x3a) throw new DecodeError('bad string length');
    if (d[start] === 0x30 && i - start > 1) throw new DecodeError('non-canonical string length');
    const len = Number(String.fromCharCode(...d.subarray(start, i)));
    const end = i + 1 + len;
    if (end > d.length) throw new DecodeError('truncated string');
    return [d.slice(i + 1, end), end];
  }
}

/** Decode one complete bencoded value; trailing bytes are an error. Throws DecodeError only. */
// sortedKeys: false accepts dictionaries in any key order (duplicates are still refused), as the Python
// side does for KRPC envelopes from other implementations.
export function decode(data, { maxDepth = MAX_DEPTH, maxIntDigits = MAX_INT_DIGITS, sortedKeys = true } = {}) {
  const bytes = toBytes(data);
  if (!bytes) throw new DecodeError('input is not bytes');
  const r = new Reader(bytes, maxDepth, maxIntDigits, sortedKeys);
  let out;
  try {
    out = r.value(0, 0);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError(String(e && e.message));
  }
  if (out[1] !== bytes.length) throw new DecodeError('trailing bytes');
  return out[0];
}

// Helpers shared by the other modules.
export function bytesEqual(a, b) { return a && b && a.length === b.length && compareBytes(a, b) === 0; }
export function toHex(b) { return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''); }
export function fromHex(s) {
  if (typeof s !== 'string' || s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new TypeError('not a hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
export function text(b) { return new TextDecoder().decode(b); }
export function bytes(s) { return utf8.encode(s); }
export { compareBytes };
