// peerdht.js: a Mainline DHT node in the page (BEP 5 + BEP 44) over WebSocket and WebRTC data channels,
// wire-compatible with webtorrent-dht 0.18's KRPC extension: `signals` (WebRTC offers) on find_node /
// get_peers / get, the `peer_connection` query a node sends to forward an offer to a node it is about to
// return, answers in `r.signals`, and the id-only answer {id} = "we are already connected".
// Liberal where webtorrent-dht is broken (research browser-dht.md §1.6/§1.7): queries without signals
// are answered, a missing answer drops that node from `nodes` (never a null signal), answers are matched
// to nodes by `signal.id`, compact addresses from peers are ignored, signalled queries wait 15 s.
//
// Usage:
//   import { DHTNode, createDht } from './peerdht.js';
//   const node = new DHTNode({ iceServers: [] });
//   await node.join('ws://127.0.0.1:8080/ws');
//   window.dht = createDht(node);          // ready, put, get, putMutable, getMutable, announce, lookup, stats
//   const room = new Room('my app', ['ws://127.0.0.1:8000']);   // a P2PT room (rooms.js), see room.html

import { encode, toHex, fromHex, bytesEqual, text, bytes, compareBytes } from './bencode.js';
import {
  parseMessage, encodeQuery, encodeResponse, encodeError, encodeNodes, decodeNodes, decodePeer, encodePeer,
  KrpcError, ERR_GENERIC, ERR_PROTOCOL, ERR_METHOD,
} from './krpc.js';
import { RoutingTable, xor } from './table.js';
import { lookup } from './lookup.js';
import * as bep44 from './bep44.js';
import { RtcLink, checkSignal } from './webrtc.js';
import { Relay, nextHop } from './relay.js';
// P2PT rooms over WebTorrent trackers live in rooms.js; re-exported so one import gives both.
export { Room } from './rooms.js';

const SIGNALLED = new Set(['find_node', 'get_peers', 'get']);

// Named in the `extensions` of our offers and answers (webtorrent-dht's mechanism for this, ignored by it):
// a peer that names it reads messages as soon as the data channel opens, so no settle delay is needed.
export const EXTENSION = 'peerdht';

function hasExtension(signal, name) {
  const ext = signal && Array.isArray(signal.extensions) ? signal.extensions : [];
  return ext.some((e) => e instanceof Uint8Array && text(e) === name);
}

export const DEFAULTS = {
  k: 2, // WebRTC links per bucket (webtorrent-dht's K)
  lookupK: 8, // closest nodes a lookup keeps and stores at
  offers: 2, // offers per signalled query: max(2, floor(log2(k)))
  queryTimeout: 5000, // ms, plain queries
  signalTimeout: 15000, // ms, queries that carry signals (>= 10 s, research §1.7)
  forwardTimeout: 8000, // ms, our peer_connection forwards while answering a signalled query
  openTimeout: 10000, // ms, a new WebRTC link must open in this time
  maxWebrtc: 24, // total WebRTC links
  maxPendingAnswers: 8, // RTCPeerConnections we answer at once
  maxItems: 1000, // BEP 44 items and info hashes we store
  maxPeersPerHash: 100,
  maintainEvery: 10000, // ms between pings of idle links / table refresh
  settle: 500, // ms a new WebRTC link holds our messages unless the peer speaks first
  itemTtl: 2 * 3600 * 1000, // ms a BEP 44 item is kept (BEP 44: 2 hours)
  peerTtl: 30 * 60 * 1000, // ms an announced peer is kept
  peerConnectionRate: 2, // peer_connection queries answered per second per link (burst 8)
};

let connSeq = 0;

/** One link to a peer: a WebSocket, a WebRTC data channel, or (issue 10) a relay route. */
export class Conn {
  constructor(node, transport, { send, close, id = null, addr = null }) {
    this.uid = ++connSeq;
    this.node = node;
    this.transport = transport;
    this._send = send;
    this._close = close;
    this.id = id; // Uint8Array(20) once known
    this.addr = addr; // {host, port} when known
    this.open = true;
    this.rtt = null; // ms, smoothed
    this.bytesIn = 0; this.bytesOut = 0; this.msgsIn = 0; this.msgsOut = 0;
    this.since = Date.now();
    this.lastIn = Date.now();
    this.token = globalThis.crypto.getRandomValues(new Uint8Array(8));
    this.relays = transport !== 'relay'; // can carry relayed messages (false for webtorrent-dht data channels)
  }

  get idHex() { return this.id ? toHex(this.id) : null; }

  send(data) {
    if (!this.open) throw new Error(`${this.transport} link closed`);
    this.bytesOut += data.length; this.msgsOut++;
    this.node.counters.bytesOut += data.length;
    if (this.held) { this.held.push(data); return; }
    this._send(data);
  }

  /**
   * Hold outgoing messages until the peer speaks or `ms` pass: webtorrent-dht (simple-peer) drops messages
   * that arrive on a new data channel before its own 'connect' event (the Python node does the same).
   */
  settle(ms) {
    this.held = [];
    setTimeout(() => this.release(), ms);
  }

  release() {
    const held = this.held;
    this.held = null;
    if (!held || !this.open) return;
    for (const d of held) { try { this._send(d); } catch { /* closed meanwhile */ } }
  }

  close() {
    if (!this.open) return;
    this.open = false;
    try { this._close(); } catch { /* already closed */ }
    this.node._linkClosed(this);
  }
}

