// A real dht-rpc node on 127.0.0.1 (no bootstrap) for tests/interop/test_hyper_codec_js.py:
// its datagrams are decoded by our codec, and it must accept the datagrams our codec encodes.
//
// stdout: {"ready": true, "port", "id"} then one line per command.
// stdin commands:
//   {"op": "request", "port", "command", "target"?, "value"?, "token"?}  -> {"reply": {...}} or {"failed": msg}
//   {"op": "ping", "port"}                                               -> {"pinged": true} or {"failed": msg}
// Requests to this node with command 42 are answered with value "pong" (token and closer nodes as dht-rpc
// adds them); other non-internal commands get UNKNOWN_COMMAND.
'use strict'
const DHT = require('dht-rpc')
const b4a = require('b4a')
const { out, serve } = require('./stdio')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const buf = (h) => (typeof h === 'string' ? b4a.from(h, 'hex') : null)

async function main() {
  // A persistent node (one that sends its id) needs a known port: borrow a free one from a probe node.
  const probe = new DHT({ bootstrap: [], host: '127.0.0.1', port: 0 })
  await probe.ready()
  const port = probe.address().port
  await probe.destroy()
  const dht = DHT.bootstrapper(port, '127.0.0.1', { host: '127.0.0.1' })
  // returning false makes dht-rpc answer UNKNOWN_COMMAND itself
  dht.onrequest = (req) => {
    if (req.command !== 42) return false
    req.reply(b4a.from('pong'))
    return true
  }
  await dht.ready()
  out({ ready: true, port: dht.address().port, id: hex(dht.id) })

  serve(
    async (cmd) => {
      const to = { host: '127.0.0.1', port: cmd.port }
      try {
        if (cmd.op === 'ping') {
          await dht.ping(to, { retry: false })
          out({ pinged: true })
        } else if (cmd.op === 'request') {
          const res = await dht.request(
            { command: cmd.command, target: buf(cmd.target), value: buf(cmd.value), token: buf(cmd.token) },
            to,
            { retry: false }
          )
          out({
            reply: {
              tid: res.tid,
              to: { host: res.to.host, port: res.to.port },
              id: hex(res.from.id),
              token: hex(res.token),
              closerNodes: (res.closerNodes || []).map((n) => ({ host: n.host, port: n.port })),
              error: res.error,
              value: hex(res.value)
            }
          })
        }
      } catch (err) {
        out({ failed: String((err && err.code) || err) })
      }
    },
    () => dht.destroy()
  )
}

main()
