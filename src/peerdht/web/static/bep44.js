// BEP 44 items with WebCrypto: immutable target = SHA-1(bencode(v)); mutable target = SHA-1(k + salt);
// the Ed25519 signature covers `4:salt<len>:<salt>` (only with a salt) `3:seqi<seq>e1:v` + bencode(v)
// (as peerdht.mainline.crypto does). WebCrypto exists only in secure contexts (https:, or http: from
// a loopback host): hasWebCrypto() tells the page, and every function here throws NoWebCrypto without it.

import { encode, bytes } from './bencode.js';

export class NoWebCrypto extends Error {
  constructor() {
    super('this page has no WebCrypto (it is not a secure context): serve it over https:// or open it from '
      + 'http://127.0.0.1 / http://localhost; BEP 44 get/put need SHA-1 and Ed25519');
    this.name = 'NoWebCrypto';
  }
}

export function hasWebCrypto() { return !!(globalThis.crypto && globalThis.crypto.subtle && globalThis.isSecureContext !== false); }

function subtle() {
  if (!hasWebCrypto()) throw new NoWebCrypto();
  return globalThis.crypto.subtle;
}

export async function sha1(data) { return new Uint8Array(await subtle().digest('SHA-1', data)); }

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Immutable target of an already bencoded value. */
export async function immutableTarget(encodedValue) { return sha1(encodedValue); }

/** Mutable target: SHA-1(publicKey + salt). */
export async function mutableTarget(publicKey, salt = new Uint8Array(0)) { return sha1(concat(publicKey, salt)); }

/** The bytes an Ed25519 signature covers. */
export function signable(encodedValue, seq, salt = new Uint8Array(0)) {
  const prefix = salt.length ? concat(bytes(`4:salt${salt.length}:`), salt) : new Uint8Array(0);
  return concat(prefix, bytes(`3:seqi${seq}e1:v`), encodedValue);
}

// PKCS#8 wrapping of a 32-byte Ed25519 seed (RFC 8410).
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/** A key pair {publicKey: Uint8Array(32), seed: Uint8Array(32), privateKey: CryptoKey}; random seed unless given. */
export async function keyPair(seed = null) {
  const s = subtle();
  if (!seed) seed = globalThis.crypto.getRandomValues(new Uint8Array(32));
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('seed must be 32 bytes');
  const privateKey = await s.importKey('pkcs8', concat(PKCS8_PREFIX, seed), { name: 'Ed25519' }, true, ['sign']);
  const jwk = await s.exportKey('jwk', privateKey);
  const b64 = jwk.x.replace(/-/g, '+').replace(/_/g, '/');
  const publicKey = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
  return { publicKey, seed, privateKey };
}

export async function sign(pair, message) {
  return new Uint8Array(await subtle().sign({ name: 'Ed25519' }, pair.privateKey, message));
}

/** Ed25519 verify; false for malformed keys/signatures, never throws for bad input. */
export async function verify(publicKey, signature, message) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  const s = subtle();
  try {
    const key = await s.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
    return await s.verify({ name: 'Ed25519' }, key, signature, message);
  } catch {
    return false;
  }
}

/** Sign a mutable item: returns {k, seq, sig, v, salt, target} ready for `put`. */
export async function signMutable(pair, value, seq, salt = new Uint8Array(0)) {
  const encoded = encode(value);
  if (encoded.length > 1000) throw new RangeError('BEP 44: v must bencode to at most 1000 bytes');
  const sig = await sign(pair, signable(encoded, seq, salt));
  return { k: pair.publicKey, seq, sig, v: value, salt, target: await mutableTarget(pair.publicKey, salt) };
}

export async function verifyMutable(k, sig, encodedValue, seq, salt = new Uint8Array(0)) {
  return verify(k, sig, signable(encodedValue, seq, salt));
}
