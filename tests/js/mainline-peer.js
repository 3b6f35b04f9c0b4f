// A bittorrent-dht node on 127.0.0.1 driven by JSON commands (tests/interop/test_mainline_js.py).
// Usage: node mainline-peer.js [HOST:PORT ...]  -- bootstrap nodes (never the public defaults: none = bootstrap:false).
// Prints {"ready": true, "port", "id"} once listening and bootstrapped; then one JSON line per command.
'use strict'
const { out, serve } = require('./stdio.js')
const { keyPair, sign, verify } = require('./ed25519.js')

async function main () {
  const { default: DHT } = await import('bittorrent-dht')
  const bootstrap = process.argv.slice(2)
  const dht = new DHT({ bootstrap: bootstrap.length ? bootstrap : false, verify, host: '127.0.0.1' })
  dht.on('warning', () => {})
  dht.on('error', (err) => out({ event: 'error', error: String(err) }))
  let crashed = false
  process.on('uncaughtException', (err) => { crashed = true; out({ event: 'uncaught', error: String(err) }) })
  const ready = new Promise((resolve) => dht.once('ready', resolve))
  await new Promise((resolve) => dht.listen(0, '127.0.0.1', resolve))
  await ready
  out({ ready: true, port: dht.address().port, id: dht.nodeId.toString('hex') })

  serve(async (cmd) => {
    const reply = (obj) => out(Object.assign({ cmd: cmd.cmd }, obj))
    switch (cmd.cmd) {
      case 'addNode':
        dht.addNode({ host: cmd.host, port: cmd.port })
        return reply({ ok: true })
      case 'announce':
        return dht.announce(cmd.infoHash, cmd.port, (err) => reply({ error: err ? String(err) : null }))
      case 'lookup': {
        const peers = []
        const onpeer = (peer, ih) => { if (ih.toString('hex') === cmd.infoHash) peers.push(peer.host + ':' + peer.port) }
        dht.on('peer', onpeer)
        return dht.lookup(cmd.infoHash, (err) => {
          dht.removeListener('peer', onpeer)
          reply({ error: err ? String(err) : null, peers })
        })
      }
      case 'put':
        return dht.put({ v: Buffer.from(cmd.v, 'hex') }, (err, hash, n) =>
          reply({ error: err ? String(err) : null, target: hash && hash.toString('hex'), n }))
      case 'putMutable': {
        const kp = keyPair(cmd.seed)
        const opts = {
          k: kp.pub,
          v: Buffer.from(cmd.v, 'hex'),
          seq: cmd.seq,
          sign: (buf) => sign(kp.priv, buf)
        }
        if (cmd.salt) opts.salt = Buffer.from(cmd.salt, 'hex')
        return dht.put(opts, (err, hash, n) =>
          reply({ error: err ? String(err) : null, target: hash && hash.toString('hex'), n, publicKey: kp.pub.toString('hex') }))
      }
      case 'get': {
        const opts = { cache: false }
        if (cmd.salt) opts.salt = Buffer.from(cmd.salt, 'hex')
        return dht.get(cmd.target, opts, (err, res) => reply({
          error: err ? String(err) : null,
          v: res && res.v ? Buffer.from(res.v).toString('hex') : null,
          seq: res && typeof res.seq === 'number' ? res.seq : null
        }))
      }
      case 'nodes':
        return reply({ nodes: dht.toJSON().nodes.map((n) => n.host + ':' + n.port) })
      case 'status':
        return reply({ crashed, nodes: dht.toJSON().nodes.length })
      default:
        return reply({ error: 'unknown command' })
    }
  }, () => new Promise((resolve) => dht.destroy(resolve)))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
