// The REST API on this page's own origin, with the session's token.
//
// The token lives in sessionStorage only: it is gone when the tab closes, and no other
// site can read it. Every failed call throws an ApiError carrying the server's own
// `code` and `message`, which the pages show as they are.

const TOKEN_KEY = 'shoal.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// Path segments are escaped once, here.
export function seg(s) {
  return encodeURIComponent(String(s));
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function headers(extra) {
  const h = { ...(extra || {}) };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function fail(r) {
  let code = `http-${r.status}`;
  let message = r.statusText || `the server answered ${r.status}`;
  const text = await r.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && body.message) {
      code = body.code || code;
      message = body.message;
    }
  } catch {
    if (text) message = text.slice(0, 2000);
  }
  if (r.status === 401 && onUnauthenticated) onUnauthenticated(message);
  throw new ApiError(r.status, code, message);
}

let onUnauthenticated = null;
/// Called when the server refuses the token (expired, revoked).
export function whenUnauthenticated(f) {
  onUnauthenticated = f;
}

/// A call answering JSON (or nothing, on 204).
export async function api(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    if (typeof body === 'string') {
      init.body = body;
      init.headers['Content-Type'] ||= 'application/yaml';
    } else if (body instanceof FormData) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  let r;
  try {
    r = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the server does not answer: ${e.message}`);
  }
  if (!r.ok) await fail(r);
  if (r.status === 204) return null;
  const type = r.headers.get('content-type') || '';
  return type.includes('json') ? r.json() : r.text();
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/// One page of a task's log: its text and where the next page starts.
export async function logPage(id, offset, limit) {
  const r = await fetch(`/api/v1/tasks/${seg(id)}/log${query({ offset, limit })}`, {
    headers: headers(),
  });
  if (!r.ok) await fail(r);
  const text = await r.text();
  const next = Number(r.headers.get('x-log-next-offset'));
  return { text, next: Number.isFinite(next) ? next : offset + new Blob([text]).size };
}

/// Read a streaming text answer piece by piece until it ends or `signal` aborts.
async function streamText(path, signal, onText, onOpen) {
  const r = await fetch(`/api/v1${path}`, { headers: headers(), signal });
  if (!r.ok) await fail(r);
  if (onOpen) onOpen();
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
}

/// Follow a running task's log from `offset`; resolves when the task has finished.
export function followLog(id, offset, signal, onText) {
  return streamText(`/tasks/${seg(id)}/log${query({ offset, follow: true })}`, signal, onText);
}

/// Live changes from `GET /api/v1/events` (server-sent events). EventSource cannot send
/// a bearer token, so the stream is read with fetch. Each time the stream opens (first,
/// and after a drop, with a growing pause of 1 s to 30 s) the caller gets
/// `{kind: 'lagged'}` and refetches what it shows; a refusal (4xx) ends it. `onState(live, error)` says
/// whether updates are flowing. Returns a function that stops it.
export function subscribe(params, onEvent, onState) {
  const ctrl = new AbortController();
  const state = onState || (() => {});
  const run = async () => {
    let pause = 1000;
    while (!ctrl.signal.aborted) {
      let buffer = '';
      const open = () => {
        pause = 1000;
        state(true, null);
        // Changes made before the stream opened (the page's first load raced it) or
        // while it was down are not replayed: the caller refetches once it is open.
        onEvent({ kind: 'lagged', missed: 0 });
      };
      try {
        await streamText(`/events${query(params)}`, ctrl.signal, (text) => {
          buffer += text.replace(/\r\n/g, '\n');
          // Bounded: a peer that never sends a blank line cannot grow this forever.
          if (buffer.length > 1 << 20) buffer = '';
          let at;
          while ((at = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, at);
            buffer = buffer.slice(at + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
              .join('\n');
            if (!data) continue;
            try {
              onEvent(JSON.parse(data));
            } catch {
              /* a line we do not know */
            }
          }
        }, open);
        if (ctrl.signal.aborted) return;
        state(false, null);
      } catch (e) {
        if (ctrl.signal.aborted) return;
        state(false, e);
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) return;
      }
      await new Promise((res) => setTimeout(res, pause));
      pause = Math.min(pause * 2, 30_000);
    }
  };
  run();
  return () => ctrl.abort();
}
