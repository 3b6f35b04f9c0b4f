// The page at / (issue 10 item 1): joins the serving node at once, sets window.dht (issue 9 item 5),
// wires the forms to it, and redraws the #stats panel and its chart every second. Errors go to #errors
// and to the result field of the control that failed, not only to the console.
//
// Config: GET config.json ({"iceServers": [...], "ws": "ws://…"}, both optional; a 404 means defaults:
// no ICE servers, the WebSocket at ws(s)://<this host>/ws). ?ws=URL in the address overrides the socket.

import { DHTNode, createDht, defaultWsUrl } from './peerdht.js';
import { hasWebCrypto } from './bep44.js';

const $ = (id) => document.getElementById(id);

function showError(message) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  $('errors').prepend(li);
  while ($('errors').children.length > 5) $('errors').lastChild.remove();
}

window.addEventListener('error', (e) => showError(e.message));
window.addEventListener('unhandledrejection', (e) => showError(String((e.reason && e.reason.message) || e.reason)));

async function loadConfig() {
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) return await r.json();
  } catch { /* no config: defaults */ }
  return {};
}

const config = await loadConfig();
const params = new URLSearchParams(location.search);
const wsUrl = params.get('ws') || config.ws || defaultWsUrl(location, config.wsPath || '/ws');
// window.PEERDHT_OPTIONS (set before this module runs, e.g. by a test's init script) adds DHTNode options.
// iceServers: RTCIceServer dicts or plain "stun:…"/"turn:…" URL strings (as `peerdht web --ice-server` takes them).
const iceServers = (Array.isArray(config.iceServers) ? config.iceServers : []).map((s) => (typeof s === 'string' ? { urls: s } : s));
const node = new DHTNode({ ...(window.PEERDHT_OPTIONS || {}), iceServers });
const dht = createDht(node);
window.dht = dht;
// closing the tab closes the links at once, so peers drop this node now rather than after a timeout
window.addEventListener('pagehide', () => node.close());
window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); }); // back from the page cache: rejoin

if (!hasWebCrypto()) $('no-crypto').hidden = false;
$('stat-id').textContent = dht.stats().nodeId;

function setStatus(text, cls) { $('status').textContent = text; $('status').className = `status ${cls}`; }

async function join() {
  setStatus(`joining ${wsUrl}…`, 'joining');
  try {
    const t0 = performance.now();
    await node.join(wsUrl);
    setStatus(`joined in ${Math.round(performance.now() - t0)} ms through ${wsUrl}`, 'ready');
  } catch (e) {
    setStatus(`could not join through ${wsUrl}: ${e.message}; retrying in 5 s`, 'failed');
    showError(`join: ${e.message}`);
    setTimeout(join, 5000);
  }
}
join();

// One handler shape for every control: disable the button, run, show the result or the error.
function control(formId, buttonId, resultId, run) {
  $(formId).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $(resultId);
    out.classList.remove('error');
    out.textContent = '…';
    $(buttonId).disabled = true;
    try {
      out.textContent = await run();
    } catch (e) {
      out.classList.add('error');
      out.textContent = `error: ${e.message}`;
      showError(`${buttonId}: ${e.message}`);
    } finally {
      $(buttonId).disabled = false;
    }
  });
}

const val = (id) => $(id).value.trim();
const hex40 = (id, what) => {
  const v = val(id).toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(v)) throw new Error(`${what} must be 40 hex characters`);
  return v;
};

