// Projects, users, API tokens and per-project permissions. Admins manage users; anyone
// may create a project (becoming its editor) and their own tokens; a project's editors
// grant levels on it.

import { useState } from 'preact/hooks';
import { api, del, get, post, put, seg } from '../api.js';
import { useApp } from '../context.js';
import { Act, ErrorBox, Field, Form, Notice, useAction, useLoad } from '../components/ui.jsx';
import { can, fmtTime } from '../util.js';

export function Admin() {
  const { me, project } = useApp();
  return (
    <section>
      <h1>Admin</h1>
      <Projects />
      {me.role === 'admin' ? <Users /> : <p class="muted">Users are managed by admins.</p>}
      <Tokens />
      {project ? <Permissions project={project} allowed={can(me, project, 'edit')} /> : null}
    </section>
  );
}

function Projects() {
  const { me, projects, refresh, setProject } = useApp();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const act = useAction();
  const create = () =>
    act.run(async () => {
      const p = await post('/projects', { name, description });
      setName('');
      setDescription('');
      await refresh();
      setProject(p.name);
    });
  const processes = (p, allow) =>
    act.run(async () => {
      await api('PATCH', `/projects/${seg(p)}/tenancy`, { allow_process: allow });
      await refresh();
    });
  const admin = me.role === 'admin';
  return (
    <div class="panel" aria-label="Projects">
      <h2>Projects</h2>
      <table class="grid compact">
        <thead>
          <tr>
            <th>Name</th>
            <th>Description</th>
            <th>Tenant</th>
            <th>May run processes</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {projects.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.description}</td>
              <td>{p.tenant || 'default'}</td>
              <td>{p.allow_process ? 'yes' : 'no'}</td>
              <td>{fmtTime(p.created_at)}</td>
              <td>
                <Act allowed={admin} level="admin" busy={act.busy} onClick={() => processes(p.name, !p.allow_process)}>
                  {p.allow_process ? 'Forbid processes' : 'Allow processes'}
                </Act>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Form class="row" onSubmit={create}>
        <Field label="New project">
          <input value={name} onInput={(e) => setName(e.target.value)} placeholder="name" />
        </Field>
        <Field label="Description">
          <input value={description} onInput={(e) => setDescription(e.target.value)} />
        </Field>
        <button type="submit" disabled={!name || act.busy}>
          Create project
        </button>
      </Form>
      <ErrorBox error={act.error} />
    </div>
  );
}

