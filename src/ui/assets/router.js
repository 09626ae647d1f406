// Client-side routing over the History API: every view has its own
// address under /ui/, and links to it work without reloading the page.

const routes = [];
let root = null;
let unmount = null;
let seq = 0;

/** Registers a view for a pattern such as `/ui/noderoles/:id`. */
export function route(pattern, view) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  routes.push({ re: new RegExp(`^${source}/?$`), names, view });
}

/** Goes to `url` (pushes history unless `replace`). */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

/** Changes the address's query string without re-rendering the view. */
export function setQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) q.set(k, String(v));
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
}

function render() {
  if (unmount) {
    try {
      unmount();
    } catch (e) {
      console.error(e);
    }
    unmount = null;
  }
  const path = location.pathname === '/' || location.pathname === '/ui/' ? '/ui/nodes' : location.pathname;
  if (path !== location.pathname) history.replaceState(null, '', path + location.search);
  root.replaceChildren();
  const mine = ++seq;
  for (const { re, names, view } of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const params = {};
    names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
    const q = Object.fromEntries(new URLSearchParams(location.search));
    markNav(path);
    const cleanup = view(root, params, q);
    if (mine === seq) unmount = cleanup ?? null;
    root.focus({ preventScroll: true });
    return;
  }
  markNav(path);
  const h1 = document.createElement('h1');
  h1.textContent = 'Nothing here';
  const p = document.createElement('p');
  p.textContent = `kiln has no view at ${path}.`;
  root.append(h1, p);
}

function markNav(path) {
  for (const a of document.querySelectorAll('a[data-nav]')) {
    const here = path.startsWith(`/ui/${a.dataset.nav}`);
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Starts routing into `el`: renders the current address and follows links. */
export function start(el) {
  root = el;
  window.addEventListener('popstate', render);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest('a[href]');
    if (!a || a.target || a.origin !== location.origin || !a.pathname.startsWith('/ui/')) return;
    e.preventDefault();
    if (a.pathname + a.search !== location.pathname + location.search) navigate(a.pathname + a.search);
  });
  render();
}
