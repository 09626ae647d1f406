// The admin API client: the token from sessionStorage, JSON in and out,
// and errors as ApiError carrying the API's code, message and field.

const TOKEN_KEY = 'kiln.admin_token';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

let unauthorized = () => {};

/** What to do when the API refuses the token (ask for it again). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers every API call carries. */
export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** A query string from an object, leaving out empty values. */
export function query(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Calls the API; resolves to `{status, body}` for 2xx, rejects with
 * ApiError otherwise (network failures as status 0).
 */
export async function call(method, path, body) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v2${path}`, init);
  } catch (e) {
    throw new ApiError(0, 'network', `kiln did not answer: ${e.message}`);
  }
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const e = parsed?.error;
    const err = new ApiError(res.status, e?.code ?? 'http', e?.message ?? (text || res.statusText), e?.field);
    if (res.status === 401 && token()) unauthorized(err);
    throw err;
  }
  return { status: res.status, body: parsed };
}

export const get = async (path, params) => (await call('GET', path + query(params))).body;
export const post = async (path, body) => (await call('POST', path, body)).body;
export const put = async (path, body) => (await call('PUT', path, body)).body;

/** A path segment (names may hold dots; ids are numbers). */
export const seg = (s) => encodeURIComponent(String(s));

/** Why todo noderoles wait, as `/anneal` counts them, and how to say it. */
const WAIT_REASONS = [
  ['node_not_alive', 'node not alive'],
  ['node_not_available', 'node not available'],
  ['parents_not_active', 'parents not active'],
  ['deployment_not_committed', 'deployment not committed'],
];

/** The reasons in an `/anneal` answer that hold noderoles back: [label, count]. */
export const waitReasons = (anneal) =>
  WAIT_REASONS.map(([key, label]) => [label, anneal?.waiting?.[key] ?? 0]).filter(([, n]) => n > 0);
