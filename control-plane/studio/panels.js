// The studio's panels: the workspaces list (live from the control plane's watch), and a
// workspace's agents, locks and files (live from its event log and live queries).

import { api, agentTag, clock, el, followLines, gw } from './api.js';
import { patchLines, showDiff } from './timeline.js';

const pill = (text, kind) => el('span', { class: `pill${kind ? ` ${kind}` : ''}` }, text);
const ready = (w) => ((w.status && w.status.conditions) || []).some((c) => c.type === 'Ready' && c.status === 'True');
const key = (w) => `${w.metadata.organization}/${w.metadata.name}`;

/** Runs `f` at most every `ms`, and once more after the last call. */
function throttle(f, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) { again = true; return; }
    f();
    timer = setTimeout(() => { timer = null; if (again) { again = false; f(); } }, ms);
  };
}

export function workspacesPage(main, open) {
  const body = el('tbody');
  const table = el('table', { id: 'workspaces' },
    el('thead', {}, el('tr', {}, ...['Workspace', 'Organization', 'Owner', 'Phase', 'Ready', 'Sync lag', 'Agents'].map((h) => el('th', {}, h)))),
    body);
  const note = el('p', { class: 'muted' }, 'Loading workspaces…');
  main.replaceChildren(el('h2', {}, 'Workspaces'), note, table);
  const items = new Map();
  const agents = new Map();
  const draw = () => {
    note.textContent = items.size ? `${items.size} workspaces you may see, live.` : 'No workspaces you may see yet.';
    body.replaceChildren(...[...items.values()].sort((a, b) => key(a).localeCompare(key(b))).map((w) => {
      const s = w.status || {};
      const phase = s.phase || 'Pending';
      const list = agents.get(key(w));
      return el('tr', { dataset: { workspace: key(w) } },
        el('td', {}, el('a', { href: `?w=${key(w)}&page=timeline`, onclick: (ev) => { ev.preventDefault(); open(w.metadata.organization, w.metadata.name); } }, w.metadata.name)),
        el('td', {}, w.metadata.organization),
        el('td', {}, (w.spec && w.spec.owner) || ''),
        el('td', {}, pill(phase, phase === 'Running' ? 'ok' : phase === 'Asleep' ? 'warn' : phase === 'Failed' ? 'bad' : '')),
        el('td', {}, ready(w) ? pill('Ready', 'ok') : pill('Not ready', 'warn')),
        el('td', {}, s.syncLagSeconds === undefined ? '—' : `${s.syncLagSeconds.toFixed(1)} s`),
        el('td', {}, list ? list.map((a) => el('span', {}, agentTag(a.name), ` ${a.state}  `)) : el('span', { class: 'muted' }, phase === 'Asleep' ? 'asleep' : '—')));
    }));
  };
  // An awake workspace's agents, asked as a probe so looking does not keep it awake.
  const loadAgents = async (w) => {
    if (!ready(w) || (w.status && w.status.phase === 'Asleep')) { agents.delete(key(w)); return; }
    try {
      agents.set(key(w), await api(gw({ org: w.metadata.organization, name: w.metadata.name }, '/v1/agents'), { probe: true }));
    } catch { agents.delete(key(w)); }
    draw();
  };
  const abort = new AbortController();
  (async () => {
    const list = await api('/apis/coditect.io/v1/workspaces');
    for (const w of list.items) { items.set(key(w), w); loadAgents(w); }
    draw();
    for (;;) {
      try {
        await followLines(`/apis/coditect.io/v1/workspaces?watch=true&resourceVersion=${list.metadata.resourceVersion}`, (c) => {
          const w = c.object;
          list.metadata.resourceVersion = String(c.resourceVersion);
          if (c.type === 'deleted' || c.type === 'DELETED') items.delete(key(w));
          else { items.set(key(w), w); loadAgents(w); }
          draw();
        }, abort.signal);
      } catch (err) {
        if (abort.signal.aborted) return;
        note.textContent = `Lost the workspace watch (${err.message}); retrying…`;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })().catch((err) => { note.textContent = `Cannot list workspaces: ${err.message}`; });
  return () => abort.abort();
}

export function agentsPage(main, session) {
  const body = el('tbody');
  const note = el('p', { class: 'muted' }, 'What each agent is doing, from its tasks, leases and events.');
  main.replaceChildren(el('h2', {}, 'Agents'), note,
    el('table', { id: 'agents' },
      el('thead', {}, el('tr', {}, ...['Agent', 'Provider', 'State', 'Current task', 'Queued', 'Tokens in / out', 'Holds', 'Last event'].map((h) => el('th', {}, h)))),
      body));
  const load = throttle(async () => {
    try {
      const agents = await api(gw(session.ws, '/v1/agents'));
      body.replaceChildren(...agents.map((a) => el('tr', { dataset: { agent: a.name, state: a.state } },
        el('td', {}, agentTag(a.name)),
        el('td', {}, a.provider),
        el('td', {}, pill(a.state.replaceAll('_', ' '), a.state === 'working' ? 'ok' : a.state === 'waiting_for_lock' ? 'warn' : a.state === 'stopped' ? 'bad' : '')),
        el('td', {}, a.task ? `#${a.task.id} ${a.task.title}` : '—'),
        el('td', {}, String(a.queued)),
        el('td', {}, `${a.tokens.input} / ${a.tokens.output}`),
        el('td', {}, a.locks.map((l) => l.path).join(', ') || '—', a.waiting_for.length ? el('div', { class: 'muted' }, `waits for ${a.waiting_for.map((w) => w.path).join(', ')}`) : null),
        el('td', {}, a.last_event ? `${a.last_event.type} #${a.last_event.seq} at ${clock(a.last_event.ts)}` : '—'))));
    } catch (err) { note.textContent = `Cannot read the agents: ${err.message}`; }
  }, 300);
  load();
  return session.events.subscribe(load);
}

const LOCKS_SQL = 'SELECT token, path, mode, holder, granted_at, expires_at FROM locks ORDER BY path, token';

export function locksPage(main, session) {
  const held = el('tbody');
  const waiting = el('tbody');
  main.replaceChildren(el('h2', {}, 'Locks'),
    el('table', { id: 'locks' },
      el('thead', {}, el('tr', {}, ...['Path', 'Mode', 'Holder', 'Token', 'Expires'].map((h) => el('th', {}, h)))), held),
    el('h2', {}, 'Waiting'),
    el('table', { id: 'waiters' },
      el('thead', {}, el('tr', {}, ...['Path', 'Mode', 'Who', 'Waited'].map((h) => el('th', {}, h)))), waiting));
  const loadWaiters = throttle(async () => {
    try {
      const ws = await api(gw(session.ws, '/v1/locks/waiters'));
      waiting.replaceChildren(...(ws.length ? ws.map((w) => el('tr', { dataset: { path: w.path } },
        el('td', {}, w.path), el('td', {}, w.mode), el('td', {}, agentTag(w.holder)), el('td', {}, `${(w.waited_ms / 1000).toFixed(1)} s`)))
        : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'Nobody waits.'))]));
    } catch { /* the banner says when the workspace is unreachable */ }
  }, 300);
  const stop = session.queries.subscribe('workspace_idx', LOCKS_SQL, (r, err) => {
    if (err) { held.replaceChildren(el('tr', {}, el('td', { colspan: '5' }, err))); return; }
    held.replaceChildren(...(r.rows.length ? r.rows.map(([token, path, mode, holder, , expires]) => el('tr', { dataset: { path, holder, token: String(token) } },
      el('td', {}, path), el('td', {}, mode), el('td', {}, agentTag(holder)), el('td', {}, String(token)), el('td', {}, new Date(expires).toLocaleTimeString([], { hour12: false }))))
      : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No locks held.'))]));
    loadWaiters();
  });
  const unsub = session.events.subscribe((fresh) => { if (fresh.some((e) => e.type.startsWith('lock_'))) loadWaiters(); });
  return () => { stop(); unsub(); };
}

/** Nested folders from sorted paths. */
function folderTree(paths) {
  const root = { dirs: new Map(), files: [] };
  for (const f of paths) {
    const parts = f.path.split('/');
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push(f);
  }
  return root;
}

export function filesPage(main, session) {
  const tree = el('div', { class: 'panel tree', id: 'tree' }, 'Loading…');
  const view = el('div', { class: 'panel', id: 'file-view' }, el('p', { class: 'muted' }, 'Pick a file.'));
  main.replaceChildren(el('h2', {}, 'Files'), el('div', { class: 'split' }, tree, view));
  let files = [];
  let locks = [];
  let selected = null;
  const lockOn = (path) => locks.find(([, p]) => path === p || path.startsWith(`${p}/`));
  const drawTree = () => {
    const walk = (node, prefix) => el('ul', {},
      ...[...node.dirs.entries()].map(([name, sub]) => {
        const p = `${prefix}${name}`;
        const l = lockOn(p);
        return el('li', { dataset: { dir: p } }, el('details', { open: true }, el('summary', {}, `${name}/`, l ? el('span', { class: 'badge', title: `held by ${l[3]}, token ${l[0]}` }, `🔒 ${l[3]}`) : null), walk(sub, `${p}/`)));
      }),
      ...node.files.map((f) => {
        const l = lockOn(f.path);
        return el('li', { class: `file${f.path === selected ? ' selected' : ''}`, dataset: { path: f.path, locked: l ? l[3] : undefined }, onclick: () => select(f.path) },
          f.path.split('/').pop(), el('span', { class: 'muted' }, ` ${f.size} B`),
          l ? el('span', { class: 'badge', title: `held by ${l[3]}, token ${l[0]}` }, `🔒 ${l[3]}`) : null);
      }));
    tree.replaceChildren(files.length ? walk(folderTree(files), '') : el('p', { class: 'muted' }, 'No files yet.'));
  };
  const loadTree = throttle(async () => {
    try { files = (await api(gw(session.ws, '/v1/tree'))).files; drawTree(); } catch (err) { tree.textContent = err.message; }
  }, 500);
  async function select(path) {
    selected = path;
    drawTree();
    let content;
    try {
      const resp = await fetch(gw(session.ws, `/v1/files/${path.split('/').map(encodeURIComponent).join('/')}`), { headers: { Authorization: `Bearer ${sessionStorage.getItem('coditect.token')}` } });
      content = resp.ok ? await resp.text() : `(cannot read: HTTP ${resp.status})`;
    } catch (err) { content = `(cannot read: ${err.message})`; }
    const edits = session.events.list.filter((e) => e.type === 'file_edit' && e.data.path === path);
    view.replaceChildren(
      el('h2', {}, path),
      el('pre', { id: 'file-content' }, content),
      el('h2', {}, `History (${edits.length} edits)`),
      ...edits.map((e) => el('details', { dataset: { seq: e.seq } },
        el('summary', {}, `#${e.seq} `, agentTag(e.agent), ` ${clock(e.ts)} ${e.data.diff ? e.data.diff.summary : ''} `, el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); showDiff(e); } }, 'open diff')),
        el('pre', { class: 'patch' }, ...patchLines(e.data.diff && e.data.diff.patch)))));
  }
  const stop = session.queries.subscribe('workspace_idx', LOCKS_SQL, (r) => { if (r) { locks = r.rows; drawTree(); } });
  const unsub = session.events.subscribe((fresh) => {
    if (fresh.some((e) => e.type === 'file_edit')) { loadTree(); if (selected && fresh.some((e) => e.type === 'file_edit' && e.data.path === selected)) select(selected); }
  });
  loadTree();
  return () => { stop(); unsub(); };
}
