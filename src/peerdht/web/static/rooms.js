// P2PT rooms in the page: peers sharing a room name meet through WebTorrent WebSocket trackers and talk over
// WebRTC data channels. Wire-compatible with p2pt 1.6.2 (src/p2pt.js) and npm bittorrent-tracker 11.2.3
// (lib/client/websocket-tracker.js), and the mirror of the Python peerdht.rooms.Room:
//   * info hash = SHA-1 of the UTF-8 room name; info_hash / peer_id / offer_id travel as 20-char strings whose
//     char codes are the bytes (latin-1);
//   * every announce carries up to 5 complete (non-trickle) WebRTC offers; relayed offers are answered;
//   * each P2PT message is one or more text frames '^' + JSON {id, msg, o?: 1, c, last?: true}, `msg` sliced
//     every 16,000 UTF-16 units; JSON values are JSON.stringify-ed with o: 1; a response reuses the id.
// Differences from p2pt (same wire): chunks are reassembled per peer and id with bounds (message size,
// messages in flight, stale partials dropped), every request has its own waiter (concurrent requests do not
// race), at most two channels per peer and tracker, empty strings and non-string JSON values can be sent.
//
//   const room = new Room('my-room', ['ws://127.0.0.1:8000'])
//   room.on('peerconnect', (peer) => room.send(peer, 'hi').then((reply) => console.log(reply.msg)))
//   room.on('msg', (m) => m.respond('echo:' + m.msg))
//   await room.start()
import { RtcLink } from './webrtc.js';

export const CHUNK_UNITS = 16000;
export const MAX_FRAME = 256 * 1024;
const OFFERS = 5;
const OFFER_TIMEOUT = 50000;
const HIGH_WATER = 1 << 20;

export class FrameError extends Error {
  constructor(message) { super(message); this.name = 'FrameError'; }
}

const isCount = (v) => Number.isInteger(v) && v >= 0;
const hex = (bin) => Array.from(bin, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
const randomBinary = () => String.fromCharCode(...crypto.getRandomValues(new Uint8Array(20)));
const isId = (s) => typeof s === 'string' && s.length === 20 && !/[^\u0000-\u00ff]/.test(s);

/** SHA-1 of the UTF-8 room name as a 20-char binary string (p2pt setIdentifier). */
export async function infoHashOf(name) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', new TextEncoder().encode(name)));
  return String.fromCharCode(...digest);
}

/** Frame one message: the list of '^' + JSON text frames, in order. */
export function encodeMessage(id, msg, units = CHUNK_UNITS) {
  const isJson = typeof msg !== 'string';
  let text = isJson ? JSON.stringify(msg) : msg;
  if (text === undefined) throw new TypeError('message is not JSON-serialisable');
  const frames = [];
  let c = 0;
  do {
    const chunk = { id, msg: text.slice(0, units) };
    if (isJson) chunk.o = 1;
    chunk.c = c++;
    text = text.slice(units);
    if (!text) chunk.last = true;
    frames.push('^' + JSON.stringify(chunk));
  } while (text);
  return frames;
}

/** Decode one data-channel message: a chunk {id, msg, c, last, o}, null when not a P2PT frame; throws FrameError. */
export function decodeFrame(data) {
  if (data.length > MAX_FRAME) throw new FrameError('frame too large');
  if (typeof data !== 'string') {
    try { data = new TextDecoder('utf-8', { fatal: true }).decode(data); } catch { throw new FrameError('frame is not UTF-8'); }
  }
  if (data[0] !== '^') return null;
  let d;
  try { d = JSON.parse(data.slice(1)); } catch { throw new FrameError('frame is not JSON'); }
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw new FrameError('frame is not an object');
  const idOk = (Number.isSafeInteger(d.id)) || (typeof d.id === 'string' && d.id.length <= 64);
  if (!idOk) throw new FrameError('bad id');
  if (typeof d.msg !== 'string') throw new FrameError('msg is not a string');
  const c = d.c === undefined ? 0 : d.c;
  if (!isCount(c) || !Number.isSafeInteger(c)) throw new FrameError('bad chunk index');
  if (![true, false, null, undefined, 0, 1].includes(d.last)) throw new FrameError('bad last');
  if (![true, false, null, undefined, 0, 1].includes(d.o)) throw new FrameError('bad o');
  return { id: d.id, msg: d.msg, c, last: Boolean(d.last), o: Boolean(d.o) };
}

