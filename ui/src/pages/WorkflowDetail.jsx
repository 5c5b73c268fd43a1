// One workflow: its DAG, its definition in an editor (validated by the server, problems
// at their line), versions and their diff, online/offline, run, backfill with a preview
// of its dates, and its schedule.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, del, get, post, put, query, seg } from '../api.js';
import { useApp } from '../context.js';
import { Dag } from '../components/Dag.jsx';
import { DiffView, Editor } from '../components/Editor.jsx';
import { Act, ErrorBox, Field, Form, Notice, ParamsEditor, StateBadge, Tabs, paramsOf, useAction, useLoad } from '../components/ui.jsx';
import { go } from '../router.js';
import { can, fmtTime, problemLines } from '../util.js';
import { NoProject } from './Workflows.jsx';
import { SchedulePreview } from './Schedules.jsx';

const TEMPLATE = `workflow:
  name: my-workflow
  description: What it does

tasks:
  - name: hello
    task_type: Shell
    command: echo "hello from Shoal"
`;

const TABS = [
  ['dag', 'Graph'],
  ['definition', 'Definition'],
  ['versions', 'Versions'],
  ['run', 'Run'],
  ['backfill', 'Backfill'],
  ['schedule', 'Schedule'],
];

export function WorkflowDetail({ name, tab }) {
  const { project } = useApp();
  if (!project) return <NoProject />;
  if (name === '+new') return <DefinitionEditor project={project} initial={TEMPLATE} fresh />;
  return <Existing key={`${project}/${name}`} project={project} name={name} tab={tab} />;
}

function Existing({ project, name, tab }) {
  const { me } = useApp();
  const base = `/projects/${seg(project)}/definitions/${seg(name)}`;
  const detail = useLoad(() => get(base), [base]);
  const source = useLoad(
    () =>
      detail.data
        ? get(`${base}/versions/${detail.data.current_version}`).then((v) => v.source)
        : Promise.resolve(undefined),
    [base, detail.data?.current_version],
  );
  const act = useAction();
  const d = detail.data;
  const release = (to) =>
    act.run(async () => {
      await post(`${base}/${to}`);
      await detail.reload();
    });
  return (
    <section>
      <div class="head">
        <h1>
          <a href="#/workflows">Workflows</a> / {name}
        </h1>
        {d ? (
          <span class="meta">
            v{d.current_version} · <StateBadge state={d.online ? 'online' : 'offline'} /> · {d.run_mode}
          </span>
        ) : null}
        {d ? (
          <span class="actions">
            {d.online ? (
              <Act allowed={can(me, project, 'edit')} level="edit" project={project} busy={act.busy} onClick={() => release('offline')}>
                Take offline
              </Act>
            ) : (
              <Act allowed={can(me, project, 'edit')} level="edit" project={project} busy={act.busy} onClick={() => release('online')}>
                Bring online
              </Act>
            )}
          </span>
        ) : null}
      </div>
      <ErrorBox error={detail.error || act.error} />
      <Tabs tabs={TABS} current={tab} href={(t) => `#/workflows/${seg(name)}/${t}`} />
      {d ? (
        <div class="tab-body">
          {tab === 'dag' ? <GraphTab spec={d.spec} /> : null}
          {tab === 'definition' ? (
            source.data !== undefined ? (
              <DefinitionEditor
                project={project}
                initial={source.data}
                name={name}
                onSaved={() => detail.reload()}
              />
            ) : (
              <ErrorBox error={source.error} />
            )
          ) : null}
          {tab === 'versions' ? <Versions base={base} versions={d.versions} current={d.current_version} /> : null}
          {tab === 'run' ? <RunForm base={base} detail={d} project={project} /> : null}
          {tab === 'backfill' ? <Backfill base={base} detail={d} project={project} /> : null}
          {tab === 'schedule' ? <ScheduleTab base={base} detail={d} project={project} onChange={() => detail.reload()} /> : null}
        </div>
      ) : null}
    </section>
  );
}

