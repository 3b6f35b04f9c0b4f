// Iterative Kademlia lookup (BEP 5 §"find_node"/"get_peers", bittorrent-dht's `_closest`): keep the
// candidates sorted by XOR distance to the target, query up to `alpha` of the `k` closest not yet
// asked, merge the nodes each answer names, and finish when the `k` closest known have all answered
// or failed and nothing is in flight.
//
// The engine knows nothing about transports: `query(candidate)` returns a Promise of
// {nodes: [candidate, …], …} (each candidate has at least `id`, a Uint8Array(20)) or rejects.
// `onResponse(candidate, response)` sees every answer as it arrives (values, tokens, items).

import { compareBytes, toHex } from './bencode.js';
import { xor } from './table.js';

export async function lookup({ target, seeds, query, k = 8, alpha = 3, onResponse = () => {}, maxQueries = 200, signal = null }) {
  const known = new Map(); // hex -> {cand, dist, state: 'new'|'asking'|'done'|'failed', response}
  const add = (cand) => {
    if (!cand || !(cand.id instanceof Uint8Array) || cand.id.length !== 20) return;
    const hex = toHex(cand.id);
    if (!known.has(hex)) known.set(hex, { cand, dist: xor(target, cand.id), state: 'new', response: null });
  };
  seeds.forEach(add);
  let inFlight = 0;
  let asked = 0;

  const sorted = () => [...known.values()].filter((e) => e.state !== 'failed').sort((a, b) => compareBytes(a.dist, b.dist));

  return new Promise((resolve) => {
    const finish = () => {
      const done = sorted().filter((e) => e.state === 'done').slice(0, k);
      resolve({ closest: done.map((e) => ({ ...e.cand, response: e.response })), queried: asked });
    };
    const pump = () => {
      if (signal && signal.aborted) { if (inFlight === 0) finish(); return; }
      const top = sorted().slice(0, k);
      for (const e of top) {
        if (inFlight >= alpha || asked >= maxQueries) break;
        if (e.state !== 'new') continue;
        e.state = 'asking'; inFlight++; asked++;
        Promise.resolve()
          .then(() => query(e.cand))
          .then((resp) => {
            e.state = 'done'; e.response = resp;
            try { onResponse(e.cand, resp); } catch (err) { console.warn('lookup onResponse', err); }
            for (const n of (resp && resp.nodes) || []) add(n);
          }, () => { e.state = 'failed'; })
          .finally(() => { inFlight--; pump(); });
      }
      if (inFlight === 0) finish();
    };
    pump();
  });
}
