// /ui/noderoles/<id>: one binding's state, data, wall, runlog and run
// history; Retry when it is in error, Commit when it is proposed.

import { get, put } from '../api.js';
import { badge, errorText, h, link, replace, throttle, time } from '../dom.js';
import * as live from '../live.js';
import { dataEditor } from './editor.js';

export default function noderoleView(root, { id }) {
  let gone = false;
  let nr = null;
  let editor = null;
  const head = h('div', { class: 'view-head' });
  const crumbs = h('p', { class: 'crumbs' });
  const facts = h('dl', { class: 'facts' });
  const actions = h('div', { class: 'actions' });
  const actionMessage = h('p', { class: 'error', role: 'alert', 'data-message': 'noderole' });
  const editorSlot = h('div');
  const committed = h('pre', { class: 'json' });
  const wall = h('pre', { class: 'json' });
  const runlog = h('pre', { class: 'runlog', 'data-runlog': '' });
  const history = h('tbody');
  const container = h(
    'article',
    { class: 'noderole-view', 'data-noderole': id },
    crumbs,
    head,
    facts,
    h('div', { class: 'actions-row' }, actions, actionMessage),
    h(
      'div',
      { class: 'columns' },
      h('section', {}, h('h2', {}, 'Proposed data'), editorSlot),
      h('section', {}, h('h2', {}, 'Committed data'), committed, h('h2', {}, 'Wall'), h('p', { class: 'muted' }, 'What the jig wrote back.'), wall),
    ),
    h('section', {}, h('h2', {}, 'Runlog'), runlog),
    h(
      'section',
      {},
      h('h2', {}, 'Runs'),
      h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Run', 'Reason', 'State', 'Queued', 'Started', 'Finished', 'Error'].map((t) => h('th', {}, t)))), history),
    ),
  );
  replace(root, h('p', { class: 'muted' }, 'Loading…'));

  async function load() {
    let runs;
    try {
      nr = await get(`/noderoles/${encodeURIComponent(id)}`);
      runs = (await get('/runs', { node: nr.node, limit: 1000 })).filter((r) => r.noderole_id === nr.id).reverse();
    } catch (e) {
      if (gone) return;
      if (e.status === 404 || e.status === 400) {
        replace(root, h('h1', {}, 'No such noderole'), h('p', {}, errorText(e)));
        gone = true;
      } else {
        actionMessage.textContent = errorText(e);
      }
      return;
    }
    if (gone) return;
    if (!container.isConnected) replace(root, container);
    render(runs);
  }

  function render(runs) {
    container.dataset.state = nr.state;
    replace(crumbs, link('/ui/deployments', 'Deployments'), ' / ', link(`/ui/deployments/${encodeURIComponent(nr.deployment)}`, nr.deployment), ' / ', `noderole ${nr.id}`);
    replace(head, h('h1', {}, `${nr.role} on ${nr.node}`), badge(nr.state));
    replace(
      facts,
      h('dt', {}, 'Node'),
      h('dd', {}, link(`/ui/nodes?q=${encodeURIComponent(nr.node)}`, nr.node)),
      h('dt', {}, 'Deployment'),
      h('dd', {}, link(`/ui/deployments/${encodeURIComponent(nr.deployment)}`, nr.deployment)),
      h('dt', {}, 'Successful runs'),
      h('dd', {}, String(nr.run_count)),
      h('dt', {}, 'Changed'),
      h('dd', {}, time(nr.updated_at)),
    );
    const buttons = [];
    if (nr.state === 'error') buttons.push(h('button', { type: 'button', 'data-action': 'retry', onclick: () => act('retry') }, 'Retry'));
    if (nr.state === 'proposed') buttons.push(h('button', { type: 'button', 'data-action': 'commit', onclick: () => act('commit') }, 'Commit'));
    if (!buttons.length) buttons.push(h('span', { class: 'muted' }, hint(nr.state)));
    replace(actions, ...buttons);

    const canEdit = nr.state !== 'transition';
    if (!editor) {
      editor = dataEditor({
        value: nr.proposed_data,
        disabled: !canEdit,
        note: 'Saving proposes the noderole; commit it to run with the new data.',
        onSave: async (data) => {
          nr = await put(`/noderoles/${nr.id}`, { data });
          const stored = nr.proposed_data;
          await load();
          return stored;
        },
      });
      replace(editorSlot, editor.el);
    } else {
      editor.setValue(nr.proposed_data);
      editor.setDisabled(!canEdit, canEdit ? '' : 'A run is in progress; edit after it finishes.');
    }
    committed.textContent = JSON.stringify(nr.committed_data, null, 2);
    wall.textContent = JSON.stringify(nr.wall, null, 2);
    runlog.textContent = nr.runlog || '(empty)';
    history.replaceChildren(
      ...runs.map((r) =>
        h(
          'tr',
          { 'data-run': String(r.id), 'data-state': r.state },
          h('td', {}, String(r.id)),
          h('td', {}, r.reason),
          h('td', {}, badge(r.state), r.position ? h('span', { class: 'muted' }, ` #${r.position} in line`) : null),
          h('td', {}, time(r.queued_at)),
          h('td', {}, time(r.started_at)),
          h('td', {}, time(r.finished_at)),
          h('td', { class: 'error' }, r.error ?? ''),
        ),
      ),
    );
    if (!runs.length) history.appendChild(h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'No runs yet.')));
  }

  async function act(what) {
    actionMessage.textContent = '';
    for (const b of actions.querySelectorAll('button')) b.disabled = true;
    try {
      nr = await put(`/noderoles/${nr.id}/${what}`);
      await load();
    } catch (e) {
      actionMessage.textContent = errorText(e);
      for (const b of actions.querySelectorAll('button')) b.disabled = false;
    }
  }

  const reload = throttle(load, 200);
  const off = live.subscribe((fact) => {
    if (!nr) return;
    if (fact.noderole_id === nr.id || fact.fact === 'poll' || fact.fact === 'resync') reload();
  });
  load();
  return () => {
    gone = true;
    off();
    reload.cancel();
  };
}

function hint(state) {
  return {
    todo: 'Waiting for its parents, its node or a free slot.',
    transition: 'Running now.',
    active: 'Done. Edit its data to run it again.',
    blocked: 'Waiting for a parent in error.',
  }[state] ?? '';
}
