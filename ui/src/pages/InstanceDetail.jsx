// One workflow instance: its DAG coloured by task state as it changes, a Gantt chart of
// every attempt, the instance operations (stop, pause, resume, rerun, recover) and, for
// a chosen task, force-success, kill, its log and its job's actions (savepoint, ...).

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, post, seg, subscribe } from '../api.js';
import { useApp } from '../context.js';
import { Dag } from '../components/Dag.jsx';
import { Gantt } from '../components/Gantt.jsx';
import { Act, ErrorBox, Field, Form, LiveState, Notice, StateBadge, useAction, useCoalesced, useLoad } from '../components/ui.jsx';
import { can, fmtDuration, fmtTime } from '../util.js';

/// Which instance operations make sense in which state (the server has the last word).
const OPS = [
  ['pause', 'Pause', (s) => s === 'running'],
  ['resume', 'Resume', (s) => s === 'paused' || s === 'stopped'],
  ['stop', 'Stop', (s) => ['running', 'submitted', 'ready-pause', 'paused'].includes(s)],
  ['rerun', 'Rerun', (s) => ['succeeded', 'failed', 'stopped', 'paused'].includes(s)],
  ['recover', 'Recover failed', (s) => s === 'failed'],
];

const LIVE = new Set(['submitted', 'running', 'ready-pause', 'ready-stop']);

/// The newest attempt of each task.
function latest(attempts) {
  const by = {};
  for (const a of attempts) {
    const cur = by[a.task_name];
    if (!cur || a.attempt > cur.attempt || (a.attempt === cur.attempt && a.id > cur.id)) by[a.task_name] = a;
  }
  return by;
}