function hexOrBytes(x, name) {
  if (x instanceof Uint8Array) return x;
  if (typeof x === 'string' && /^[0-9a-fA-F]{40}$/.test(x)) return fromHex(x);
  throw new TypeError(`${name} must be 40 hex characters`);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

export class DHTNode extends EventTarget {
  constructor(options = {}) {
    super();
    this.opts = { ...DEFAULTS, ...options };
    this.iceServers = options.iceServers || [];
    this.blockIce = !!options.blockIce; // tests of the relay fallback: our WebRTC links can never connect
    this.id = options.nodeId ? hexOrBytes(options.nodeId, 'nodeId') : globalThis.crypto.getRandomValues(new Uint8Array(20));
    this.table = new RoutingTable(this.id, { k: this.opts.k });
    this.relay = new Relay(this.id);
    this.relayConns = new Map(); // hex id -> Conn (transport 'relay')
    this.conns = new Set(); // every open Conn (in the table or not)
    this.pending = new Map(); // `${conn.uid}:${hex t}` -> {resolve, reject, timer, sent, conn}
    this.tid = Math.floor(Math.random() * 65536);
    this.immutable = new Map(); // hex target -> {v, at}
    this.mutable = new Map(); // hex target -> {k, salt, seq, sig, v, at}
    this.peers = new Map(); // hex info hash -> Map("host:port" -> compact)
    this.pendingAnswers = 0;
    this.offerPool = []; // Promise<{link, sdp, at} | null>
    this.ready = false;
    this.wsUrl = null;
    this.closed = false;
    this.counters = {
      queriesIn: 0, queriesOut: 0, responsesIn: 0, errorsIn: 0, timeouts: 0, dropped: 0,
      bytesIn: 0, bytesOut: 0, linksOpened: 0, linksRefused: 0, signalsSent: 0, signalsAnswered: 0, peerConnectionsRefused: 0, linksFailed: 0, signalsUnlisted: 0,
    };
    this.lastError = null;
    this.timeline = { joinStart: null, linked: null, ready: null, firstWebrtc: null, links: [] }; // performance.now() ms
    this._maint = setInterval(() => this._maintain(), this.opts.maintainEvery);
  }

  // ----------------------------------------------------------------------------------------------
  // links

  /** Open a WebSocket to a serving node (one bencoded KRPC message per binary message) and join. */
  /**
   * Join through `url`: a peerdht node's WebSocket (ws:// or wss://), or a webtorrent-dht 0.18 node's HTTP
   * bootstrap (http:// or https://: one POST of a JSON offer, a JSON answer back, then a data channel).
   */
  async join(url) {
    const http = /^https?:/.test(url);
    if (!http) this.wsUrl = url;
    this.timeline.joinStart = performance.now();
    this._fillPool(); // gather ICE while the WebSocket opens
    const conn = http ? await this.connectHttp(url) : await this.connectWebSocket(url);
    this.timeline.linked = performance.now();
    this.ready = false;
    await this.bootstrap();
    this.ready = true;
    this.timeline.ready = performance.now();
    this._emit('ready', {});
    return conn;
  }

  connectWebSocket(url) {
    return new Promise((resolve, reject) => {
      let ws;
      try { ws = new WebSocket(url); } catch (e) { reject(e); return; }
      ws.binaryType = 'arraybuffer';
      const conn = new Conn(this, 'websocket', { send: (d) => ws.send(d), close: () => ws.close() });
      let opened = false;
      ws.onopen = async () => {
        opened = true;
        this.conns.add(conn);
        try {
          await this._identify(conn);
          resolve(conn);
        } catch (e) { conn.close(); reject(e); }
      };
      ws.onmessage = (m) => this._onData(conn, new Uint8Array(m.data instanceof ArrayBuffer ? m.data : new TextEncoder().encode(m.data)));
      ws.onclose = () => { if (!opened) reject(new Error(`WebSocket ${url} did not open`)); conn.close(); };
      ws.onerror = () => {};
    });
  }

  /**
   * A link over any transport the caller moves bytes for (tests, relays): returns the Conn; feed
   * received messages to conn.receive(bytes). Call identify(conn) to learn its id with a ping.
   */
  addLink(transport, send, close = () => {}) {
    const conn = new Conn(this, transport, { send, close });
    conn.receive = (d) => this._onData(conn, d);
    this.conns.add(conn);
    return conn;
  }

  identify(conn) { return this._identify(conn); }

  /** Learn a new link's node id with a ping, then put it in the table. */
  async _identify(conn) {
    const r = await this._send(conn, 'ping', {}, this.opts.queryTimeout);
    conn.id = r.id;
    this._adopt(conn);
  }

  _adopt(conn) {
    if (bytesEqual(conn.id, this.id)) { conn.close(); return false; }
    const old = this.table.get(conn.idHex);
    const ok = this.table.add(conn);
    if (ok && old && old.conn !== conn && old.conn.transport === conn.transport) old.conn.close();
    if (!ok && conn.transport === 'webrtc') this.counters.linksRefused++;
    this._emit('peer', { id: conn.idHex, transport: conn.transport });
    return ok;
  }

  _linkClosed(conn) {
    this.conns.delete(conn);
    if (conn.id) this.table.remove(conn.idHex, conn);
    for (const [key, p] of this.pending) {
      if (p.conn === conn) { this.pending.delete(key); clearTimeout(p.timer); p.reject(new Error('link closed')); }
    }
    this._emit('peer-closed', { id: conn.idHex, transport: conn.transport });
    if (conn.transport === 'websocket' && !this.closed && this.wsUrl) this._scheduleReconnect();
  }

  _scheduleReconnect(delay = 3000) {
    if (this._reconnecting) return;
    this._reconnecting = true;
    setTimeout(async () => {
      this._reconnecting = false;
      if (this.closed || [...this.conns].some((c) => c.transport === 'websocket')) return;
      try { await this.connectWebSocket(this.wsUrl); } catch { this._scheduleReconnect(Math.min(delay * 2, 60000)); }
    }, delay);
  }

  // ----------------------------------------------------------------------------------------------
  // relayed messages (relay.js has the wire format and the rules)

  _onRelay(conn, a, size) {
    if (!conn.id) { this._drop(conn, 'relay before the link said who it is'); return; }
    const res = this.relay.receive(conn, a, size);
    if (res.drop) { this._drop(conn, res.drop); return; }
    if (res.forward) {
      const hop = nextHop(this.conns, res.forward.to, conn, this.relay.routes);
      if (!hop) { this.relay.counters.relayDropped++; this._drop(conn, 'relay: no next hop'); return; }
      try { hop.send(res.forward.bytes); } catch { this.relay.counters.relayDropped++; }
      return;
    }
    const { from, m } = res.deliver;
    let inner;
    try { inner = parseMessage(m); } catch (e) { this._drop(conn, `relay: ${e.message}`); return; }
    if (inner.y === 'q' && inner.q === 'relay') { this._drop(conn, 'relay: nested relay'); return; }
    const claimed = inner.y === 'q' ? inner.a.id : inner.y === 'r' ? inner.r.id : from;
    if (!bytesEqual(claimed, from)) { this._drop(conn, 'relay: inner id is not the origin'); return; }
    const rc = this._relayConn(from);
    rc.bytesIn += m.length; rc.msgsIn++; rc.lastIn = Date.now();
    this._onMessage(rc, inner);
  }

  /** The relay route to node `id` (a Conn with transport 'relay'), made on first use. */
  _relayConn(id) {
    const hex = toHex(id);
    let rc = this.relayConns.get(hex);
    if (rc && rc.open) return rc;
    rc = new Conn(this, 'relay', {
      id,
      send: (d) => {
        const hop = nextHop(this.conns, id, null, this.relay.routes);
        if (!hop) throw new Error('no link to relay through');
        hop.send(this.relay.wrap(id, d));
      },
      close: () => this.relayConns.delete(hex),
    });
    this.relayConns.set(hex, rc);
    this.conns.add(rc);
    this._adopt(rc);
    return rc;
  }

  /** A direct link (WebSocket or WebRTC, not a relay route) to `idHex`, or null. */
  directConnFor(idHex) {
    for (const c of this.conns) if (c.idHex === idHex && c.open && c.transport !== 'relay') return c;
    return null;
  }

  webrtcCount() { return [...this.conns].filter((c) => c.transport === 'webrtc').length; }

  connFor(idHex) {
    const e = this.table.get(idHex);
    if (e && e.conn.open) return e.conn;
    for (const c of this.conns) if (c.idHex === idHex && c.open) return c;
    return null;
  }

  /**
   * webtorrent-dht 0.18's bootstrap (webrtc-socket.js): POST {type:'offer', sdp, extensions} as JSON to the
   * node's HTTP server, feed its JSON answer, wait for the data channel, learn the node's id with a ping.
   */
  async connectHttp(url) {
    const [x] = await Promise.all(this._takeOffers(1));
    if (!x) throw new Error('could not make a WebRTC offer');
    let answer;
    try {
      const res = await withTimeout(fetch(url, { method: 'POST', body: JSON.stringify({ type: 'offer', sdp: x.sdp, extensions: [EXTENSION] }) }),
        this.opts.queryTimeout, `POST ${url}`);
      if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}`);
      answer = await res.json();
      await x.link.accept(answer);
      await x.link.waitOpen(this.opts.openTimeout);
    } catch (e) { x.link.close(); throw e; }
    const conn = this._rtcConn(x.link, null, answer);
    await this._identify(conn);
    return conn;
  }

  _rtcConn(link, id, remoteSignal = null) {
    const conn = new Conn(this, 'webrtc', { send: (d) => link.send(d), close: () => link.close(), id });
    link.onmessage = (d) => this._onData(conn, d);
    link.onclose = () => conn.close();
    // a peer that names our extension reads early messages and relays; webtorrent-dht does neither
    conn.relays = hasExtension(remoteSignal, EXTENSION);
    if (!conn.relays) conn.settle(this.opts.settle);
    this.conns.add(conn);
    this.counters.linksOpened++;
    if (this.timeline.firstWebrtc === null) this.timeline.firstWebrtc = performance.now();
    link.remoteAddress().then((a) => { conn.addr = a; });
    if (!id) { this.conns.add(conn); return conn; } // id learnt later (connectHttp pings)
    if (this.timeline.links.length < 64) this.timeline.links.push({ id: toHex(id), at: performance.now() });
    if (!this._adopt(conn)) {
      // Not kept by the table: webtorrent-dht closes such links after 30 s, so do we.
      setTimeout(() => { if (!this.table.get(conn.idHex) || this.table.get(conn.idHex).conn !== conn) conn.close(); }, 30000);
    }
    return conn;
  }

  // ----------------------------------------------------------------------------------------------
  // wire

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _drop(conn, why) {
    this.counters.dropped++;
    this.lastError = why;
  }

  _onData(conn, data) {
    if (conn.held) conn.release();
    conn.bytesIn += data.length; conn.msgsIn++; conn.lastIn = Date.now();
    this.counters.bytesIn += data.length;
    let msg;
    try {
      msg = parseMessage(data);
    } catch (e) {
      // webtorrent-dht nodes with an HTTP server send {"http_server":…} JSON first: not KRPC, ignore it.
      if (data[0] !== 0x7b) this._drop(conn, e.message);
      return;
    }
    if (msg.y === 'q' && msg.q === 'relay') { this._onRelay(conn, msg.a, data.length); return; }
    this._onMessage(conn, msg);
  }

  _onMessage(conn, msg) {
    if (msg.y === 'q') { this._onQuery(conn, msg); return; }
    const key = `${conn.uid}:${toHex(msg.t)}`;
    const p = this.pending.get(key);
    if (!p) { this._drop(conn, 'unexpected transaction id'); return; }
    this.pending.delete(key);
    clearTimeout(p.timer);
    const rtt = performance.now() - p.sent;
    conn.rtt = conn.rtt === null ? rtt : conn.rtt * 0.8 + rtt * 0.2;
    if (msg.y === 'e') { this.counters.errorsIn++; p.reject(new Error(`KRPC error ${msg.e[0]}: ${msg.e[1]}`)); return; }
    if (conn.id && !bytesEqual(conn.id, msg.r.id)) { this._drop(conn, 'response from an unexpected id'); p.reject(new Error('wrong id')); return; }
    this.counters.responsesIn++;
    p.resolve(msg.r);
  }

  /** Send query `q` with arguments `a` (our id is added) on `conn`; resolves with `r`. */
  _send(conn, q, a, timeout) {
    return new Promise((resolve, reject) => {
      this.tid = (this.tid + 1) & 0xffff;
      const t = Uint8Array.from([this.tid >> 8, this.tid & 0xff]);
      const key = `${conn.uid}:${toHex(t)}`;
      const timer = setTimeout(() => {
        if (this.pending.delete(key)) { this.counters.timeouts++; reject(new Error(`${q} timed out`)); }
      }, timeout);
      this.pending.set(key, { resolve, reject, timer, sent: performance.now(), conn });
      try {
        conn.send(encodeQuery(t, q, { ...a, id: this.id }));
        this.counters.queriesOut++;
      } catch (e) {
        this.pending.delete(key); clearTimeout(timer); reject(e);
      }
    });
  }

  _reply(conn, t, r) { try { conn.send(encodeResponse(t, { ...r, id: this.id })); } catch { /* link gone */ } }

  _fail(conn, t, code, message) { try { conn.send(encodeError(t, code, message)); } catch { /* link gone */ } }

  // ----------------------------------------------------------------------------------------------
  // answering queries

  async _onQuery(conn, msg) {
    this.counters.queriesIn++;
    const { a, t, q } = msg;
    if (conn.id && !bytesEqual(conn.id, a.id)) { this._drop(conn, 'query from an unexpected id'); return; }
    if (!conn.id) { conn.id = a.id; this._adopt(conn); }
    try {
      const handler = this.handlers[q];
      if (!handler) { this._fail(conn, t, ERR_METHOD, 'Method Unknown'); return; }
      let r = await handler.call(this, conn, a);
      if (r && SIGNALLED.has(q) && Array.isArray(a.signals)) r = await this._forwardSignals(conn, a, r);
      if (r) { delete r._list; this._reply(conn, t, r); }
    } catch (e) {
      this._drop(conn, e.message);
      const code = e.code || (e instanceof KrpcError || e instanceof TypeError ? ERR_PROTOCOL : ERR_GENERIC);
      this._fail(conn, t, code, e.message || 'error');
    }
  }

  _target(a, key = 'target') {
    const v = a[key];
    if (!(v instanceof Uint8Array) || v.length !== 20) throw new KrpcError(`bad ${key}`);
    return v;
  }

  // Compact address of a link's node: its ICE remote address when known, else 0.0.0.0:1 (BEP 5 decoders
  // drop port-0 entries; the address is never used to reach the node, only its id is).
  _addrOf(conn) {
    return conn.addr && conn.addr.host && conn.addr.port ? { host: conn.addr.host, port: conn.addr.port } : { host: '0.0.0.0', port: 1 };
  }

  _nodesFor(target, exclude) {
    return this.table.closest(target, this.opts.lookupK, exclude).map((e) => ({ id: e.id, ...this._addrOf(e.conn) }));
  }

  _checkToken(conn, token) {
    if (!(token instanceof Uint8Array) || !bytesEqual(token, conn.token)) throw new KrpcError('bad token');
  }

  _evict(map) {
    if (map.size < this.opts.maxItems) return;
    let oldest = null;
    for (const [k, v] of map) if (!oldest || v.at < oldest[1].at) oldest = [k, v];
    map.delete(oldest[0]);
  }

  get handlers() {
    return {
      ping: () => ({}),
      find_node(conn, a) {
        return { nodes: encodeNodes(this._nodesFor(this._target(a), new Set([conn.idHex]))), _list: this.table.closest(this._target(a), this.opts.lookupK, new Set([conn.idHex])) };
      },
      get_peers(conn, a) {
        const ih = this._target(a, 'info_hash');
        const r = { token: conn.token, nodes: encodeNodes(this._nodesFor(ih, new Set([conn.idHex]))), _list: this.table.closest(ih, this.opts.lookupK, new Set([conn.idHex])) };
        const peers = this.peers.get(toHex(ih));
        if (peers && peers.size) r.values = [...peers.values()].map((p) => p.compact).slice(0, 50);
        return r;
      },
      announce_peer(conn, a) {
        const ih = this._target(a, 'info_hash');
        this._checkToken(conn, a.token);
        const implied = a.implied_port === 1;
        const port = implied ? (conn.addr && conn.addr.port) : a.port;
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new KrpcError('bad port');
        const host = (conn.addr && conn.addr.host) || '0.0.0.0';
        const compact = encodePeer(host, port);
        if (!compact) throw new KrpcError('no IPv4 address for this peer');
        const hex = toHex(ih);
        if (!this.peers.has(hex)) { this._evict(this.peers); this.peers.set(hex, new Map()); }
        const m = this.peers.get(hex);
        m.at = Date.now();
        if (m.size >= this.opts.maxPeersPerHash) m.delete(m.keys().next().value);
        m.set(`${host}:${port}`, { compact, at: Date.now() });
        return {};
      },
      async get(conn, a) {
        const target = this._target(a);
        const r = { token: conn.token, nodes: encodeNodes(this._nodesFor(target, new Set([conn.idHex]))), _list: this.table.closest(target, this.opts.lookupK, new Set([conn.idHex])) };
        const hex = toHex(target);
        const im = this.immutable.get(hex);
        if (im) r.v = im.v;
        const mu = this.mutable.get(hex);
        if (mu) {
          r.k = mu.k; r.seq = mu.seq; r.sig = mu.sig;
          if (!(Number.isInteger(a.seq) && a.seq >= mu.seq)) r.v = mu.v;
        }
        return r;
      },
      async put(conn, a) {
        this._checkToken(conn, a.token);
        if (a.v === undefined) throw new KrpcError('no v');
        const encoded = encode(a.v);
        if (encoded.length > 1000) { const e = new KrpcError('v too long'); e.code = 205; throw e; }
        if (a.k === undefined) {
          const target = await bep44.immutableTarget(encoded);
          this._evict(this.immutable);
          this.immutable.set(toHex(target), { v: a.v, at: Date.now() });
          return {};
        }
        const salt = a.salt instanceof Uint8Array ? a.salt : new Uint8Array(0);
        if (salt.length > 64) throw new KrpcError('salt too long');
        if (!Number.isInteger(a.seq)) throw new KrpcError('bad seq');
        if (!(await bep44.verifyMutable(a.k, a.sig, encoded, a.seq, salt))) throw new KrpcError('invalid signature');
        const target = toHex(await bep44.mutableTarget(a.k, salt));
        const old = this.mutable.get(target);
        if (old && Number.isInteger(a.cas) && a.cas !== old.seq) throw new KrpcError('CAS mismatch');
        if (old && a.seq < old.seq) throw new KrpcError('sequence number less than current');
        this._evict(this.mutable);
        this.mutable.set(target, { k: a.k, salt, seq: a.seq, sig: a.sig, v: a.v, at: Date.now() });
        return {};
      },
      async peer_connection(conn, a) {
        const sig = a.signal;
        if (!sig || typeof sig !== 'object' || !(sig.id instanceof Uint8Array) || sig.id.length !== 20) throw new KrpcError('bad signal');
        const from = toHex(sig.id);
        if (bytesEqual(sig.id, this.id) || this.directConnFor(from)) return { signal: { id: this.id } };
        // token bucket per link: peerConnectionRate per second, burst 8 (a flood is refused and counted)
        const now = performance.now();
        conn.pcTokens = Math.min(8, (conn.pcTokens ?? 8) + ((now - (conn.pcAt ?? now)) / 1000) * this.opts.peerConnectionRate);
        conn.pcAt = now;
        if (conn.pcTokens < 1) { this.counters.peerConnectionsRefused++; throw new Error('busy'); }
        conn.pcTokens -= 1;
        if (this.webrtcCount() >= this.opts.maxWebrtc || this.pendingAnswers >= this.opts.maxPendingAnswers) {
          this.counters.linksRefused++;
          throw new Error('too many WebRTC links');
        }
        checkSignal(sig, 'offer');
        this.pendingAnswers++;
        const link = new RtcLink({ iceServers: this.iceServers, blockIce: this.blockIce });
        let answer;
        try {
          answer = await link.answer(sig);
        } catch (e) {
          this.pendingAnswers--; link.close(); throw e;
        }
        link.waitOpen(this.opts.openTimeout).then(
          () => { this.pendingAnswers--; this._rtcConn(link, sig.id, sig); },
          () => { this.pendingAnswers--; link.close(); },
        );
        this.counters.signalsAnswered++;
        return { signal: { extensions: [EXTENSION], id: this.id, sdp: answer.sdp, type: 'answer' } };
      },
    };
  }

  /** Responder side of `signals`: forward each offer to one node we return; keep nodes that answered. */
  async _forwardSignals(conn, a, r) {
    const list = r._list || [];
    delete r._list;
    if (!list.length || r.v !== undefined || r.values !== undefined) return r; // a hit is answered without signals
    const offers = a.signals.filter((s) => s && typeof s === 'object' && !Array.isArray(s)).slice(0, 16);
    const targets = list.filter((e) => e.conn.open && !bytesEqual(e.id, a.id)).slice(0, offers.length);
    const answers = await Promise.all(targets.map((e, i) => this._send(e.conn, 'peer_connection', { signal: offers[i] }, this.opts.forwardTimeout)
      .then((resp) => (resp.signal && resp.signal.id instanceof Uint8Array && resp.signal.id.length === 20 ? resp.signal : null), () => null)));
    // Keep offers[i] <-> nodes[i] <-> signals[i] aligned (webtorrent-dht reads them by position): a node
    // that gave no answer becomes a filler, the querier's own id (never a null signal); trailing fillers go.
    const nodes = targets.map((e, i) => (answers[i]
      ? { id: e.id, ...this._addrOf(e.conn) }
      : { id: a.id, host: '0.0.0.0', port: 1 }));
    const signals = targets.map((e, i) => answers[i] || { id: a.id });
    while (signals.length && !answers[signals.length - 1]) { signals.pop(); nodes.pop(); }
    r.nodes = encodeNodes(nodes);
    r.signals = signals;
    return r;
  }

  // ----------------------------------------------------------------------------------------------
  // asking

  /** Query one lookup candidate; with signals when we want more WebRTC links. Returns {r, nodes}. */
  async _ask(cand, q, a) {
    if (!cand.conn && cand.reach) cand.conn = await cand.reach();
    const conn = cand.conn || this.connFor(toHex(cand.id));
    cand.conn = conn;
    if (!conn || !conn.open) throw new Error('no link to this node');
    let links = [];
    const args = { ...a };
    const signalled = SIGNALLED.has(q) && this.webrtcCount() + this.pendingAnswers < this.opts.maxWebrtc;
    if (SIGNALLED.has(q)) args.signals = []; // webtorrent-dht answers nothing without a signals list
    if (signalled) {
      const made = (await Promise.all(this._takeOffers(this.opts.offers))).filter(Boolean);
      links = made.map((x) => x.link);
      args.signals = made.map((x) => ({ extensions: [EXTENSION], id: this.id, sdp: x.sdp, type: 'offer' }));
      this.counters.signalsSent += args.signals.length;
    }
    let r;
    try {
      r = await this._send(conn, q, args, signalled ? this.opts.signalTimeout : this.opts.queryTimeout);
    } catch (e) {
      links.forEach((l) => l.close());
      throw e;
    }
    let listed = [];
    try { listed = r.nodes instanceof Uint8Array ? decodeNodes(r.nodes) : []; } catch { listed = []; }
    const listedIds = new Set(listed.map((n) => toHex(n.id)));
    const ready = new Map(); // hex id -> Promise<Conn>
    const used = new Set();
    const signals = Array.isArray(r.signals) ? r.signals : [];
    // signals[i] answers our offer i (positional, as webtorrent-dht); an entry carrying our own id or the
    // responder's id is a filler (no answer) and is skipped without shifting the others.
    signals.slice(0, links.length).forEach((s, i) => {
      if (!s || typeof s !== 'object' || !(s.id instanceof Uint8Array) || s.id.length !== 20) return;
      const hex = toHex(s.id);
      if (bytesEqual(s.id, conn.id) || bytesEqual(s.id, this.id) || ready.has(hex)) return;
      if (!listedIds.has(hex)) { this.counters.signalsUnlisted++; return; } // an answer for a node it did not name
      const have = this.directConnFor(hex);
      if (have) { ready.set(hex, Promise.resolve(have)); return; } // id-only: use the link we have
      if (s.sdp === undefined) return;
      const link = links[i];
      used.add(link);
      ready.set(hex, (async () => {
        try {
          await link.accept(s);
          await link.waitOpen(this.opts.openTimeout);
        } catch (e) {
          // ICE failed (or the answer was bad): reach the node through relays instead
          link.close();
          this.counters.linksFailed++;
          return this.directConnFor(hex) || this._relayConn(s.id);
        }
        return this.directConnFor(hex) || this._rtcConn(link, s.id, s);
      })());
    });
    links.forEach((l) => { if (!used.has(l)) l.close(); });
    const nodes = [];
    for (const n of listed) {
      const hex = toHex(n.id);
      if (bytesEqual(n.id, this.id) || bytesEqual(n.id, conn.id)) continue; // fillers, the responder itself
      // no answer and no link: a message for it travels through relays
      const p = ready.get(hex);
      if (p) p.catch(() => {});
      nodes.push({ id: n.id, reach: p ? () => p : async () => this.connFor(hex) || this._relayConn(n.id) });
      ready.delete(hex);
    }
    for (const [hex, p] of ready) { p.catch(() => {}); nodes.push({ id: fromHex(hex), reach: () => p }); }
    return { r, nodes };
  }

  // Offers take an ICE gathering round each (non-trickle), so a few are made ahead of time: the pool holds
  // `offers` promises of {link, sdp}, refilled after each take; pooled offers older than a minute are replaced.
  _makeOffer() {
    const link = new RtcLink({ iceServers: this.iceServers, blockIce: this.blockIce });
    const p = link.offer().then((o) => ({ link, sdp: o.sdp, at: performance.now() }), () => { link.close(); return null; });
    return p;
  }

  _fillPool() {
    if (this.closed) return;
    while (this.offerPool.length < this.opts.offers) this.offerPool.push(this._makeOffer());
  }

  _takeOffers(n) {
    const out = this.offerPool.splice(0, n).map((p) => p.then((x) => {
      if (x && performance.now() - x.at > 60000) { x.link.close(); return this._makeOffer(); }
      return x;
    }));
    while (out.length < n) out.push(this._makeOffer());
    setTimeout(() => this._fillPool(), 0);
    return out;
  }

  _seeds() { return this.table.all().filter((e) => e.conn.open).map((e) => ({ id: e.id, conn: e.conn })); }

  /** Iterative lookup of `target` with query `q`; onResponse(cand, r, conn) sees each answer. */
  async _lookup(target, q, extra = {}, onResponse = () => {}, signal = null) {
    const seeds = this._seeds();
    if (!seeds.length) throw new Error('not connected to any DHT node');
    const key = q === 'get_peers' ? 'info_hash' : 'target';
    return lookup({
      target, seeds, k: this.opts.lookupK, signal,
      query: async (cand) => {
        const out = await this._ask(cand, q, { ...extra, [key]: target });
        return { ...out, conn: cand.conn };
      },
      onResponse: (cand, resp) => onResponse(cand, resp.r, resp.conn),
    });
  }

  /** Join: find_node for our own id (opens WebRTC links to the nodes near us). */
  async bootstrap() {
    try { await this._lookup(this.id, 'find_node'); } catch (e) { this.lastError = e.message; }
  }

  /** Drop stored items older than itemTtl and announced peers older than peerTtl (BEP 44: 2 h; BEP 5: 30 min). */
  expire(now = Date.now()) {
    for (const map of [this.immutable, this.mutable]) {
      for (const [k, v] of map) if (now - v.at > this.opts.itemTtl) map.delete(k);
    }
    for (const [ih, peers] of this.peers) {
      for (const [k, p] of peers) if (now - p.at > this.opts.peerTtl) peers.delete(k);
      if (!peers.size) this.peers.delete(ih);
    }
  }

  async _maintain() {
    if (this.closed) return;
    this.expire();
    for (const c of [...this.conns]) {
      if (!c.id || Date.now() - c.lastIn < this.opts.maintainEvery) continue;
      this._send(c, 'ping', {}, this.opts.queryTimeout).catch(() => { if (Date.now() - c.lastIn > 3 * this.opts.maintainEvery) c.close(); });
    }
    if (this.ready && this.webrtcCount() < this.opts.k && this.table.size) this.bootstrap();
  }

  // ----------------------------------------------------------------------------------------------
  // the bittorrent-dht-like API (bytes in, bytes out)

  async _store(target, q, build) {
    const tokens = [];
    await this._lookup(target, q === 'announce_peer' ? 'get_peers' : 'get', {}, (cand, r, conn) => {
      if (r.token instanceof Uint8Array) tokens.push({ id: cand.id, conn, token: r.token, r });
    });
    const closest = tokens.sort((x, y) => compareBytes(xor(target, x.id), xor(target, y.id))).slice(0, this.opts.lookupK);
    const results = await Promise.all(closest.map((c) => this._send(c.conn, q, { ...build(c), token: c.token }, this.opts.queryTimeout).then(() => true, () => false)));
    const stored = results.filter(Boolean).length;
    if (!stored) throw new Error(`${q}: no node stored it (${closest.length} asked)`);
    return stored;
  }

  /** BEP 44 immutable put of a bencodable value; returns the 20-byte target. */
  async putImmutable(v) {
    const encoded = encode(v);
    if (encoded.length > 1000) throw new RangeError('BEP 44: v must bencode to at most 1000 bytes');
    const target = await bep44.immutableTarget(encoded);
    this.immutable.set(toHex(target), { v, at: Date.now() });
    await this._store(target, 'put', () => ({ v }));
    return target;
  }

  /** BEP 44 immutable get: the value (verified against the target) or null. */
  async getImmutable(target) {
    const local = this.immutable.get(toHex(target));
    if (local) return local.v;
    let found = null;
    const ctl = new AbortController();
    const checks = [];
    await this._lookup(target, 'get', {}, (cand, r) => {
      if (found !== null || r.v === undefined) return;
      checks.push(bep44.immutableTarget(encode(r.v)).then((t) => { if (found === null && bytesEqual(t, target)) { found = r.v; ctl.abort(); } }));
    }, ctl.signal);
    await Promise.all(checks);
    return found;
  }

  /** BEP 44 mutable get: {v, seq, k, sig} with the highest valid seq, or null. */
  async getMutableItem(publicKey, salt = new Uint8Array(0), collect = null) {
    const target = await bep44.mutableTarget(publicKey, salt);
    let best = null;
    const local = this.mutable.get(toHex(target));
    if (local) best = local;
    const checks = [];
    await this._lookup(target, 'get', {}, (cand, r, conn) => {
      if (collect && r.token instanceof Uint8Array) collect.push({ id: cand.id, conn, token: r.token });
      if (r.v === undefined || !bytesEqual(r.k, publicKey) || !Number.isInteger(r.seq)) return;
      checks.push(bep44.verifyMutable(publicKey, r.sig, encode(r.v), r.seq, salt).then((ok) => {
        if (ok && (!best || r.seq > best.seq)) best = { k: r.k, seq: r.seq, sig: r.sig, v: r.v, salt };
      }));
    });
    await Promise.all(checks);
    return best;
  }

  /** BEP 44 mutable put with an Ed25519 key pair (bep44.keyPair()); seq defaults to the latest seen + 1. */
  async putMutableItem(pair, v, { salt = new Uint8Array(0), seq = null } = {}) {
    const tokens = [];
    const current = await this.getMutableItem(pair.publicKey, salt, tokens);
    if (seq === null) seq = current ? current.seq + 1 : 1;
    const item = await bep44.signMutable(pair, v, seq, salt);
    this.mutable.set(toHex(item.target), { k: item.k, salt, seq, sig: item.sig, v, at: Date.now() });
    const closest = tokens.sort((x, y) => compareBytes(xor(item.target, x.id), xor(item.target, y.id))).slice(0, this.opts.lookupK);
    const args = { k: item.k, seq, sig: item.sig, v };
    if (salt.length) args.salt = salt;
    const results = await Promise.all(closest.map((c) => this._send(c.conn, 'put', { ...args, token: c.token }, this.opts.queryTimeout).then(() => true, () => false)));
    if (!results.some(Boolean)) throw new Error(`put: no node stored it (${closest.length} asked)`);
    return { target: item.target, seq };
  }

  /** announce_peer for a 20-byte info hash and port at the nodes closest to it. */
  async announcePeer(infoHash, port) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError('port must be 1..65535');
    return this._store(infoHash, 'announce_peer', () => ({ info_hash: infoHash, port, implied_port: 0 }));
  }

  /** get_peers lookup: ["host:port", …] (each once). */
  async getPeers(infoHash) {
    const found = new Set();
    const local = this.peers.get(toHex(infoHash));
    if (local) for (const k of local.keys()) found.add(k);
    await this._lookup(infoHash, 'get_peers', {}, (cand, r) => {
      if (!Array.isArray(r.values)) return;
      for (const v of r.values) {
        try {
          const p = decodePeer(v);
          found.add(p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`);
        } catch { /* a bad peer entry is skipped */ }
      }
    });
    return [...found];
  }

  stats() {
    const peers = [...this.conns].filter((c) => c.id).map((c) => ({
      id: c.idHex, transport: c.transport, rtt: c.rtt === null ? null : Math.round(c.rtt * 10) / 10,
      bytesIn: c.bytesIn, bytesOut: c.bytesOut, msgsIn: c.msgsIn, msgsOut: c.msgsOut,
      inTable: !!this.table.get(c.idHex) && this.table.get(c.idHex).conn === c,
      address: c.addr ? `${c.addr.host}:${c.addr.port}` : null,
    }));
    let peerCount = 0;
    for (const m of this.peers.values()) peerCount += m.size;
    return {
      nodeId: toHex(this.id), ready: this.ready, peers, tableSize: this.table.size,
      items: { immutable: this.immutable.size, mutable: this.mutable.size, infoHashes: this.peers.size, peers: peerCount },
      ...this.counters, ...this.relay.counters, webrtcLinks: this.webrtcCount(), webCrypto: bep44.hasWebCrypto(), lastError: this.lastError,
      joinMs: this.timeline.ready === null ? null : Math.round(this.timeline.ready - this.timeline.joinStart),
    };
  }

  close() {
    this.closed = true;
    clearInterval(this._maint);
    for (const p of this.offerPool.splice(0)) p.then((x) => x && x.link.close());
    for (const c of [...this.conns]) c.close();
  }
}

