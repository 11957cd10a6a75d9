// The API client: every call carries the session's token (X-Consul-Token,
// never in a URL); blocking queries run as long-poll loops.

const TOKEN_KEY = 'weft.token';

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  dev: false,     // the server runs --dev: no authentication
  self: null,     // GET /v1/acl/token/self's answer once logged in
};

export function setToken(token, self) {
  session.token = token;
  session.self = self;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || '';
  }
}

// Answers {data, index, headers}; throws ApiError with the server's
// message ({"error": ...}) on a non-2xx status.
export async function api(method, path, body, { signal } = {}) {
  const headers = {};
  if (session.token) headers['X-Consul-Token'] = session.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, signal, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text */ }
  if (!res.ok) {
    const msg = (data && typeof data === 'object' && data.error) || text || res.statusText;
    throw new ApiError(res.status, msg, data && typeof data === 'object' ? data.field : '');
  }
  return { data, index: Number(res.headers.get('X-Consul-Index') || 0), headers: res.headers };
}

export function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else if (v !== undefined && v !== null && v !== '') u.append(k, v);
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

// A blocking query loop on path: onData(data, reply) for the first answer
// and each change; onError(err) on failures, retried with backoff (0.5 s
// doubling to 15 s). Returns a function that stops the loop and aborts the
// request in flight.
export function watch(path, onData, onError) {
  const ctrl = new AbortController();
  let index = 0, delay = 0;
  (async () => {
    while (!ctrl.signal.aborted) {
      const sep = path.includes('?') ? '&' : '?';
      const url = index ? `${path}${sep}index=${index}&wait=60s` : path;
      try {
        const r = await api('GET', url, undefined, { signal: ctrl.signal });
        if (ctrl.signal.aborted) return;
        delay = 0;
        const unchanged = index !== 0 && r.index === index;
        // Consul's rules: an index that goes backwards restarts the loop.
        index = r.index < index ? 0 : r.index;
        if (!unchanged) onData(r.data, r);
      } catch (e) {
        if (ctrl.signal.aborted) return;
        if (onError) onError(e);
        delay = Math.min(delay ? delay * 2 : 500, 15000);
        index = 0;
        await sleep(delay, ctrl.signal);
      }
    }
  })();
  return () => ctrl.abort();
}
