// Masters and workers (slots, load, heartbeat age) and this server's status; behind the
// cluster proxy, its clusters with their health.

import { get } from '../api.js';
import { useApp } from '../context.js';
import { ErrorBox, StateBadge, useLoad } from '../components/ui.jsx';
import { fmtDuration, fmtTime } from '../util.js';

export function Nodes() {
  const { isProxy } = useApp();
  const nodes = useLoad(() => get('/nodes'), []);
  const status = useLoad(() => (isProxy ? Promise.resolve(null) : get('/status')), [isProxy]);
  const clusters = useLoad(() => (isProxy ? get('/clusters') : Promise.resolve(null)), [isProxy]);
  const s = status.data;
  return (
    <section>
      <div class="head">
        <h1>{isProxy ? 'Clusters and nodes' : 'Nodes'}</h1>
        <button
          type="button"
          onClick={() => {
            nodes.reload();
            status.reload();
            clusters.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <ErrorBox error={nodes.error || status.error || clusters.error} />
      {s ? (
        <p class="meta" aria-label="Server status">
          Shoal {s.version} · API {s.api_version} · {s.nodes} node{s.nodes === 1 ? '' : 's'} · {s.slots_free} of {s.slots} slots free ·{' '}
          {s.running_instances} running instance{s.running_instances === 1 ? '' : 's'} · {s.queued_runs} queued run
          {s.queued_runs === 1 ? '' : 's'} · task types:{' '}
          {Object.entries(s.task_types)
            .map(([k, v]) => `${k} ${v.join('/')}`)
            .join(', ')}
        </p>
      ) : null}
      {clusters.data ? (
        <>
          <h2>Clusters</h2>
          <table class="grid" aria-label="Clusters">
            <thead>
              <tr>
                <th>Name</th>
                <th>Health</th>
                <th>Reason</th>
                <th>URL</th>
                <th>Labels</th>
                <th>Weight</th>
                <th>Latency</th>
                <th>Slots free</th>
                <th>Running</th>
                <th>Last seen</th>
              </tr>
            </thead>
            <tbody>
              {clusters.data.clusters.map((c) => (
                <tr key={c.name}>
                  <td>{c.name}</td>
                  <td>
                    <StateBadge state={c.health} />
                  </td>
                  <td>{c.reason || '—'}</td>
                  <td class="mono">{c.url}</td>
                  <td>
                    {Object.entries(c.labels)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(', ') || '—'}
                  </td>
                  <td>{c.weight}</td>
                  <td>{c.latency_ms ?? '—'} ms</td>
                  <td>{c.status ? `${c.status.slots_free} / ${c.status.slots}` : '—'}</td>
                  <td>{c.status ? c.status.running_instances : '—'}</td>
                  <td>{fmtTime(c.last_seen_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <h2>Masters and workers</h2>
      <table class="grid" aria-label="Nodes">
        <thead>
          <tr>
            <th>Node</th>
            <th>Role</th>
            <th>State</th>
            <th>Address</th>
            <th>Groups</th>
            <th>Slots used</th>
            <th>CPU load</th>
            <th>Memory</th>
            <th>Heartbeat age</th>
            <th>Generation</th>
            {isProxy ? <th>Cluster</th> : null}
          </tr>
        </thead>
        <tbody>
          {(nodes.data?.nodes || []).map((n) => (
            <tr key={`${n.cluster || ''}/${n.id}`}>
              <td>{n.id}</td>
              <td>{n.role}</td>
              <td>
                <StateBadge state={n.failover_pending ? 'failover-pending' : n.state} />
              </td>
              <td class="mono">{n.address}</td>
              <td>{n.groups.join(', ') || '—'}</td>
              <td>
                {n.slots_used} / {n.slots}
              </td>
              <td>{n.cpu_load.toFixed(2)}</td>
              <td>{Math.round(n.memory_used * 100)}%</td>
              <td>{fmtDuration(n.heartbeat_age_ms)}</td>
              <td>{n.generation}</td>
              {isProxy ? <td>{n.cluster || '—'}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
