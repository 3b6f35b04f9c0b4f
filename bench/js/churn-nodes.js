// JS side of bench/churn.py: persistent hyperdht nodes that come and go, and one JS client.
// Usage: node churn-nodes.js N host:port   (N persistent nodes on 127.0.0.1 joined through host:port)
// Prints {"ready": true, "nodes": [port...]}; then JSON commands on stdin, one per line:
//   {"id", "op": "kill"}                            -> {"id", "port"} (a random node destroyed)
//   {"id", "op": "spawn"}                           -> {"id", "port"} (a new persistent node, bootstrapped)
//   {"id", "op": "announce", "topic", "seed"}       -> {"id", "ok"}
//   {"id", "op": "lookup", "topic"}                 -> {"id", "publicKeys": [hex]}
//   {"id", "op": "mutablePut", "seed", "value", "seq"} -> {"id", "ok"}
//   {"id", "op": "mutableGet", "publicKey"}         -> {"id", "value": hex|null}
'use strict'
const DHT = require('hyperdht')
const { out, serve } = require('../../tests/js/stdio.js')

async function main () {
  const size = Number(process.argv[2])
  const i = process.argv[3].lastIndexOf(':')
  const boot = [{ host: process.argv[3].slice(0, i), port: Number(process.argv[3].slice(i + 1)) }]
  const nodes = []
  const spawn = async () => {
    const n = new DHT({ ephemeral: false, firewalled: false, bootstrap: boot, port: [0, 0], host: '127.0.0.1' })
    await n.fullyBootstrapped()
    nodes.push(n)
    return n.address().port
  }
  for (let k = 0; k < size; k++) await spawn()
  const client = new DHT({ bootstrap: boot, host: '127.0.0.1', ephemeral: true, port: [0, 0] })
  await client.fullyBootstrapped()
  out({ ready: true, nodes: nodes.map(n => n.address().port) })

  const buf = (h) => Buffer.from(h, 'hex')
  serve(async (cmd) => {
    const id = cmd.id
    try {
      switch (cmd.op) {
        case 'kill': {
          const n = nodes.splice(Math.floor(Math.random() * nodes.length), 1)[0]
          const port = n.address().port
          await n.destroy({ force: true })
          return out({ id, port })
        }
        case 'spawn':
          return out({ id, port: await spawn() })
        case 'announce': {
          await client.announce(buf(cmd.topic), DHT.keyPair(buf(cmd.seed))).finished()
          return out({ id, ok: true })
        }
        case 'lookup': {
          const keys = []
          for await (const r of client.lookup(buf(cmd.topic))) {
            for (const p of r.peers) keys.push(p.publicKey.toString('hex'))
          }
          return out({ id, publicKeys: keys })
        }
        case 'mutablePut': {
          await client.mutablePut(DHT.keyPair(buf(cmd.seed)), buf(cmd.value), { seq: cmd.seq })
          return out({ id, ok: true })
        }
        case 'mutableGet': {
          const r = await client.mutableGet(buf(cmd.publicKey), { latest: true })
          return out({ id, value: r ? r.value.toString('hex') : null })
        }
        default:
          return out({ id, error: 'unknown op ' + cmd.op })
      }
    } catch (err) {
      return out({ id, error: String(err && err.message || err) })
    }
  }, async () => {
    await client.destroy()
    for (const n of nodes) await n.destroy({ force: true })
  })
}

main().catch((err) => { console.error(err); process.exit(1) })