export function InstanceDetail({ id }) {
  const { me, project: chosen } = useApp();
  const detail = useLoad(() => get(`/instances/${id}`), [id]);
  const d = detail.data;
  const spec = useLoad(
    () =>
      d
        ? get(`/projects/${seg(d.project)}/definitions/${seg(d.name)}/versions/${d.version}`).then((v) => v.spec)
        : Promise.resolve(null),
    [d?.project, d?.name, d?.version],
  );
  const [selected, setSelected] = useState(null);
  const [now, setNow] = useState(Date.now());
  const act = useAction();
  const detailRef = useRef(detail);
  detailRef.current = detail;

  const [stream, setStream] = useState(null);
  const refetch = useCoalesced(() => detailRef.current.reload(), 150);
  useEffect(() => {
    if (!d?.project) return undefined;
    return subscribe(
      { project: d.project, instance: id },
      (e) => {
        // The proxy streams the whole project: keep this instance's changes only.
        if (e.kind === 'lagged' || e.instance === id) refetch();
      },
      (on, error) => setStream({ on, error }),
    );
  }, [d?.project, id]);

  const running = d && LIVE.has(d.state);
  useEffect(() => {
    if (!running) return undefined;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [running]);

  const attempts = d?.tasks || [];
  const newest = useMemo(() => latest(attempts), [attempts]);
  const states = useMemo(() => Object.fromEntries(Object.entries(newest).map(([k, v]) => [k, v.state])), [newest]);
  const tasks = useMemo(() => {
    const fromSpec = spec.data?.tasks || [];
    // A task that ran but is not in the spec (never expected) still shows.
    const names = new Set(fromSpec.map((t) => t.name));
    const extra = Object.keys(newest)
      .filter((n) => !names.has(n))
      .map((n) => ({ name: n, task_type: newest[n].task_type, deps: [] }));
    return [...fromSpec, ...extra];
  }, [spec.data, newest]);

  if (!d) return <ErrorBox error={detail.error} />;
  const inst = d;
  const project = d.project;
  const operate = can(me, project, 'operate');
  const op = (name, task) =>
    act.run(async () => {
      await post(`/instances/${id}/operations`, task ? { op: name, task } : { op: name });
      await detail.reload();
    });
  const sel = selected ? newest[selected] : null;
  return (
    <section>
      <div class="head">
        <h1>
          <a href="#/instances">Instances</a> / {inst.id} · {project === chosen ? <a href={`#/workflows/${seg(inst.name)}`}>{inst.name}</a> : inst.name} v{inst.version}
        </h1>
        <StateBadge state={inst.state} />
        <LiveState live={stream} />
      </div>
      <p class="meta">
        project {project} · business time {fmtTime(inst.schedule_time)} · started {fmtTime(inst.started_at)} · ended{' '}
        {fmtTime(inst.ended_at)} · {inst.started_at ? fmtDuration((inst.ended_at ?? now) - inst.started_at) : ''}
        {inst.cluster ? ` · cluster ${inst.cluster}` : ''}
        {inst.parent_task_instance_id ? ` · child of task instance ${inst.parent_task_instance_id}` : ''}
      </p>
      <div class="toolbar" aria-label="Instance operations">
        {OPS.map(([name, label, ok]) => (
          <Act
            key={name}
            allowed={operate}
            level="operate"
            project={project}
            busy={act.busy}
            disabled={!ok(inst.state)}
            title={!ok(inst.state) ? `not while ${inst.state}` : undefined}
            onClick={() => op(name)}
          >
            {label}
          </Act>
        ))}
      </div>
      <ErrorBox error={detail.error || act.error || spec.error} />
      <div class="legend" aria-label="State colours">
        {['submitted', 'running', 'succeeded', 'failed', 'stopped', 'killed', 'paused'].map((s) => (
          <StateBadge key={s} state={s} />
        ))}
      </div>
      <Dag tasks={tasks} states={states} selected={selected} onSelect={setSelected} />
      {sel || selected ? (
        <TaskPanel
          key={selected}
          name={selected}
          task={sel}
          attempts={attempts.filter((a) => a.task_name === selected)}
          project={project}
          operate={operate}
          busy={act.busy}
          onOp={(name) => op(name, selected)}
          onClose={() => setSelected(null)}
          onChanged={() => detail.reload()}
        />
      ) : (
        <p class="muted">Choose a task in the graph (click, or Tab and Enter) for its attempts, log and controls.</p>
      )}
      <h2>Gantt</h2>
      <Gantt tasks={tasks} attempts={attempts} now={now} onSelect={setSelected} />
    </section>
  );
}

function TaskPanel({ name, task, attempts, project, operate, busy, onOp, onClose, onChanged }) {
  // The master's table: only a failed or killed attempt can be forced to success
  // (then *Recover failed* carries the instance on from there).
  const canForce = task && ['failed', 'killed'].includes(task.state);
  const canKill = task && ['running', 'dispatched', 'dispatching', 'submitted', 'delayed', 'retrying'].includes(task.state);
  return (
    <div class="panel" aria-label={`Task ${name}`}>
      <div class="head">
        <h2>
          Task {name} {task ? <StateBadge state={task.state} /> : <span class="muted">(not started)</span>}
        </h2>
        <button type="button" onClick={onClose} aria-label="Close task panel">
          Close
        </button>
      </div>
      <div class="toolbar">
        <Act
          allowed={operate}
          level="operate"
          project={project}
          busy={busy}
          disabled={!canForce}
          title={!canForce ? 'for a failed or killed task' : undefined}
          onClick={() => onOp('force-success')}
        >
          Force success
        </Act>
        <Act
          allowed={operate}
          level="operate"
          project={project}
          busy={busy}
          disabled={!canKill}
          title={!canKill ? 'for a task that is running' : undefined}
          onClick={() => onOp('kill')}
        >
          Kill task
        </Act>
      </div>
      <table class="grid compact" aria-label={`Attempts of ${name}`}>
        <thead>
          <tr>
            <th>Attempt</th>
            <th>State</th>
            <th>Host</th>
            <th>Plugin</th>
            <th>Started</th>
            <th>Took</th>
            <th>Message</th>
            <th>Log</th>
          </tr>
        </thead>
        <tbody>
          {attempts
            .slice()
            .sort((a, b) => a.attempt - b.attempt || a.id - b.id)
            .map((a) => (
              <tr key={a.id}>
                <td>#{a.attempt}</td>
                <td>
                  <StateBadge state={a.state} />
                </td>
                <td>{a.host || '—'}</td>
                <td>
                  {a.task_type} {a.plugin_version || ''}
                </td>
                <td>{fmtTime(a.started_at)}</td>
                <td>{a.started_at ? fmtDuration((a.ended_at ?? Date.now()) - a.started_at) : '—'}</td>
                <td class="pre">{a.message}</td>
                <td>
                  <a href={`#/tasks/${a.id}`}>log</a>
                </td>
              </tr>
            ))}
        </tbody>
      </table>
      {task && Object.keys(task.out_params || {}).length ? (
        <p class="muted">
          OUT parameters:{' '}
          {Object.entries(task.out_params)
            .map(([k, v]) => `${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(', ')}
        </p>
      ) : null}
      {task?.handle ? <JobActions task={task} project={project} operate={operate} onDone={onChanged} /> : null}
    </div>
  );
}

/// The controls of a task's external job (a Flink job: savepoint, ...), as its plugin
/// offers them.
function JobActions({ task, project, operate, onDone }) {
  const [action, setAction] = useState('savepoint');
  const [args, setArgs] = useState('{}');
  const [done, setDone] = useState('');
  const act = useAction();
  const run = () =>
    act.run(async () => {
      let parsed;
      try {
        parsed = JSON.parse(args || '{}');
      } catch (e) {
        throw { code: 'bad-request', message: `args: not JSON: ${e.message}` };
      }
      const r = await post(`/tasks/${task.id}/actions`, { action, args: parsed });
      setDone(`${r.action}: ${r.message}`);
      onDone();
    });
  return (
    <Form class="row" aria-label="Job actions" onSubmit={run}>
      <span class="muted">
        Job <code>{task.handle}</code>
      </span>
      <Field label="Action">
        <input list="job-actions" value={action} onInput={(e) => setAction(e.target.value)} />
        <datalist id="job-actions">
          <option value="savepoint" />
          <option value="stop-with-savepoint" />
          <option value="cancel" />
        </datalist>
      </Field>
      <Field label="Arguments (JSON)">
        <input class="mono" value={args} onInput={(e) => setArgs(e.target.value)} />
      </Field>
      <Act allowed={operate} level="operate" project={project} busy={act.busy} type="submit">
        Send
      </Act>
      <Notice>{done}</Notice>
      <ErrorBox error={act.error} />
    </Form>
  );
}
