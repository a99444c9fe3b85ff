// The public API (/api/v1, see API.md) as the console uses it: the signed-in user's bearer token
// (kept in sessionStorage: it dies with the tab), JSON in and out, errors as ApiError with the
// contract's error code.
const BASE = '/api/v1';
const TOKEN_KEY = 'sharp-eyes.console.session';

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    /** The server's human message, shown beside our localized text. */
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** The stored sign-in: {token, expiresAt, user}, or null. */
export function currentSession() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? 'null');
  } catch {
    return null;
  }
}

export function storeSession(session) {
  if (session) sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthenticated = () => undefined;
/** Called when the API says the token is no longer good (expired, user disabled, broker restarted). */
export const whenUnauthenticated = (handler) => (onUnauthenticated = handler);

function authHeaders() {
  const session = currentSession();
  return session ? { authorization: `Bearer ${session.token}` } : {};
}

/** Query string from an object; arrays repeat the parameter (API.md: OR within a field). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of [].concat(value)) if (item !== undefined && item !== null && item !== '') search.append(name, String(item));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** `raw: true` answers the response body as the text the broker sent (a signed head kept byte for byte). */
export async function api(method, path, { body, headers = {}, signal, raw = false } = {}) {
  let response;
  try {
    response = await fetch(`${BASE}${path}`, {
      method,
      headers: { ...authHeaders(), ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'NETWORK');
  }
  if (response.status === 204) return null;
  const text = await response.text().catch(() => '');
  let payload = null;
  try {
    payload = JSON.parse(text);
  } catch {
    payload = null;
  }
  if (response.ok) return raw ? text : payload;
  const retryAfter = Number(response.headers.get('retry-after')) || undefined;
  const error = new ApiError(response.status, payload?.error?.code ?? `HTTP_${response.status}`, payload?.error?.message, retryAfter);
  if (response.status === 401 && path !== '/auth/login') onUnauthenticated(error);
  return Promise.reject(error);
}

/** A release that survives the page going away (tab closed, reload): fetch keepalive. */
export function releaseOnUnload(sessionId) {
  fetch(`${BASE}/streams/${encodeURIComponent(sessionId)}`, { method: 'DELETE', headers: authHeaders(), keepalive: true }).catch(() => undefined);
}

/** Idempotency keys without crypto.randomUUID, which plain-http pages (an agency LAN) do not have. */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
