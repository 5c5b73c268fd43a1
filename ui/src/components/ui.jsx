// Small building blocks every page uses: loading data, showing errors, state badges,
// permission-aware buttons, tabs and pagers.

import { cloneElement, isValidElement, toChildArray } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { colour, ink, needs } from '../util.js';

/// Load with `fetcher` whenever `deps` change; `reload()` loads again (quietly, keeping
/// what is shown until the answer arrives).
export function useLoad(fetcher, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    return fetcher().then(
      (data) => n === seq.current && setState({ data, error: null, loading: false }),
      (error) => n === seq.current && setState((s) => ({ ...s, error, loading: false })),
    );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload };
}

/// Run an action, remembering its error (shown by <ErrorBox>) and whether it is busy.
export function useAction() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (f) => {
    setBusy(true);
    setError(null);
    try {
      return await f();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { error, busy, run, setError };
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{error.code || 'error'}</strong>
      {error.status ? ` (${error.status})` : ''}: <span class="pre">{error.message}</span>
    </div>
  );
}

export function Notice({ children }) {
  if (!children) return null;
  return (
    <div class="notice" role="status">
      {children}
    </div>
  );
}

export function StateBadge({ state }) {
  return (
    <span class="badge" data-state={state} style={{ background: colour(state), color: ink(state) }}>
      {state}
    </span>
  );
}

/// A button that is disabled, with the reason as its tooltip, when the caller lacks the
/// level it needs.
export function Act({ allowed, level, project, busy, children, ...rest }) {
  const blocked = !allowed;
  return (
    <button
      type="button"
      {...rest}
      disabled={blocked || busy || rest.disabled}
      title={blocked ? needs(level, project) : rest.title}
      aria-disabled={blocked ? 'true' : undefined}
    >
      {children}
    </button>
  );
}

/// Section links of a page: plain links (the address names the section), the current
/// one marked for assistive tools.
export function Tabs({ tabs, current, href }) {
  return (
    <nav class="tabs" aria-label="Sections">
      {tabs.map(([id, label]) => (
        <a key={id} href={href(id)} class={current === id ? 'tab active' : 'tab'} aria-current={current === id ? 'page' : undefined}>
          {label}
        </a>
      ))}
    </nav>
  );
}

export function Pager({ offset, limit, total, capped, onPage }) {
  const page = Math.floor(offset / limit) + 1;
  const pages = Math.max(1, Math.ceil(total / limit));
  // What is being typed into the page number: a live refresh re-renders the pager and
  // must not put the current page back under the user's cursor.
  const [draft, setDraft] = useState(null);
  return (
    <div class="pager">
      <button type="button" disabled={offset === 0} onClick={() => onPage(0)} aria-label="First page">
        «
      </button>
      <button
        type="button"
        disabled={offset === 0}
        onClick={() => onPage(Math.max(0, offset - limit))}
        aria-label="Previous page"
      >
        ‹ Prev
      </button>
      <span>
        page{' '}
        <input
          class="page-input"
          type="number"
          min="1"
          max={pages}
          value={draft ?? page}
          aria-label="Page number"
          onInput={(e) => setDraft(e.target.value)}
          onBlur={() => setDraft(null)}
          onChange={(e) => {
            const n = Math.min(Math.max(1, Math.floor(Number(e.target.value) || 1)), pages);
            setDraft(null);
            onPage((n - 1) * limit);
          }}
        />{' '}
        of {pages}
        {capped ? '+' : ''} · {total}
        {capped ? '+' : ''} in all
      </span>
      <button
        type="button"
        disabled={!capped && offset + limit >= total}
        onClick={() => onPage(offset + limit)}
        aria-label="Next page"
      >
        Next ›
      </button>
      <button
        type="button"
        disabled={capped || offset + limit >= total}
        onClick={() => onPage((pages - 1) * limit)}
        aria-label="Last page"
        title={capped ? 'the count is capped: filter to reach the end' : undefined}
      >
        »
      </button>
    </div>
  );
}

/// A labelled control. The label also becomes the control's aria-label: a label wrapping
/// a select or a filled input would otherwise read as "Level read" to assistive tools.
/// A form whose submit (Enter in a field, or its submit button) calls `onSubmit` without
/// reloading the page.
export function Form({ onSubmit, children, ...rest }) {
  return (
    <form
      {...rest}
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      {children}
    </form>
  );
}

export function Field({ label, children, hint }) {
  const kids = toChildArray(children);
  const named = kids.map((k, i) =>
    i === 0 && isValidElement(k) && !k.props['aria-label'] ? cloneElement(k, { 'aria-label': label }) : k,
  );
  return (
    <label class="field">
      <span class="label">{label}</span>
      {named}
      {hint ? <span class="hint">{hint}</span> : null}
    </label>
  );
}

/// Key/value rows (parameters), kept as a list so a half-typed or repeated name never
/// loses a row; `paramsOf` turns them into the map the API takes.
export function ParamsEditor({ rows, onChange, hints }) {
  const set = (i, k, v) => onChange(rows.map((r, j) => (j === i ? [k, v] : r)));
  return (
    <div class="params">
      {rows.map(([k, v], i) => (
        <div class="param-row" key={i}>
          <input aria-label={`Name of parameter ${i + 1}`} value={k} onInput={(e) => set(i, e.target.value, v)} />
          <input
            aria-label={k ? `Value of ${k}` : `Value of parameter ${i + 1}`}
            value={v}
            placeholder={hints?.[k] ?? ''}
            onInput={(e) => set(i, k, e.target.value)}
          />
          <button type="button" aria-label={`Remove ${k || `parameter ${i + 1}`}`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
            ×
          </button>
        </div>
      ))}
      <button type="button" onClick={() => onChange([...rows, ['', '']])}>
        + parameter
      </button>
    </div>
  );
}

/// The rows with a name, as the API's map (a later row wins over an earlier one).
export function paramsOf(rows) {
  return Object.fromEntries(rows.filter(([k]) => k.trim()).map(([k, v]) => [k.trim(), v]));
}

/// Whether live updates are flowing, for pages fed by the event stream.
export function LiveState({ live }) {
  if (!live) return null;
  return live.on ? (
    <span class="live on" role="status">
      ● live
    </span>
  ) : (
    <span class="live off" role="status" title={live.error?.message || ''}>
      live updates off{live.error ? `: ${live.error.message}` : ' (reconnecting)'}
    </span>
  );
}

/// A trigger that runs `f` (async) at most once per `ms` and never drops the last call:
/// a call that comes while a run waits or is under way schedules one more after it.
/// For refetching on a burst of live events without missing the burst's end.
export function useCoalesced(f, ms) {
  const fn = useRef(f);
  fn.current = f;
  const timer = useRef(null);
  const again = useRef(false);
  const trigger = useCallback(() => {
    if (timer.current) {
      again.current = true;
      return;
    }
    timer.current = setTimeout(async () => {
      again.current = false;
      try {
        await fn.current();
      } finally {
        timer.current = null;
        if (again.current) trigger();
      }
    }, ms);
  }, [ms]);
  useEffect(
    () => () => {
      clearTimeout(timer.current);
      timer.current = null;
      again.current = false;
    },
    [],
  );
  return trigger;
}