/** Bounded reassembly for one peer: at most maxMessage units buffered, maxPartial messages in flight. */
export class Reassembler {
  constructor({ maxMessage = 16 * 1024 * 1024, maxPartial = 32, timeout = 60000, units = CHUNK_UNITS } = {}) {
    Object.assign(this, { maxMessage, maxPartial, timeout });
    this.maxChunks = Math.max(1, Math.ceil(maxMessage / units));
    this.partials = new Map(); // id -> {parts: Map(c -> text), units, touched}
    this.buffered = 0;
    this.dropped = 0;
  }

  /** Returns {id, msg} when complete, null otherwise; throws FrameError (the partial is dropped with it). */
  receive(chunk, now = Date.now()) {
    const { id } = chunk;
    if (chunk.c >= this.maxChunks) { this.drop(id); throw new FrameError(`chunk index ${chunk.c} out of range`); }
    let p = this.partials.get(id);
    if (!p) {
      if (chunk.last && chunk.c === 0) return this.finish(chunk, [chunk.msg]);
      while (this.partials.size >= this.maxPartial) this.drop(this.partials.keys().next().value);
      p = { parts: new Map(), units: 0, touched: now };
      this.partials.set(id, p);
    } else if (p.parts.has(chunk.c)) {
      this.drop(id); throw new FrameError(`chunk ${chunk.c} twice`);
    }
    const size = chunk.msg.length;
    if (p.units + size > this.maxMessage) { this.drop(id); throw new FrameError('message too large'); }
    while (this.buffered + size > this.maxMessage && this.partials.size > 1) {
      for (const key of this.partials.keys()) { if (key !== id) { this.drop(key); break; } }
    }
    p.parts.set(chunk.c, chunk.msg); p.units += size; p.touched = now; this.buffered += size;
    this.partials.delete(id); this.partials.set(id, p); // most recent last
    if (!chunk.last) return null;
    this.drop(id, false);
    const parts = [];
    for (let i = 0; i <= chunk.c; i++) {
      if (!p.parts.has(i)) { this.dropped++; throw new FrameError('chunks missing'); }
      parts.push(p.parts.get(i));
    }
    if (p.parts.size !== chunk.c + 1) { this.dropped++; throw new FrameError('chunks beyond the last'); }
    return this.finish(chunk, parts);
  }

  finish(chunk, parts) {
    let msg = parts.join('');
    if (chunk.o) {
      try { msg = JSON.parse(msg); } catch { this.dropped++; throw new FrameError('JSON message does not parse'); }
    }
    return { id: chunk.id, msg };
  }

  drop(id, count = true) {
    const p = this.partials.get(id);
    if (!p) return;
    this.partials.delete(id);
    this.buffered -= p.units;
    if (count) this.dropped++;
  }

  expire(now = Date.now()) {
    let n = 0;
    for (const [id, p] of this.partials) { if (now - p.touched >= this.timeout) { this.drop(id); n++; } }
    return n;
  }

  clear() { this.partials.clear(); this.buffered = 0; }
}

/** A remote peer of the room (however many channels lead to it); `id` is 40 hex chars (p2pt peer.id). */
export class RoomPeer {
  constructor(peerId, reassembler) {
    this.peerId = peerId;
    this.id = hex(peerId);
    this.links = []; // [{url, link}]
    this.chunks = reassembler;
    this.waiting = new Map(); // message id -> {resolve, reject, timer}
  }

  get connected() { return this.links.some(({ link }) => link.open); }
  get channels() { return this.links.filter(({ link }) => link.open).length; }
  link() {
    const found = this.links.find(({ link }) => link.open);
    if (!found) throw new Error(`no open data channel to peer ${this.id.slice(0, 8)}`);
    return found.link;
  }
}

/** A complete message: `respond(msg)` answers with the same id (the sender's send() resolves with it) and
 *  resolves with the peer's next message on that id, if one comes (a P2PT chain). */
export class RoomMessage {
  constructor(room, peer, id, msg) { Object.assign(this, { room, peer, id, msg }); }
  respond(msg, { timeout = 60000 } = {}) {
    const p = this.room._exchange(this.peer, this.id, msg, timeout);
    p.catch(() => {}); // nobody has to wait for a follow-up
    return p;
  }
}

class TrackerLink {
  constructor(room, url) {
    Object.assign(this, { room, url, ws: null, connected: false, offers: new Map(), interval: 120000,
      timer: null, retries: 0, stopped: false });
  }

