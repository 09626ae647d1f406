// /ui/nodes: every node, a page at a time (so 10,000 nodes stay fast),
// filtered by name, with a summary of its noderoles' states and of the
// hardware its discovery image reported (the details open on a click).

import { get, put } from '../api.js';
import { badge, debounce, eachLimited, errorText, flag, h, replace, throttle } from '../dom.js';
import * as live from '../live.js';
import { setQuery } from '../router.js';

const PAGE = 50;
const STATES = ['error', 'blocked', 'transition', 'todo', 'proposed', 'active'];

/** Drag source for binding (the deployment view's role zones accept it). */
export function dragNode(e) {
  const name = e.currentTarget.dataset.node;
  e.dataTransfer.setData('text/x-kiln-node', name);
  e.dataTransfer.setData('text/plain', name);
  e.dataTransfer.effectAllowed = 'copy';
}

/** A node's noderole states as counted badges ("2 active", "1 error"). */
export function summary(noderoles) {
  if (!noderoles.length) return h('span', { class: 'muted' }, 'no roles');
  const counts = {};
  for (const nr of noderoles) counts[nr.state] = (counts[nr.state] ?? 0) + 1;
  return h(
    'span',
    { class: 'summary' },
    STATES.filter((s) => counts[s]).map((s) => h('span', { class: 'count' }, String(counts[s]), ' ', badge(s))),
  );
}

function addresses(node) {
  if (!node.interfaces?.length) return h('span', { class: 'muted' }, 'none');
  return node.interfaces.map((i) => h('div', { class: 'addr' }, i.ip ?? 'no ip', ' ', h('span', { class: 'muted mono' }, i.mac)));
}

/**
 * A node's power as its BMC last reported it, with the buttons that change
 * it; a BMC's refusal is shown in the cell, not as a page error.
 */
