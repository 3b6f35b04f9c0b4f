// Shared helper for JS fixtures: JSON lines on stdout; JSON commands on stdin; exit when stdin closes.
'use strict'
const readline = require('readline')

exports.out = function (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// onCommand(obj) is called for every JSON line on stdin; onEnd() runs before exit when stdin closes.
exports.serve = function (onCommand, onEnd) {
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    if (!line.trim()) return
    try {
      await onCommand(JSON.parse(line))
    } catch (err) {
      exports.out({ error: String(err && err.stack || err) })
    }
  })
  rl.on('close', async () => {
    try { if (onEnd) await onEnd() } finally { process.exit(0) }
  })
}
