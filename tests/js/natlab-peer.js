// A JS hyperdht peer for the NAT matrix (tests/natlab/matrix_lib.py runs it inside lab hosts).
// Same arguments and JSON lines as `python3 tests/natlab/matrix_lib.py server|client`:
//   node natlab-peer.js server --bootstrap host:port ... --seed hex
//     -> {"ready": true, "key": hex}; per connection {"event": "connection", "remote": [host, port]};
//        answers each frame (4-byte big-endian length + bytes) with sha256(frame) || shake256(frame, len);
//        on stdin EOF {"event": "stats", "stats": {...}} and exit.
//   node natlab-peer.js client --bootstrap host:port ... --key hex [--size n] [--idle s] [--timeout s]
//     [--relay-through hex] (a blind relay's public key: relayThrough)
//     -> {"ok", "impl": "js", "seconds" (time to open), "strategy", "remote", "payload", "after_idle", "error"}
// "strategy" comes from dht.stats.punches (open -> direct, consistent, random) and stats.relaying; "path"
// lists the Holepuncher steps that ran. A puncher but no punch counter: the stream opened during the probe
// round (the server's "fast open" probe), a consistent simultaneous open. "none": no puncher ran, the
// server opened the stream to us.
'use strict'
const crypto = require('crypto')
const DHT = require('hyperdht')
const Holepuncher = require('hyperdht/lib/holepuncher')
const { out } = require('./stdio.js')

// Which holepunch steps ran in this process (wrapping prototype methods; hyperdht itself is unchanged).
const seen = new Set()
for (const [method, label] of [['analyze', 'puncher'], ['_consistentProbe', 'consistent-probe'],
  ['_randomProbes', 'random-probes'], ['_openBirthdaySockets', 'birthday']]) {
  const orig = Holepuncher.prototype[method]
  Holepuncher.prototype[method] = function (...args) {
    seen.add(label)
    return orig.apply(this, args)
  }
}

function parse (argv) {
  const o = { role: argv[0], bootstrap: [], size: 4096, idle: 0, timeout: 60 }
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '')
    const v = argv[++i]
    if (k === 'bootstrap') o.bootstrap.push(v)
    else if (k === 'size' || k === 'idle' || k === 'timeout') o[k] = Number(v)
    else o[k] = v
  }
  return o
}

function replyFor (frame) {
  const sha = crypto.createHash('sha256').update(frame).digest()
  const shake = crypto.createHash('shake256', { outputLength: frame.length }).update(frame).digest()
  return Buffer.concat([sha, shake])
}

// A reader of exact byte counts over a stream's 'data' events.
function reader (stream) {
  let buf = Buffer.alloc(0)
  let waiter = null
  let ended = false
  stream.on('data', (d) => { buf = Buffer.concat([buf, d]); if (waiter) waiter() })
  stream.on('end', () => { ended = true; if (waiter) waiter() })
  stream.on('error', () => { ended = true; if (waiter) waiter() })
  stream.on('close', () => { ended = true; if (waiter) waiter() })
  return async function read (n) {
    while (buf.length < n) {
      if (ended) return null
      await new Promise((resolve) => { waiter = resolve })
      waiter = null
    }
    const r = buf.subarray(0, n)
    buf = buf.subarray(n)
    return r
  }
}

function withTimeout (p, s, what) {
  let t
  return Promise.race([p, new Promise((resolve, reject) => {
    t = setTimeout(() => reject(new Error(what + ' timed out after ' + s + ' s')), s * 1000)
  })]).finally(() => clearTimeout(t))
}

function bootstrapOf (o) {
  return o.bootstrap.map((b) => {
    const i = b.lastIndexOf(':')
    return { host: b.slice(0, i), port: Number(b.slice(i + 1)) }
  })
}

async function server (o) {
  const dht = new DHT({ bootstrap: bootstrapOf(o) })
  await dht.fullyBootstrapped()
  const kp = DHT.keyPair(Buffer.from(o.seed, 'hex'))
  const srv = dht.createServer(async (socket) => {
    const raw = socket.rawStream
    out({ event: 'connection', remote: raw ? [raw.remoteHost, raw.remotePort] : [], stats: dht.stats.punches })
    socket.on('error', () => {})
    const read = reader(socket)
    while (true) {
      const head = await read(4)
      if (head === null) break
      const frame = await read(head.readUInt32BE(0))
      if (frame === null) break
      socket.write(replyFor(frame))
      out({ event: 'frame', size: frame.length })
    }
    socket.end()
  })
  await srv.listen(kp)
  out({ ready: true, key: kp.publicKey.toString('hex'), firewalled: dht.firewalled })
  process.stdin.resume()
  process.stdin.on('end', async () => {
    out({ event: 'stats', stats: { punches: dht.stats.punches, relaying: dht.stats.relaying } })
    await srv.close()
    await dht.destroy()
    process.exit(0)
  })
}

async function exchange (socket, read, size) {
  const frame = crypto.randomBytes(size)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(size, 0)
  socket.write(Buffer.concat([head, frame]))
  const got = await read(32 + size)
  return got !== null && got.equals(replyFor(frame))
}

async function client (o) {
  const dht = new DHT({ bootstrap: bootstrapOf(o) })
  await dht.fullyBootstrapped()
  const before = { ...dht.stats.punches }
  const relayBefore = { ...dht.stats.relaying }
  const res = { ok: false, impl: 'js', firewalled: dht.firewalled, nat: dht.port ? [dht.host, dht.port] : null }
  const t0 = process.hrtime.bigint()
  const socket = dht.connect(Buffer.from(o.key, 'hex'), o['relay-through'] ? { relayThrough: Buffer.from(o['relay-through'], 'hex') } : {})
  const read = reader(socket)
  try {
    await withTimeout(new Promise((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
      socket.once('close', () => reject(new Error('closed before open')))
    }), o.timeout, 'connect')
  } catch (err) {
    res.seconds = Number(process.hrtime.bigint() - t0) / 1e9
    res.error = (err.code ? err.code + ': ' : '') + err.message
    res.path = [...seen]
    out(res)
    socket.destroy()
    await dht.destroy()
    process.exit(1)
  }
  res.seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const p = dht.stats.punches
  const parts = []
  if (dht.stats.relaying.successes > relayBefore.successes) parts.push('relay')
  if (p.open > before.open) parts.push('direct')
  if (p.consistent > before.consistent) parts.push('consistent')
  if (p.random > before.random) parts.push('random')
  res.path = [...seen]
  res.punches = parts
  res.strategy = parts.join('+') || (seen.has('puncher') ? 'consistent' : 'none')
  const raw = socket.rawStream
  res.remote = raw ? [raw.remoteHost, raw.remotePort] : []
  try {
    res.payload = await withTimeout(exchange(socket, read, o.size), 30, 'exchange')
    if (res.payload && o.idle) {
      out({ event: 'idle', seconds: o.idle })
      await new Promise((resolve) => setTimeout(resolve, o.idle * 1000))
      res.after_idle = await withTimeout(exchange(socket, read, o.size), 30, 'exchange after idle')
      res.remote_after = raw ? [raw.remoteHost, raw.remotePort] : []
    }
    res.ok = !!(res.payload && (res.after_idle === undefined || res.after_idle))
  } catch (err) {
    res.error = err.message
  }
  out(res)
  socket.end()
  socket.destroy()
  await dht.destroy()
  process.exit(res.ok ? 0 : 1)
}

const o = parse(process.argv.slice(2))
const main = o.role === 'server' ? server : client
main(o).catch((err) => {
  out({ ok: false, impl: 'js', error: String(err && err.stack || err) })
  process.exit(1)
})