  start() {
    if (this.stopped) return;
    let ws;
    try { ws = new WebSocket(this.url); } catch (e) { this.room._warn(this, `error connecting to ${this.url}: ${e.message}`); this.retry(); return; }
    this.ws = ws;
    ws.onopen = () => { this.connected = true; this.retries = 0; this.announce(); };
    ws.onmessage = (m) => this.onText(typeof m.data === 'string' ? m.data : '');
    ws.onerror = () => { if (!this.connected) this.room._warn(this, `error connecting to ${this.url}`); };
    ws.onclose = () => {
      if (this.connected) this.room._warn(this, `connection to ${this.url} closed`);
      this.connected = false; clearTimeout(this.timer);
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    const delay = Math.min(this.room.reconnectMax, this.room.reconnectMin * 2 ** this.retries++);
    this.timer = setTimeout(() => this.start(), delay * (1 + Math.random() / 4));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      if (this.connected) {
        try { this.send({ numwant: 0, uploaded: 0, downloaded: 0, event: 'stopped', action: 'announce',
          info_hash: this.room.infoHash, peer_id: this.room.peerId }); } catch { /* closing */ }
      }
      this.ws.onclose = null;
      this.ws.close();
    }
    for (const { link } of this.offers.values()) link.close();
    this.offers.clear();
  }

  send(obj) { if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj)); }

  async announce() {
    clearTimeout(this.timer);
    const room = this.room;
    const now = Date.now();
    for (const [id, o] of this.offers) { if (o.deadline <= now) { o.link.close(); this.offers.delete(id); } }
    const want = Math.max(0, Math.min(OFFERS, room.maxPeers - room.peers.size, 2 * OFFERS - this.offers.size));
    const made = await Promise.all(Array.from({ length: want }, async () => {
      const link = new RtcLink({ iceServers: room.iceServers });
      try {
        const offer = await link.offer();
        const offerId = randomBinary();
        this.offers.set(offerId, { link, deadline: Date.now() + OFFER_TIMEOUT });
        return { offer, offer_id: offerId };
      } catch { link.close(); return null; }
    }));
    const offers = made.filter(Boolean);
    this.send({ numwant: offers.length, uploaded: 0, downloaded: 0, action: 'announce', info_hash: room.infoHash,
      peer_id: room.peerId, offers });
    this.timer = setTimeout(() => this.announce(), room.announceInterval || this.interval);
  }

  onText(text) {
    const room = this.room;
    let d;
    try { d = JSON.parse(text); } catch { room.dropped.tracker++; room._warn(this, 'Invalid tracker response'); return; }
    if (!d || typeof d !== 'object') { room.dropped.tracker++; return; }
    if (d['failure reason'] !== undefined) {
      if (d.info_hash === undefined || d.info_hash === room.infoHash) room._warn(this, String(d['failure reason']).slice(0, 200));
      return;
    }
    if (d.action !== 'announce' || d.info_hash !== room.infoHash) return;
    if (d.offer && isId(d.peer_id) && isId(d.offer_id)) {
      if (d.peer_id !== room.peerId && room._wantsLink(d.peer_id, this.url)) this.answerOffer(d);
    } else if (d.answer && isId(d.peer_id) && isId(d.offer_id)) {
      const pending = this.offers.get(d.offer_id);
      this.offers.delete(d.offer_id);
      if (!pending || d.peer_id === room.peerId) { room.dropped.unknownAnswer++; return; }
      this.completeOffer(pending.link, d);
    } else {
      if (d['warning message']) room._warn(this, String(d['warning message']).slice(0, 200));
      if (Number.isFinite(d.interval) && d.interval > 0) this.interval = Math.min(Math.max(d.interval, 10), 3600) * 1000;
      if (d.complete !== undefined) room._emit('trackerconnect', { url: this.url, ...room.trackerStats() });
    }
  }

  async answerOffer(d) {
    const room = this.room;
    const link = new RtcLink({ iceServers: room.iceServers });
    room._connecting(d.peer_id, this.url, link, +1);
    try {
      const answer = await link.answer(d.offer);
      this.send({ action: 'announce', info_hash: room.infoHash, peer_id: room.peerId, to_peer_id: d.peer_id,
        answer, offer_id: d.offer_id });
      await link.waitOpen(room.connectTimeout);
    } catch (e) {
      room.dropped.signal++;
      room._connecting(d.peer_id, this.url, link, -1);
      link.close();
      return;
    }
    room._connecting(d.peer_id, this.url, link, -1);
    room._attach(d.peer_id, this.url, link);
  }

  async completeOffer(link, d) {
    const room = this.room;
    if (!room._wantsLink(d.peer_id, this.url)) { link.close(); return; }
    room._connecting(d.peer_id, this.url, link, +1);
    try {
      await link.accept(d.answer);
      await link.waitOpen(room.connectTimeout);
    } catch (e) {
      room.dropped.signal++;
      room._connecting(d.peer_id, this.url, link, -1);
      link.close();
      return;
    }
    room._connecting(d.peer_id, this.url, link, -1);
    room._attach(d.peer_id, this.url, link);
  }
}

