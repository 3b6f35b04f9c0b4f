// Reference encoder/decoder for the HyperDHT wire codecs (tests/interop/test_hyper_codec_js.py).
//
// One shot: reads one JSON document {"ops": [...]} from stdin, writes {"results": [...]} to stdout.
// Buffers travel as {"$b": "<hex>"}; addresses as {"host", "port"}.
// dht-rpc does not export its datagram codec, so requests and responses are encoded and decoded by
// the real lib/io.js code (IO.prototype.onmessage, Request#_encodeRequest, Request#_sendReply)
// running against a stub IO object; hyperdht payloads use hyperdht/lib/messages.js via compact-encoding.
'use strict'
const c = require('compact-encoding')
const b4a = require('b4a')
const IO = require('dht-rpc/lib/io')
const peer = require('dht-rpc/lib/peer')
const DHT = require('hyperdht')
const m = require('hyperdht/lib/messages')
const { NS } = require('hyperdht/lib/constants')
const Persistent = require('hyperdht/lib/persistent')

function revive(x) {
  if (x === null || typeof x !== 'object') return x
  if (Array.isArray(x)) return x.map(revive)
  if (typeof x.$b === 'string') return b4a.from(x.$b, 'hex')
  const o = {}
  for (const k of Object.keys(x)) o[k] = revive(x[k])
  return o
}

function plain(x) {
  if (x === null || x === undefined) return null
  if (b4a.isBuffer(x) || x instanceof Uint8Array) return { $b: b4a.toString(x, 'hex') }
  if (Array.isArray(x)) return x.map(plain)
  if (typeof x === 'object') {
    if (typeof x.host === 'string' && typeof x.port === 'number') return { host: x.host, port: x.port }
    const o = {}
    for (const k of Object.keys(x)) o[k] = plain(x[k])
    return o
  }
  return x
}

// ---- a stub IO so the real dht-rpc code paths can run without sockets

const serverSocket = { name: 'server', sent: [], trySend(buf) { this.sent.push(b4a.from(buf)) } }
const clientSocket = { name: 'client', sent: [], trySend(buf) { this.sent.push(b4a.from(buf)) } }

function stubIO({ id = null, token = null, closest = [] } = {}) {
  const io = {
    ephemeral: id === null,
    serverSocket,
    clientSocket,
    firewalled: false,
    suspended: false,
    table: { id, closest: () => closest },
    inflight: [],
    requests: [],
    responses: [],
    _adt: null,
    congestion: { recv() {} },
    stats: { requests: { active: 0, responses: 0 }, commands: [] },
    token: () => token || b4a.alloc(32),
    onrequest(req) { this.requests.push(req) },
    onresponse() {}
  }
  return io
}

// Obtain dht-rpc's (unexported) Request class by letting the real IO decode a minimal request.
const Request = (() => {
  const io = stubIO()
  const minimal = b4a.from([0x03, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0])
  IO.prototype.onmessage.call(io, serverSocket, minimal, { host: '127.0.0.1', port: 1 })
  return io.requests[0].constructor
})()

const FROM = { host: '10.0.0.1', port: 4000 }

function decodeRequest(buf) {
  const io = stubIO()
  const from = { id: null, host: FROM.host, port: FROM.port }
  const req = Request.decode(io, serverSocket, from, { start: 1, end: buf.byteLength, buffer: buf })
  if (req === null) return null
  return plain({
    tid: req.tid, to: req.to, token: req.token, internal: req.internal,
    command: req.command, target: req.target, value: req.value
  })
}

function decodeResponse(buf) {
  const io = stubIO()
  let got = null
  let tid
  try {
    const state = { start: 1, end: buf.byteLength, buffer: buf }
    c.uint.decode(state)
    tid = c.uint16.decode(state)
  } catch {
    return null
  }
  io.inflight.push({
    tid, sent: 0, session: null, _timeout: null, _timestamp: Date.now(), internal: false, command: 0,
    onresponse(res) { got = res }
  })
  IO.prototype.onmessage.call(io, serverSocket, buf, { host: FROM.host, port: FROM.port })
  if (got === null) return null
  return plain({
    tid: got.tid, to: got.to, token: got.token, closerNodes: got.closerNodes || [],
    error: got.error, value: got.value
  })
}

