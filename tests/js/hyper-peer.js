// A JS hyperdht peer for interop tests.
// Usage: node hyper-peer.js [--testnet N] [--bootstrap host:port ...]
// With --testnet N it first starts N persistent JS nodes on 127.0.0.1 (hyperdht/testnet); then it creates one
// client node bootstrapped from the testnet and/or the given bootstrap nodes.
// Prints {"ready": true, "bootstrap": ["127.0.0.1:port"]}; then answers JSON commands on stdin, one per line:
//   {"id", "op": "announce"|"unannounce", "topic": hex, "seed": hex}
//   {"id", "op": "lookup", "topic": hex}            -> {"id", "peers": [{"publicKey", "relayAddresses"}]}
//   {"id", "op": "immutablePut", "value": hex}      -> {"id", "hash"}
//   {"id", "op": "immutableGet", "hash": hex}       -> {"id", "value": hex|null}
//   {"id", "op": "mutablePut", "seed", "value", "seq"} -> {"id", "publicKey", "seq"}
//   {"id", "op": "mutableGet", "publicKey", "seq"}  -> {"id", "value": hex|null, "seq"}
//   {"id", "op": "keyPair", "seed"}                 -> {"id", "publicKey", "secretKey"}
//   {"id", "op": "findNode", "target"}              -> {"id", "nodes": ["host:port"]}
'use strict'
const DHT = require('hyperdht')
const { out, serve } = require('./stdio.js')

const ANY = [0, 0]

async function main () {
  const argv = process.argv.slice(2)
  let size = 0
  const bootstrap = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--testnet') size = Number(argv[++i])
    else if (argv[i] === '--bootstrap') bootstrap.push(argv[++i])
  }
  // Our own testnet loop (like hyperdht/testnet.js) so every socket binds port 0: `port: [0, 0]` makes
  // dht-rpc skip its default 49737 range and bind any free port.
  const swarm = []
  let boot = bootstrap.map(parse)
  for (let i = 0; i < size; i++) {
    const n = new DHT({ ephemeral: false, firewalled: false, bootstrap: boot, port: ANY, host: '127.0.0.1' })
    await n.fullyBootstrapped()
    if (boot.length === 0) boot = [{ host: '127.0.0.1', port: n.address().port }]
    swarm.push(n)
  }
  const node = new DHT({ bootstrap: boot, host: '127.0.0.1', ephemeral: true, port: ANY })
  await node.fullyBootstrapped()
  out({ ready: true, bootstrap: boot.map(b => `${b.host}:${b.port}`), port: node.address().port })

  const hex = (b) => b ? Buffer.from(b).toString('hex') : null
  const buf = (h) => Buffer.from(h, 'hex')

  serve(async (cmd) => {
    const id = cmd.id
    switch (cmd.op) {
      case 'keyPair': {
        const kp = DHT.keyPair(buf(cmd.seed))
        return out({ id, publicKey: hex(kp.publicKey), secretKey: hex(kp.secretKey) })
      }
      case 'announce': {
        const kp = DHT.keyPair(buf(cmd.seed))
        await node.announce(buf(cmd.topic), kp).finished()
        return out({ id, ok: true })
      }
      case 'unannounce': {
        const kp = DHT.keyPair(buf(cmd.seed))
        await node.unannounce(buf(cmd.topic), kp)
        return out({ id, ok: true })
      }
      case 'lookup': {
        const peers = new Map()
        for await (const reply of node.lookup(buf(cmd.topic))) {
          for (const p of reply.peers) {
            peers.set(hex(p.publicKey), p.relayAddresses.map(a => `${a.host}:${a.port}`))
          }
        }
        return out({ id, peers: [...peers].map(([k, r]) => ({ publicKey: k, relayAddresses: r })) })
      }
      case 'immutablePut': {
        const r = await node.immutablePut(buf(cmd.value))
        return out({ id, hash: hex(r.hash) })
      }
      case 'immutableGet': {
        const r = await node.immutableGet(buf(cmd.hash))
        return out({ id, value: r ? hex(r.value) : null })
      }
      case 'mutablePut': {
        const kp = DHT.keyPair(buf(cmd.seed))
        const r = await node.mutablePut(kp, buf(cmd.value), { seq: cmd.seq || 0 })
        return out({ id, publicKey: hex(r.publicKey), seq: r.seq })
      }
      case 'mutableGet': {
        const r = await node.mutableGet(buf(cmd.publicKey), { seq: cmd.seq || 0 })
        return out({ id, value: r ? hex(r.value) : null, seq: r ? r.seq : null })
      }
      case 'findNode': {
        const nodes = []
        for await (const reply of node.findNode(buf(cmd.target))) {
          if (reply.from) nodes.push(`${reply.from.host}:${reply.from.port}`)
        }
        return out({ id, nodes })
      }
      default:
        return out({ id, error: 'unknown op ' + cmd.op })
    }
  }, async () => {
    await node.destroy()
    for (const n of swarm.reverse()) await n.destroy()
  })
}

function parse (s) {
  const i = s.lastIndexOf(':')
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
}

main().catch((err) => { console.error(err); process.exit(1) })
