// Workflows of the project: versions, online state, run mode; a new one from YAML.

import { get, seg } from '../api.js';
import { useApp } from '../context.js';
import { Act, ErrorBox, StateBadge, useLoad } from '../components/ui.jsx';
import { go } from '../router.js';
import { can, fmtTime } from '../util.js';

export function NoProject() {
  return (
    <section>
      <h1>No project</h1>
      <p>
        You can see no project yet. An admin creates one under <a href="#/admin">Admin</a> and grants you a level on
        it.
      </p>
    </section>
  );
}

export function Workflows() {
  const { me, project, isProxy } = useApp();
  const list = useLoad(
    () => (project ? get(`/projects/${seg(project)}/definitions`) : Promise.resolve([])),
    [project],
  );
  if (!project) return <NoProject />;
  return (
    <section>
      <div class="head">
        <h1>Workflows</h1>
        <Act
          class="primary"
          allowed={can(me, project, 'edit')}
          level="edit"
          project={project}
          onClick={() => go('/workflows/+new/definition')}
        >
          New workflow
        </Act>
      </div>
      <ErrorBox error={list.error} />
      <table class="grid" aria-label="Workflows">
        <thead>
          <tr>
            <th>Name</th>
            <th>Version</th>
            <th>State</th>
            <th>Run mode</th>
            {isProxy ? <th>Cluster</th> : null}
            <th>Updated</th>
          </tr>
        </thead>
        <tbody>
          {(list.data || []).map((d) => (
            <tr key={`${d.cluster || ''}/${d.name}`}>
              <td>
                <a href={`#/workflows/${seg(d.name)}`}>{d.name}</a>
              </td>
              <td>v{d.current_version}</td>
              <td>
                <StateBadge state={d.online ? 'online' : 'offline'} />
              </td>
              <td>{d.run_mode}</td>
              {isProxy ? <td>{d.cluster || '—'}</td> : null}
              <td>{fmtTime(d.updated_at)}</td>
            </tr>
          ))}
          {list.data && list.data.length === 0 ? (
            <tr>
              <td colSpan={6} class="muted">
                No workflow yet: press “New workflow” and paste a DolphinScheduler YAML definition.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}