// dht-rpc onmessage with a real type byte check; decodes the id too (raw, before validateId).
function decodeDatagram(hex) {
  const buf = b4a.from(hex, 'hex')
  if (buf.byteLength < 2) return null
  let res = null
  if (buf[0] === 0x03) res = decodeRequest(buf)
  else if (buf[0] === 0x13) res = decodeResponse(buf)
  if (res === null) return null
  res.type = buf[0] === 0x03 ? 'request' : 'response'
  // the raw id is not kept by dht-rpc (only a validated one), so read it the same way io.js does
  try {
    const state = { start: 1, end: buf.byteLength, buffer: buf }
    const flags = c.uint.decode(state)
    c.uint16.decode(state)
    peer.ipv4.decode(state)
    res.id = flags & 1 ? plain(c.fixed32.decode(state)) : null
  } catch {
    return null
  }
  return res
}

function encodeRequest(msg) {
  const io = stubIO({ id: msg.id })
  const socket = msg.id ? serverSocket : clientSocket
  const req = new Request(io, socket, msg.tid, null, msg.to, msg.token, msg.internal, msg.command,
    msg.target, msg.value, null, 0)
  return b4a.toString(req._encodeRequest(msg.token, msg.value, msg.to, socket), 'hex')
}

function encodeResponse(msg) {
  const io = stubIO({ id: msg.id, token: msg.token, closest: msg.closerNodes })
  const socket = msg.id ? serverSocket : clientSocket
  const target = msg.closerNodes.length ? b4a.alloc(32) : null
  const req = new Request(io, socket, msg.tid, msg.to, null, null, false, 0, target, null, null, 0)
  socket.sent = []
  req._sendReply(msg.error, msg.value, msg.token !== null, true, msg.to, socket)
  return b4a.toString(socket.sent[0], 'hex')
}

function run(op) {
  const a = revive(op)
  switch (a.op) {
    case 'encode_request': return encodeRequest(a.msg)
    case 'encode_response': return encodeResponse(a.msg)
    case 'decode_datagram': return decodeDatagram(op.hex)
    case 'encode': {
      // lookupRawReply encodes already-encoded peer records (c.raw), as persistent.js stores them
      const msg = a.type === 'lookupRawReply'
        ? { ...a.msg, peers: a.msg.peers.map((p) => c.encode(m.peer, p)) }
        : a.msg
      return b4a.toString(c.encode(m[a.type], msg), 'hex')
    }
    case 'decode':
      try {
        return plain(c.decode(m[a.type], b4a.from(op.hex, 'hex')))
      } catch {
        return null
      }
    case 'node_id': return plain(peer.id(a.host, a.port))
    case 'hash': return plain(DHT.hash(a.data))
    case 'keypair': return plain(DHT.keyPair(a.seed))
    case 'ns': return plain(NS)
    case 'sign_announce': {
      const kp = DHT.keyPair(a.seed)
      const ann = { peer: a.peer, refresh: a.refresh, signature: null }
      const sign = a.unannounce ? Persistent.signUnannounce : Persistent.signAnnounce
      return plain(sign(a.target, a.token, a.id, ann, kp))
    }
    case 'sign_mutable': return plain(Persistent.signMutable(a.seq, a.value, DHT.keyPair(a.seed)))
    case 'verify_mutable': return Persistent.verifyMutable(a.signature, a.seq, a.value, a.publicKey)
    case 'string': {
      try {
        return c.decode(c.string, b4a.from(op.hex, 'hex'))
      } catch {
        return null
      }
    }
    default: throw new Error('unknown op ' + a.op)
  }
}

const chunks = []
process.stdin.on('data', (d) => chunks.push(d))
process.stdin.on('end', () => {
  const { ops } = JSON.parse(b4a.toString(b4a.concat(chunks)))
  const results = ops.map((op) => {
    try {
      return { ok: run(op) }
    } catch (err) {
      return { error: String((err && err.stack) || err) }
    }
  })
  process.stdout.write(JSON.stringify({ results }))
})
