// JS side of bench/churn.py --profile mainline: npm bittorrent-dht nodes that come and go, and one client.
// Usage: node churn-mainline.js N host:port   (N nodes on 127.0.0.1 joined through host:port, never the public routers)
// Every node takes BEP 44 items (`verify` given). The client has no `host`, so it never lists itself as a peer:
// its lookups find only what the network stored.
// Prints {"ready": true, "nodes": [port...]}; then JSON commands on stdin, one per line (they run concurrently):
//   {"id", "op": "kill"}                                   -> {"id", "port"} (a random node destroyed)
//   {"id", "op": "spawn"}                                  -> {"id", "port"} (a new node, bootstrapped)
//   {"id", "op": "announce", "infoHash", "port"}           -> {"id", "ok", "n"} (n nodes took it)
//   {"id", "op": "lookup", "infoHash"}                     -> {"id", "peers": ["host:port"]}
//   {"id", "op": "putMutable", "seed", "value", "seq"}     -> {"id", "ok", "n"}
//   {"id", "op": "getMutable", "publicKey"}                -> {"id", "value": hex|null}
// A failed command answers {"id", "error"}.
'use strict'
const crypto = require('crypto')
const { out, serve } = require('../../tests/js/stdio.js')
const { keyPair, sign, verify } = require('../../tests/js/ed25519.js')

async function main () {
  const { default: DHT } = await import('bittorrent-dht')
  const size = Number(process.argv[2])
  const boot = [process.argv[3]]
  const start = async () => {
    const dht = new DHT({ bootstrap: boot, verify })
    dht.on('warning', () => {})
    dht.on('error', () => {})
    const ready = new Promise((resolve) => dht.once('ready', resolve))
    await new Promise((resolve) => dht.listen(0, '127.0.0.1', resolve))
    await ready
    return dht
  }
  const nodes = []
  for (let k = 0; k < size; k++) nodes.push(await start())
  const client = await start()
  out({ ready: true, nodes: nodes.map((d) => d.address().port) })

  // callback API -> promise; rejects on err
  const call = (fn) => new Promise((resolve, reject) => fn((err, ...rest) => err ? reject(err) : resolve(rest)))
  serve(async (cmd) => {
    const id = cmd.id
    try {
      switch (cmd.op) {
        case 'kill': {
          const d = nodes.splice(Math.floor(Math.random() * nodes.length), 1)[0]
          const port = d.address().port
          await new Promise((resolve) => d.destroy(resolve))
          return out({ id, port })
        }
        case 'spawn': {
          const d = await start()
          nodes.push(d)
          return out({ id, port: d.address().port })
        }
        case 'announce': {
          const [n] = await call((cb) => client.announce(cmd.infoHash, cmd.port, cb))
          return out({ id, ok: true, n })
        }
        case 'lookup': {
          const peers = new Set()
          const onpeer = (peer, ih) => { if (ih.toString('hex') === cmd.infoHash) peers.add(peer.host + ':' + peer.port) }
          client.on('peer', onpeer)
          try {
            await call((cb) => client.lookup(cmd.infoHash, cb))
          } finally {
            client.removeListener('peer', onpeer)
          }
          return out({ id, peers: [...peers] })
        }
        case 'putMutable': {
          const kp = keyPair(cmd.seed)
          const opts = { k: kp.pub, v: Buffer.from(cmd.value, 'hex'), seq: cmd.seq, sign: (buf) => sign(kp.priv, buf) }
          const [, n] = await call((cb) => client.put(opts, cb))
          return out({ id, ok: true, n })
        }
        case 'getMutable': {
          const target = crypto.createHash('sha1').update(Buffer.from(cmd.publicKey, 'hex')).digest()
          const [res] = await call((cb) => client.get(target, { cache: false }, cb))
          return out({ id, value: res && res.v ? Buffer.from(res.v).toString('hex') : null })
        }
        default:
          return out({ id, error: 'unknown op ' + cmd.op })
      }
    } catch (err) {
      return out({ id, error: String(err && err.message || err) })
    }
  }, () => Promise.all([client, ...nodes].map((d) => new Promise((resolve) => d.destroy(resolve)))))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
