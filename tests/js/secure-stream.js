// @hyperswarm/secret-stream over TCP on 127.0.0.1 for tests/interop/test_secure_stream.py.
// Commands (JSON lines): ik-respond / ik-initiate / ik-finish (JS noise-handshake IK, keys kept by name),
// listen / connect (one NoiseSecretStream per connection, in-band XX or a named handshake passed in),
// udx-bind / udx-connect (the same over a udx-native stream),
// corrupt (write a forged frame on a connection's raw socket). Events: {conn, event, ...}.
'use strict'
const net = require('net')
const UDX = require('udx-native')
const crypto = require('crypto')
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const { NS } = require('hyperdht/lib/constants')
const { out, serve } = require('./stdio')

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const buf = (h) => Buffer.from(h || '', 'hex')
const handshakes = new Map()
const pending = new Map()
const conns = new Map()
let nextConn = 0
let udx = null
let udxSocket = null

function keysOf (hs, keyPair) {
  return { tx: hs.tx, rx: hs.rx, hash: hs.hash, publicKey: keyPair.publicKey, remotePublicKey: hs.rs }
}

async function pump (stream, id, n) {
  // n pseudo-random bytes in 64 KiB writes, honouring backpressure, then end()
  const sha = crypto.createHash('sha256')
  let left = n
  while (left > 0) {
    const chunk = crypto.randomBytes(Math.min(left, 65536))
    left -= chunk.length
    sha.update(chunk)
    // no drain wait after the last chunk: the stream may finish (and close) before 'drain' fires
    if (!stream.write(chunk) && left > 0) await new Promise((resolve) => stream.once('drain', resolve))
  }
  out({ conn: id, event: 'sent', bytes: n, sha256: sha.digest('hex') })
  stream.end()
}

function attach (socket, cmd) {
  const id = nextConn++
  const opts = { keepAlive: cmd.keepAlive || 0 }
  if (cmd.handshake) opts.handshake = handshakes.get(cmd.handshake)
  else opts.keyPair = curve.generateKeyPair(buf(cmd.seed))
  if (cmd.pattern) opts.pattern = cmd.pattern
  if (cmd.remote) opts.remotePublicKey = buf(cmd.remote)
  const stream = new NoiseSecretStream(cmd.initiator, socket, opts)
  conns.set(id, { stream, socket })
  const sha = crypto.createHash('sha256')
  let received = 0
  let keepAlives = 0
  stream.on('data', (data) => {
    if (data.length === 0 && keepAlives++ === 0) out({ conn: id, event: 'keepalive' })
    received += data.length
    sha.update(data)
    if (cmd.echo) stream.write(data)
  })
  stream.on('end', () => {
    out({ conn: id, event: 'end', received, sha256: sha.digest('hex'), keepAlives })
    if (cmd.echo) stream.end()
  })
  stream.on('error', (err) => out({ conn: id, event: 'error', message: String(err.message) }))
  stream.on('close', () => out({ conn: id, event: 'close' }))
  stream.on('message', (m) => out({ conn: id, event: 'message', data: hex(m) }))
  stream.opened.then((ok) => {
    if (!ok) return
    out({
      conn: id,
      event: 'open',
      remotePublicKey: hex(stream.remotePublicKey),
      publicKey: hex(stream.publicKey),
      hash: hex(stream.handshakeHash)
    })
    if (cmd.send) pump(stream, id, cmd.send)
  })
}

serve(async (cmd) => {
  if (cmd.op === 'ik-respond') {
    const kp = curve.generateKeyPair(buf(cmd.seed))
    const hs = new Noise('IK', false, kp, { curve })
    hs.initialise(NS.PEER_HANDSHAKE)
    hs.recv(buf(cmd.msg))
    const msg = hs.send()
    handshakes.set(cmd.name, keysOf(hs, kp))
    out({ msg: hex(msg), hash: hex(hs.hash) })
  } else if (cmd.op === 'ik-initiate') {
    const kp = curve.generateKeyPair(buf(cmd.seed))
    const hs = new Noise('IK', true, kp, { curve })
    hs.initialise(NS.PEER_HANDSHAKE, buf(cmd.remote))
    pending.set(cmd.name, { hs, kp })
    out({ msg: hex(hs.send()), publicKey: hex(kp.publicKey) })
  } else if (cmd.op === 'ik-finish') {
    const { hs, kp } = pending.get(cmd.name)
    hs.recv(buf(cmd.msg))
    handshakes.set(cmd.name, keysOf(hs, kp))
    out({ hash: hex(hs.hash) })
  } else if (cmd.op === 'listen') {
    // allowHalfOpen: a TCP FIN from us must not end JS's sending side (UDX streams are half-open too)
    const server = net.createServer({ allowHalfOpen: true }, (socket) => attach(socket, cmd))
    server.listen(0, '127.0.0.1', () => out({ port: server.address().port }))
  } else if (cmd.op === 'connect') {
    const socket = net.connect({ port: cmd.port, host: '127.0.0.1', allowHalfOpen: true })
    attach(socket, cmd)
    out({ conn: nextConn - 1, event: 'connecting' })
  } else if (cmd.op === 'udx-bind') {
    udx = new UDX()
    udxSocket = udx.createSocket()
    udxSocket.bind(0, '127.0.0.1')
    out({ port: udxSocket.address().port })
  } else if (cmd.op === 'udx-connect') {
    // a udx-native stream as the raw stream (the HyperDHT transport)
    const raw = udx.createStream(cmd.id)
    raw.connect(udxSocket, cmd.remoteId, cmd.port, '127.0.0.1')
    attach(raw, cmd)
    out({ conn: nextConn - 1, event: 'connecting' })
  } else if (cmd.op === 'corrupt') {
    // a well-formed length prefix followed by bytes that cannot authenticate
    conns.get(cmd.conn).socket.write(Buffer.concat([Buffer.from([40, 0, 0]), crypto.randomBytes(40)]))
    out({ ok: true })
  } else if (cmd.op === 'box') {
    // unordered datagram as NoiseSecretStream.send would hand it to udx (private helper, test only)
    out({ box: hex(conns.get(cmd.conn).stream._boxMessage(buf(cmd.data))) })
  } else if (cmd.op === 'unbox') {
    const { stream } = conns.get(cmd.conn)
    let got = null
    const listeners = stream.listeners('message')
    stream.removeAllListeners('message')
    stream.on('message', (m) => { got = hex(m) })
    stream._onmessage(buf(cmd.data))
    stream.removeAllListeners('message')
    for (const l of listeners) stream.on('message', l)
    out({ data: got })
  } else if (cmd.op === 'send-message') {
    conns.get(cmd.conn).stream.send(buf(cmd.data)) // NoiseSecretStream.send: a UDX MESSAGE datagram
    out({ ok: true })
  } else if (cmd.op === 'write') {
    conns.get(cmd.conn).stream.write(buf(cmd.data))
    out({ ok: true })
  } else {
    out({ error: 'unknown op ' + cmd.op })
  }
})
out({ ready: true })