function GraphTab({ spec }) {
  const tasks = spec?.tasks || [];
  return (
    <div>
      <p class="muted">
        {tasks.length} task{tasks.length === 1 ? '' : 's'}
        {spec?.description ? ` · ${spec.description}` : ''}
      </p>
      <Dag tasks={tasks} />
      {spec?.global_params && Object.keys(spec.global_params).length ? (
        <p class="muted">
          Parameters:{' '}
          {Object.entries(spec.global_params)
            .map(([k, v]) => `${k} = ${v}`)
            .join(', ')}
        </p>
      ) : null}
    </div>
  );
}

export function DefinitionEditor({ project, initial, name, fresh, onSaved }) {
  const { me } = useApp();
  const [text, setText] = useState(initial);
  const [problems, setProblems] = useState([]);
  const [warnings, setWarnings] = useState([]);
  const [notice, setNotice] = useState('');
  const [jump, setJump] = useState(null);
  const act = useAction();
  const allowed = can(me, project, 'edit');
  const upload = (dry) =>
    act.run(async () => {
      setNotice('');
      setProblems([]);
      setWarnings([]);
      try {
        const saved = await api('POST', `/projects/${seg(project)}/definitions${query({ dry_run: dry || undefined })}`, text, {
          'Content-Type': 'application/yaml',
        });
        setWarnings(saved.warnings || []);
        if (dry) {
          setNotice(`Valid: workflow “${saved.name}” has no problems.`);
          return;
        }
        setNotice(saved.created ? `Saved as version ${saved.version}.` : `No change: version ${saved.version} already holds this text.`);
        if (fresh || saved.name !== name) go(`/workflows/${seg(saved.name)}/definition`);
        else if (onSaved) onSaved();
      } catch (e) {
        // Validation problems (422) and unreadable uploads (400) both name `file:LINE:`.
        if (e instanceof ApiError && ['invalid-definition', 'bad-request'].includes(e.code)) {
          const found = problemLines(e.message);
          const first = found.find((p) => p.line);
          if (first) {
            setProblems(found);
            setJump({ line: first.line });
          }
        }
        throw e;
      }
    });
  return (
    <div class="definition">
      <div class="toolbar">
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={() => upload(true)}>
          Validate
        </Act>
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} class="primary" onClick={() => upload(false)}>
          Save
        </Act>
        {fresh ? <span class="muted">A new workflow: its name comes from <code>workflow.name</code>.</span> : null}
      </div>
      <Notice>{notice}</Notice>
      {problems.length ? (
        <div class="problems" role="alert" aria-label="Problems">
          <strong>{problems.length} problem{problems.length === 1 ? '' : 's'}</strong>
          <ul>
            {problems.map((p, i) => (
              <li key={i}>
                {p.line ? (
                  <button type="button" class="link" onClick={() => setJump({ line: p.line, n: Math.random() })}>
                    line {p.line}
                  </button>
                ) : (
                  'no line'
                )}
                : {p.text}
              </li>
            ))}
          </ul>
        </div>
      ) : (
        <ErrorBox error={act.error} />
      )}
      {warnings.length ? (
        <ul class="warnings" aria-label="Warnings">
          {warnings.map((w, i) => (
            <li key={i}>{w}</li>
          ))}
        </ul>
      ) : null}
      <Editor value={text} onInput={setText} problems={problems} readOnly={!allowed} jump={jump} />
    </div>
  );
}

