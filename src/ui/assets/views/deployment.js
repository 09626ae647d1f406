// /ui/deployments/<name>: drag nodes onto a role to bind them, edit the
// proposed data, then commit, and watch the noderoles anneal.
//
// A deployment has no list of roles of its own: its roles are those bound
// in it. A role added here shows an empty drop zone until a node is bound;
// such roles are remembered for this browser tab.

import { ApiError, get, post, put, seg } from '../api.js';
import { badge, debounce, errorText, flag, h, link, replace, sync, throttle } from '../dom.js';
import * as live from '../live.js';
import { dataEditor } from './editor.js';
import { dragNode } from './nodes.js';

const PALETTE_PAGE = 25;
/** Bindings read per deployment, and rows shown per role. */
const MAX_NODEROLES = 1000;
const ROWS_PER_ROLE = 200;
const NODE_MIME = 'text/x-kiln-node';

function addedKey(name) {
  return `kiln.deployment-roles.${name}`;
}

function loadAdded(name) {
  try {
    return JSON.parse(sessionStorage.getItem(addedKey(name)) ?? '[]');
  } catch {
    return [];
  }
}

export default function deploymentView(root, { name }) {
  let dep = null;
  let roles = [];
  let noderoles = [];
  let added = loadAdded(name);
  let gone = false;
  const zoneErrors = new Map();
  const editors = new Map();
  const pending = new Map();

  const title = h('h1', {}, name);
  const depState = h('span');
  const about = h('p', { class: 'muted' });
  const truncated = h('p', { class: 'muted', hidden: true }, `Showing the first ${MAX_NODEROLES} bindings of this deployment.`);
  const actionMessage = h('p', { class: 'error', role: 'alert', 'data-message': 'deployment' });
  const commitBtn = h('button', { type: 'button', 'data-action': 'commit', onclick: () => act('commit') }, 'Commit');
  const proposeBtn = h('button', { type: 'button', class: 'secondary', 'data-action': 'propose', onclick: () => act('propose') }, 'Propose');
  const zones = h('div', { class: 'zones' });
  const roleSelect = h('select', { 'aria-label': 'Role to add', 'data-add-role': '' });
  const addMessage = h('p', { class: 'error', role: 'alert' });
  const addForm = h(
    'form',
    { class: 'add-role', onsubmit: addRole },
    h('label', {}, 'Add a role ', roleSelect),
    h('button', { type: 'submit', class: 'secondary' }, 'Add role'),
    addMessage,
  );
  const palette = nodePalette();

  replace(
    root,
    h('p', { class: 'crumbs' }, link('/ui/deployments', 'Deployments'), ' / ', name),
    h('div', { class: 'view-head' }, title, depState),
    about,
    h('div', { class: 'actions' }, commitBtn, proposeBtn, actionMessage),
    truncated,
    h(
      'div',
      { class: 'deployment-layout' },
      palette.el,
      h('section', { class: 'roles', 'aria-label': 'Roles' }, zones, addForm),
    ),
  );

  async function load() {
    try {
      const [d, nrs] = await Promise.all([
        get(`/deployments/${seg(name)}`),
        get('/noderoles', { deployment: name, limit: MAX_NODEROLES }),
      ]);
      if (gone) return;
      dep = d;
      noderoles = nrs;
      if (!roles.length) roles = await get('/roles', { limit: 1000 });
      truncated.hidden = noderoles.length < MAX_NODEROLES;
    } catch (e) {
      if (gone) return;
      if (e.status === 404) {
        replace(root, h('h1', {}, 'No such deployment'), h('p', {}, `kiln has no deployment named “${name}”. `, link('/ui/deployments', 'All deployments')));
        gone = true;
        return;
      }
      actionMessage.textContent = errorText(e);
      return;
    }
    render();
  }

  const zoneEls = new Map();
  const rowEls = new Map();

  function render() {
    replace(depState, badge(dep.state));
    about.textContent = dep.description || '';
    const bound = [...new Set(noderoles.map((nr) => nr.role))].sort();
    const shown = [...bound, ...added.filter((r) => !bound.includes(r))];
    for (const role of zoneEls.keys()) if (!shown.includes(role)) zoneEls.delete(role);
    const ids = new Set(noderoles.map((nr) => nr.id));
    for (const id of rowEls.keys()) if (!ids.has(id)) rowEls.delete(id);
    sync(zones, shown.length ? shown.map(zone) : [emptyNote]);
    const addable = roles.filter((r) => !shown.includes(r.name)).map((r) => r.name);
    if (addable.join('\n') !== [...roleSelect.options].map((o) => o.value).join('\n')) {
      replace(roleSelect, addable.map((r) => h('option', { value: r }, r)));
    }
  }

  const emptyNote = h('p', { class: 'muted empty' }, 'No roles yet: add one below, then drag nodes onto it.');

  /** The drop zone of a role, kept across renders. */
  function zone(roleName) {
    let z = zoneEls.get(roleName);
    if (!z) {
      z = makeZone(roleName);
      zoneEls.set(roleName, z);
    }
    const mine = noderoles.filter((nr) => nr.role === roleName).sort((a, b) => a.node.localeCompare(b.node));
    const waiting = [...pending.values()].filter((p) => p.role === roleName && !mine.some((nr) => nr.node === p.node));
    const hidden = mine.length - ROWS_PER_ROLE;
    sync(z.list, [
      ...mine.slice(0, ROWS_PER_ROLE).map(noderoleRow),
      hidden > 0 ? z.more(hidden) : null,
      ...waiting.map((p) => h('li', { class: 'noderole pending' }, p.node, ' ', h('span', { class: 'muted' }, 'binding…'))),
    ].filter(Boolean));
    const error = zoneErrors.get(roleName);
    z.error.textContent = error ?? '';
    z.error.hidden = !error;
    return z.el;
  }

  function makeZone(roleName) {
    const role = roles.find((r) => r.name === roleName);
    const list = h('ul', { class: 'noderoles' });
    const error = h('p', { class: 'error', role: 'alert', 'data-message': 'zone', hidden: true });
    const el = h(
      'section',
      {
        class: 'zone',
        'data-role': roleName,
        'aria-label': `Role ${roleName}: drop nodes here`,
        ondragover: (e) => {
          if (![...e.dataTransfer.types].includes(NODE_MIME)) return;
          e.preventDefault();
          e.dataTransfer.dropEffect = 'copy';
          el.classList.add('over');
        },
        ondragleave: (e) => {
          if (!el.contains(e.relatedTarget)) el.classList.remove('over');
        },
        ondrop: (e) => {
          e.preventDefault();
          el.classList.remove('over');
          const node = e.dataTransfer.getData(NODE_MIME) || e.dataTransfer.getData('text/plain');
          if (node) bind(node, roleName);
        },
      },
      h(
        'header',
        {},
        h('h2', {}, roleName),
        role ? h('span', { class: 'muted' }, `jig ${role.jig}`) : null,
        role?.description ? h('p', { class: 'muted' }, role.description) : null,
      ),
      list,
      h('p', { class: 'drop-hint' }, 'Drop a node here to bind it, or '),
      bindForm(roleName),
      error,
    );
    const moreEl = h('li', { class: 'muted' });
    const more = (n) => {
      moreEl.textContent = `and ${n} more not shown`;
      return moreEl;
    };
    return { el, list, error, more };
  }

  /** A noderole's row, kept across renders (its open editor keeps focus). */
  function noderoleRow(nr) {
    let r = rowEls.get(nr.id);
    if (!r) {
      const badgeSlot = h('span');
      const toggle = h('button', {
        type: 'button',
        class: 'quiet',
        'data-action': 'edit',
        onclick: () => {
          if (editors.has(nr.id)) editors.delete(nr.id);
          else editors.set(nr.id, makeEditor(nr));
          render();
        },
      });
      const editorSlot = h('div');
      const rowMessage = h('span', { class: 'error', role: 'alert' });
      const retry = h('button', { type: 'button', class: 'secondary', 'data-action': 'retry', hidden: true, onclick: () => retryRow(nr.id, retry, rowMessage) }, 'Retry');
      const li = h(
        'li',
        { class: 'noderole', 'data-noderole': String(nr.id), 'data-node-name': nr.node },
        h('div', { class: 'row' }, h('span', { class: 'node-name' }, nr.node), badgeSlot, link(`/ui/noderoles/${nr.id}`, 'details'), toggle, retry, rowMessage),
        editorSlot,
      );
      r = { li, badgeSlot, toggle, editorSlot, retry, rowMessage, state: null };
      rowEls.set(nr.id, r);
    }
    if (r.state !== nr.state) {
      r.state = nr.state;
      r.li.dataset.state = nr.state;
      replace(r.badgeSlot, badge(nr.state));
      r.retry.hidden = nr.state !== 'error';
      r.retry.disabled = false;
      if (nr.state !== 'error') r.rowMessage.textContent = '';
    }
    const editor = editors.get(nr.id);
    const canEdit = nr.state !== 'transition';
    if (editor) {
      editor.setValue(nr.proposed_data);
      editor.setDisabled(!canEdit, canEdit ? '' : 'A run is in progress; edit after it finishes.');
    }
    r.toggle.textContent = editor ? 'Close editor' : 'Edit data';
    r.toggle.setAttribute('aria-expanded', editor ? 'true' : 'false');
    sync(r.editorSlot, editor ? [editor.el] : []);
    return r.li;
  }

  async function retryRow(id, button, message) {
    button.disabled = true;
    message.textContent = '';
    try {
      upsert(await put(`/noderoles/${id}/retry`));
      render();
    } catch (e) {
      message.textContent = errorText(e);
      button.disabled = false;
    }
  }

  /** Binding by name, for the keyboard and for nodes not on the palette's page. */
  function bindForm(roleName) {
    const input = h('input', { list: 'kiln-node-names', placeholder: 'node name', 'aria-label': `Node to bind to ${roleName}`, autocomplete: 'off' });
    return h(
      'form',
      {
        class: 'bind-by-name',
        onsubmit: (e) => {
          e.preventDefault();
          const node = input.value.trim();
          if (!node) return;
          input.value = '';
          bind(node, roleName);
        },
      },
      input,
      h('button', { type: 'submit', class: 'secondary' }, 'Bind'),
    );
  }

  function makeEditor(nr) {
    const canEdit = nr.state !== 'transition';
    return dataEditor({
      value: nr.proposed_data,
      label: 'Save data',
      disabled: !canEdit,
      note: nr.state === 'proposed' ? '' : 'Saving proposes it again.',
      onSave: async (data) => {
        const fresh = await put(`/noderoles/${nr.id}`, { data });
        upsert(fresh);
        render();
        return fresh.proposed_data;
      },
    });
  }

  function upsert(nr) {
    const i = noderoles.findIndex((x) => x.id === nr.id);
    if (i >= 0) noderoles[i] = nr;
    else noderoles.push(nr);
  }

  async function bind(node, roleName) {
    zoneErrors.delete(roleName);
    const key = `${node}\u0000${roleName}`;
    pending.set(key, { node, role: roleName });
    render();
    try {
      const nr = await post('/noderoles', { node, role: roleName, deployment: name });
      upsert(nr);
    } catch (e) {
      zoneErrors.set(roleName, `Could not bind ${node}: ${errorText(e)}`);
    } finally {
      pending.delete(key);
    }
    if (gone) return;
    render();
    // Requirements may have been bound too; the deployment may have changed.
    reload();
  }

  async function act(what) {
    actionMessage.textContent = '';
    commitBtn.disabled = proposeBtn.disabled = true;
    try {
      dep = await put(`/deployments/${seg(name)}/${what}`);
      await load();
    } catch (e) {
      actionMessage.textContent = errorText(e);
    } finally {
      commitBtn.disabled = proposeBtn.disabled = false;
    }
  }

  function addRole(e) {
    e.preventDefault();
    const roleName = roleSelect.value;
    if (!roleName) {
      addMessage.textContent = 'Every role is already in this deployment.';
      return;
    }
    addMessage.textContent = '';
    added = [...added.filter((r) => r !== roleName), roleName];
    sessionStorage.setItem(addedKey(name), JSON.stringify(added));
    render();
  }

  const reload = throttle(load, 400);
  const renderSoon = throttle(render, 100);
  const off = live.subscribe((fact) => {
    if (!dep) return;
    if (fact.fact === 'noderole_state_changed') {
      const nr = noderoles.find((x) => x.id === fact.noderole_id);
      if (nr) {
        nr.state = fact.state;
        renderSoon();
      }
      if (nr || added.includes(fact.role) || noderoles.some((x) => x.role === fact.role)) reload();
    } else if (fact.fact === 'run_finished') {
      if (noderoles.some((x) => x.id === fact.noderole_id)) reload();
    } else if (fact.fact === 'poll' || fact.fact === 'resync') {
      reload();
    }
    palette.onFact(fact);
  });

  load();
  return () => {
    gone = true;
    off();
    reload.cancel();
    renderSoon.cancel();
    palette.stop();
  };
}

