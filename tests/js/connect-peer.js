// A JS hyperdht peer for connect-by-key interop tests.
// Usage: node connect-peer.js [--testnet N] [--bootstrap host:port ...] [--host 0.0.0.0]
// With --testnet N it first starts N persistent JS nodes on 127.0.0.1; then it creates one (adaptive)
// node bootstrapped from them and/or the given nodes, and prints
// {"ready": true, "bootstrap": ["127.0.0.1:port"], "publicKey": hex}.
// Connection protocol (both roles): send `send` bytes of a fixed pattern then end; read everything
// the other side sends until its end; a server then writes the 32-byte sha256 of what it received
// (before its pattern, so the server writes digest || pattern) -- see tests/interop/test_connect_js.py.
// Commands (JSON lines on stdin):
//   {"id", "op": "serve", "seed": hex, "send": n, "reject": bool} -> {"id", "publicKey"}
//   {"id", "op": "closeServer"}                                   -> {"id", "ok"}
//   {"id", "op": "connect", "publicKey": hex, "send": n}
//        -> {"id", "received": n, "sha256": hex of received, "sentSha256": hex} | {"id", "code"}
//   {"id", "op": "echoConnect", "publicKey": hex, "text": str}    -> {"id", "text"} | {"id", "code"}
// Server events are printed as {"event": "connection", "remotePublicKey": hex, "received", "sha256"}
// and {"event": "firewall", "remotePublicKey": hex}.
'use strict'
const crypto = require('crypto')
const DHT = require('hyperdht')
const { out, serve } = require('./stdio.js')

const ANY = [0, 0]
const BLOCK = Buffer.alloc(65536)
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = (i * 7 + 3) & 255

function pattern (n) {
  // yields Buffers totalling n bytes
  const parts = []
  while (n > 0) {
    const k = Math.min(n, BLOCK.length)
    parts.push(k === BLOCK.length ? BLOCK : BLOCK.subarray(0, k))
    n -= k
  }
  return parts
}

async function writeAll (stream, n) {
  for (const p of pattern(n)) {
    if (!stream.write(p)) await new Promise((resolve) => stream.once('drain', resolve))
  }
}

function readAll (stream) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256')
    let n = 0
    let first = Buffer.alloc(0)
    stream.on('data', (d) => {
      if (first.length < 32) first = Buffer.concat([first, d.subarray(0, 32 - first.length)])
      h.update(d)
      n += d.length
    })
    stream.on('end', () => resolve({ n, sha256: h.digest('hex'), first }))
    stream.on('error', reject)
  })
}

async function main () {
  const argv = process.argv.slice(2)
  let size = 0
  let host = '127.0.0.1'
  const bootstrap = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--testnet') size = Number(argv[++i])
    else if (argv[i] === '--bootstrap') bootstrap.push(argv[++i])
    else if (argv[i] === '--host') host = argv[++i]
  }
  const swarm = []
  let boot = bootstrap.map(parse)
  for (let i = 0; i < size; i++) {
    const n = new DHT({ ephemeral: false, firewalled: false, bootstrap: boot, port: ANY, host: '127.0.0.1' })
    await n.fullyBootstrapped()
    if (boot.length === 0) boot = [{ host: '127.0.0.1', port: n.address().port }]
    swarm.push(n)
  }
  const node = new DHT({ bootstrap: boot, host, port: ANY })
  await node.fullyBootstrapped()
  out({ ready: true, bootstrap: boot.map(b => `${b.host}:${b.port}`), publicKey: node.defaultKeyPair.publicKey.toString('hex') })

  const buf = (h) => Buffer.from(h, 'hex')
  let server = null

  serve(async (cmd) => {
    const id = cmd.id
    switch (cmd.op) {
      case 'serve': {
        const kp = DHT.keyPair(buf(cmd.seed))
        server = node.createServer({
          firewall (remotePublicKey) {
            if (cmd.reject) out({ event: 'firewall', remotePublicKey: remotePublicKey.toString('hex') })
            return !!cmd.reject
          }
        }, async (stream) => {
          stream.on('error', () => {})
          try {
            const got = await readAll(stream)
            stream.write(buf(got.sha256))
            await writeAll(stream, cmd.send || 0)
            stream.end()
            out({ event: 'connection', remotePublicKey: stream.remotePublicKey.toString('hex'), received: got.n, sha256: got.sha256 })
          } catch (err) {
            out({ event: 'connectionError', error: String(err) })
          }
        })
        await server.listen(kp)
        return out({ id, publicKey: kp.publicKey.toString('hex') })
      }
      case 'closeServer': {
        if (server) await server.close()
        server = null
        return out({ id, ok: true })
      }
      case 'connect': {
        const stream = node.connect(buf(cmd.publicKey))
        const sent = crypto.createHash('sha256')
        for (const p of pattern(cmd.send || 0)) sent.update(p)
        try {
          await new Promise((resolve, reject) => {
            stream.once('open', resolve)
            stream.once('error', reject)
            stream.once('close', () => reject(new Error('closed')))
          })
          const reading = readAll(stream)
          await writeAll(stream, cmd.send || 0)
          stream.end()
          const got = await reading
          stream.destroy()
          return out({ id, received: got.n, sha256: got.sha256, sentSha256: sent.digest('hex') })
        } catch (err) {
          stream.destroy()
          return out({ id, code: err.code || String(err) })
        }
      }
      case 'echoConnect': {
        const stream = node.connect(buf(cmd.publicKey))
        try {
          await new Promise((resolve, reject) => {
            stream.once('open', resolve)
            stream.once('error', reject)
          })
          stream.write(Buffer.from(cmd.text))
          stream.end()
          const chunks = []
          for await (const d of stream) chunks.push(d)
          stream.destroy()
          return out({ id, text: Buffer.concat(chunks).toString() })
        } catch (err) {
          stream.destroy()
          return out({ id, code: err.code || String(err) })
        }
      }
      default:
        return out({ id, error: 'unknown op ' + cmd.op })
    }
  }, async () => {
    if (server) await server.close()
    await node.destroy()
    for (const n of swarm) await n.destroy()
  })
}

function parse (s) {
  const i = s.lastIndexOf(':')
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
