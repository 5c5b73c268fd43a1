// A project's secrets and datasources, by name: values and passwords go in, never out.

import { useState } from 'preact/hooks';
import { del, get, put, seg } from '../api.js';
import { useApp } from '../context.js';
import { Act, ErrorBox, Field, Form, useAction, useLoad } from '../components/ui.jsx';
import { can, fmtTime } from '../util.js';
import { NoProject } from './Workflows.jsx';

export function Settings() {
  const { me, project } = useApp();
  if (!project) return <NoProject />;
  const allowed = can(me, project, 'edit');
  return (
    <section>
      <h1>Secrets and datasources of {project}</h1>
      <Secrets project={project} allowed={allowed} />
      <Datasources project={project} allowed={allowed} />
    </section>
  );
}

function Secrets({ project, allowed }) {
  const base = `/projects/${seg(project)}/secrets`;
  const list = useLoad(() => get(base), [base]);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const act = useAction();
  const save = () =>
    act.run(async () => {
      await put(`${base}/${seg(name)}`, { value });
      setName('');
      setValue('');
      await list.reload();
    });
  const remove = (n) =>
    act.run(async () => {
      await del(`${base}/${seg(n)}`);
      await list.reload();
    });
  return (
    <div class="panel" aria-label="Secrets">
      <h2>Secrets</h2>
      <p class="muted">Tasks read them as <code>${'{secret.NAME}'}</code>; their values are sealed and never shown.</p>
      <ErrorBox error={list.error || act.error} />
      <table class="grid compact">
        <thead>
          <tr>
            <th>Name</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data || []).map((s) => (
            <tr key={s.name}>
              <td class="mono">{s.name}</td>
              <td>{fmtTime(s.updated_at)}</td>
              <td>
                <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={() => remove(s.name)}>
                  Delete
                </Act>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Form class="row" onSubmit={save}>
        <Field label="Name">
          <input value={name} onInput={(e) => setName(e.target.value)} disabled={!allowed} />
        </Field>
        <Field label="Value">
          <input type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.target.value)} disabled={!allowed} />
        </Field>
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} type="submit" disabled={!name}>
          Set secret
        </Act>
      </Form>
    </div>
  );
}

const EMPTY = { name: '', type: 'postgresql', host: '127.0.0.1', port: '', database: '', user: '', password: '', options: {} };

function Datasources({ project, allowed }) {
  const base = `/projects/${seg(project)}/datasources`;
  const list = useLoad(() => get(base), [base]);
  const [form, setForm] = useState(EMPTY);
  const act = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const save = () =>
    act.run(async () => {
      await put(`${base}/${seg(form.name)}`, {
        type: form.type,
        host: form.host,
        port: form.port ? Number(form.port) : undefined,
        database: form.database,
        user: form.user,
        password: form.password || undefined,
        options: form.options || {},
      });
      setForm(EMPTY);
      await list.reload();
    });
  const remove = (n) =>
    act.run(async () => {
      await del(`${base}/${seg(n)}`);
      await list.reload();
    });
  return (
    <div class="panel" aria-label="Datasources">
      <h2>Datasources</h2>
      <ErrorBox error={list.error || act.error} />
      <table class="grid compact">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Host</th>
            <th>Database</th>
            <th>User</th>
            <th>Password</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data || []).map((d) => (
            <tr key={d.name}>
              <td class="mono">{d.name}</td>
              <td>{d.type}</td>
              <td>
                {d.host}
                {d.port ? `:${d.port}` : ''}
              </td>
              <td>{d.database}</td>
              <td>{d.user}</td>
              <td>{d.has_password ? 'set' : '—'}</td>
              <td>{fmtTime(d.updated_at)}</td>
              <td>
                <button type="button" disabled={!allowed} onClick={() => setForm({ ...EMPTY, ...d, port: d.port || '', password: '' })}>
                  Edit
                </button>
                <Act allowed={allowed} level="edit" project={project} busy={act.busy} onClick={() => remove(d.name)}>
                  Delete
                </Act>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Form class="row wrap" onSubmit={save}>
        <Field label="Name">
          <input value={form.name} onInput={set('name')} disabled={!allowed} />
        </Field>
        <Field label="Type">
          <select value={form.type} onChange={set('type')} disabled={!allowed}>
            <option value="postgresql">PostgreSQL</option>
            <option value="mysql">MySQL / MariaDB</option>
            <option value="sqlite">SQLite</option>
          </select>
        </Field>
        <Field label="Host">
          <input value={form.host} onInput={set('host')} disabled={!allowed} />
        </Field>
        <Field label="Port">
          <input type="number" value={form.port} onInput={set('port')} disabled={!allowed} />
        </Field>
        <Field label="Database">
          <input value={form.database} onInput={set('database')} disabled={!allowed} />
        </Field>
        <Field label="User">
          <input value={form.user} onInput={set('user')} disabled={!allowed} />
        </Field>
        <Field label="Password (empty keeps the stored one)">
          <input type="password" autocomplete="off" value={form.password} onInput={set('password')} disabled={!allowed} />
        </Field>
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} type="submit" disabled={!form.name}>
          Save datasource
        </Act>
      </Form>
    </div>
  );
}