/** The nodes to drag from: filtered by name, a page at a time. */
function nodePalette() {
  let filter = '';
  let page = 0;
  let seq = 0;
  const list = h('ul', { class: 'palette-list' });
  const names = h('datalist', { id: 'kiln-node-names' });
  const message = h('p', { class: 'error', role: 'alert' });
  const prev = h('button', { type: 'button', class: 'quiet', onclick: () => { page -= 1; load(); } }, '←');
  const next = h('button', { type: 'button', class: 'quiet', onclick: () => { page += 1; load(); } }, '→');
  const where = h('span', { class: 'muted' });
  const input = h('input', {
    type: 'search',
    placeholder: 'Filter nodes',
    'aria-label': 'Filter nodes to drag',
    oninput: debounce(() => {
      filter = input.value.trim();
      page = 0;
      load();
    }, 250),
  });
  const el = h(
    'aside',
    { class: 'palette', 'aria-label': 'Nodes' },
    h('h2', {}, 'Nodes'),
    h('p', { class: 'muted' }, 'Drag a node onto a role to bind it.'),
    input,
    list,
    h('div', { class: 'pager small' }, prev, where, next),
    message,
    names,
  );

  async function load() {
    const mine = ++seq;
    let nodes;
    try {
      nodes = await get('/nodes', { name: filter, limit: PALETTE_PAGE + 1, offset: page * PALETTE_PAGE });
    } catch (e) {
      if (mine === seq && !(e instanceof ApiError && e.status === 401)) message.textContent = errorText(e);
      return;
    }
    if (mine !== seq) return;
    message.textContent = '';
    const shown = nodes.slice(0, PALETTE_PAGE);
    list.replaceChildren(
      ...shown.map((n) =>
        h(
          'li',
          {
            class: 'node-chip',
            'data-node': n.name,
            draggable: 'true',
            tabindex: '0',
            title: `${n.name} — boots ${n.bootenv}`,
            ondragstart: dragNode,
          },
          h('span', { class: 'node-name' }, n.name),
          n.admin ? h('span', { class: 'tag' }, 'admin') : null,
          flag(n.alive, 'alive', 'not alive'),
        ),
      ),
    );
    if (!shown.length) list.appendChild(h('li', { class: 'muted' }, filter ? 'No match.' : 'No nodes.'));
    replace(names, shown.map((n) => h('option', { value: n.name })));
    prev.disabled = page === 0;
    next.disabled = nodes.length <= PALETTE_PAGE;
    where.textContent = shown.length ? `${page * PALETTE_PAGE + 1}–${page * PALETTE_PAGE + shown.length}` : '';
  }

  const reload = throttle(load, 1000);
  load();
  return {
    el,
    onFact(fact) {
      if (['node_alive_changed', 'node_created', 'poll', 'resync'].includes(fact.fact)) reload();
    },
    stop() {
      reload.cancel();
      seq++;
    },
  };
}
