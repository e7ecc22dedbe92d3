// Chat: send a task to an agent or a role, or a message on the bus; see the tasks you
// sent with their state and result, the agents' messages and the bus, live. What you send
// while the workspace is unreachable waits here, marked pending, and goes out in order
// once the connection is back.

import { api, agentTag, clock, el, gw } from './api.js';

const OUTBOX = 'coditect.outbox';

function loadOutbox(ws) {
  try { return JSON.parse(sessionStorage.getItem(`${OUTBOX}:${ws.org}/${ws.name}`)) || []; } catch { return []; }
}
function saveOutbox(ws, items) { sessionStorage.setItem(`${OUTBOX}:${ws.org}/${ws.name}`, JSON.stringify(items)); }

export function chatPage(main, session, me, agents) {
  const ws = session.ws;
  const transcript = el('div', { class: 'transcript panel', id: 'transcript' });
  const target = el('select', { name: 'to', id: 'chat-to' },
    ...agents.map((a) => el('option', { value: `agent:${a.name}` }, `task for ${a.name}`)),
    ...[...new Set(agents.map((a) => a.role))].map((r) => el('option', { value: `role:${r}` }, `task for a ${r}`)),
    el('option', { value: 'message:' }, 'message to everyone'));
  const text = el('input', { type: 'text', name: 'text', id: 'chat-text', placeholder: 'What should be done?', autocomplete: 'off' });
  const form = el('form', { class: 'composer', id: 'chat-form' }, target, text, el('button', { type: 'submit' }, 'Send'));
  main.replaceChildren(el('h2', {}, 'Chat'), el('div', { class: 'chat' }, transcript, form));

  let outbox = loadOutbox(ws);
  let tasks = [];
  let messages = [];
  let sending = false;

  const draw = () => {
    const items = [];
    for (const t of tasks) {
      items.push({ at: t[5], node: el('div', { class: 'bubble mine', dataset: { task: String(t[0]), state: t[3] } },
        el('div', { class: 'meta' }, `task #${t[0]} for `, agentTag(t[1]), ` · ${t[3]}`),
        t[2]) });
      const said = session.events.list.filter((e) => e.type === 'agent_message' && e.data.task === t[0]).reverse();
      for (const e of said) {
        items.push({ at: Date.parse(e.ts), node: el('div', { class: 'bubble', dataset: { seq: String(e.seq) } }, el('div', { class: 'meta' }, agentTag(e.agent), ` · ${clock(e.ts)}`), e.data.text) });
      }
      if (t[4]) {
        items.push({ at: t[6] || t[5], node: el('div', { class: 'bubble', dataset: { result: String(t[0]) } }, el('div', { class: 'meta' }, agentTag(t[1]), ` · task #${t[0]} ${t[3]}`), t[4]) });
      }
    }
    for (const m of messages) {
      let body = m[5];
      try { const v = JSON.parse(body); body = typeof v === 'string' ? v : typeof v.text === 'string' ? v.text : JSON.stringify(v); } catch { /* as stored */ }
      items.push({ at: m[1], node: el('div', { class: `bubble${m[2] === me ? ' mine' : ''}`, dataset: { message: String(m[0]) } },
        el('div', { class: 'meta' }, agentTag(m[2]), ` → ${m[3] || m[4] || 'everyone'} · ${clock(m[1])}`), body) });
    }
    items.sort((a, b) => a.at - b.at);
    for (const p of outbox) {
      items.push({ at: Infinity, node: el('div', { class: 'bubble mine pending', dataset: { pending: p.id } }, el('div', { class: 'meta' }, `pending · ${p.to}`), p.text) });
    }
    const atBottom = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 4;
    transcript.replaceChildren(...(items.length ? items.map((i) => i.node) : [el('p', { class: 'muted' }, 'Nothing said yet.')]));
    if (atBottom) transcript.scrollTop = transcript.scrollHeight;
  };

  async function flush() {
    if (sending) return;
    sending = true;
    try {
      while (outbox.length && session.state === 'open') {
        const p = outbox[0];
        const [kind, name] = p.to.split(':');
        try {
          if (kind === 'message') await api(gw(ws, '/v1/messages'), { method: 'POST', body: { from: me, topic: 'chat', body: p.text } });
          else await api(gw(ws, '/v1/tasks'), { method: 'POST', body: { [kind]: name, title: p.text, prompt: p.text, submitted_by: me } });
        } catch (err) {
          if (err instanceof TypeError || err.status === 502 || err.status === 503) break; // unreachable: try again on reconnect
          p.error = err.message;
          alert(`Not sent: ${err.message}`);
        }
        outbox.shift();
        saveOutbox(ws, outbox);
        draw();
      }
    } finally { sending = false; }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!text.value.trim()) return;
    outbox.push({ id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, to: target.value, text: text.value.trim() });
    saveOutbox(ws, outbox);
    text.value = '';
    draw();
    flush();
  });

  const quote = (s) => `'${String(s).replaceAll("'", "''")}'`;
  const stopTasks = session.queries.subscribe('sessions',
    `SELECT id, agent, title, state, result, created_at, finished_at FROM tasks WHERE submitted_by = ${quote(me)} ORDER BY id DESC LIMIT 100`,
    (r) => { if (r) { tasks = r.rows; draw(); } });
  const stopMessages = session.queries.subscribe('messages',
    'SELECT id, ts, sender, recipient, topic, body FROM messages ORDER BY id DESC LIMIT 100',
    (r) => { if (r) { messages = r.rows; draw(); } });
  const unsub = session.events.subscribe((fresh) => { if (fresh.some((e) => e.type === 'agent_message')) draw(); });
  const timer = setInterval(() => { if (outbox.length) flush(); }, 500);
  draw();
  flush();
  return () => { stopTasks(); stopMessages(); unsub(); clearInterval(timer); };
}
