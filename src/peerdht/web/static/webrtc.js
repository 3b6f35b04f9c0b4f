// One WebRTC data-channel link, framed as webtorrent-dht frames it: one data channel (any label; the
// offerer makes it), ordered and reliable, one complete bencoded KRPC message per binary message,
// non-trickle signalling (the SDP carries every ICE candidate; we wait for gathering to finish, at most
// `gatherTimeout` ms, like simple-peer's iceCompleteTimeout). iceServers come from the page config
// ([] in tests: host candidates only).

const MAX_SDP = 16 * 1024;

export class SignalError extends Error {
  constructor(message) { super(`signal: ${message}`); this.name = 'SignalError'; }
}

/** Check an untrusted {type, sdp} signal; returns {type, sdp} as strings or throws SignalError. */
export function checkSignal(sig, type) {
  if (!sig || typeof sig !== 'object') throw new SignalError('not a dictionary');
  const dec = (v) => (v instanceof Uint8Array ? new TextDecoder('utf-8', { fatal: true }).decode(v) : v);
  let t; let sdp;
  try { t = dec(sig.type); sdp = dec(sig.sdp); } catch { throw new SignalError('not UTF-8'); }
  if (t !== type) throw new SignalError(`expected ${type}`);
  if (typeof sdp !== 'string' || !sdp.startsWith('v=0')) throw new SignalError('no SDP');
  if (sdp.length > MAX_SDP) throw new SignalError('SDP too large');
  if (!/\r?\nm=application /.test(sdp)) throw new SignalError('no data channel in the SDP');
  return { type: t, sdp };
}

function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') { resolve(); return; }
    const timer = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    });
  });
}

// blockIce (tests only): strip every ICE candidate from the SDP we send and the SDP we receive, so the
// link can never connect: the fallback to relayed messages is then what a test sees.
const stripCandidates = (sdp) => sdp.split(/\r\n/).filter((l) => !l.startsWith('a=candidate') && !l.startsWith('a=end-of-candidates')).join('\r\n');

export class RtcLink {
  constructor({ iceServers = [], gatherTimeout = 5000, blockIce = false } = {}) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.blockIce = blockIce;
    this._sdp = (sdp) => (blockIce ? stripCandidates(sdp) : sdp);
    this.gatherTimeout = gatherTimeout;
    this.channel = null;
    this.onmessage = () => {};
    this.onclose = () => {};
    this.closed = false;
    this._open = null;
    this.opened = new Promise((resolve, reject) => { this._open = { resolve, reject }; });
    this.opened.catch(() => {});
    this.pc.addEventListener('connectionstatechange', () => {
      const s = this.pc.connectionState;
      if (s === 'failed' || s === 'closed') this.close();
    });
    this.pc.addEventListener('datachannel', (e) => { if (!this.channel) this._use(e.channel); else e.channel.close(); });
  }

  _use(ch) {
    this.channel = ch;
    ch.binaryType = 'arraybuffer';
    ch.addEventListener('open', () => this._open.resolve(this));
    ch.addEventListener('close', () => this.close());
    ch.addEventListener('message', (m) => {
      const d = typeof m.data === 'string' ? new TextEncoder().encode(m.data) : new Uint8Array(m.data);
      this.onmessage(d);
    });
    if (ch.readyState === 'open') this._open.resolve(this);
  }

  /** Make the offer (this side creates the data channel). */
  async offer() {
    this._use(this.pc.createDataChannel(Array.from(crypto.getRandomValues(new Uint8Array(20)), (b) => b.toString(16).padStart(2, '0')).join('')));
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gathered(this.pc, this.gatherTimeout);
    return { type: 'offer', sdp: this._sdp(this.pc.localDescription.sdp) };
  }

  /** Answer an untrusted offer (checked with checkSignal). */
  async answer(offer) {
    const o = checkSignal(offer, 'offer');
    await this.pc.setRemoteDescription({ type: 'offer', sdp: this._sdp(o.sdp) });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await gathered(this.pc, this.gatherTimeout);
    return { type: 'answer', sdp: this._sdp(this.pc.localDescription.sdp) };
  }

  /** Feed the remote answer to our offer. */
  async accept(answer) {
    const a = checkSignal(answer, 'answer');
    await this.pc.setRemoteDescription({ type: 'answer', sdp: this._sdp(a.sdp) });
  }

  /** Resolve when the data channel is open; reject after `ms`. */
  waitOpen(ms) {
    let timer;
    return Promise.race([
      this.opened,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('WebRTC link did not open in time')), ms); }),
    ]).finally(() => clearTimeout(timer));
  }

  get open() { return !this.closed && this.channel && this.channel.readyState === 'open'; }

  send(data) {
    if (!this.open) throw new Error('data channel not open');
    this.channel.send(data);
  }

  /** The selected candidate pair's remote address {host, port}, or null (simple-peer reads the same). */
  async remoteAddress() {
    try {
      const stats = await this.pc.getStats();
      let pair = null;
      stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
      if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      const remote = pair && stats.get(pair.remoteCandidateId);
      if (!remote) return null;
      return { host: remote.address || remote.ip, port: remote.port };
    } catch {
      return null;
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this._open.reject(new Error('WebRTC link closed'));
    try { if (this.channel) this.channel.close(); } catch { /* already closed */ }
    try { this.pc.close(); } catch { /* already closed */ }
    this.onclose();
  }
}
