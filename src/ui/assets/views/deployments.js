// /ui/deployments: the deployment tree, each with its roles and the nodes
// bound to them, and a form to create a deployment.

import { get, post } from '../api.js';
import { badge, eachLimited, errorText, h, link, replace, throttle } from '../dom.js';
import * as live from '../live.js';
import { navigate } from '../router.js';

/** Nodes listed per role before "and N more". */
const SHOW_NODES = 12;

export default function deploymentsView(root) {
  let gone = false;
  const tree = h('div', { class: 'tree' }, h('p', { class: 'muted' }, 'Loading…'));
  const message = h('p', { class: 'error', role: 'alert' });
  const form = createForm();
  replace(root, h('div', { class: 'view-head' }, h('h1', {}, 'Deployments')), form.el, message, tree);

  async function load() {
    let deployments;
    const noderoles = new Map();
    try {
      deployments = await get('/deployments', { limit: 1000 });
      await eachLimited(deployments, 4, async (d) => {
        noderoles.set(d.id, await get('/noderoles', { deployment: d.name, limit: 1000 }));
      });
    } catch (e) {
      if (!gone) message.textContent = errorText(e);
      return;
    }
    if (gone) return;
    message.textContent = '';
    form.setParents(deployments);
    const children = new Map();
    for (const d of deployments) {
      const key = d.parent_id ?? 0;
      if (!children.has(key)) children.set(key, []);
      children.get(key).push(d);
    }
    const ids = new Set(deployments.map((d) => d.id));
    const roots = deployments.filter((d) => d.parent_id == null || !ids.has(d.parent_id));
    const branch = (list) =>
      h('ul', { class: 'branch' }, list.map((d) => h('li', {}, item(d, noderoles.get(d.id) ?? []), children.has(d.id) ? branch(children.get(d.id)) : null)));
    replace(tree, roots.length ? branch(roots) : h('p', { class: 'muted' }, 'No deployments.'));
  }

  const reload = throttle(load, 1000);
  const off = live.subscribe((fact) => {
    if (fact.fact !== 'node_created') reload();
  });
  load();
  return () => {
    gone = true;
    off();
    reload.cancel();
  };
}

function item(d, noderoles) {
  const byRole = new Map();
  for (const nr of noderoles) {
    if (!byRole.has(nr.role)) byRole.set(nr.role, []);
    byRole.get(nr.role).push(nr);
  }
  const roles = [...byRole.keys()].sort();
  return h(
    'div',
    { class: 'deployment', 'data-deployment': d.name },
    h('div', { class: 'row' }, link(`/ui/deployments/${encodeURIComponent(d.name)}`, h('strong', {}, d.name)), badge(d.state), d.description ? h('span', { class: 'muted' }, d.description) : null),
    roles.length
      ? h(
          'ul',
          { class: 'roles-brief' },
          roles.map((role) => {
            const nrs = byRole.get(role).sort((a, b) => a.node.localeCompare(b.node));
            const more = nrs.length - SHOW_NODES;
            return h(
              'li',
              {},
              h('span', { class: 'role-name' }, role),
              h(
                'span',
                { class: 'bound' },
                nrs.slice(0, SHOW_NODES).map((nr) =>
                  h(
                    'a',
                    { class: 'chip', href: `/ui/noderoles/${nr.id}`, 'data-noderole': String(nr.id), 'data-state': nr.state, title: `${nr.node}: ${nr.state}` },
                    nr.node,
                    ' ',
                    badge(nr.state),
                  ),
                ),
                more > 0 ? link(`/ui/deployments/${encodeURIComponent(d.name)}`, `and ${more} more`) : null,
              ),
            );
          }),
        )
      : h('p', { class: 'muted' }, 'No roles bound.'),
  );
}

function createForm() {
  const name = h('input', { name: 'name', required: true, placeholder: 'ubuntu', 'aria-label': 'New deployment name', 'data-field': 'name' });
  const parent = h('select', { name: 'parent', 'aria-label': 'Parent deployment' });
  const description = h('input', { name: 'description', placeholder: 'What it is for (optional)', 'aria-label': 'Description' });
  const message = h('p', { class: 'error', role: 'alert' });
  const el = h(
    'form',
    { class: 'create card', 'data-form': 'create-deployment', onsubmit: submit },
    h('h2', {}, 'New deployment'),
    h('div', { class: 'fields' }, h('label', {}, 'Name ', name), h('label', {}, 'Parent ', parent), h('label', { class: 'wide' }, 'Description ', description), h('button', { type: 'submit' }, 'Create')),
    message,
  );

  async function submit(e) {
    e.preventDefault();
    message.textContent = '';
    const wanted = name.value.trim();
    if (!wanted) {
      message.textContent = 'A deployment needs a name.';
      return;
    }
    try {
      const d = await post('/deployments', { name: wanted, parent: parent.value || undefined, description: description.value.trim() });
      navigate(`/ui/deployments/${encodeURIComponent(d.name)}`);
    } catch (err) {
      message.textContent = errorText(err);
      (err.field === 'parent' ? parent : name).focus();
    }
  }

  return {
    el,
    setParents(deployments) {
      const keep = parent.value || 'system';
      const names = deployments.map((d) => d.name);
      if (names.join('\n') === [...parent.options].map((o) => o.value).join('\n')) return;
      replace(parent, names.map((n) => h('option', { value: n, selected: n === keep }, n)));
    },
  };
}
