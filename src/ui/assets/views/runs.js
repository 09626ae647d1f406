// /ui/runs: the scheduler's slots, the runs holding them, and those in
// line with their positions; the annealer's counts beside them.

import { get, call, waitReasons } from '../api.js';
import { badge, errorText, h, link, replace, throttle, time } from '../dom.js';
import * as live from '../live.js';

const BUSY_POLL_MS = 2000;
/** Rows shown per table; the counts above say how many there are. */
const SHOW = 200;
const STATES = ['proposed', 'todo', 'transition', 'active', 'error', 'blocked'];

/** Why the todo noderoles have not started, with counts (nothing when none wait). */
function waitingFor(anneal) {
  const reasons = waitReasons(anneal);
  if (!reasons.length) return null;
  return h(
    'div',
    { class: 'waiting-reasons' },
    h('h3', {}, 'To do, waiting for'),
    h('ul', {}, reasons.map(([label, n]) => h('li', { 'data-reason': label }, `${label}: ${n}`))),
  );
}

export default function runsView(root) {
  let gone = false;
  let timer = null;
  const slots = h('div', { class: 'slots' });
  const anneal = h('div', { class: 'anneal-counts' });
  const running = h('tbody');
  const waiting = h('tbody');
  const message = h('p', { class: 'error', role: 'alert' });
  const table = (body, heads) => h('table', { class: 'list' }, h('thead', {}, h('tr', {}, heads.map((t) => h('th', {}, t)))), body);
  replace(
    root,
    h('div', { class: 'view-head' }, h('h1', {}, 'Run queue')),
    message,
    h('div', { class: 'columns' }, h('section', {}, h('h2', {}, 'Slots'), slots), h('section', {}, h('h2', {}, 'Annealer'), anneal)),
    h('section', {}, h('h2', {}, 'Running'), table(running, ['Run', 'Node', 'Role', 'Reason', 'Started'])),
    h('section', {}, h('h2', {}, 'Waiting'), table(waiting, ['Position', 'Run', 'Node', 'Role', 'Reason', 'Queued'])),
  );

  async function load() {
    let sched, run, queued, status;
    try {
      [sched, run, queued, status] = await Promise.all([
        get('/scheduler'),
        get('/runs', { state: 'running', limit: 1000 }),
        get('/runs', { state: 'queued', limit: 1000 }),
        call('GET', '/anneal'),
      ]);
    } catch (e) {
      if (!gone) message.textContent = errorText(e);
      return;
    }
    if (gone) return;
    message.textContent = '';
    replace(
      slots,
      h('meter', { min: '0', max: String(sched.capacity), value: String(sched.in_use), 'aria-label': 'Slots in use' }),
      h('p', { 'data-slots': `${sched.in_use}/${sched.capacity}` }, `${sched.in_use} of ${sched.capacity} slots in use, ${sched.waiting.length} waiting for one, ${queued.length}${queued.length >= 1000 ? '+' : ''} queued in all`),
    );
    const counts = status.body.counts ?? {};
    replace(
      anneal,
      h('p', {}, status.body.settled ? 'Settled: nothing to do.' : 'Working: noderoles are to do or in transition.'),
      h('ul', { class: 'counts' }, STATES.map((s) => h('li', {}, badge(s), ' ', String(counts[s] ?? 0)))),
      waitingFor(status.body),
    );
    running.replaceChildren(...run.slice(0, SHOW).map((r) => h('tr', { 'data-run': String(r.id) }, h('td', {}, link(`/ui/noderoles/${r.noderole_id}`, `#${r.id}`)), h('td', {}, r.node), h('td', {}, r.role), h('td', {}, reason(r)), h('td', {}, time(r.started_at)))));
    if (!run.length) running.appendChild(h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'Nothing running.')));
    queued.sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity) || a.queue_seq - b.queue_seq);
    waiting.replaceChildren(
      ...queued.slice(0, SHOW).map((r) =>
        h(
          'tr',
          { 'data-run': String(r.id), 'data-position': r.position ?? '' },
          h('td', {}, r.position ? String(r.position) : h('span', { class: 'muted', title: 'Waits for an earlier run on its node' }, 'after its node’s run')),
          h('td', {}, link(`/ui/noderoles/${r.noderole_id}`, `#${r.id}`)),
          h('td', {}, r.node),
          h('td', {}, r.role),
          h('td', {}, reason(r)),
          h('td', {}, time(r.queued_at)),
        ),
      ),
    );
    if (queued.length > SHOW) waiting.appendChild(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, `and ${queued.length - SHOW}${queued.length >= 1000 ? ' or more' : ''} more`)));
    if (!queued.length) waiting.appendChild(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'Nobody waiting.')));
    clearTimeout(timer);
    // Runs starting publish no fact: look again while work is under way.
    if (run.length || queued.length || !status.body.settled) timer = setTimeout(load, BUSY_POLL_MS);
  }

  const reload = throttle(load, 500);
  const off = live.subscribe((fact) => {
    if (fact.fact !== 'node_created') reload();
  });
  load();
  return () => {
    gone = true;
    off();
    reload.cancel();
    clearTimeout(timer);
  };
}

function reason(r) {
  return r.priority ? h('span', {}, r.reason, ' ', h('span', { class: 'tag' }, 'priority')) : r.reason;
}
