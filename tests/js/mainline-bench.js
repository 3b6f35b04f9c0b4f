// bench/mainline.py helper: N bittorrent-dht nodes plus one client node on 127.0.0.1, all bootstrapped from
// the given HOST:PORT (a local Python node; never the public routers).
// Usage: node mainline-bench.js N HOST:PORT
// Prints {"ready": true, "ports": [...], "client": port}; commands:
//   {"cmd": "lookup", "infoHash": hex}  -> {"ms", "firstMs", "messages", "peers"}
//   {"cmd": "announce", "infoHash": hex, "port": P, "node": i} -> {"error"}
'use strict'
const { out, serve } = require('./stdio.js')

async function main () {
  const { default: DHT } = await import('bittorrent-dht')
  const n = parseInt(process.argv[2], 10)
  const boot = [process.argv[3]]
  const start = async () => {
    const dht = new DHT({ bootstrap: boot, host: '127.0.0.1' })
    dht.on('warning', () => {})
    dht.on('error', () => {})
    const ready = new Promise((resolve) => dht.once('ready', resolve))
    await new Promise((resolve) => dht.listen(0, '127.0.0.1', resolve))
    await ready
    return dht
  }
  const nodes = []
  for (let i = 0; i < n; i++) nodes.push(await start())
  const client = await start()
  // count every query the client's socket sends
  let sent = 0
  const sock = client._rpc.socket
  const query = sock.query.bind(sock)
  sock.query = (...args) => { sent++; return query(...args) }
  out({ ready: true, ports: nodes.map((d) => d.address().port), client: client.address().port })

  serve(async (cmd) => {
    if (cmd.cmd === 'lookup') {
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
    } else if (cmd.cmd === 'announce') {
      const node = nodes[cmd.node % nodes.length]
      node.announce(cmd.infoHash, cmd.port, (err) => out({ cmd: 'announce', error: err ? String(err) : null }))
    } else {
      out({ cmd: cmd.cmd, error: 'unknown command' })
    }
  }, () => Promise.all([client, ...nodes].map((d) => new Promise((resolve) => d.destroy(resolve)))))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