function Users() {
  const users = useLoad(() => get('/users'), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState('user');
  const [issued, setIssued] = useState(null);
  const act = useAction();
  const create = () =>
    act.run(async () => {
      await post('/users', { name, role });
      setName('');
      await users.reload();
    });
  const token = (user) =>
    act.run(async () => {
      setIssued(await post(`/users/${seg(user)}/tokens`, { name: 'ui' }));
    });
  return (
    <div class="panel" aria-label="Users">
      <h2>Users</h2>
      <ErrorBox error={users.error || act.error} />
      {issued ? <NewToken token={issued} onDone={() => setIssued(null)} /> : null}
      <table class="grid compact">
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(users.data || []).map((u) => (
            <tr key={u.id}>
              <td>{u.name}</td>
              <td>{u.role}</td>
              <td>{fmtTime(u.created_at)}</td>
              <td>
                <button type="button" disabled={act.busy} onClick={() => token(u.name)}>
                  New token
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Form class="row" onSubmit={create}>
        <Field label="New user">
          <input value={name} onInput={(e) => setName(e.target.value)} placeholder="name" />
        </Field>
        <Field label="Role">
          <select value={role} onChange={(e) => setRole(e.target.value)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </Field>
        <button type="submit" disabled={!name || act.busy}>
          Create user
        </button>
      </Form>
    </div>
  );
}

function NewToken({ token, onDone }) {
  return (
    <div class="notice" role="status" aria-label="New token">
      Token for <strong>{token.user}</strong> (shown once; copy it now):{' '}
      <input class="mono token" readOnly value={token.token} onFocus={(e) => e.target.select()} aria-label="New token value" />
      {token.expires_at ? ` · expires ${fmtTime(token.expires_at)}` : ''}{' '}
      <button type="button" onClick={onDone}>
        Done
      </button>
    </div>
  );
}

function Tokens() {
  const { me } = useApp();
  const tokens = useLoad(() => get('/tokens'), []);
  const [name, setName] = useState('');
  const [hours, setHours] = useState('');
  const [issued, setIssued] = useState(null);
  const act = useAction();
  const create = () =>
    act.run(async () => {
      setIssued(
        await post(`/users/${seg(me.name)}/tokens`, {
          name: name || undefined,
          expires_in_s: hours ? Math.round(Number(hours) * 3600) : undefined,
        }),
      );
      setName('');
      await tokens.reload();
    });
  const revoke = (id) =>
    act.run(async () => {
      await del(`/tokens/${id}`);
      await tokens.reload();
    });
  return (
    <div class="panel" aria-label="Your tokens">
      <h2>Your tokens</h2>
      <ErrorBox error={tokens.error || act.error} />
      {issued ? <NewToken token={issued} onDone={() => setIssued(null)} /> : null}
      <table class="grid compact">
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Revoked</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(tokens.data || []).map((t) => (
            <tr key={t.id}>
              <td>{t.id}</td>
              <td>{t.name}</td>
              <td>{fmtTime(t.created_at)}</td>
              <td>{t.expires_at ? fmtTime(t.expires_at) : 'never'}</td>
              <td>{t.revoked_at ? fmtTime(t.revoked_at) : '—'}</td>
              <td>
                {!t.revoked_at ? (
                  <button type="button" disabled={act.busy} onClick={() => revoke(t.id)}>
                    Revoke
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Form class="row" onSubmit={create}>
        <Field label="Token name">
          <input value={name} onInput={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Expires in hours (empty: as long as this one)">
          <input type="number" min="0" step="any" value={hours} onInput={(e) => setHours(e.target.value)} />
        </Field>
        <button type="submit" disabled={act.busy}>
          Create token
        </button>
      </Form>
    </div>
  );
}

function Permissions({ project, allowed }) {
  const perms = useLoad(() => (allowed ? get(`/projects/${seg(project)}/permissions`) : Promise.resolve(null)), [project, allowed]);
  const [user, setUser] = useState('');
  const [level, setLevel] = useState('read');
  const act = useAction();
  const grant = () =>
    act.run(async () => {
      await put(`/projects/${seg(project)}/permissions/${seg(user)}`, { level });
      setUser('');
      await perms.reload();
    });
  return (
    <div class="panel" aria-label="Permissions">
      <h2>Permissions on {project}</h2>
      {!allowed ? <p class="muted">Only the project's editors and admins see and grant its permissions.</p> : null}
      <ErrorBox error={perms.error || act.error} />
      {perms.data ? (
        <table class="grid compact">
          <thead>
            <tr>
              <th>User</th>
              <th>Level</th>
            </tr>
          </thead>
          <tbody>
            {perms.data.map((p) => (
              <tr key={p.user}>
                <td>{p.user}</td>
                <td>{p.level}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <Form class="row" onSubmit={grant}>
        <Field label="User">
          <input value={user} onInput={(e) => setUser(e.target.value)} disabled={!allowed} />
        </Field>
        <Field label="Level">
          <select value={level} onChange={(e) => setLevel(e.target.value)} disabled={!allowed}>
            <option value="read">read</option>
            <option value="operate">operate</option>
            <option value="edit">edit</option>
          </select>
        </Field>
        <Act allowed={allowed} level="edit" project={project} busy={act.busy} type="submit" disabled={!user}>
          Grant
        </Act>
      </Form>
    </div>
  );
}
