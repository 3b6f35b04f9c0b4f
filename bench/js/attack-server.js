// The JS anchor of bench/attack.py: a hyperdht 6.34 server under attack, the same shape as
// `python -m tools.attack serve` (tools/attack.py).
// Usage: node attack-server.js --bootstrap host:port [--seed hex]
// Prints {"ready", "port", "publicKey", "pid"}; per connection {"event": "closed", "error", "open"};
// answers {"op": "stats"} on stdin with {"connections": n}. Each connection is half-closed at once
// (end()) and read until the peer ends or the stream fails.
'use strict'
const crypto = require('crypto')
const DHT = require('hyperdht')
const { out, serve } = require('../../tests/js/stdio.js')

async function main () {
  const argv = process.argv.slice(2)
  const bootstrap = []
  let seed = crypto.randomBytes(32)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') bootstrap.push(argv[++i])
    else if (argv[i] === '--seed') seed = Buffer.from(argv[++i], 'hex')
  }
  const boot = bootstrap.map((s) => {
    const i = s.lastIndexOf(':')
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
  })
  const node = new DHT({ bootstrap: boot, host: '127.0.0.1', port: [0, 0] })
  await node.fullyBootstrapped()
  const kp = DHT.keyPair(seed)
  let open = 0
  const server = node.createServer((stream) => {
    open++
    let error = null
    stream.on('error', (err) => { error = err.code || err.message || String(err) })
    stream.on('data', () => {})
    stream.on('close', () => {
      open--
      out({ event: 'closed', error, open })
    })
    stream.end()
  })
  await server.listen(kp)
  out({ ready: true, port: node.address().port, publicKey: kp.publicKey.toString('hex'), pid: process.pid })
  serve(async (cmd) => {
    if (cmd.op === 'stats') out({ connections: open })
  }, async () => {
    await node.destroy()
  })
}

main().catch((err) => {
  out({ error: String(err && err.stack || err) })
  process.exit(1)
})
