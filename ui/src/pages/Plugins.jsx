// Task types: every installed version with its capabilities and HTTP hosts (what the
// host grants it), which one is active; admins upload a version, activate one or roll
// back to the previous.

import { useState } from 'preact/hooks';
import { get, post, seg } from '../api.js';
import { useApp } from '../context.js';
import { Act, ErrorBox, Field, Form, Notice, StateBadge, useAction, useLoad } from '../components/ui.jsx';
import { can } from '../util.js';

export function Plugins() {
  const { me, project, isProxy } = useApp();
  const list = useLoad(() => get('/plugins'), []);
  const act = useAction();
  const [notice, setNotice] = useState('');
  const admin = can(me, project, 'admin');
  const byId = new Map();
  for (const p of list.data || []) byId.set(p.id, [...(byId.get(p.id) || []), p]);
  const activate = (id, version) =>
    act.run(async () => {
      const r = await post(`/plugins/${seg(id)}/activate`, { version });
      setNotice(`${r.id} ${r.version} is active${r.previous ? ` (was ${r.previous})` : ''}.`);
      await list.reload();
    });
  const rollback = (id) =>
    act.run(async () => {
      const r = await post(`/plugins/${seg(id)}/rollback`);
      setNotice(`Rolled back: ${r.id} ${r.version} is active${r.previous ? ` (was ${r.previous})` : ''}.`);
      await list.reload();
    });
  if (isProxy) {
    return (
      <section>
        <h1>Plugins</h1>
        <p>Plugins are each cluster's own: open a cluster's UI to install or activate them.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>Plugins</h1>
      <ErrorBox error={list.error || act.error} />
      <Notice>{notice}</Notice>
      <Upload admin={admin} onDone={(msg) => (setNotice(msg), list.reload())} />
      {[...byId.entries()].map(([id, versions]) => (
        <div class="plugin" key={id} data-plugin={id}>
          <div class="head">
            <h2>{id}</h2>
            <Act allowed={admin} level="admin" busy={act.busy} onClick={() => rollback(id)} disabled={versions.length < 2}>
              Roll back
            </Act>
          </div>
          <table class="grid compact" aria-label={`Versions of ${id}`}>
            <thead>
              <tr>
                <th>Version</th>
                <th>State</th>
                <th>Capabilities</th>
                <th>HTTP hosts</th>
                <th>WIT</th>
                <th>Origin</th>
                <th>SHA-256</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {versions.map((v) => (
                <tr key={v.version} data-version={v.version}>
                  <td>{v.version}</td>
                  <td>{v.active ? <StateBadge state="active" /> : <span class="muted">installed</span>}</td>
                  <td>{v.capabilities.length ? v.capabilities.join(', ') : 'none'}</td>
                  <td>{v.http_hosts.length ? v.http_hosts.join(', ') : '—'}</td>
                  <td class="mono">{v.wit}</td>
                  <td>{v.origin}</td>
                  <td class="mono" title={v.sha256 || ''}>
                    {v.sha256 ? `${v.sha256.slice(0, 12)}…` : '—'}
                  </td>
                  <td>
                    {!v.active ? (
                      <Act allowed={admin} level="admin" busy={act.busy} onClick={() => activate(id, v.version)}>
                        Activate
                      </Act>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {versions[0]?.description ? <p class="muted">{versions[0].description}</p> : null}
        </div>
      ))}
    </section>
  );
}

function Upload({ admin, onDone }) {
  const [manifest, setManifest] = useState(null);
  const [component, setComponent] = useState(null);
  const act = useAction();
  const send = () =>
    act.run(async () => {
      const form = new FormData();
      form.append('manifest', await manifest.text());
      form.append('component', component, component.name);
      const r = await post('/plugins', form);
      onDone(`Installed ${r.id} ${r.version}; it is active${r.previous ? ` (was ${r.previous})` : ''}.`);
    });
  return (
    <Form class="upload row" aria-label="Upload a plugin version" onSubmit={send}>
      <Field label="Manifest (plugin.toml)">
        <input type="file" name="manifest" accept=".toml,text/plain" disabled={!admin} onChange={(e) => setManifest(e.target.files[0] || null)} />
      </Field>
      <Field label="Component (.wasm)">
        <input type="file" name="component" accept=".wasm,application/wasm" disabled={!admin} onChange={(e) => setComponent(e.target.files[0] || null)} />
      </Field>
      <Act allowed={admin} level="admin" busy={act.busy} type="submit" class="primary" disabled={!manifest || !component}>
        Upload version
      </Act>
      <ErrorBox error={act.error} />
    </Form>
  );
}
