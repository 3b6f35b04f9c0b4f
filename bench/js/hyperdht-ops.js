// Times HyperDHT client operations with JS hyperdht against a given network (the JS anchor of bench/hyperdht.py).
// Usage: node hyperdht-ops.js ROUNDS HOST:PORT [HOST:PORT...]; prints one JSON line of per-round timings (ms).
'use strict'
const DHT = require('hyperdht')
const crypto = require('crypto')

async function main () {
  const rounds = Number(process.argv[2])
  const bootstrap = process.argv.slice(3).map((s) => {
    const i = s.lastIndexOf(':')
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
  })
  const res = { bootstrap: [], announce: [], lookup: [], mutablePut: [], mutableGet: [] }
  for (let r = 0; r < rounds; r++) {
    let t = performance.now()
    const node = new DHT({ bootstrap, host: '127.0.0.1', ephemeral: true, port: [0, 0] })
    await node.fullyBootstrapped()
    res.bootstrap.push(performance.now() - t)

    const topic = crypto.randomBytes(32)
    const kp = DHT.keyPair()
    t = performance.now()
    await node.announce(topic, kp).finished()
    res.announce.push(performance.now() - t)

    t = performance.now()
    let found = false
    for await (const reply of node.lookup(topic)) {
      if (reply.peers.some((p) => p.publicKey.equals(kp.publicKey))) found = true
    }
    res.lookup.push(performance.now() - t)
    if (!found) throw new Error('lookup did not find the announce')

    t = performance.now()
    await node.mutablePut(kp, Buffer.from('bench'), { seq: 1 })
    res.mutablePut.push(performance.now() - t)
    t = performance.now()
    const got = await node.mutableGet(kp.publicKey)
    res.mutableGet.push(performance.now() - t)
    if (!got) throw new Error('mutableGet found nothing')
    await node.destroy()
  }
  process.stdout.write(JSON.stringify(res) + '\n')
}

main().catch((err) => { console.error(err); process.exit(1) })
