// Times HyperDHT client operations with JS hyperdht against a given network (the JS anchor of bench/hyperdht.py).
// Usage: node hyperdht-ops.js HOST:PORT [HOST:PORT...]
// Prints {"ready": true}; then for every {"cmd": "round"} line on stdin runs one round (new ephemeral node ->
// fully bootstrapped, announce, lookup, mutablePut, mutableGet, destroy) and prints
// {"cmd": "round", "bootstrap": ms, "announce": ms, ..., "requests": {"bootstrap": n, ...}} (requests the client sent
// during each operation, dht-rpc stats.requests.total). Exits when stdin closes. One long-lived process, so
// bench/hyperdht.py can alternate Python and JS rounds one by one (same moment, same machine load).
'use strict'
const DHT = require('hyperdht')
const crypto = require('crypto')
const { out, serve } = require('../../tests/js/stdio.js')

async function round (bootstrap) {
  const res = { cmd: 'round', requests: {} }
  let t = performance.now()
  const node = new DHT({ bootstrap, host: '127.0.0.1', ephemeral: true, port: [0, 0] })
  let sent = 0
  const count = (op) => {
    res.requests[op] = node.stats.requests.total - sent
    sent = node.stats.requests.total
  }
  await node.fullyBootstrapped()
  res.bootstrap = performance.now() - t
  count('bootstrap')

  const topic = crypto.randomBytes(32)
  const kp = DHT.keyPair()
  t = performance.now()
  await node.announce(topic, kp).finished()
  res.announce = performance.now() - t
  count('announce')

  t = performance.now()
  let found = false
  for await (const reply of node.lookup(topic)) {
    if (reply.peers.some((p) => p.publicKey.equals(kp.publicKey))) found = true
  }
  res.lookup = performance.now() - t
  count('lookup')
  if (!found) throw new Error('lookup did not find the announce')

  t = performance.now()
  await node.mutablePut(kp, Buffer.from('bench'), { seq: 1 })
  res.mutablePut = performance.now() - t
  count('mutablePut')
  t = performance.now()
  const got = await node.mutableGet(kp.publicKey)
  res.mutableGet = performance.now() - t
  count('mutableGet')
  if (!got) throw new Error('mutableGet found nothing')
  await node.destroy()
  return res
}

function main () {
  const bootstrap = process.argv.slice(2).map((s) => {
    const i = s.lastIndexOf(':')
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
  })
  out({ ready: true })
  serve(async (cmd) => {
    if (cmd.cmd !== 'round') return out({ cmd: cmd.cmd, error: 'unknown command' })
    out(await round(bootstrap))
  })
}

main()
