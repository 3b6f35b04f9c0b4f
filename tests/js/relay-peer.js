// JS side of the blind-relay interop tests (tests/interop/test_relay_js.py).
// Usage: node relay-peer.js [--testnet N] [--bootstrap host:port ...] [--relay [--announce]]
// Starts N persistent JS nodes (if --testnet), then (with --relay) a JS blind-relay Server behind a
// hyperdht server (with --announce also announced under BLAKE2b-256("peerdht relay"), peerdht's relay
// topic). Prints {"ready": true, "bootstrap": [...], "relayKey": hex|null}.
// Commands (JSON lines on stdin):
//   {"id", "op": "serve", "relayThrough": hex|null} -> {"id", "publicKey"}: an echo server
//        (quickFirewall:false, ephemeral, holepunch:false, shareLocalAddress:false, as hyperdht's
//        test/relaying.js) that also reports {"event":"connection", "relayed": bool}
//   {"id", "op": "connect", "publicKey", "relayThrough": hex|null, "text"}
//        -> {"id", "text", "relaying": stats} | {"id", "code", "message"}  (holepunch: () => false)
//   {"id", "op": "stats"}  -> {"id", "relay": relay server stats}
'use strict'
const DHT = require('hyperdht')
const RelayServer = require('blind-relay').Server
const { out, serve } = require('./stdio.js')

const ANY = [0, 0]
const parse = (s) => { const [host, port] = s.split(':'); return { host, port: Number(port) } }
const nodes = []

async function main () {
  const argv = process.argv.slice(2)
  let size = 0
  let wantRelay = false
  let announce = false
  let boot = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--testnet') size = Number(argv[++i])
    else if (argv[i] === '--bootstrap') boot.push(parse(argv[++i]))
    else if (argv[i] === '--relay') wantRelay = true
    else if (argv[i] === '--announce') announce = true
  }
  for (let i = 0; i < size; i++) {
    const n = new DHT({ ephemeral: false, firewalled: false, bootstrap: boot, port: ANY, host: '127.0.0.1' })
    await n.fullyBootstrapped()
    if (boot.length === 0) boot = [{ host: '127.0.0.1', port: n.address().port }]
    nodes.push(n)
  }
  const mk = () => {
    const d = new DHT({ bootstrap: boot, host: '127.0.0.1', port: ANY, quickFirewall: false, ephemeral: true })
    nodes.push(d)
    return d
  }
  let relay = null
  let relayKey = null
  if (wantRelay) {
    // a relay is a reachable, persistent node (clients connect to it directly, no punching)
    const r = new DHT({ ephemeral: false, firewalled: false, bootstrap: boot, host: '127.0.0.1', port: ANY })
    nodes.push(r)
    await r.fullyBootstrapped()
    relay = new RelayServer({ createStream (opts) { return r.createRawStream({ ...opts, framed: true }) } })
    const rs = r.createServer({ shareLocalAddress: false }, (socket) => {
      const session = relay.accept(socket, { id: socket.remotePublicKey })
      session.on('error', () => {})
    })
    await rs.listen()
    relayKey = rs.publicKey.toString('hex')
    // --announce: make the JS relay discoverable the way peerdht relays are (BLAKE2b-256("peerdht relay"))
    if (announce) await r.announce(DHT.hash(Buffer.from('peerdht relay')), r.defaultKeyPair).finished()
  }
  out({ ready: true, bootstrap: boot.map(b => `${b.host}:${b.port}`), relayKey })

  serve(async (cmd) => {
    if (cmd.op === 'serve') {
      const d = mk()
      await d.fullyBootstrapped()
      const sopts = { shareLocalAddress: false, holepunch: false }
      if (cmd.relayThrough) sopts.relayThrough = Buffer.from(cmd.relayThrough, 'hex')
      const server = d.createServer(sopts, (socket) => {
        out({ event: 'connection', relayed: !!socket.rawStream && d.stats.relaying.successes > 0 })
        socket.on('error', () => {})
        socket.pipe(socket)
      })
      await server.listen()
      out({ id: cmd.id, publicKey: server.publicKey.toString('hex') })
    } else if (cmd.op === 'connect') {
      const d = mk()
      await d.fullyBootstrapped()
      const opts = { holepunch: () => false }
      if (cmd.relayThrough) opts.relayThrough = Buffer.from(cmd.relayThrough, 'hex')
      const socket = d.connect(Buffer.from(cmd.publicKey, 'hex'), opts)
      try {
        const text = await new Promise((resolve, reject) => {
          let got = ''
          socket.on('error', reject)
          socket.on('open', () => socket.write(cmd.text))
          socket.on('data', (data) => {
            got += data.toString()
            if (got.length >= cmd.text.length) resolve(got)
          })
        })
        socket.end()
        out({ id: cmd.id, text, relaying: d.stats.relaying, punches: d.stats.punches, rawRemote: socket.rawStream && [socket.rawStream.remoteHost, socket.rawStream.remotePort] })
      } catch (err) {
        out({ id: cmd.id, code: err.code || 'ERROR', message: String(err.message), relaying: d.stats.relaying })
      }
    } else if (cmd.op === 'stats') {
      out({ id: cmd.id, relay: relay ? { pairings: relay.stats.pairings, streams: { opened: relay.stats.streams.opened } } : null })
    }
  }, async () => {
    for (const n of nodes.reverse()) await n.destroy({ force: true })
  })
}

main().catch((err) => { out({ error: String(err.stack || err) }); process.exit(1) })
