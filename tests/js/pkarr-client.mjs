// The npm `pkarr` 1.3.0 client against a Pkarr relay (tests/web/test_pkarr_relay.py). One command per run,
// one JSON line on stdout:
//   node pkarr-client.mjs publish RELAY_URL SEED_HEX TEXT [TIMESTAMP_US]  -> {status, stored, key, publicKey, timestamp}
//   node pkarr-client.mjs resolve RELAY_URL PUBLIC_KEY_HEX               -> {texts: [...], timestamp} | {error}
// publish signs a DNS packet with one TXT record `_text` = TEXT (SignedPacket.fromPacket) and relayPut()s it;
// resolve relayGet()s it back (which verifies the signature and decodes the DNS packet).
import { Pkarr, SignedPacket, z32 } from 'pkarr'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const [cmd, relay, arg, text, ts] = process.argv.slice(2)

try {
  if (cmd === 'publish') {
    const keyPair = Pkarr.generateKeyPair(Buffer.from(arg, 'hex'))
    const packet = { id: 0, type: 'response', flags: 0, answers: [{ name: '_text', type: 'TXT', ttl: 30, data: text }] }
    const signed = SignedPacket.fromPacket(keyPair, packet, ts ? { timestamp: Number(ts) } : {})
    const res = await Pkarr.relayPut(relay, signed)
    out({
      status: res.status,
      stored: res.headers.get('pkarr-dht-stored-nodes'),
      cors: res.headers.get('access-control-allow-origin'),
      key: z32.encode(keyPair.publicKey),
      publicKey: Buffer.from(keyPair.publicKey).toString('hex'),
      timestamp: signed.timestamp()
    })
  } else if (cmd === 'resolve') {
    const signed = await Pkarr.relayGet(relay, Buffer.from(arg, 'hex'))
    const texts = signed.packet().answers.filter((a) => a.type === 'TXT')
      .map((a) => [].concat(a.data).map((d) => Buffer.from(d).toString()).join(''))
    out({ texts, timestamp: signed.timestamp() })
  } else {
    out({ error: 'usage: publish|resolve' })
  }
} catch (err) {
  out({ error: String(err && err.message || err) })
}