function power(node, refresh) {
  if (!node.bmc || node.bmc.driver === 'none') return h('span', { class: 'muted' }, 'no BMC');
  const p = node.bmc.power;
  const note = h('span', { class: 'error', role: 'status' }, p.error ?? '');
  const press = (action, nextBoot) => async (e) => {
    const buttons = e.currentTarget.parentElement.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    note.textContent = '';
    try {
      await put(`/nodes/${encodeURIComponent(node.name)}/power`, { action, next_boot: nextBoot ?? null });
      await refresh();
    } catch (err) {
      note.textContent = errorText(err);
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  const button = (label, action, nextBoot) =>
    h('button', { type: 'button', class: 'secondary small', 'data-power': action, onclick: press(action, nextBoot) }, label);
  return h(
    'div',
    { class: 'power', 'data-power-state': p.state },
    h('span', { class: p.state === 'on' ? 'flag on' : 'flag off', title: p.checked_at ? `checked ${p.checked_at}` : 'not checked yet' }, p.state),
    h('div', { class: 'buttons' }, button('On', 'on'), button('Off', 'off'), button('PXE cycle', 'cycle', 'pxe')),
    note,
  );
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** The node's inventory: a one-line summary, its details under it. */
export function hardware(node) {
  const inv = node.inventory;
  if (!inv) return h('span', { class: 'muted' }, 'not reported');
  const line = `${inv.cpus.count} CPU · ${bytes(inv.memory_mib * 1024 * 1024)} · ${inv.disks.length} disk${inv.disks.length === 1 ? '' : 's'}`;
  const item = (label, ...value) => h('li', {}, h('span', { class: 'muted' }, `${label} `), ...value);
  return h(
    'details',
    { class: 'inventory' },
    h('summary', {}, line),
    h(
      'ul',
      {},
      item('CPU', `${inv.cpus.count} × ${inv.cpus.model || 'unknown model'}`),
      item('Memory', `${inv.memory_mib} MiB`),
      inv.disks.map((d) =>
        item('Disk', h('span', { class: 'mono' }, d.name), ` ${bytes(d.size_bytes)} ${d.model} ${d.serial ? `(${d.serial})` : ''} ${d.rotational ? 'rotational' : 'solid state'}`),
      ),
      inv.nics.map((n) =>
        item(
          'NIC',
          h('span', { class: 'mono' }, `${n.name} ${n.mac}`),
          ` ${n.driver}${n.speed_mbps === null ? '' : ` ${n.speed_mbps} Mb/s`}`,
          n.lldp ? ` → ${n.lldp.chassis} ${n.lldp.port}` : '',
        ),
      ),
      item('System', `${inv.system.vendor} ${inv.system.product} ${inv.system.serial}`),
      inv.bmc ? item('BMC', h('span', { class: 'mono' }, inv.bmc.address)) : null,
      item('Reported', inv.received_at),
    ),
  );
}

export default function nodesView(root, _params, q) {
  let filter = q.q ?? '';
  let page = Math.max(0, Number.parseInt(q.page ?? '1', 10) - 1) || 0;
  let shown = [];
  const rows = new Map();
  let loadSeq = 0;

  const input = h('input', {
    type: 'search',
    placeholder: 'Filter by name',
    'aria-label': 'Filter nodes by name',
    value: filter,
    oninput: debounce(() => {
      filter = input.value.trim();
      page = 0;
      load();
    }, 250),
  });
  const pager = h('div', { class: 'pager' });
  const message = h('p', { class: 'error', role: 'alert' });
  const tbody = h('tbody');
  replace(
    root,
    h('div', { class: 'view-head' }, h('h1', {}, 'Nodes'), input),
    message,
    h(
      'table',
      { class: 'list nodes' },
      h(
        'thead',
        {},
        h('tr', {}, ['Name', 'Addresses', 'Hardware', 'Boots', 'Alive', 'Available', 'Power', 'Noderoles'].map((t) => h('th', {}, t))),
      ),
      tbody,
    ),
    pager,
  );

  function row(node) {
    const states = h('td', {}, h('span', { class: 'muted' }, '…'));
    const tr = h(
      'tr',
      { 'data-node': node.name, draggable: 'true', ondragstart: dragNode },
      h('td', { class: 'name' }, node.name, node.admin ? h('span', { class: 'tag' }, 'admin') : null),
      h('td', {}, addresses(node)),
      h('td', {}, hardware(node)),
      h('td', { class: 'mono' }, node.bootenv),
      h('td', {}, flag(node.alive, 'alive', 'not alive')),
      h('td', {}, flag(node.available, 'available', 'held')),
      h('td', {}, power(node, () => refreshOne(node.name))),
      states,
    );
    return { tr, states };
  }

  async function loadSummary(name) {
    const r = rows.get(name);
    if (!r) return;
    try {
      const nrs = await get('/noderoles', { node: name, limit: 1000 });
      replace(r.states, summary(nrs));
    } catch (e) {
      replace(r.states, h('span', { class: 'error' }, errorText(e)));
    }
  }

  async function load() {
    const mine = ++loadSeq;
    setQuery({ q: filter, page: page ? page + 1 : '' });
    let list;
    try {
      list = await get('/nodes', { name: filter, limit: PAGE + 1, offset: page * PAGE });
    } catch (e) {
      if (mine === loadSeq) message.textContent = errorText(e);
      return;
    }
    if (mine !== loadSeq) return;
    message.textContent = '';
    const more = list.length > PAGE;
    shown = list.slice(0, PAGE);
    rows.clear();
    tbody.replaceChildren();
    for (const node of shown) {
      const r = row(node);
      rows.set(node.name, r);
      tbody.appendChild(r.tr);
    }
    if (!shown.length) {
      tbody.appendChild(h('tr', {}, h('td', { colspan: '7', class: 'muted' }, filter ? `No node name contains “${filter}”.` : 'No nodes yet.')));
    }
    const first = page * PAGE + 1;
    replace(
      pager,
      h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: () => { page -= 1; load(); } }, '← Previous'),
      h('span', {}, shown.length ? `Nodes ${first}–${first + shown.length - 1}` : ''),
      h('button', { type: 'button', class: 'secondary', disabled: !more, onclick: () => { page += 1; load(); } }, 'Next →'),
    );
    await eachLimited(shown.map((n) => n.name), 6, loadSummary);
  }

  async function refreshOne(name) {
    touched.add(name);
    await refreshTouched();
  }

  // Facts name their node: re-read only the rows on this page they touch.
  const touched = new Set();
  const refreshTouched = throttle(async () => {
    const names = [...touched];
    touched.clear();
    await eachLimited(names, 6, async (name) => {
      const r = rows.get(name);
      if (!r) return;
      try {
        const node = await get(`/nodes/${encodeURIComponent(name)}`);
        const fresh = row(node);
        r.tr.replaceWith(fresh.tr);
        rows.set(name, fresh);
        await loadSummary(name);
      } catch {
        // The next full load shows it.
      }
    });
  }, 500);
  const reload = throttle(load, 500);
  const off = live.subscribe((fact) => {
    if (fact.fact === 'poll' || fact.fact === 'resync') reload();
    else if (fact.fact === 'node_created') {
      if (shown.length < PAGE) reload();
    } else if (fact.node && rows.has(fact.node)) {
      touched.add(fact.node);
      refreshTouched();
    }
  });

  load();
  return () => {
    off();
    reload.cancel();
    refreshTouched.cancel();
    loadSeq++;
  };
}