/** A P2PT room. Events (room.on(type, fn)): 'peerconnect' (peer), 'peerclose' (peer), 'msg' (RoomMessage),
 *  'trackerconnect' ({url, connected, total}), 'trackerwarning' ({url, reason, connected, total}). */
export class Room {
  constructor(name, trackers = [], { iceServers = [], maxPeers = 50, maxMessage = 16 * 1024 * 1024,
    maxBuffered = 64 * 1024 * 1024, announceInterval = null, connectTimeout = 30000, reconnectMin = 2000,
    reconnectMax = 300000 } = {}) {
    if (typeof name !== 'string' || !name) throw new TypeError('room name must be a non-empty string');
    Object.assign(this, { name, iceServers, maxPeers, maxMessage, maxBuffered, announceInterval, connectTimeout,
      reconnectMin, reconnectMax });
    this.urls = [...new Set(trackers)];
    this.peerId = randomBinary();
    this.id = hex(this.peerId);
    this.infoHash = null;
    this.peers = new Map(); // 40-hex id -> RoomPeer
    this.links = new Map(); // url -> TrackerLink
    this.pending = new Map(); // binary peer id + ' ' + url -> count of links being opened
    this.listeners = {};
    this.dropped = { frame: 0, message: 0, tracker: 0, unknownAnswer: 0, signal: 0, peers: 0 };
    this.closed = false;
    this.sweeper = null;
  }

  on(type, fn) { (this.listeners[type] ||= []).push(fn); return this; }
  _emit(type, arg) {
    for (const fn of this.listeners[type] || []) { try { fn(arg); } catch (e) { console.error(e); } }
  }

