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
  // where: the error's {field, line, column} in the request body, as far
  // as the server gives them (line and column are 1-based, 0 when absent).
  constructor(status, message, where = {}) {
    super(message);
    this.status = status;
    this.field = where.field || '';
    this.line = where.line || 0;
    this.column = where.column || 0;
  }
}

// Answers {data, index, headers}; throws ApiError with the server's
// message ({"error": ...}) on a non-2xx status. A body is sent as JSON,
// unless contentType is given and body is a string (sent as it is); accept
// sets the Accept header. A reply that is not JSON is data as text.
export async function api(method, path, body, { signal, accept, contentType } = {}) {
  const headers = {};
  const raw = typeof body === 'string' && contentType;
  if (session.token) headers['X-Consul-Token'] = session.token;
  if (accept) headers.Accept = accept;
  if (body !== undefined) headers['Content-Type'] = raw ? contentType : 'application/json';
  const res = await fetch(path, {
    method, headers, signal, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let data = text;
  if (!/yaml/.test(res.headers.get('Content-Type') || '')) {
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text */ }
  }
  if (!res.ok) {
    const obj = data && typeof data === 'object' ? data : {};
    throw new ApiError(res.status, obj.error || text || res.statusText, obj);
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
// request in flight. opts.wait is the blocking wait (60s by default);
// opts.always calls onData after every answer, changed or not (for data
// that also changes with time, as telemetry windows do).
export function watch(path, onData, onError, opts = {}) {
  const wait = opts.wait || '60s';
  const ctrl = new AbortController();
  let index = 0, delay = 0;
  (async () => {
    while (!ctrl.signal.aborted) {
      const sep = path.includes('?') ? '&' : '?';
      const url = index ? `${path}${sep}index=${index}&wait=${wait}` : path;
      try {
        const r = await api('GET', url, undefined, { signal: ctrl.signal });
        if (ctrl.signal.aborted) return;
        delay = 0;
        const unchanged = index !== 0 && r.index === index;
        // Consul's rules: an index that goes backwards restarts the loop.
        index = r.index < index ? 0 : r.index;
        if (!unchanged || opts.always) onData(r.data, r);
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