function Versions({ base, versions, current }) {
  const sorted = versions.slice().sort((a, b) => a - b);
  const [from, setFrom] = useState(sorted.length > 1 ? sorted[sorted.length - 2] : sorted[0]);
  const [to, setTo] = useState(current);
  const texts = useLoad(
    () => Promise.all([get(`${base}/versions/${from}`), get(`${base}/versions/${to}`)]),
    [base, from, to],
  );
  return (
    <div>
      <div class="toolbar">
        <Field label="From version">
          <select value={from} onChange={(e) => setFrom(Number(e.target.value))}>
            {sorted.map((v) => (
              <option key={v} value={v}>
                v{v}
              </option>
            ))}
          </select>
        </Field>
        <Field label="To version">
          <select value={to} onChange={(e) => setTo(Number(e.target.value))}>
            {sorted.map((v) => (
              <option key={v} value={v}>
                v{v}
                {v === current ? ' (current)' : ''}
              </option>
            ))}
          </select>
        </Field>
        {texts.data ? (
          <span class="muted">
            v{from}: {fmtTime(texts.data[0].created_at)} · v{to}: {fmtTime(texts.data[1].created_at)}
          </span>
        ) : null}
      </div>
      <ErrorBox error={texts.error} />
      {texts.data ? <DiffView before={texts.data[0].source} after={texts.data[1].source} /> : null}
    </div>
  );
}

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function RunForm({ base, detail, project }) {
  const { me } = useApp();
  // Startup parameters override every other layer, so none is sent unless typed: the
  // workflow's own values show as placeholders.
  const globals = detail.spec?.global_params || {};
  const [params, setParams] = useState(() => Object.keys(globals).map((k) => [k, '']));
  const [date, setDate] = useState(today());
  const [version, setVersion] = useState(detail.current_version);
  const [notice, setNotice] = useState('');
  const act = useAction();
  const run = () =>
    act.run(async () => {
      setNotice('');
      const typed = paramsOf(params.filter(([, v]) => v !== ''));
      const body = { params: typed, business_date: date || undefined, version: Number(version) };
      const launched = await post(`${base}/runs`, body);
      if (launched.instance) go(`/instances/${launched.instance}`);
      else setNotice(`The run was ${launched.outcome}${launched.queued ? ` (queue entry ${launched.queued})` : ''}: the run mode holds it back.`);
    });
  return (
    <Form class="form" onSubmit={run}>
      {!detail.online ? <Notice>This workflow is offline: bring it online to run it.</Notice> : null}
      <Field label="Business date" hint="The date ${system.biz.date} and $[...] read; midnight in the server's zone.">
        <input type="date" value={date} onInput={(e) => setDate(e.target.value)} />
      </Field>
      <Field label="Version">
        <select value={version} onChange={(e) => setVersion(e.target.value)}>
          {detail.versions
            .slice()
            .sort((a, b) => b - a)
            .map((v) => (
              <option key={v} value={v}>
                v{v}
              </option>
            ))}
        </select>
      </Field>
      <div class="field">
        <span class="label">Parameters (a value typed here overrides every other layer; empty keeps the workflow's)</span>
        <ParamsEditor rows={params} onChange={setParams} hints={globals} />
      </div>
      <Notice>{notice}</Notice>
      <ErrorBox error={act.error} />
      <Act allowed={can(me, project, 'operate')} level="operate" project={project} busy={act.busy} class="primary" type="submit">
        Run
      </Act>
    </Form>
  );
}

function Backfill({ base, detail, project }) {
  const { me } = useApp();
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [parallelism, setParallelism] = useState(1);
  const [preview, setPreview] = useState(null);
  const [queued, setQueued] = useState(null);
  const act = useAction();
  const body = () => ({ from, to, parallelism: Number(parallelism) || 1 });
  const doPreview = () =>
    act.run(async () => {
      setQueued(null);
      setPreview(await post(`${base}/backfill?dry_run=true`, body()));
    });
  const doQueue = () =>
    act.run(async () => {
      setQueued(await post(`${base}/backfill`, body()));
      setPreview(null);
    });
  const allowed = can(me, project, 'operate');
  return (
    <div class="form">
      {!detail.online ? <Notice>This workflow is offline: bring it online to backfill it.</Notice> : null}
      <div class="row">
        <Field label="First business date">
          <input type="date" value={from} onInput={(e) => setFrom(e.target.value)} />
        </Field>
        <Field label="Last business date (included)">
          <input type="date" value={to} onInput={(e) => setTo(e.target.value)} />
        </Field>
        <Field label="Run at once">
          <input type="number" min="1" max="64" value={parallelism} onInput={(e) => setParallelism(e.target.value)} />
        </Field>
      </div>
      <div class="toolbar">
        <Act allowed={allowed} level="operate" project={project} busy={act.busy} onClick={doPreview} disabled={!from || !to}>
          Preview dates
        </Act>
        <Act allowed={allowed} level="operate" project={project} busy={act.busy} class="primary" onClick={doQueue} disabled={!from || !to}>
          Queue backfill
        </Act>
      </div>
      <ErrorBox error={act.error} />
      {preview ? (
        <div aria-label="Backfill preview">
          <p>
            It would run <strong>{preview.dates.length}</strong> date{preview.dates.length === 1 ? '' : 's'}:
          </p>
          <ol class="dates">
            {preview.dates.map((d) => (
              <li key={d}>{d}</li>
            ))}
          </ol>
        </div>
      ) : null}
      {queued ? (
        <Notice>
          Queued {queued.queued.length} run{queued.queued.length === 1 ? '' : 's'} ({queued.dates[0]} … {queued.dates[queued.dates.length - 1]}) in
          queue {queued.group}. <a href={`#/instances?workflow=${seg(detail.name)}`}>See its instances</a>.
        </Notice>
      ) : null}
    </div>
  );
}

function ScheduleTab({ base, detail, project }) {
  const { me } = useApp();
  const current = useLoad(
    () => get(`${base}/schedule`).catch((e) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
    [base],
  );
  const [form, setForm] = useState(null);
  useEffect(() => {
    if (current.data === undefined) return;
    const s = current.data;
    setForm({
      cron: s?.cron || '0 0 2 * * ?',
      timezone: s?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
      start: s?.start_at ? new Date(s.start_at).toISOString() : '',
      end: s?.end_at ? new Date(s.end_at).toISOString() : '',
      missed: s?.missed || 'skip',
      online: s ? s.online : true,
      params: s?.params || {},
    });
  }, [current.data]);
  const act = useAction();
  const allowed = can(me, project, 'edit');
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const save = () =>
    act.run(async () => {
      await put(`${base}/schedule`, {
        cron: form.cron,
        timezone: form.timezone || undefined,
        start: form.start || undefined,
        end: form.end || undefined,
        missed: form.missed,
        online: form.online,
        params: form.params,
      });
      await current.reload();
    });
  const switchTo = (to) =>
    act.run(async () => {
      await post(`${base}/schedule/${to}`);
      await current.reload();
    });
  const remove = () =>
    act.run(async () => {
      await del(`${base}/schedule`);
      await current.reload();
    });
  if (!form) return <ErrorBox error={current.error} />;
  const s = current.data;
  return (
    <div class="form">
      {s ? (
        <p>
          Schedule <StateBadge state={s.online ? 'online' : 'offline'} /> · last fire {fmtTime(s.last_fire_at)} · next{' '}
          {fmtTime(s.next_fire_at)}
        </p>
      ) : (
        <p class="muted">No schedule yet.</p>
      )}
      {!detail.online ? <Notice>The workflow is offline: its schedule can only be saved offline.</Notice> : null}
      <div class="row">
        <Field label="Quartz cron (with seconds)">
          <input value={form.cron} onInput={set('cron')} class="mono" />
        </Field>
        <Field label="Time zone (IANA)">
          <input value={form.timezone} onInput={set('timezone')} />
        </Field>
        <Field label="Missed fires">
          <select value={form.missed} onChange={set('missed')}>
            <option value="skip">skip</option>
            <option value="run-once">run once</option>
          </select>
        </Field>
      </div>
      <div class="row">
        <Field label="Window start (RFC 3339, optional)">
          <input value={form.start} onInput={set('start')} placeholder="2026-01-01T00:00:00Z" />
        </Field>
        <Field label="Window end (RFC 3339, optional)">
          <input value={form.end} onInput={set('end')} placeholder="2027-01-01T00:00:00Z" />
        </Field>
        <label class="check">
          <input type="checkbox" checked={form.online} onChange={set('online')} /> online
        </label>
      </div>
      <SchedulePreview cron={form.cron} timezone={form.timezone} start={form.start} end={form.end} />
      <ErrorBox error={act.error} />
      <div class="toolbar">
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} class="primary" onClick={save}>
          Save schedule
        </Act>
        {s ? (
          s.online ? (
            <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={() => switchTo('offline')}>
              Schedule offline
            </Act>
          ) : (
            <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={() => switchTo('online')}>
              Schedule online
            </Act>
          )
        ) : null}
        {s ? (
          <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={remove}>
            Delete schedule
          </Act>
        ) : null}
      </div>
    </div>
  );
}
