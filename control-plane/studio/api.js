// The studio's way to the control plane: the user's token (kept in this tab's session
// storage), JSON calls with errors that say why, gateway paths, WebSocket URLs, and the
// control plane's NDJSON watch streams.

const TOKEN_KEY = 'coditect.token';

/** Moves a token handed over in the URL fragment (`#token=…`, from `coditect open`) into
 *  session storage and out of the address bar, so it is not bookmarked or shared. */
export function adoptTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) { sessionStorage.setItem(TOKEN_KEY, t.trim()); }
export function signOut() { sessionStorage.removeItem(TOKEN_KEY); }

/** An error the server explained (`{"error","reason"}`), with its HTTP status. */
export class ApiError extends Error {
  constructor(status, kind, reason) {
    super(reason || kind || `HTTP ${status}`);
    this.status = status;
    this.kind = kind;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** A JSON call; throws ApiError (refusals) or TypeError (the network). */
export async function api(path, { method = 'GET', body, probe = false } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (probe) init.headers['X-Coditect-Probe'] = '1';
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const text = await resp.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = text; }
  if (!resp.ok) {
    throw new ApiError(resp.status, value && value.error, value && value.reason);
  }
  return value;
}

/** The gateway path of a workspace route: `/w/{org}/{name}/v1/…`. */
export function gw(ws, route) { return `/w/${encodeURIComponent(ws.org)}/${encodeURIComponent(ws.name)}${route}`; }

/** A WebSocket URL for a path on this server, carrying the token (browsers cannot set
 *  headers on a WebSocket). */
export function wsUrl(path) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const sep = path.includes('?') ? '&' : '?';
  return `${proto}//${location.host}${path}${sep}access_token=${encodeURIComponent(token() || '')}`;
}

/** Follows an NDJSON stream, calling `onLine` per object; resolves when it ends. */
export async function followLines(path, onLine, signal) {
  const resp = await fetch(path, { headers: headers(), signal });
  if (!resp.ok) throw new ApiError(resp.status, 'watch', await resp.text());
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
}

const PALETTE = ['#3b5bdb', '#c2255c', '#2b8a3e', '#e67700', '#7048e8', '#0c8599', '#a61e4d', '#5c940d'];

/** A stable colour per agent name. */
export function agentColor(name) {
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/** An element: `el('td', {class: 'x', dataset: {seq: 1}}, 'text', child…)`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'style') for (const [p, val] of Object.entries(v)) node.style.setProperty(p, val);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** An agent's name in its colour. */
export function agentTag(name) {
  return el('span', { class: 'agent', style: { '--agent': agentColor(name) } }, name);
}

/** Time of day from an RFC 3339 stamp. */
export function clock(ts) {
  const d = new Date(ts);
  return isNaN(d) ? String(ts || '') : d.toLocaleTimeString([], { hour12: false });
}