  async start() {
    this.infoHash = await infoHashOf(this.name);
    for (const url of this.urls) this._startLink(url);
    this.sweeper = setInterval(() => {
      for (const peer of this.peers.values()) this.dropped.message += peer.chunks.expire();
    }, 5000);
    return this;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const link of this.links.values()) link.stop();
    this.links.clear();
    for (const peer of this.peers.values()) {
      for (const { link } of peer.links) link.close();
      this._failWaiters(peer, new Error('room closed'));
    }
  }

  /** Send a new message and resolve with the peer's response (a RoomMessage); rejects after `timeout` ms. */
  send(peer, msg, { timeout = 30000 } = {}) {
    const target = this._peer(peer);
    return this._exchange(target, this._newId(target), msg, timeout);
  }

  /** Send a new message without waiting for a response; returns its id. */
  post(peer, msg) {
    const target = this._peer(peer);
    const id = this._newId(target);
    this._transmit(target, id, msg);
    return id;
  }

  /** post() to every connected peer; returns how many. */
  broadcast(msg) {
    let n = 0;
    for (const peer of this.peers.values()) { try { this.post(peer, msg); n++; } catch { /* gone */ } }
    return n;
  }

  requestMorePeers() { for (const link of this.links.values()) if (link.connected) link.announce(); return this.peers; }
  addTracker(url) {
    if (this.urls.includes(url)) throw new Error('Tracker already added');
    this.urls.push(url);
    if (this.infoHash && !this.closed) this._startLink(url);
  }
  removeTracker(url) {
    if (!this.urls.includes(url)) throw new Error('Tracker does not exist');
    this.urls = this.urls.filter((u) => u !== url);
    const link = this.links.get(url);
    if (link) { link.stop(); this.links.delete(url); }
  }
  trackerStats() {
    let connected = 0;
    for (const link of this.links.values()) if (link.connected) connected++;
    return { connected, total: this.urls.length };
  }

  // ------------------------------------------------------------------ internals

  _startLink(url) { const link = new TrackerLink(this, url); this.links.set(url, link); link.start(); }
  _warn(link, reason) {
    if (this.closed || this.links.get(link.url) !== link) return;
    this._emit('trackerwarning', { url: link.url, reason, ...this.trackerStats() });
  }

  _peer(peer) {
    const found = typeof peer === 'string' ? this.peers.get(peer) : peer;
    if (!found) throw new Error(`not connected to peer ${String(peer).slice(0, 40)}`);
    return found;
  }

  _newId(peer) {
    for (;;) {
      const id = Math.floor(Math.random() * 100000 + 100000);
      if (!peer.waiting.has(id)) return id;
    }
  }

  async _transmit(peer, id, msg) {
    if (this.closed) throw new Error('room closed');
    for (const frame of encodeMessage(id, msg)) {
      let link = peer.link();
      while (link.channel.bufferedAmount > HIGH_WATER) {
        link.channel.bufferedAmountLowThreshold = HIGH_WATER / 2;
        await new Promise((resolve) => {
          const ch = link.channel;
          const done = () => { ch.removeEventListener('bufferedamountlow', done); clearTimeout(timer); resolve(); };
          const timer = setTimeout(done, 1000); // a closed channel never fires the event
          ch.addEventListener('bufferedamountlow', done);
          if (ch.bufferedAmount <= ch.bufferedAmountLowThreshold) done();
        });
        link = peer.link();
      }
      link.send(frame);
    }
  }

  _exchange(peer, id, msg, timeout) {
    return new Promise((resolve, reject) => {
      const old = peer.waiting.get(id);
      if (old) { clearTimeout(old.timer); old.reject(new Error('superseded')); }
      const entry = { resolve, reject, timer: null };
      if (timeout) {
        entry.timer = setTimeout(() => {
          if (peer.waiting.get(id) === entry) peer.waiting.delete(id);
          reject(new Error(`no response from peer ${peer.id.slice(0, 8)} within ${timeout} ms`));
        }, timeout);
      }
      peer.waiting.set(id, entry);
      this._transmit(peer, id, msg).catch((e) => {
        if (peer.waiting.get(id) === entry) peer.waiting.delete(id);
        clearTimeout(entry.timer);
        reject(e);
      });
    });
  }

  _wantsLink(peerId, url) {
    const opening = this.pending.get(peerId + ' ' + url) || 0;
    const peer = this.peers.get(hex(peerId));
    if (!peer) {
      if (this.peers.size >= this.maxPeers) { this.dropped.peers++; return false; }
      return opening < 2;
    }
    return peer.links.filter((l) => l.url === url && l.link.open).length + opening < 2;
  }

  _connecting(peerId, url, link, delta) {
    const key = peerId + ' ' + url;
    const n = (this.pending.get(key) || 0) + delta;
    if (n > 0) this.pending.set(key, n); else this.pending.delete(key);
  }

  _attach(peerId, url, link) {
    if (this.closed || !link.open) { link.close(); return; }
    const id = hex(peerId);
    let peer = this.peers.get(id);
    const isNew = !peer;
    if (!peer) {
      if (this.peers.size >= this.maxPeers) { this.dropped.peers++; link.close(); return; }
      peer = new RoomPeer(peerId, new Reassembler({ maxMessage: this.maxMessage }));
      this.peers.set(id, peer);
    }
    peer.links.push({ url, link });
    link.onmessage = (bytes) => this._onFrame(peer, bytes);
    link.onclose = () => this._onLinkClose(peer, link);
    if (isNew) this._emit('peerconnect', peer);
  }

  _onLinkClose(peer, link) {
    peer.links = peer.links.filter((l) => l.link !== link);
    if (peer.links.length || peer.closed) return;
    peer.closed = true;
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
    peer.chunks.clear();
    this._failWaiters(peer, new Error(`peer ${peer.id.slice(0, 8)} left`));
    if (!this.closed) this._emit('peerclose', peer);
  }

  _failWaiters(peer, error) {
    for (const entry of peer.waiting.values()) { clearTimeout(entry.timer); entry.reject(error); }
    peer.waiting.clear();
  }

  _onFrame(peer, bytes) {
    let done;
    try {
      const chunk = decodeFrame(bytes);
      if (!chunk) return;
      done = peer.chunks.receive(chunk);
    } catch (e) {
      this.dropped.frame++;
      console.warn(`room ${this.name}: dropped a frame from ${peer.id.slice(0, 8)}: ${e.message}`);
      return;
    }
    if (!done) { this._checkBudget(); return; }
    const message = new RoomMessage(this, peer, done.id, done.msg);
    const waiter = peer.waiting.get(done.id);
    if (waiter) {
      peer.waiting.delete(done.id);
      clearTimeout(waiter.timer);
      waiter.resolve(message);
    } else {
      this._emit('msg', message);
    }
  }

  _checkBudget() {
    let total = 0;
    let worst = null;
    for (const peer of this.peers.values()) {
      total += peer.chunks.buffered;
      if (!worst || peer.chunks.buffered > worst.chunks.buffered) worst = peer;
    }
    if (total > this.maxBuffered && worst) { this.dropped.message += worst.chunks.partials.size; worst.chunks.clear(); }
  }
}