control('put-form', 'put', 'put-result', async () => dht.put($('put-value').value));
control('get-form', 'get', 'get-result', async () => {
  const v = await dht.get(hex40('get-key', 'the key'));
  return v === null ? 'not found' : v;
});
control('mput-form', 'mput', 'mput-result', async () => {
  const salt = val('mput-salt');
  const r = await dht.putMutable($('mput-value').value, salt ? { salt } : {});
  return `public key ${r.publicKey}\nseq ${r.seq}`;
});
control('mget-form', 'mget', 'mget-result', async () => {
  const key = val('mget-key').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('the public key must be 64 hex characters');
  const salt = val('mget-salt');
  const r = await dht.getMutable(key, salt ? { salt } : {});
  return r === null ? 'not found' : `${r.value}\n(seq ${r.seq})`;
});
control('announce-form', 'announce', 'announce-result', async () => {
  const port = Number($('announce-port').value);
  await dht.announce(hex40('announce-ih', 'the info hash'), port);
  return `announced port ${port}`;
});
control('lookup-form', 'lookup', 'lookup-result', async () => {
  const peers = await dht.lookup(hex40('lookup-ih', 'the info hash'));
  return peers.length ? peers.join('\n') : 'no peers found';
});

// ------------------------------------------------------------------------------------------------
// stats panel and chart

const history = []; // {peers, msgs}
let last = null;

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function drawChart() {
  const c = $('chart');
  const w = c.clientWidth || 600; const h = c.clientHeight || 120;
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const n = Math.max(30, Math.min(120, history.length));
  const pts = history.slice(-n);
  const maxPeers = Math.max(4, ...pts.map((p) => p.peers));
  const maxMsgs = Math.max(4, ...pts.map((p) => p.msgs));
  g.strokeStyle = '#e3e7ec'; g.lineWidth = 1;
  for (let i = 1; i < 4; i++) { g.beginPath(); g.moveTo(0, (h * i) / 4); g.lineTo(w, (h * i) / 4); g.stroke(); }
  const line = (key, max, color) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    pts.forEach((p, i) => {
      const x = w - (pts.length - 1 - i) * (w / (n - 1));
      const y = h - 4 - (p[key] / max) * (h - 12);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  };
  line('msgs', maxMsgs, '#e07b00');
  line('peers', maxPeers, '#0b63c5');
  g.fillStyle = '#5b6570'; g.font = '11px system-ui, sans-serif';
  g.fillText(`peers max ${maxPeers}  ·  msgs/s max ${maxMsgs}`, 6, 13);
}

function renderStats() {
  const s = dht.stats();
  const now = performance.now();
  let qin = 0; let qout = 0; let msgs = 0;
  if (last) {
    const dt = (now - last.at) / 1000;
    qin = (s.queriesIn - last.queriesIn) / dt;
    qout = (s.queriesOut - last.queriesOut) / dt;
    const total = s.peers.reduce((a, p) => a + p.msgsIn + p.msgsOut, 0);
    msgs = Math.max(0, (total - last.msgs) / dt);
  }
  last = { at: now, queriesIn: s.queriesIn, queriesOut: s.queriesOut, msgs: s.peers.reduce((a, p) => a + p.msgsIn + p.msgsOut, 0) };
  $('stat-id').textContent = s.nodeId;
  $('stat-table').textContent = `${s.tableSize} nodes (${s.webrtcLinks} WebRTC links)`;
  $('stat-qps').textContent = `${qin.toFixed(1)} / ${qout.toFixed(1)}`;
  $('stat-items').textContent = `${s.items.immutable} immutable, ${s.items.mutable} mutable, ${s.items.peers} peers for ${s.items.infoHashes} info hashes`;
  $('stat-bytes').textContent = `${fmtBytes(s.bytesIn)} / ${fmtBytes(s.bytesOut)}`;
  const body = $('peers').tBodies[0];
  body.replaceChildren(...s.peers.map((p) => {
    const tr = document.createElement('tr');
    const cells = [p.id.slice(0, 12) + '…', p.transport, p.rtt === null ? '–' : String(Math.round(p.rtt)), fmtBytes(p.bytesIn), fmtBytes(p.bytesOut)];
    cells.forEach((t, i) => {
      const td = document.createElement('td');
      td.textContent = t;
      if (i === 0) td.title = p.id;
      if (i === 1) td.className = `t-${p.transport}`;
      tr.append(td);
    });
    return tr;
  }));
  history.push({ peers: s.peers.length, msgs: Math.round(msgs) });
  if (history.length > 600) history.shift();
  drawChart();
}

renderStats();
setInterval(renderStats, 1000);
