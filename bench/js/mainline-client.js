// The JS client of bench/mainline.py: one bittorrent-dht node in its own process (as the Python client is),
// bootstrapped from HOST:PORT (a local node; never the public routers).
// Usage: node mainline-client.js HOST:PORT
// Prints {"ready": true, "port": P}; then for {"cmd": "lookup", "infoHash": hex} runs one get_peers lookup and
// prints {"cmd": "lookup", "ms", "firstMs", "messages", "peers"} (times from the start of the lookup, in ms;
// messages = queries the client's socket sent). Exits when stdin closes.
'use strict'
const { out, serve } = require('../../tests/js/stdio.js')

async function main () {
  const { default: DHT } = await import('bittorrent-dht')
  const client = new DHT({ bootstrap: [process.argv[2]], host: '127.0.0.1' })
  client.on('warning', () => {})
  client.on('error', () => {})
  const ready = new Promise((resolve) => client.once('ready', resolve))
  await new Promise((resolve) => client.listen(0, '127.0.0.1', resolve))
  await ready
  let sent = 0
  const sock = client._rpc.socket
  const query = sock.query.bind(sock)
  sock.query = (...args) => { sent++; return query(...args) }
  out({ ready: true, port: client.address().port })

  serve(async (cmd) => {
    if (cmd.cmd !== 'lookup') return out({ cmd: cmd.cmd, error: 'unknown command' })
    const t0 = process.hrtime.bigint()
    const before = sent
    let first = null
    const peers = new Set()
    const onpeer = (peer, ih) => {
      if (ih.toString('hex') !== cmd.infoHash) return
      if (first === null) first = process.hrtime.bigint()
      peers.add(peer.host + ':' + peer.port)
    }
    client.on('peer', onpeer)
    await new Promise((resolve) => client.lookup(cmd.infoHash, resolve))
    client.removeListener('peer', onpeer)
    const t1 = process.hrtime.bigint()
    out({
      cmd: 'lookup',
      ms: Number(t1 - t0) / 1e6,
      firstMs: first === null ? null : Number(first - t0) / 1e6,
      messages: sent - before,
      peers: [...peers]
    })
  }, () => new Promise((resolve) => client.destroy(resolve)))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
