// Shared vocabulary of the pages: states and their colours, times, levels.

/// DolphinScheduler's colours: submitted grey, running blue, success green, failure
/// black, stop red, killed dark red, paused teal; each dark enough for white text to
/// read at WCAG AA contrast (4.5:1).
export const STATE_COLOURS = {
  submitted: '#8c8c8c',
  delayed: '#8c8c8c',
  dispatching: '#8c8c8c',
  dispatched: '#8c8c8c',
  running: '#1565c0',
  retrying: '#1565c0',
  'ready-pause': '#00796b',
  'ready-stop': '#d32f2f',
  succeeded: '#2e7d32',
  'forced-success': '#2e7d32',
  failed: '#000000',
  stopped: '#d32f2f',
  killed: '#8b0000',
  paused: '#00796b',
  skipped: '#c8c8c8',
  unreachable: '#b26a00',
  queued: '#8c8c8c',
  // Not run states: definitions, schedules, plugins, clusters and nodes.
  online: '#2e7d32',
  active: '#2e7d32',
  healthy: '#2e7d32',
  offline: '#d9dde3',
  degraded: '#f0b400',
  'failover-pending': '#b26a00',
};

export const WORKFLOW_STATES = [
  'submitted',
  'running',
  'ready-pause',
  'paused',
  'ready-stop',
  'stopped',
  'succeeded',
  'failed',
];

export const FINISHED = new Set([
  'succeeded',
  'failed',
  'killed',
  'forced-success',
  'skipped',
  'paused',
  'stopped',
]);

export function colour(state) {
  return STATE_COLOURS[state] || '#8c8c8c';
}

/// Text on a state's colour: white on dark colours.
export function ink(state) {
  return ['skipped', 'submitted', 'delayed', 'dispatching', 'dispatched', 'queued', 'offline', 'degraded'].includes(state)
    ? '#111'
    : '#fff';
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

const LEVELS = ['read', 'operate', 'edit'];

/// Whether `me` holds at least `level` on `project` (admins hold everything).
export function can(me, project, level) {
  if (!me) return false;
  if (me.role === 'admin') return true;
  if (level === 'admin') return false;
  const held = me.projects?.[project];
  return held !== undefined && LEVELS.indexOf(held) >= LEVELS.indexOf(level);
}

/// The tooltip of a button the caller may not press.
export function needs(level, project) {
  return level === 'admin' ? 'needs the admin role' : `needs ${level} permission on ${project}`;
}

/// Tasks in topological order (Kahn's, ties in definition order).
export function topoOrder(tasks) {
  const names = tasks.map((t) => t.name);
  const indeg = new Map(names.map((n) => [n, 0]));
  const out = new Map(names.map((n) => [n, []]));
  for (const t of tasks) {
    for (const d of t.deps || []) {
      if (!out.has(d)) continue;
      out.get(d).push(t.name);
      indeg.set(t.name, indeg.get(t.name) + 1);
    }
  }
  const order = [];
  const ready = names.filter((n) => indeg.get(n) === 0);
  while (ready.length) {
    const n = ready.shift();
    order.push(n);
    for (const m of out.get(n)) {
      indeg.set(m, indeg.get(m) - 1);
      if (indeg.get(m) === 0) ready.push(m);
    }
  }
  for (const n of names) if (!order.includes(n)) order.push(n);
  return order;
}

/// Problems in a server's `invalid-definition` message: one per line, `file:LINE: text`.
export function problemLines(message) {
  return String(message || '')
    .split('\n')
    .filter(Boolean)
    .map((text) => {
      const m = /^[^\n]*?:(\d+): (.*)$/.exec(text);
      return m ? { line: Number(m[1]), text: m[2] } : { line: 0, text };
    });
}

/// Milliseconds since the epoch of a `YYYY-MM-DD` date input in the browser's zone.
export function dateMs(value, endOfDay) {
  if (!value) return undefined;
  const d = new Date(`${value}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  return d.getTime() + (endOfDay ? 86_400_000 : 0);
}
