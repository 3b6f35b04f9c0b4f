// npm bittorrent-tracker 11.2.3's Server, WebSocket only, on 127.0.0.1 (tests/web/test_rooms_p2pt.py, bench/rooms.py).
// Usage: node tracker-server.js  -- prints {"ready": true, "url": "ws://127.0.0.1:PORT"}; exits when stdin closes.
// The package root imports the client (and a native WebRTC module we do not install): import the server only.
'use strict'
const { out, serve } = require('./stdio.js')

async function main () {
  const { default: Server } = await import('bittorrent-tracker/server')
  const server = new Server({ udp: false, http: false, ws: true, stats: true })
  let warnings = 0
  server.on('warning', () => { warnings++ })
  server.on('error', (err) => out({ event: 'error', error: String(err) }))
  server.listen(0, '127.0.0.1', () => {
    out({ ready: true, url: `ws://127.0.0.1:${server.http.address().port}` })
  })
  serve(async (cmd) => {
    if (cmd.cmd === 'warnings') out({ cmd: 'warnings', warnings })
  }, () => new Promise((resolve) => server.close(resolve)))
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1) })
