// Workflow instances of the project: filters (state, workflow, business-date range and,
// behind the proxy, cluster), server-side paging, and live updates from the server's
// event stream (a state change redraws its row; a new instance refreshes page one).

import { useEffect, useRef, useState } from 'preact/hooks';
import { get, query, seg, subscribe } from '../api.js';
import { useApp } from '../context.js';
import { ErrorBox, Field, LiveState, Pager, StateBadge, useCoalesced, useLoad } from '../components/ui.jsx';
import { go } from '../router.js';
import { WORKFLOW_STATES, dateMs, fmtDuration, fmtTime } from '../util.js';
import { NoProject } from './Workflows.jsx';

const LIMIT = 50;

export function Instances({ query: q }) {
  const { project, isProxy } = useApp();
  const offset = Number(q.offset || 0);
  const filters = { state: q.state || '', workflow: q.workflow || '', from: q.from || '', to: q.to || '', cluster: q.cluster || '' };
  const key = JSON.stringify([project, filters, offset]);
  const page = useLoad(
    () =>
      project
        ? get(
            `/instances${query({
              project,
              state: filters.state,
              workflow: filters.workflow,
              from: dateMs(filters.from),
              to: dateMs(filters.to, true),
              cluster: filters.cluster,
              limit: LIMIT,
              offset,
            })}`,
          )
        : Promise.resolve(null),
    [key],
  );
  const workflows = useLoad(() => (project ? get(`/projects/${seg(project)}/definitions`) : Promise.resolve([])), [project]);
  const clusters = useLoad(() => (isProxy ? get('/clusters') : Promise.resolve(null)), [isProxy]);
  // States the stream reported for rows on this page since it loaded.
  const [live, setLive] = useState({});
  const [stream, setStream] = useState(null);
  const [now, setNow] = useState(Date.now());
  // The stream outlives page loads and filter changes: it reads the newest page and
  // offset through these refs.
  const pageRef = useRef(page);
  pageRef.current = page;
  const offsetRef = useRef(offset);
  offsetRef.current = offset;

  useEffect(() => setLive({}), [page.data]);
  // A busy project refreshes at most every 300 ms, and always after its last change.
  const reload = useCoalesced(() => pageRef.current.reload(), 300);
  useEffect(() => {
    if (!project) return undefined;
    const stop = subscribe(
      { project },
      (e) => {
        const shown = pageRef.current.data?.items || [];
        if (e.kind === 'workflow' && shown.some((i) => i.id === e.instance)) {
          setLive((l) => ({ ...l, [e.instance]: e.state }));
        } else if (e.kind === 'lagged' || (e.kind === 'workflow' && offsetRef.current === 0)) {
          // Missed changes, or a run this page does not show yet (new ones come first).
          reload();
        }
      },
      (on, error) => setStream({ on, error }),
    );
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stop();
      clearInterval(tick);
    };
  }, [project]);

  if (!project) return <NoProject />;
  const setFilter = (k, v) => go('/instances', { ...filters, [k]: v, offset: 0 });
  const data = page.data;
  return (
    <section>
      <div class="head">
        <h1>Instances</h1>
        <LiveState live={stream} />
      </div>
      <form class="filters row" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <Field label="State">
          <select value={filters.state} onChange={(e) => setFilter('state', e.target.value)}>
            <option value="">any</option>
            {WORKFLOW_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
            {isProxy ? <option value="unreachable">unreachable</option> : null}
          </select>
        </Field>
        <Field label="Workflow">
          <select value={filters.workflow} onChange={(e) => setFilter('workflow', e.target.value)}>
            <option value="">any</option>
            {[...new Set((workflows.data || []).map((w) => w.name))].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Business date from">
          <input type="date" value={filters.from} onChange={(e) => setFilter('from', e.target.value)} />
        </Field>
        <Field label="to (included)">
          <input type="date" value={filters.to} onChange={(e) => setFilter('to', e.target.value)} />
        </Field>
        {isProxy ? (
          <Field label="Cluster">
            <select value={filters.cluster} onChange={(e) => setFilter('cluster', e.target.value)}>
              <option value="">any</option>
              {(clusters.data?.clusters || []).map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name}
                </option>
              ))}
            </select>
          </Field>
        ) : null}
        <button type="button" onClick={() => go('/instances')}>
          Clear
        </button>
      </form>
      <ErrorBox error={page.error} />
      {data?.missing?.length ? (
        <div class="notice" role="status">
          Not shown: {data.missing.map((m) => `${m.cluster} (${m.reason})`).join(', ')}
        </div>
      ) : null}
      <table class="grid" aria-label="Instances">
        <thead>
          <tr>
            <th>Id</th>
            <th>Workflow</th>
            <th>Version</th>
            <th>State</th>
            <th>Business time</th>
            <th>Started</th>
            <th>Duration</th>
            {isProxy ? <th>Cluster</th> : null}
          </tr>
        </thead>
        <tbody>
          {(data?.items || []).map((i) => {
            const state = live[i.id] || i.state;
            const end = i.ended_at ?? (['running', 'submitted', 'ready-pause', 'ready-stop'].includes(state) ? now : null);
            return (
              <tr key={i.id} data-instance={i.id}>
                <td>
                  <a href={`#/instances/${i.id}`}>{i.id}</a>
                </td>
                <td>{i.name}</td>
                <td>v{i.version}</td>
                <td>
                  <StateBadge state={state} />
                </td>
                <td>{fmtTime(i.schedule_time)}</td>
                <td>{fmtTime(i.started_at)}</td>
                <td>{i.started_at && end ? fmtDuration(end - i.started_at) : '—'}</td>
                {isProxy ? <td>{i.cluster || '—'}</td> : null}
              </tr>
            );
          })}
          {data && data.items.length === 0 ? (
            <tr>
              <td colSpan={8} class="muted">
                No instance matches.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      {data ? (
        <Pager
          offset={data.offset}
          limit={data.limit}
          total={data.total}
          capped={data.total_capped}
          onPage={(o) => go('/instances', { ...filters, offset: o })}
        />
      ) : null}
    </section>
  );
}
