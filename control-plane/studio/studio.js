// The studio's shell: sign-in, the page chosen by the address (`?w=org/name&page=…`),
// the navigation, and the one connection banner for the workspace's live connections.

import { adoptTokenFromFragment, api, el, gw, setToken, signOut, token } from './api.js';
import { WorkspaceSession } from './streams.js';
import { timelinePage } from './timeline.js';
import { agentsPage, filesPage, locksPage, workspacesPage } from './panels.js';
import { chatPage } from './chat.js';

const PAGES = ['timeline', 'agents', 'locks', 'files', 'chat'];
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const banner = document.getElementById('banner');
let session = null;
let leave = () => {};
let me = null;
let agents = [];

let lastState = 'idle';

function showBanner() {
  const state = session ? session.state : 'idle';
  if (state === 'reconnecting' && lastState !== 'reconnecting') window.coditect.reconnects += 1;
  lastState = state;
  document.body.dataset.connection = state;
  if (!session || state === 'open') { banner.hidden = true; return; }
  banner.hidden = false;
  banner.className = `banner${state === 'reconnecting' ? ' down' : ''}`;
  banner.textContent = state === 'reconnecting'
    ? `Reconnecting to ${session.ws.name}… nothing is lost: events resume after the last one shown, and what you send waits here.`
    : `Connecting to ${session.ws.name}…`;
}

function go(params) {
  const q = new URLSearchParams(params);
  history.pushState(null, '', `?${q}`);
  route();
}

function signIn(reason) {
  leave();
  nav.replaceChildren();
  const input = el('input', { type: 'text', id: 'token', placeholder: 'paste a token', autocomplete: 'off' });
  main.replaceChildren(el('form', { class: 'signin panel', onsubmit: (ev) => { ev.preventDefault(); setToken(input.value); boot(); } },
    el('h2', {}, 'Sign in'),
    reason ? el('p', { class: 'muted' }, reason) : null,
    el('p', {}, 'Run ', el('code', {}, 'coditect open WORKSPACE'), ' for a link that signs you in, or paste a token (', el('code', {}, 'coditect token create'), ').'),
    input, el('button', { type: 'submit' }, 'Sign in')));
}

async function route() {
  leave();
  leave = () => {};
  const q = new URLSearchParams(location.search);
  const w = q.get('w');
  if (!w) {
    if (session) { session.close(); session = null; }
    showBanner();
    nav.replaceChildren(el('a', { href: '/studio/', class: 'active' }, 'Workspaces'));
    leave = workspacesPage(main, (org, name) => go({ w: `${org}/${name}`, page: 'timeline' }));
    return;
  }
  const [org, name] = w.split('/');
  if (!session || session.ws.org !== org || session.ws.name !== name) {
    if (session) session.close();
    session = new WorkspaceSession({ org, name }, showBanner);
    agents = [];
    showBanner();
  }
  const page = PAGES.includes(q.get('page')) ? q.get('page') : 'timeline';
  nav.replaceChildren(
    el('a', { href: '/studio/', onclick: (ev) => { ev.preventDefault(); go({}); } }, 'Workspaces'),
    el('strong', {}, ` ${name} `),
    ...PAGES.map((p) => el('a', { href: `?w=${w}&page=${p}`, class: p === page ? 'active' : undefined, dataset: { page: p }, onclick: (ev) => { ev.preventDefault(); go({ w, page: p }); } }, p[0].toUpperCase() + p.slice(1))));
  document.title = `${name} · ${page} · Coditect Studio`;
  if (page === 'timeline') leave = timelinePage(main, session);
  else if (page === 'agents') leave = agentsPage(main, session);
  else if (page === 'locks') leave = locksPage(main, session);
  else if (page === 'files') leave = filesPage(main, session);
  else if (page === 'chat') {
    if (!agents.length) {
      try { agents = await api(gw(session.ws, '/v1/agents')); } catch { agents = []; }
    }
    leave = chatPage(main, session, me, agents);
  }
}

async function boot() {
  adoptTokenFromFragment();
  if (!token()) { signIn(); return; }
  try {
    const who = await api('/apis/coditect.io/v1/whoami');
    me = who.user;
    document.getElementById('who').replaceChildren(`signed in as ${me} `, el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); signOut(); signIn(); } }, 'sign out'));
  } catch (err) {
    if (err.status === 401) { signOut(); signIn(`That token was refused: ${err.message}`); return; }
    main.replaceChildren(el('p', {}, `Cannot reach the control plane: ${err.message}`));
    return;
  }
  document.getElementById('diff-close').addEventListener('click', () => document.getElementById('diff').close());
  window.addEventListener('popstate', route);
  route();
}

// What tests and curious people can read from the console: the live session, how often
// its connections dropped, and the longest task the page ran (a freeze shows here).
const probe = { reconnects: 0, longestTaskMs: 0, session: () => session };
window.coditect = probe;
try {
  new PerformanceObserver((list) => {
    for (const t of list.getEntries()) probe.longestTaskMs = Math.max(probe.longestTaskMs, t.duration);
  }).observe({ type: 'longtask', buffered: true });
} catch { /* no long-task timing in this browser */ }

boot();
