// Byte fixtures for peerdht.relay: blind-relay messages and protomux frames as the npm modules write them.
'use strict'
const c = require('compact-encoding')
const { Duplex } = require('streamx')
const Protomux = require('protomux')
const { messages } = require('blind-relay')

const hex = (b) => Buffer.from(b).toString('hex')
const token = Buffer.alloc(32)
for (let i = 0; i < 32; i++) token[i] = i * 7 + 1

const out = {}
out.pair_init = hex(c.encode(messages.pair, { isInitiator: true, token, id: 5, seq: 0 }))
out.pair_resp = hex(c.encode(messages.pair, { isInitiator: false, token, id: 70000, seq: 3 }))
out.unpair = hex(c.encode(messages.unpair, { token }))

// decode whatever the test passes on argv: [kind, hex]
if (process.argv[2] === 'decode') {
  const m = messages[process.argv[3]]
  try {
    const v = c.decode(m, Buffer.from(process.argv[4], 'hex'))
    process.stdout.write(JSON.stringify({ ok: true, isInitiator: v.isInitiator, token: hex(v.token), id: v.id, seq: v.seq }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false }) + '\n')
  }
  process.exit(0)
}

// protomux frames: capture what one mux writes
const written = []
const stream = new Duplex({
  write(data, cb) {
    written.push(hex(data))
    cb(null)
  }
})
const mux = new Protomux(stream)
const ch = mux.createChannel({ protocol: 'blind-relay', id: token, onopen() {}, onclose() {} })
const pair = ch.addMessage({ encoding: messages.pair })
const unpair = ch.addMessage({ encoding: messages.unpair })
ch.open()
pair.send({ isInitiator: true, token, id: 9, seq: 0 })
mux.cork()
pair.send({ isInitiator: false, token, id: 10, seq: 0 })
unpair.send({ token })
mux.uncork()
ch.close()
setImmediate(() => {
  out.mux = written
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
})
