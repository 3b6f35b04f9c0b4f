// bench/mainline.py helper: N bittorrent-dht nodes on 127.0.0.1, all bootstrapped from the given HOST:PORT
// (a local Python node; never the public routers). The JS client that is measured runs in its own process
// (bench/js/mainline-client.js).
// Usage: node mainline-bench.js N HOST:PORT
// Prints {"ready": true, "ports": [...]}; command:
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
  out({ ready: true, ports: nodes.map((d) => d.address().port) })

  serve(async (cmd) => {
    if (cmd.cmd === 'announce') {
      const node = nodes[cmd.node % nodes.length]
      node.announce(cmd.infoHash, cmd.port, (err) => out({ cmd: 'announce', error: err ? String(err) : null }))
    } else {
      out({ cmd: cmd.cmd, error: 'unknown command' })
    }
  }, () => Promise.all(nodes.map((d) => new Promise((resolve) => d.destroy(resolve)))))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
