// udx-native peer for the Python UDX interop tests and bench/udx.py.
// stdout: {"ready": true, "port": N} then event lines; stdin commands (JSON lines):
//   {"cmd": "stream", "id": I, "remoteId": R, "port": P, "host": H}  create + connect a stream
//       (+ "secret": true, "initiator": bool: wrap it in @hyperswarm/secret-stream, in-band Noise XX)
//   {"cmd": "source", "bytes": N}   write N pseudo-random bytes, then end(); prints {"sent": N, "sha256": hex}
//   {"cmd": "sink"}                 hash everything read; on 'end' prints {"received": N, "sha256": hex, "ms": t}
//   {"cmd": "end"}                  stream.end()
//   {"cmd": "destroy"}              stream.destroy()
//   {"cmd": "message", "hex": X}    stream.trySend(buffer)
//   {"cmd": "raw", "hex": X, "port": P}  socket.trySend(buffer) to 127.0.0.1:P
// events: {"event": "end"}, {"event": "close", "error": code|null}, {"event": "message", "hex": X},
//         {"event": "data", "hex": X} (only in "echo-events" mode), {"event": "socket-message", "hex": X}
'use strict'
const UDX = require('udx-native')
const SecretStream = require('@hyperswarm/secret-stream')
const crypto = require('crypto')
const { out, serve } = require('./stdio.js')

const u = new UDX()
const socket = u.createSocket()
socket.bind(0, process.argv[2] || '127.0.0.1')
socket.on('message', (buf) => out({ event: 'socket-message', hex: buf.toString('hex') }))
let stream = null
let started = 0

out({ ready: true, port: socket.address().port })

async function source (n) {
  const hash = crypto.createHash('sha256')
  let sent = 0
  started = Date.now()
  while (sent < n) {
    const len = Math.min(65536, n - sent)
    const buf = crypto.randomBytes(len)
    hash.update(buf)
    sent += len
    if (!stream.write(buf)) await new Promise((resolve) => stream.once('drain', resolve))
  }
  stream.end()
  out({ sent, sha256: hash.digest('hex') })
}

function sink () {
  const hash = crypto.createHash('sha256')
  let received = 0
  started = Date.now()
  stream.on('data', (buf) => { hash.update(buf); received += buf.byteLength })
  stream.on('end', () => out({ received, sha256: hash.digest('hex'), ms: Date.now() - started }))
}

serve(async (cmd) => {
  if (cmd.cmd === 'stream') {
    stream = u.createStream(cmd.id)
    stream.on('end', () => out({ event: 'end' }))
    stream.on('close', () => out({ event: 'close' }))
    stream.on('error', (err) => out({ event: 'error', error: err.code || String(err) }))
    stream.on('message', (buf) => out({ event: 'message', hex: buf.toString('hex') }))
    stream.connect(socket, cmd.remoteId, cmd.port, cmd.host || '127.0.0.1')
    if (cmd.secret) {
      stream = new SecretStream(!!cmd.initiator, stream)
      stream.on('error', (err) => out({ event: 'error', error: err.code || String(err) }))
    }
    if (cmd.mode === 'sink') sink()
    else if (cmd.mode === 'echo-events') stream.on('data', (buf) => out({ event: 'data', hex: buf.toString('hex') }))
    out({ connected: true })
  } else if (cmd.cmd === 'source') {
    source(cmd.bytes)
  } else if (cmd.cmd === 'end') {
    stream.end()
  } else if (cmd.cmd === 'destroy') {
    stream.destroy()
  } else if (cmd.cmd === 'message') {
    stream.trySend(Buffer.from(cmd.hex, 'hex'))
  } else if (cmd.cmd === 'write') {
    stream.write(Buffer.from(cmd.hex, 'hex'))
  } else if (cmd.cmd === 'raw') {
    socket.trySend(Buffer.from(cmd.hex, 'hex'), cmd.port, '127.0.0.1')
  }
}, async () => {
  if (stream) stream.destroy()
  await socket.close()
})
