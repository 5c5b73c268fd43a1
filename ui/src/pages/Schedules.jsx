// The project's schedules: each Quartz expression in plain language, its next 10 fire
// times in the schedule's own zone (computed by the server), window, missed-fire policy
// and online state.

import { useEffect, useState } from 'preact/hooks';
import { get, post, seg } from '../api.js';
import { useApp } from '../context.js';
import { Act, ErrorBox, StateBadge, useAction, useLoad } from '../components/ui.jsx';
import { can, fmtTime } from '../util.js';
import { NoProject } from './Workflows.jsx';

/// What `cron` means and when it fires next, asked of the server as the user types.
export function SchedulePreview({ cron, timezone, start, end }) {
  const [state, setState] = useState({ data: null, error: null });
  useEffect(() => {
    if (!cron) {
      setState({ data: null, error: null });
      return undefined;
    }
    let current = true;
    const t = setTimeout(() => {
      post('/schedules/preview', {
        cron,
        timezone: timezone || undefined,
        start: start || undefined,
        end: end || undefined,
        count: 10,
      }).then(
        // An answer to an expression typed over since is dropped.
        (data) => current && setState({ data, error: null }),
        (error) => current && setState({ data: null, error }),
      );
    }, 250);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [cron, timezone, start, end]);
  if (state.error) return <ErrorBox error={state.error} />;
  if (!state.data) return null;
  return (
    <div class="preview" aria-label="Next fire times">
      <p>
        <strong>{state.data.description}</strong> <span class="muted">({state.data.timezone})</span>
      </p>
      {state.data.fires.length ? (
        <ol class="fires">
          {state.data.fires.map((f) => (
            <li key={f} class="mono">
              {f}
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">It never fires again inside its window.</p>
      )}
    </div>
  );
}

export function Schedules() {
  const { me, project, isProxy } = useApp();
  const list = useLoad(() => (project ? get(`/projects/${seg(project)}/schedules`) : Promise.resolve([])), [project]);
  const [open, setOpen] = useState(null);
  const act = useAction();
  if (!project) return <NoProject />;
  const switchTo = (s, to) =>
    act.run(async () => {
      await post(`/projects/${seg(project)}/definitions/${seg(s.workflow)}/schedule/${to}`);
      await list.reload();
    });
  return (
    <section>
      <h1>Schedules</h1>
      <ErrorBox error={list.error || act.error} />
      <table class="grid" aria-label="Schedules">
        <thead>
          <tr>
            <th>Workflow</th>
            <th>Cron</th>
            <th>Meaning</th>
            <th>Zone</th>
            <th>Window</th>
            <th>Missed</th>
            <th>Next fire</th>
            <th>State</th>
            {isProxy ? <th>Cluster</th> : null}
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data || []).map((s) => {
            const key = `${s.cluster || ''}/${s.workflow}`;
            return [
              <tr key={key}>
                <td>
                  <a href={`#/workflows/${seg(s.workflow)}/schedule`}>{s.workflow}</a>
                </td>
                <td class="mono">{s.cron}</td>
                <td>{s.description}</td>
                <td>{s.timezone}</td>
                <td>
                  {s.start_at || s.end_at ? `${fmtTime(s.start_at)} → ${fmtTime(s.end_at)}` : 'always'}
                </td>
                <td>{s.missed}</td>
                <td class="mono">{s.upcoming?.[0] || fmtTime(s.next_fire_at)}</td>
                <td>
                  <StateBadge state={s.online ? 'online' : 'offline'} />
                </td>
                {isProxy ? <td>{s.cluster || 'global'}</td> : null}
                <td class="actions">
                  <button type="button" aria-expanded={open === key ? 'true' : 'false'} onClick={() => setOpen(open === key ? null : key)}>
                    Next 10 fires
                  </button>
                  <Act
                    allowed={can(me, project, 'edit')}
                    level="edit"
                    project={project}
                    busy={act.busy}
                    onClick={() => switchTo(s, s.online ? 'offline' : 'online')}
                  >
                    {s.online ? 'Offline' : 'Online'}
                  </Act>
                </td>
              </tr>,
              open === key ? (
                <tr key={`${key}-fires`} class="expanded">
                  <td colSpan={10}>
                    <SchedulePreview
                      cron={s.cron}
                      timezone={s.timezone}
                      start={s.start_at ? new Date(Math.max(s.start_at, Date.now())).toISOString() : undefined}
                      end={s.end_at ? new Date(s.end_at).toISOString() : undefined}
                    />
                  </td>
                </tr>
              ) : null,
            ];
          })}
          {list.data && list.data.length === 0 ? (
            <tr>
              <td colSpan={10} class="muted">
                No schedule in this project: open a workflow's Schedule tab to add one.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}
