// Live updates: the API's event stream (`GET /api/v2/events`), read with
// fetch so the token travels in the Authorization header, never in a URL.
// While the stream is down, views are asked to re-read every few seconds
// ("poll"), and the stream is tried again. After any gap, views get a
// "resync" so they re-read what they show.
//
// The API sends each fact as `{type: "NoderoleStateChanged", ..., from, to}`;
// subscribers receive it as `{fact: "noderole_state_changed", ..., state}`
// (`state` is the state a noderole moved to).

import { authHeaders } from './api.js';

const POLL_MS = 2000;
const RETRY_MS = 8000;

const listeners = new Set();
let controller = null;
let pollTimer = null;
let retryTimer = null;
let running = false;
let statusEl = null;

/** Calls `fn(fact)` for every fact; returns the unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(fact) {
  for (const fn of [...listeners]) {
    try {
      fn(fact);
    } catch (e) {
      console.error('live listener failed', e);
    }
  }
}

function show(mode) {
  if (!statusEl) return;
  statusEl.dataset.mode = mode;
  statusEl.textContent = { live: 'live', polling: 'polling', offline: 'offline' }[mode];
  statusEl.title = {
    live: 'Changes arrive as they happen (event stream)',
    polling: 'Event stream unavailable: re-reading every few seconds',
    offline: 'Not connected',
  }[mode];
}

function startPolling() {
  show('polling');
  if (!pollTimer) pollTimer = setInterval(() => emit({ fact: 'poll' }), POLL_MS);
  if (!retryTimer) {
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (running) connect();
    }, RETRY_MS);
  }
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function handleChunk(chunk) {
  const data = chunk
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trimStart())
    .join('\n');
  if (!data) return;
  let parsed;
  try {
    parsed = JSON.parse(data);
  } catch {
    return; // Not JSON: nothing a view can use.
  }
  emit(normalise(parsed));
}

/** `{type: "NodeAliveChanged", ...}` -> `{fact: "node_alive_changed", ...}`. */
export function normalise(fact) {
  // The stream skipped facts this page read too slowly: re-read everything.
  if (fact && typeof fact.skipped === 'number') return { fact: 'resync' };
  if (!fact || typeof fact.type !== 'string') return fact;
  const name = fact.type.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  const out = { ...fact, fact: name };
  if (name === 'noderole_state_changed') out.state = fact.to;
  return out;
}

async function connect() {
  controller?.abort();
  const mine = new AbortController();
  controller = mine;
  try {
    const res = await fetch('/api/v2/events', {
      headers: { Accept: 'text/event-stream', ...authHeaders() },
      cache: 'no-store',
      signal: mine.signal,
    });
    if (!res.ok || !res.body) throw new Error(`event stream answered ${res.status}`);
    stopPolling();
    show('live');
    emit({ fact: 'resync' });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        handleChunk(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    throw new Error('event stream closed');
  } catch (e) {
    if (mine.signal.aborted || !running) return;
    console.info('kiln: live updates by polling:', e.message);
    startPolling();
  }
}

/** Starts listening; `el` shows whether the page is live or polling. */
export function start(el) {
  statusEl = el;
  if (running) return;
  running = true;
  connect();
}

/** Stops the stream and polling (e.g. when the token is forgotten). */
export function stop() {
  running = false;
  controller?.abort();
  controller = null;
  stopPolling();
  clearTimeout(retryTimer);
  retryTimer = null;
  show('offline');
}
