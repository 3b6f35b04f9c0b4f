// A webtorrent-dht 0.18.6 node (KRPC over WebRTC data channels, signals/peer_connection) driven by JSON
// commands (tests/web/test_webtorrent_interop.py). Recipe: research/browser-dht.md §3 — wrtc is overridden to
// @roamhq/wrtc in package.json; simple-peer 9 is an ES class that webtorrent-dht calls without `new`.
// Run it only inside a test network namespace: iceServers is [] (no STUN), bootstrap is given explicitly.
// Usage: node webtorrent-peer.js '{"bootstrap": [{"host": "127.0.0.1", "port": 1234}], "listen": 0, "timeout": 10000}'
//   listen: bind its own HTTP bootstrap server on 127.0.0.1:<port> (webtorrent-dht refuses 0), omitted = WebRTC only.
//   timeout: k-rpc query timeout in ms (webtorrent-dht's default is 2000).
// Prints {"ready": true, "id", "port"} once bootstrapped; then one JSON line per command:
//   {"cmd":"put","value":"text"} -> {"target": hex}; {"cmd":"get","target":hex} -> {"value": text|null}
//   {"cmd":"has","target":hex} -> {"stored": bool}; {"cmd":"stats"} -> {"nodes": [hex ids in the table], "links": [ids]}
//   {"cmd":"find","target":hex} -> {"nodes": [hex]}
'use strict'
const SimplePeer = require('simple-peer')
const { out, serve } = require('./stdio.js')

function SP (opts) { return new SimplePeer(opts) } // webtorrent-dht calls the constructor without `new`
SP.prototype = SimplePeer.prototype

async function main () {
  const opts = JSON.parse(process.argv[2] || '{}')
  const DHT = require('webtorrent-dht')
  const dht = new DHT({
    bootstrap: opts.bootstrap || [],
    simple_peer_constructor: SP,
    simple_peer_opts: { config: { iceServers: [] } },
    timeout: opts.timeout || 2000,
    k: opts.k || 2
  })
  process.on('uncaughtException', (err) => out({ event: 'uncaught', error: String(err && err.stack || err) }))
  dht.on('error', (err) => out({ event: 'error', error: String(err) }))
  dht.on('warning', () => {})
  let port = null
  if (opts.listen !== undefined && opts.listen !== null) {
    await new Promise((resolve) => dht.listen(opts.listen || 0, '127.0.0.1', resolve))
    port = dht._rpc.socket.socket.http_server.address().port
  }
  if (!dht.ready) await new Promise((resolve) => dht.once('ready', resolve))
  out({ ready: true, id: dht.nodeId.toString('hex'), port })

  serve(async (cmd) => {
    const reply = (obj) => out(Object.assign({ cmd: cmd.cmd }, obj))
    const sock = dht._rpc.socket.socket
    switch (cmd.cmd) {
      case 'put':
        return dht.put({ v: Buffer.from(cmd.value) }, (err, hash, n) =>
          reply({ error: err ? String(err) : null, target: hash && hash.toString('hex'), stored: n }))
      case 'get':
        return dht.get(cmd.target, { cache: false }, (err, res) =>
          reply({ error: err ? String(err) : null, value: res ? res.v.toString() : null }))
      case 'has':
        return reply({ stored: !!dht._values.get(cmd.target) })
      case 'find':
        return dht._closest(Buffer.from(cmd.target, 'hex'), { q: 'find_node', a: { id: dht.nodeId, target: Buffer.from(cmd.target, 'hex') } }, null,
          (err) => reply({ error: err ? String(err) : null, nodes: dht._rpc.nodes.toArray().map((n) => n.id.toString('hex')) }))
      case 'stats':
        return reply({
          nodes: dht._rpc.nodes.toArray().map((n) => n.id.toString('hex')),
          links: Object.keys(sock._connections_id_mapping)
        })
      default:
        return reply({ error: 'unknown command' })
    }
  }, () => dht.destroy())
}

main().catch((err) => { out({ event: 'fatal', error: String(err && err.stack || err) }); process.exit(1) })
