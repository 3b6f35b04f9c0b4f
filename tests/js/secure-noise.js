// Noise reference for tests/interop/test_secure_noise.py: JS noise-handshake + noise-curve-ed driven by JSON commands.
// Ephemeral keys come from seeds so both implementations can be compared byte for byte.
'use strict'
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const c = require('compact-encoding')
const NoiseWrap = require('hyperdht/lib/noise-wrap')
const m = require('hyperdht/lib/messages')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const { out, serve } = require('./stdio')

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const buf = (h) => Buffer.from(h || '', 'hex')
const states = new Map()

function finished (hs) {
  if (!hs.complete) return { complete: false }
  return { complete: true, hash: hex(hs.hash), tx: hex(hs.tx), rx: hex(hs.rx), rs: hex(hs.rs) }
}

serve(async (cmd) => {
  const st = states.get(cmd.id)
  if (cmd.op === 'new') {
    const hs = new Noise(cmd.pattern, cmd.initiator, curve.generateKeyPair(buf(cmd.seed)), { curve })
    hs.initialise(buf(cmd.prologue), cmd.remote ? buf(cmd.remote) : null)
    hs.e = curve.generateKeyPair(buf(cmd.eseed))
    states.set(cmd.id, hs)
    out({ ok: true })
  } else if (cmd.op === 'send') {
    const msg = st.send(buf(cmd.payload))
    out({ msg: hex(msg), ...finished(st) })
  } else if (cmd.op === 'recv') {
    try {
      const payload = st.recv(buf(cmd.msg))
      out({ payload: hex(payload), ...finished(st) })
    } catch (err) {
      out({ failed: String(err.message) })
    }
  } else if (cmd.op === 'state') {
    out(finished(st))
  } else if (cmd.op === 'wrap-respond') {
    // hyperdht NoiseWrap as the server: decode our IK message 1, answer, report NoiseWrap.final()
    const w = new NoiseWrap(curve.generateKeyPair(buf(cmd.seed)), null)
    w.handshake.e = curve.generateKeyPair(buf(cmd.eseed))
    const payload = w.recv(buf(cmd.msg))
    const reply = w.send(payload)
    const f = w.final()
    out({
      payload: hex(c.encode(m.noisePayload, payload)),
      msg: hex(reply),
      hash: hex(f.hash),
      tx: hex(f.tx),
      rx: hex(f.rx),
      remotePublicKey: hex(f.remotePublicKey),
      holepunchSecret: hex(f.holepunchSecret),
      remoteId: hex(f.remoteId),
      id: hex(NoiseSecretStream.id(f.hash, false))
    })
  } else if (cmd.op === 'dh') {
    const kp = curve.generateKeyPair(buf(cmd.seed))
    out({ publicKey: hex(kp.publicKey), dh: hex(curve.dh(buf(cmd.remote), kp)) })
  } else {
    out({ error: 'unknown op ' + cmd.op })
  }
})
out({ ready: true })
