// Ed25519 from a 32-byte seed with node's crypto, for BEP 44 (bittorrent-dht takes `verify` and `sign`
// functions): keyPair(seedHex) -> {priv: KeyObject, pub: Buffer(32)}; verify(sig, msg, pk) -> boolean.
// Used by tests/js/mainline-peer.js and bench/js/churn-mainline.js.
'use strict'
const crypto = require('crypto')

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

exports.keyPair = function (seedHex) {
  const priv = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(seedHex, 'hex')]), format: 'der', type: 'pkcs8' })
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length)
  return { priv, pub: Buffer.from(pub) }
}

exports.sign = function (priv, msg) {
  return crypto.sign(null, msg, priv)
}

exports.verify = function (sig, msg, pk) {
  try {
    const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pk]), format: 'der', type: 'spki' })
    return crypto.verify(null, msg, key, sig)
  } catch (err) {
    return false
  }
}
