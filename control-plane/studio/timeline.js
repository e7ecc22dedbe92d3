// The workspace timeline: every event, newest first, live; older history pages in as you
// scroll down. Filters by agent, type, file and errors; each tool call shows its result;
// a file_edit opens the diff of that write. Only the rows in view are in the page (a
// virtual list), so a long session of 10,000+ events stays smooth.

import { agentTag, clock, el } from './api.js';

const ROW = 28;          // px, as --row in studio.css
const OVERSCAN = 10;

/** A one-line account of an event. */
export function summarize(e, stream) {
  const d = e.data || {};
  switch (e.type) {
    case 'file_edit': return `${d.path} ${d.diff && d.diff.summary ? d.diff.summary : ''}`;
    case 'tool_call': {
      if (d.tool === 'complete_task') {
        const a = d.arguments || {};
        return `complete_task → ${a.ok === false ? 'failed' : 'done'}${a.summary ? `: ${a.summary}` : ''}`;
      }
      const r = stream && stream.resultOf(e);
      const args = d.arguments && (d.arguments.path || d.arguments.title || d.arguments.to || '');
      const outcome = r ? (r.data.ok ? `→ ok ${r.data.result || ''}` : `→ failed: ${r.data.result || ''}`) : '→ …';
      return `${d.tool}${args ? ` ${args}` : ''} ${outcome}`;
    }
    case 'tool_result': return `${d.tool} ${d.ok ? 'ok' : 'failed'} ${d.result || ''}`;
    case 'lock_acquired': case 'lock_released': return `${d.path || ''} token ${d.token ?? ''}`;
    case 'task_queued': return `task ${d.task} "${d.title || ''}" for ${d.agent || ''}`;
    case 'task_started': return `task ${d.task}`;
    case 'task_finished': return `task ${d.task} ${d.state || ''}`;
    case 'agent_message': return d.text || '';
    case 'agent_state_change': return d.state || JSON.stringify(d);
    case 'message_sent': return `message ${d.message} to ${d.to || d.topic || 'all'}`;
    default: return JSON.stringify(d);
  }
}

/** Whether an event is an error: a failed tool call or task, or one naming an error. */
export function isError(e, stream) {
  const d = e.data || {};
  if (e.type === 'task_finished') return d.state === 'failed';
  if (e.type === 'tool_call') { const r = stream.resultOf(e); return !!(r && !r.data.ok); }
  if (e.type === 'tool_result') return !d.ok;
  return d.error !== undefined;
}

function pathOf(e) {
  const d = e.data || {};
  return d.path || (d.arguments && d.arguments.path) || '';
}

/** Shows a write's unified diff in the dialog. */
export function showDiff(e) {
  const d = e.data || {};
  const dialog = document.getElementById('diff');
  document.getElementById('diff-title').textContent = `${d.path} at #${e.seq} (${e.agent}, ${d.diff ? d.diff.summary : ''})`;
  const body = document.getElementById('diff-body');
  body.replaceChildren(...patchLines(d.diff && d.diff.patch));
  dialog.dataset.seq = e.seq;
  if (!dialog.open) dialog.showModal();
}

/** A unified diff as coloured lines. */
export function patchLines(patch) {
  if (!patch) return [el('span', { class: 'muted' }, 'No line diff was recorded for this write.')];
  return patch.split('\n').map((l) => el('span', {
    class: l.startsWith('+') && !l.startsWith('+++') ? 'add'
      : l.startsWith('-') && !l.startsWith('---') ? 'del'
        : l.startsWith('@@') ? 'hunk' : undefined,
  }, `${l}\n`));
}

export function timelinePage(main, session) {
  const stream = session.events;
  const agentSel = el('select', { name: 'agent' }, el('option', { value: '' }, 'all agents'));
  const typeSel = el('select', { name: 'type' }, el('option', { value: '' }, 'all types'));
  const fileIn = el('input', { type: 'text', name: 'file', placeholder: 'path contains…' });
  const errorsIn = el('input', { type: 'checkbox', name: 'errors' });
  const count = el('span', { class: 'muted', id: 'timeline-count' });
  const older = el('button', { class: 'plain', type: 'button', onclick: () => stream.loadOlder() }, 'Load older');
  const spacer = el('div', { class: 'spacer' });
  const box = el('div', { class: 'timeline', id: 'timeline', tabindex: '0' }, spacer);
  main.replaceChildren(
    el('div', { class: 'filters' },
      el('h2', {}, 'Timeline'),
      el('label', {}, 'Agent', agentSel), el('label', {}, 'Type', typeSel),
      el('label', {}, 'File', fileIn), el('label', {}, errorsIn, 'errors only'),
      count, older),
    box);

  const agents = new Set();
  const types = new Set();
  let shown = [];
  const addOption = (sel, set, v) => {
    if (!v || set.has(v)) return;
    set.add(v);
    sel.append(el('option', { value: v }, v));
  };

  function matches(e) {
    if (e.type === 'tool_result') return false; // shown with its call
    if (agentSel.value && e.agent !== agentSel.value) return false;
    if (typeSel.value && e.type !== typeSel.value) return false;
    if (fileIn.value && !pathOf(e).includes(fileIn.value)) return false;
    if (errorsIn.checked && !isError(e, stream)) return false;
    return true;
  }

  function refilter() {
    shown = stream.list.filter(matches);
    spacer.style.height = `${shown.length * ROW}px`;
    box.dataset.count = shown.length;
    box.dataset.total = stream.list.length;
    count.textContent = `${shown.length} of ${stream.list.length} events${stream.hasOlder ? ' (older ones page in below)' : ''}`;
    older.hidden = !stream.hasOlder;
    render();
  }

  function row(e, i) {
    const err = isError(e, stream);
    const node = el('div', {
      class: `ev${err ? ' error' : ''}${e.type === 'file_edit' ? ' clickable' : ''}`,
      dataset: { seq: e.seq, type: e.type, agent: e.agent },
      style: { top: `${i * ROW}px` },
      title: e.type === 'file_edit' ? 'Show this write’s diff' : undefined,
      onclick: e.type === 'file_edit' ? () => showDiff(e) : undefined,
    },
    el('span', { class: 'seq' }, `#${e.seq}`),
    el('span', { class: 'muted' }, clock(e.ts)),
    agentTag(e.agent),
    el('span', { class: 'type' }, e.type),
    el('span', { class: 'summary' }, summarize(e, stream)));
    return node;
  }

  function render() {
    const first = Math.max(0, Math.floor(box.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) rows.push(row(shown[i], i));
    spacer.replaceChildren(...rows);
    if (last >= shown.length - 1 && stream.hasOlder && box.scrollTop > 0) stream.loadOlder();
  }

  const unsubscribe = stream.subscribe((fresh) => {
    for (const e of fresh) { addOption(agentSel, agents, e.agent); addOption(typeSel, types, e.type); }
    // Keep what is in view still when newer events arrive above it.
    const newer = fresh.filter((e) => shown.length && e.seq > shown[0].seq && matches(e)).length;
    refilter();
    if (box.scrollTop > 0 && newer) box.scrollTop += newer * ROW;
  });
  for (const e of stream.list) { addOption(agentSel, agents, e.agent); addOption(typeSel, types, e.type); }
  box.addEventListener('scroll', render, { passive: true });
  for (const input of [agentSel, typeSel, errorsIn]) input.addEventListener('change', refilter);
  fileIn.addEventListener('input', refilter);
  refilter();
  return unsubscribe;
}
