// bench/web.py helper: the same three figures for webtorrent-dht 0.18.6 Node peers (wrtc = @roamhq/wrtc),
// all on 127.0.0.1 / the namespace's veth, no STUN (iceServers: []). Run only inside scripts/netns-run.sh.
// Usage: node webtorrent-bench.js ROUNDS PINGS
// Prints one JSON line: {"join": [ms…], "joinLookup": [ms…], "link": [ms…], "rtt": [ms…]}
//   join:       new node created -> 'ready' (HTTP bootstrap + its first signalled find_node)
//   joinLookup: new node created -> first lookup(info hash) finished
//   link:       new node created -> WebRTC link open to a node other than the bootstrap (signals via the bootstrap)
//   rtt:        KRPC ping round trips over an open data channel
// k-rpc's query timeout is raised from 2 s to 10 s (the `timeout` option): on a busy 2-core machine the
// default loses signalled queries (research browser-dht.md §1.6).
'use strict'
const crypto = require('crypto')
const net = require('net')
const SimplePeer = require('simple-peer')
const DHT = require('webtorrent-dht')

function SP (o) { return new SimplePeer(o) } // webtorrent-dht calls the constructor without `new`
SP.prototype = SimplePeer.prototype

const OPTS = { simple_peer_constructor: SP, simple_peer_opts: { config: { iceServers: [] } }, timeout: parseInt(process.argv[4] || '10000', 10) }

function make (bootstrap) {
  const dht = new DHT({ ...OPTS, bootstrap })
  dht.on('error', () => {})
  dht.on('warning', () => {})
  return dht
}

function freePort () {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

const ready = (dht) => new Promise((resolve) => (dht.ready ? resolve() : dht.once('ready', resolve)))

async function main () {
  const rounds = parseInt(process.argv[2] || '3', 10)
  const pings = parseInt(process.argv[3] || '30', 10)
  const port = await freePort()
  const boot = [{ host: '127.0.0.1', port }]
  const a = make([])
  a.listen(port, '127.0.0.1')
  await ready(a)
  const b = make(boot)
  await ready(b)
  const nodes = [a, b]
  const out = { join: [], joinLookup: [], link: [], rtt: [] }
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    const c = make(boot)
    const others = new Set(nodes.slice(1).map((n) => n.nodeId.toString('hex')))
    const linked = new Promise((resolve) => {
      c._rpc.socket.socket.on('node_connected', (id) => {
        if (others.has(Buffer.from(id).toString('hex')) || others.has(String(id))) resolve(performance.now() - t0)
      })
    })
    await ready(c)
    out.join.push(performance.now() - t0)
    await new Promise((resolve) => c.lookup(crypto.randomBytes(20), () => resolve()))
    out.joinLookup.push(performance.now() - t0)
    out.link.push(await Promise.race([linked, new Promise((resolve) => setTimeout(() => resolve(null), 20000))]))
    nodes.push(c)
  }
  // ping round trips from the last node over one of its WebRTC links
  const c = nodes[nodes.length - 1]
  const contact = c._rpc.nodes.toArray().find((n) => !n.id.equals(a.nodeId)) || c._rpc.nodes.toArray()[0]
  for (let i = 0; i < pings && contact; i++) {
    const t = performance.now()
    const ok = await new Promise((resolve) => c._rpc.query(contact, { q: 'ping', a: { id: c._rpc.id } }, (err) => resolve(!err)))
    if (ok) out.rtt.push(performance.now() - t)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  for (const n of nodes) n.destroy()
  setTimeout(() => process.exit(0), 500)
}

main().catch((e) => { process.stderr.write(String(e && e.stack) + '\n'); process.exit(1) })