const SEED_KEY = 'peerdht.ed25519.seed';

async function storedKeyPair() {
  let seedHex = null;
  try { seedHex = globalThis.localStorage && localStorage.getItem(SEED_KEY); } catch { seedHex = null; }
  if (seedHex && /^[0-9a-f]{64}$/.test(seedHex)) return bep44.keyPair(fromHex(seedHex));
  const pair = await bep44.keyPair();
  try { localStorage.setItem(SEED_KEY, toHex(pair.seed)); } catch { /* no storage: the key lives as long as the page */ }
  return pair;
}

const saltBytes = (s) => (s === undefined || s === null ? new Uint8Array(0) : (s instanceof Uint8Array ? s : bytes(String(s))));

/** The window.dht facade (issue 9 item 5): text and hex in and out, Promises, stats() at once. */
export function createDht(node) {
  let pairPromise = null;
  const pair = () => (pairPromise = pairPromise || storedKeyPair());
  const asText = (v) => (v instanceof Uint8Array ? text(v) : JSON.stringify(v));
  return {
    node,
    get ready() { return node.ready; },
    async put(value) { return toHex(await node.putImmutable(bytes(String(value)))); },
    async get(hex) { const v = await node.getImmutable(hexOrBytes(hex, 'target')); return v === null ? null : asText(v); },
    async putMutable(value, opts = {}) {
      const p = await pair();
      const r = await node.putMutableItem(p, bytes(String(value)), { salt: saltBytes(opts.salt), seq: opts.seq ?? null });
      return { publicKey: toHex(p.publicKey), seq: r.seq };
    },
    async getMutable(publicKeyHex, opts = {}) {
      if (typeof publicKeyHex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(publicKeyHex)) throw new TypeError('public key must be 64 hex characters');
      const item = await node.getMutableItem(fromHex(publicKeyHex), saltBytes(opts.salt));
      return item ? { value: asText(item.v), seq: item.seq } : null;
    },
    async announce(hex, port) { await node.announcePeer(hexOrBytes(hex, 'info hash'), Number(port)); return true; },
    async lookup(hex) { return node.getPeers(hexOrBytes(hex, 'info hash')); },
    stats() { return node.stats(); },
    async publicKey() { return toHex((await pair()).publicKey); },
  };
}

/** ws:// or wss:// URL of the serving node's KRPC WebSocket, derived from the page's location. */
export function defaultWsUrl(loc = globalThis.location, path = '/ws') {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}${path}`;
}
