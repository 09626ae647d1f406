// Building DOM without markup strings: every text goes in as a text node,
// so nothing from the API is ever parsed as HTML.

/**
 * Creates an element. `attrs`: `class`, `data-*`, `aria-*` and other
 * attributes as strings; `on<event>` as listeners; booleans set or drop the
 * attribute; null and undefined are skipped. Children: nodes, strings,
 * numbers, arrays of them; null and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value') {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to another view, handled by the router. */
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

const STATE_LABELS = {
  proposed: 'proposed',
  todo: 'to do',
  transition: 'transition',
  active: 'active',
  error: 'error',
  blocked: 'blocked',
  committed: 'committed',
  queued: 'queued',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** A state as colour and words (never colour alone). */
export function badge(state) {
  const label = STATE_LABELS[state] ?? state;
  return h('span', { class: `badge state-${state}`, title: `state: ${state}` }, label);
}

/** Yes/no flags such as alive and available. */
export function flag(on, yes, no) {
  return h('span', { class: on ? 'flag on' : 'flag off' }, on ? yes : no);
}

/** A short local time, with the full RFC 3339 time as a tooltip. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleTimeString());
}

/** An API error (or any error) as a message next to what caused it. */
export function errorText(err) {
  if (!err) return '';
  const where = err.field ? ` (${err.field})` : '';
  const status = err.status ? `${err.status} ` : '';
  return `${status}${err.message}${where}`;
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  const run = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

/** Runs `worker` over `items`, at most `limit` at a time. */
export async function eachLimited(items, limit, worker) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await worker(item);
    }
  });
  await Promise.all(lanes);
}

/**
 * Makes `parent`'s children exactly `desired` (nodes), touching the DOM
 * only if they differ, so a focused field inside keeps its focus.
 */
export function sync(parent, desired) {
  const now = parent.childNodes;
  if (now.length === desired.length && desired.every((node, i) => now[i] === node)) return;
  parent.replaceChildren(...desired);
}

/**
 * Calls `fn` at most once per `ms`, after the latest call, and never while
 * its previous call (a promise) is still running: a steady stream of facts
 * refreshes a view every `ms` without starving it or piling up requests.
 */
export function throttle(fn, ms) {
  let timer = null;
  let busy = false;
  let again = false;
  const fire = async () => {
    timer = null;
    busy = true;
    try {
      await fn();
    } catch (e) {
      console.error(e);
    } finally {
      busy = false;
      if (again) {
        again = false;
        run();
      }
    }
  };
  const run = () => {
    if (busy) again = true;
    else if (!timer) timer = setTimeout(fire, ms);
  };
  run.cancel = () => {
    clearTimeout(timer);
    timer = null;
    again = false;
  };
  return run;
}
