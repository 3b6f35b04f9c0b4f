// JS side of bench/connect.py: on a given testnet, a JS server and a JS client node;
// times `connects` connections (connect() -> 'open') and one `mib` MiB client->server transfer.
// Usage: node connect-bench.js --bootstrap host:port [--connects N] [--mib M]
// Prints {"connect_ms": [..], "MBps": x, "ok": bool}.
'use strict'
const DHT = require('hyperdht')

async function main () {
  const argv = process.argv.slice(2)
  const boot = []
  let connects = 10
  let mib = 256
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') {
      const s = argv[++i]
      const j = s.lastIndexOf(':')
      boot.push({ host: s.slice(0, j), port: Number(s.slice(j + 1)) })
    } else if (argv[i] === '--connects') connects = Number(argv[++i])
    else if (argv[i] === '--mib') mib = Number(argv[++i])
  }
  const a = new DHT({ bootstrap: boot, host: '127.0.0.1', port: [0, 0] })
  const b = new DHT({ bootstrap: boot, host: '127.0.0.1', port: [0, 0] })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()
  let received = 0
  let onDone = null
  const server = a.createServer((s) => {
    s.on('error', () => {})
    s.on('data', (d) => { received += d.length })
    s.on('end', () => { s.end(); if (onDone) onDone() })
  })
  const kp = DHT.keyPair()
  await server.listen(kp)
  const times = []
  for (let i = 0; i < connects; i++) {
    const t0 = process.hrtime.bigint()
    const s = b.connect(kp.publicKey)
    await new Promise((resolve, reject) => { s.once('open', resolve); s.once('error', reject) })
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    s.on('error', () => {})
    s.end()
    s.destroy()
  }
  received = 0
  const total = mib * 1024 * 1024
  const chunk = Buffer.alloc(65536, 7)
  const s = b.connect(kp.publicKey)
  await new Promise((resolve, reject) => { s.once('open', resolve); s.once('error', reject) })
  s.on('error', () => {})
  const done = new Promise((resolve) => { onDone = resolve })
  const t0 = process.hrtime.bigint()
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!s.write(chunk)) await new Promise((resolve) => s.once('drain', resolve))
  }
  s.end()
  await done
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  process.stdout.write(JSON.stringify({ connect_ms: times, MBps: total / secs / 1e6, ok: received === total }) + '\n')
  s.destroy()
  await server.close()
  await a.destroy()
  await b.destroy()
}

main().catch((err) => { console.error(err); process.exit(1) })
