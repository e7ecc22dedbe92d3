// A workspace's live connections: its event log (`/v1/events/ws?since=`, resumed after
// the last event received, so a reconnect loses nothing and shows nothing twice) and its
// live queries (`/v1/query/ws`, subscribed again after a reconnect or a reset). Both
// report their state to one connection banner.

import { api, gw, wsUrl } from './api.js';

/** How many of the newest events the timeline starts with; older ones page in. */
export const FIRST_PAGE = 10000;
/** How many older events one page back fetches. */
export const OLDER_PAGE = 2000;

const backoff = (n) => Math.min(5000, 250 * 2 ** Math.min(n, 5));

/** The event log of one workspace, de-duplicated by seq, newest first. */
export class EventStream {
  constructor(ws, onState) {
    this.ws = ws;
    this.onState = onState;
    this.bySeq = new Map();
    this.list = [];           // newest first
    this.calls = new Map();   // tool call id → its tool_result event
    this.resumeAfter = 0;     // the last seq the socket delivered (in order)
    this.oldestLoaded = 1;    // the lowest seq held (older ones page in)
    this.listeners = new Set();
    this.fresh = [];
    this.failures = 0;
    this.closed = false;
    this.state = 'connecting';
  }

  async start() {
    try {
      const status = await api(gw(this.ws, '/v1/status'));
      this.resumeAfter = Math.max(0, (status.lastSeq || 0) - FIRST_PAGE);
    } catch {
      this.resumeAfter = 0;
    }
    this.oldestLoaded = this.resumeAfter + 1;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const sock = new WebSocket(wsUrl(gw(this.ws, `/v1/events/ws?since=${this.resumeAfter}`)));
    this.sock = sock;
    sock.onopen = () => { this.failures = 0; this.setState('open'); };
    sock.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.seq > this.resumeAfter) this.resumeAfter = e.seq;
      this.add(e);
    };
    sock.onclose = () => {
      if (this.closed) return;
      this.failures += 1;
      this.setState('reconnecting');
      setTimeout(() => this.connect(), backoff(this.failures));
    };
  }

  setState(s) { this.state = s; this.onState(); }

  add(e) {
    if (this.bySeq.has(e.seq)) return;
    this.bySeq.set(e.seq, e);
    if (e.type === 'tool_result' && e.data && e.data.call !== undefined) this.calls.set(`${e.data.task}/${e.data.call}`, e);
    this.fresh.push(e);
    if (!this.flushing) {
      this.flushing = setTimeout(() => this.flush(), 16);
    }
  }

  flush() {
    this.flushing = null;
    const fresh = this.fresh.sort((a, b) => b.seq - a.seq);
    this.fresh = [];
    if (!fresh.length) return;
    const top = this.list.length ? this.list[0].seq : 0;
    const bottom = this.list.length ? this.list[this.list.length - 1].seq : Infinity;
    if (fresh[fresh.length - 1].seq > top) this.list = fresh.concat(this.list);
    else if (fresh[0].seq < bottom) this.list = this.list.concat(fresh);
    else this.list = this.list.concat(fresh).sort((a, b) => b.seq - a.seq);
    for (const f of this.listeners) f(fresh);
  }

  /** The result that answers a tool_call event, if it came. */
  resultOf(call) { return call.data ? this.calls.get(`${call.data.task}/${call.data.call}`) : undefined; }

  get hasOlder() { return this.oldestLoaded > 1; }

  /** Fetches the page of events just before the oldest held. */
  async loadOlder() {
    if (!this.hasOlder || this.loadingOlder) return;
    this.loadingOlder = true;
    try {
      const since = Math.max(0, this.oldestLoaded - 1 - OLDER_PAGE);
      const page = await api(gw(this.ws, `/v1/events?since=${since}&limit=${this.oldestLoaded - 1 - since}`));
      for (const e of page) this.add(e);
      this.oldestLoaded = since + 1;
      this.flush();
    } finally {
      this.loadingOlder = false;
    }
  }

  subscribe(f) { this.listeners.add(f); return () => this.listeners.delete(f); }

  close() { this.closed = true; if (this.sock) this.sock.close(); }
}

/** Live queries over one socket: each subscription's callback gets its rows now and
 *  again after every commit that changes them. */
export class LiveQueries {
  constructor(ws, onState) {
    this.ws = ws;
    this.onState = onState;
    this.subs = new Map();
    this.next = 1;
    this.failures = 0;
    this.closed = false;
    this.state = 'connecting';
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const sock = new WebSocket(wsUrl(gw(this.ws, '/v1/query/ws')));
    this.sock = sock;
    sock.onopen = () => {
      this.failures = 0;
      this.state = 'open';
      this.onState();
      for (const id of this.subs.keys()) this.send(id);
    };
    sock.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === 'reset') { for (const id of this.subs.keys()) this.send(id); return; }
      const sub = this.subs.get(f.id);
      if (!sub) return;
      if (f.type === 'result') sub.cb(f, null);
      else if (f.type === 'error') sub.cb(null, f.error);
    };
    sock.onclose = () => {
      if (this.closed) return;
      this.failures += 1;
      this.state = 'reconnecting';
      this.onState();
      setTimeout(() => this.connect(), backoff(this.failures));
    };
  }

  send(id) {
    const sub = this.subs.get(id);
    if (sub && this.sock && this.sock.readyState === WebSocket.OPEN) {
      this.sock.send(JSON.stringify({ op: 'subscribe', id, db: sub.db, sql: sub.sql }));
    }
  }

  /** Subscribes; returns the way to unsubscribe. */
  subscribe(db, sql, cb) {
    const id = `q${this.next++}`;
    this.subs.set(id, { db, sql, cb });
    this.send(id);
    return () => {
      this.subs.delete(id);
      if (this.sock && this.sock.readyState === WebSocket.OPEN) this.sock.send(JSON.stringify({ op: 'unsubscribe', id }));
    };
  }

  close() { this.closed = true; if (this.sock) this.sock.close(); }
}

/** Everything live about one workspace, shared by its pages. */
export class WorkspaceSession {
  constructor(ws, onState) {
    this.ws = ws;
    this.events = new EventStream(ws, onState);
    this.queries = new LiveQueries(ws, onState);
    this.events.start();
  }

  /** `open` when both connections are up, else `reconnecting` / `connecting`. */
  get state() {
    const states = [this.events.state, this.queries.state];
    if (states.every((s) => s === 'open')) return 'open';
    return states.includes('reconnecting') ? 'reconnecting' : 'connecting';
  }

  close() { this.events.close(); this.queries.close(); }
}
